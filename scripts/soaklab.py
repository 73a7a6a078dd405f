"""The lab that scripts/soak and scripts/probe run in: a private network namespace (IPv6 off)
that this process enters, `ifb` ports named Ethernet0, 4, 8 …, a private redis-server on a
unix socket in a temp dir (SONiC's keyspace-notification setting, no persistence), CONFIG_DB
seeded as the test rig seeds it (tests/common/sonic.rs S0), `portsyncd consume` as the
orchagent stand-in, and the daemon under test with its stderr drained by a thread. Everything
started here is stopped by `Lab.close()`, which the scripts call from `finally` and on SIGTERM.
Needs root, /usr/bin/python3 with python3-pyroute2 and python3-redis (scripts/deps)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import redis
from pyroute2 import IPRoute
from pyroute2.netns import setns

IFF_UP = 0x1
IFF_RUNNING = 0x40
DEADLINE = 30.0  # seconds for anything the lab waits on


class Fail(Exception):
    """A check or a set-up step failed; the message says which and why."""


def wait(cond, what, deadline=DEADLINE, step=0.02):
    """Poll `cond` until it returns something truthy (returned), or fail after `deadline` s."""
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(step)


def port(i):
    return f"Ethernet{i * 4}"


def s0_fields(i):
    """CONFIG_DB PORT fields for port index i, as tests/common/sonic.rs s0_fields."""
    n = i * 4
    return {
        "lanes": f"{n},{n + 1},{n + 2},{n + 3}",
        "alias": f"etp{i + 1}",
        "index": str(i),
        "speed": "100000",
        "mtu": "9100",
        "admin_status": "up",
        "fec": "rs",
    }


def database_config(sock):
    """The same database_config.json as src/lab.rs database_config_json."""
    dbs = [("APPL_DB", 0, ":"), ("ASIC_DB", 1, ":"), ("COUNTERS_DB", 2, ":"),
           ("LOGLEVEL_DB", 3, ":"), ("CONFIG_DB", 4, "|"), ("FLEX_COUNTER_DB", 5, ":"),
           ("STATE_DB", 6, "|")]
    return json.dumps({
        "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": sock}},
        "DATABASES": {n: {"id": i, "separator": s, "instance": "redis"} for n, i, s in dbs},
        "VERSION": "1.0",
    })


class LogDrain:
    """The daemon's stderr through `grep`: only lines that say something went wrong or was
    recovered reach `dir/log.kept` (a NOTICE daemon writes two lines per event; filtering
    them in Python would cost the flapper its rate)."""

    KEEP = "panicked|redis write failed|re-dumping links|resync #|lost message|ERROR|WARN"

    def __init__(self, stream, path):
        self.path = path
        self._out = open(path, "wb")
        self.proc = subprocess.Popen(["grep", "-a", "--line-buffered", "-E", self.KEEP],
                                     stdin=stream, stdout=self._out)

    def lines(self, needle=None):
        with open(self.path, "rb") as f:
            text = f.read().decode("utf-8", "replace").splitlines()
        return [l for l in text if needle is None or needle in l]

    @property
    def tail(self):
        return [l for l in self.lines() if "ALERT" not in l][-40:]

    @property
    def alarming(self):
        return self.lines("panicked")[:50]


class Lab:
    def __init__(self, ports, binary, tag):
        self.ports = ports
        self.binary = os.path.abspath(binary)
        if not os.access(self.binary, os.X_OK):
            raise Fail(f"{self.binary} is not an executable (build it: cargo build --release)")
        self.dir = tempfile.mkdtemp(prefix=f"portsyncd-{tag}-")
        self.ns = f"portsyncd-{tag}-{os.getpid()}"
        self.sock = os.path.join(self.dir, "redis.sock")
        self.cfg = os.path.join(self.dir, "database_config.json")
        self.redis_proc = None
        self.consumer = None
        self.daemon = None
        self.log = None
        self.ipr = None
        self._ns_made = False
        with open(self.cfg, "w") as f:
            f.write(database_config(self.sock))

    # --- Redis -------------------------------------------------------------------------
    def start_redis(self):
        """redis-server on the lab's socket; loads `base.rdb` from the temp dir if present
        (a restart after `snapshot`), never saves on its own."""
        self.redis_proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--notify-keyspace-events", "AKE",
             "--dir", self.dir, "--dbfilename", "base.rdb"],
            stdout=subprocess.DEVNULL)

        def up():
            try:
                return self.db(0).ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError,
                    FileNotFoundError):
                return False
        wait(up, f"redis-server on {self.sock}")

    def kill_redis(self):
        self.redis_proc.kill()
        self.redis_proc.wait()
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass

    def db(self, n):
        return redis.Redis(unix_socket_path=self.sock, db=n, decode_responses=True,
                           socket_timeout=5)

    def psubscribers(self):
        """Client connections with a pattern subscription (the daemon's keyspace watches)."""
        return sum(1 for c in self.db(0).client_list() if int(c.get("psub", 0)) > 0)

    def snapshot(self):
        """What a restarted Redis comes back with: everything as it is now, in base.rdb."""
        self.db(0).save()

    # --- namespace -----------------------------------------------------------------------
    def enter_netns(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self._ns_made = True
        setns(self.ns, flags=0)
        for scope in ("all", "default"):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        self.ipr = IPRoute()

    def ip_batch(self, lines):
        path = os.path.join(self.dir, "batch")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run(["ip", "-force", "-batch", path], check=True,
                       stdout=subprocess.DEVNULL)

    def kernel(self):
        """name → (oper, admin, mtu) for every Ethernet* link, as the daemon reads them
        (admin IFF_UP, oper IFF_RUNNING)."""
        out = {}
        for l in self.ipr.get_links():
            name = l.get_attr("IFLA_IFNAME")
            if name and name.startswith("Ethernet"):
                f = l["flags"]
                out[name] = ("up" if f & IFF_RUNNING else "down", "up" if f & IFF_UP else "down",
                             str(l.get_attr("IFLA_MTU")))
        return out

    def ifindex(self, name):
        return self.ipr.link_lookup(ifname=name)[0]

    # --- SONiC ---------------------------------------------------------------------------
    def seed(self):
        p = self.db(4).pipeline(transaction=False)
        for i in range(self.ports):
            p.hset(f"PORT|{port(i)}", mapping=s0_fields(i))
        p.hset("DEVICE_METADATA|localhost", mapping={
            "hostname": "sonic", "hwsku": "TestSku", "platform": "x86_64-test",
            "type": "ToRRouter"})
        p.execute()

    def start_daemon(self, settings_toml="", log_target="stderr"):
        settings = os.path.join(self.dir, "portsyncd.toml")
        with open(settings, "w") as f:
            f.write(settings_toml)
        self.consumer = subprocess.Popen(
            [self.binary, "--db-config", self.cfg, "consume"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.daemon = subprocess.Popen(
            [self.binary, "--db-config", self.cfg, "--log-target", log_target,
             "--config", settings],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = LogDrain(self.daemon.stderr, os.path.join(self.dir, "log.kept"))
        self.daemon.stderr.close()

    def bring_up_ports(self):
        """orchagent's part of a cold start: after PortConfigDone, the host interfaces appear
        (ifb, admin up); then wait for PortInitDone to be popped and every row written."""
        appl = self.db(0)
        wait(lambda: appl.exists("PORT_TABLE:PortConfigDone"), "PortConfigDone (popped)")
        lines = [f"link add {port(i)} type ifb" for i in range(self.ports)]
        lines += [f"link set {port(i)} up" for i in range(self.ports)]
        self.ip_batch(lines)
        wait(lambda: appl.exists("PORT_TABLE:PortInitDone"), "PortInitDone (popped)")
        self.converge("start-up")

    def state_rows(self):
        state = self.db(6)
        names = sorted(k.split("|", 1)[1] for k in state.scan_iter("PORT_TABLE|*", count=1000))
        p = state.pipeline(transaction=False)
        for n in names:
            p.hgetall(f"PORT_TABLE|{n}")
        return dict(zip(names, p.execute()))

    def mismatches(self):
        """Every difference between the kernel's Ethernet* links and STATE_DB PORT_TABLE."""
        kernel, rows = self.kernel(), self.state_rows()
        out = []
        for name, (oper, admin, mtu) in sorted(kernel.items()):
            want = {"state": "ok", "netdev_oper_status": oper, "admin_status": admin, "mtu": mtu}
            got = rows.get(name)
            if got is None:
                out.append(f"{name}: no STATE_DB row (kernel {want})")
            elif got != want:
                out.append(f"{name}: kernel {want}, STATE_DB {got}")
        out += [f"{n}: STATE_DB row for a netdev the kernel does not have"
                for n in rows if n not in kernel]
        return out

    def converge(self, what, deadline=DEADLINE):
        """Wait until STATE_DB equals the kernel; returns seconds taken, else fails with the
        first mismatches."""
        t0 = time.monotonic()
        last = []
        while time.monotonic() - t0 < deadline:
            try:
                last = self.mismatches()
            except redis.exceptions.RedisError as e:
                last = [f"redis: {e}"]
            if not last:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise Fail(f"{what}: STATE_DB differs from the kernel after {deadline:.0f}s, "
                   f"{len(last)} mismatch(es), e.g. {last[:5]}")

    def metrics(self):
        """The daemon's /metrics (it runs with metrics_listen = 127.0.0.1:9101 in this netns):
        name{labels} → value."""
        with urllib.request.urlopen("http://127.0.0.1:9101/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def assert_running(self):
        for what, p in (("portsyncd", self.daemon), ("portsyncd consume", self.consumer)):
            if p is not None and p.poll() is not None:
                tail = "\n".join(self.log.tail) if self.log and p is self.daemon else ""
                raise Fail(f"{what} exited with {p.returncode}\n{tail}")

    def close(self):
        for p in (self.daemon, self.consumer, self.redis_proc,
                  self.log.proc if self.log else None):
            if p is not None and p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.kill()
                    p.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        if self.ipr is not None:
            self.ipr.close()
        if self._ns_made:
            subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def on_sigterm(*_):
    raise SystemExit(143)


def install_signal_handlers():
    """SIGTERM/SIGHUP end the script through `finally` (so the lab is torn down)."""
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
