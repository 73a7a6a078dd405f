//! The C++ portsyncd (sonic-swss), run the way the bench runs ours: inside the bench's
//! network namespace, against the bench's private Redis, logging to the bench's syslog
//! socket. It takes no `--db-config` and writes to no configurable socket: it reads
//! /var/run/redis/sonic-db/database_config.json and calls syslog(3) on /dev/log. So it runs in
//! a private mount namespace (`ip netns exec` … `unshare -m`) with an overlay on /run holding
//! the rig's database_config.json and an overlay on /dev with the bench's socket bind-mounted
//! at /dev/log; the host's files are untouched and the mounts die with the process. The exec
//! chain (ip → unshare → sh → portsyncd) keeps one pid, so signals and /proc reads reach the
//! daemon itself. The binary is built outside the repo (how: docs/PERFORMANCE.md, "Method").

use crate::common::{wait, Netns, Redis, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What runs inside the private mount namespace: $1 work dir, $2 syslog socket, $3
/// database_config.json, $4 the directory of swss-common's Lua scripts, then the command
/// line (wrapper and binary).
const MOUNTS: &str = r#"set -e
d=$1; sink=$2; cfg=$3; lua=$4; shift 4
mount --make-rprivate /
mkdir -p "$d/dev.up" "$d/dev.work" "$d/run.up/redis/sonic-db" "$d/run.work"
mkdir -p "$d/share.up/swss" "$d/share.work"
cp "$cfg" "$d/run.up/redis/sonic-db/database_config.json"
cp "$lua"/*.lua "$d/share.up/swss/"
mount -t overlay overlay -o "lowerdir=/usr/share,upperdir=$d/share.up,workdir=$d/share.work" /usr/share
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$d/dev.up,workdir=$d/dev.work" /dev
: > /dev/log
mount --bind "$sink" /dev/log
mount -t overlay overlay -o "lowerdir=/run,upperdir=$d/run.up,workdir=$d/run.work" /run
exec "$@"
"#;

pub struct CppDaemon {
    child: Child,
    dir: TempDir,
    bin: String,
}

impl CppDaemon {
    /// Start `bin` (after `prefix`, e.g. a valgrind command line) in `ns` against `redis`,
    /// logging to the datagram socket at `syslog`.
    pub fn start(ns: &Netns, redis: &Redis, bin: &Path, prefix: &[&str], syslog: &Path) -> Self {
        let lua = std::env::var_os("PORTSYNCD_BENCH_CPP_LUA")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin.with_file_name("lua"));
        assert!(
            lua.join("producer_state_table_apply_view.lua").is_file(),
            "{}: no swss-common Lua scripts there (PORTSYNCD_BENCH_CPP_LUA names their directory)",
            lua.display()
        );
        let dir = TempDir::new("cpp");
        let out = std::fs::File::create(dir.0.join("portsyncd.out")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "unshare", "-m", "sh", "-c", MOUNTS, "sh",
            ])
            .arg(&dir.0)
            .arg(syslog)
            .arg(&redis.cfg)
            .arg(&lua)
            .args(prefix)
            .arg(bin)
            .current_dir(&dir.0)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ip netns exec … the C++ portsyncd");
        CppDaemon {
            child,
            dir,
            bin: bin.display().to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What it printed on stdout/stderr (and the mount script's errors).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("portsyncd.out")).unwrap_or_default()
    }

    /// Start-up is over: the binary runs (the exec chain is done) and its main thread waits in
    /// epoll_wait, i.e. in the select loop. The C++ daemon says nothing else when it gets
    /// there, and netdevs it saw at start-up are "old" ones it ignores, so the bench must not
    /// create ports before this.
    pub async fn wait_started(&mut self) {
        let pid = self.pid();
        let bin = self.bin.clone();
        let mut exited = false;
        let child = &mut self.child;
        wait(
            || {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let wchan =
                    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
                exited = child.try_wait().ok().flatten().is_some();
                let ok = exited
                    || (String::from_utf8_lossy(&cmdline).contains(&bin)
                        && wchan == "do_epoll_wait");
                async move { ok }
            },
            "the C++ portsyncd to reach its select loop",
        )
        .await;
        assert!(
            !exited,
            "the C++ portsyncd exited during start-up:\n{}",
            self.output()
        );
    }

    pub fn signal(&self, sig: &str) {
        crate::common::run(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }
}

impl Drop for CppDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- C++ portsyncd output ---\n{}", self.output());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
