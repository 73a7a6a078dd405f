//! A private network namespace with IPv6 off, and `EthernetN` ports in it.
#![allow(dead_code)]

use super::*;
use std::process::{Command, Stdio};

/// A private network namespace with IPv6 off.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("ns");
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .stderr(Stdio::piped())
            .output();
        match st {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "these tests need root (or CAP_SYS_ADMIN) to create network namespaces: `ip netns add` said: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("these tests need iproute2 (`ip`): {e}"),
        }
        let ns = Netns { name };
        for scope in ["all", "default"] {
            let key = format!("net.ipv6.conf.{scope}.disable_ipv6=1");
            run(&["ip", "netns", "exec", &ns.name, "sysctl", "-qw", &key]);
        }
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["ip", "-n", &self.name];
        a.extend_from_slice(args);
        run(&a);
    }

    /// `ip -n <ns> -batch` with one command per line.
    pub fn batch(&self, lines: &[String]) {
        let dir = TempDir::new("batch");
        let f = dir.0.join("b");
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        run(&["ip", "-n", &self.name, "-batch", f.to_str().unwrap()]);
    }

    /// `EthernetN` as a veth whose peer `peerN` (ignored by portsyncd) drives its carrier.
    pub fn add_port(&self, name: &str, mtu: u32) {
        let peer = name.replace("Ethernet", "peer");
        self.ip(&[
            "link",
            "add",
            name,
            "mtu",
            &mtu.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "mtu",
            &mtu.to_string(),
        ]);
    }

    /// An `ifb` netdev whose name is raw bytes (e.g. not UTF-8, which `ip` passes through).
    pub fn add_ifb_bytes(&self, name: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let st = Command::new("ip")
            .args(["-n", &self.name, "link", "add"])
            .arg(std::ffi::OsStr::from_bytes(name))
            .args(["type", "ifb"])
            .status()
            .expect("these tests need iproute2 (`ip`)");
        assert!(
            st.success(),
            "ip link add {:?} type ifb failed",
            name.escape_ascii().to_string()
        );
    }

    /// `count` ifb ports Ethernet0, Ethernet4, … in one `ip -batch`.
    pub fn add_ifb_ports(&self, count: u32) {
        self.batch(
            &(0..count)
                .map(|i| format!("link add Ethernet{} type ifb", i * 4))
                .collect::<Vec<_>>(),
        );
    }

    /// The kernel's view: name → (oper up per IFF_RUNNING, admin up, mtu) for `Ethernet*`.
    pub fn kernel_ports(&self) -> BTreeMap<String, (bool, bool, u32)> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j", "link"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut m = BTreeMap::new();
        for l in v.as_array().unwrap() {
            let name = l["ifname"].as_str().unwrap().to_string();
            if !name.starts_with("Ethernet") {
                continue;
            }
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let admin = flags.contains(&"UP");
            // IFF_RUNNING is not printed by `ip`; it is set when up and operstate is UP/UNKNOWN.
            let op = l["operstate"].as_str().unwrap_or("");
            let oper = admin && (op == "UP" || op == "UNKNOWN");
            m.insert(name, (oper, admin, l["mtu"].as_u64().unwrap() as u32));
        }
        m
    }
}

impl Netns {
    /// `GET /metrics` from the daemon in this namespace (default listen address), if it answers.
    pub fn try_metrics(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "curl",
                "-sf",
                "--max-time",
                "5",
                "http://127.0.0.1:9101/metrics",
            ])
            .output()
            .expect("these tests need curl");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn metrics(&self) -> String {
        self.try_metrics().expect("scrape /metrics")
    }

    /// One unlabelled sample of the scrape, if the endpoint answers.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let text = self.try_metrics()?;
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
        line.split(' ').nth(1)?.parse().ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
