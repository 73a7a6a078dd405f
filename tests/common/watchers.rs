//! Observers that run beside the daemon: `ip monitor link` in the namespace (every admin-down
//! an `Ethernet*` netdev ever goes through, so "no port went down across a restart" is a fact,
//! not a sample), and a `redis-cli PSUBSCRIBE` whose notifications a callback acts on at once
//! (to create netdevs the moment `PortConfigDone` is published, as syncd does). Both are
//! ready before they return and are killed on drop.
#![allow(dead_code)]

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// `ip -o monitor link` in a namespace, its lines kept.
pub struct LinkWatch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LinkWatch {
    /// Start watching; returns once the monitor has reported a probe link of its own
    /// (created and deleted here), so every later change is seen.
    pub fn start(ns: &Netns) -> LinkWatch {
        let mut child = Command::new("ip")
            .args(["-n", &ns.name, "-o", "monitor", "link"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need iproute2 (`ip monitor`)");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                sink.lock().unwrap().push(line);
            }
        });
        let w = LinkWatch { child, lines };
        let probe = format!("lwp{}", SEQ.fetch_add(1, Ordering::Relaxed) % 10_000);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let _ = Command::new("ip")
                .args(["-n", &ns.name, "link", "add", &probe, "type", "ifb"])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("ip")
                .args(["-n", &ns.name, "link", "del", &probe])
                .stderr(Stdio::null())
                .status();
            if w.lines().iter().any(|l| l.contains(&probe)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`ip monitor link` never reported {probe}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every `Ethernet*` netdev the kernel reported admin-down (IFF_UP clear) since the start
    /// (deletions excluded), with the monitor line.
    pub fn admin_downs(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| !l.starts_with("Deleted"))
            .filter(|l| {
                let Some((_, rest)) = l.split_once(": ") else {
                    return false;
                };
                let (name, rest) = rest.split_once(": ").unwrap_or((rest, ""));
                let flags = rest
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(f, _)| f)
                    .unwrap_or("");
                name.starts_with("Ethernet") && !flags.split(',').any(|f| f == "UP")
            })
            .collect()
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli PSUBSCRIBE <pattern>` on one database; `on_event(channel, payload)` runs on the
/// reader thread for each notification, as it arrives.
pub struct KeyspaceWatch {
    child: Child,
    done: Arc<Mutex<bool>>,
}

impl KeyspaceWatch {
    pub fn start(
        redis: &Redis,
        pattern: &str,
        mut on_event: impl FnMut(&str, &str) + Send + 'static,
    ) -> KeyspaceWatch {
        let mut child = Command::new("redis-cli")
            .arg("-s")
            .arg(&redis.socket)
            .args(["psubscribe", pattern])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need redis-cli");
        let out = child.stdout.take().unwrap();
        let ready = Arc::new(Mutex::new(false));
        let (r, done) = (ready.clone(), Arc::new(Mutex::new(false)));
        std::thread::spawn(move || {
            // Raw output (stdout is a pipe): each message is a group of lines "pmessage",
            // pattern, channel, payload; the confirmation is "psubscribe", pattern, 1.
            let mut group: Vec<String> = Vec::new();
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                group.push(line.trim().to_string());
                match group.first().map(String::as_str) {
                    Some("psubscribe") if group.len() == 3 => {
                        *r.lock().unwrap() = true;
                        group.clear();
                    }
                    Some("pmessage") if group.len() == 4 => {
                        on_event(&group[2], &group[3]);
                        group.clear();
                    }
                    Some("psubscribe") | Some("pmessage") => {}
                    _ => group.clear(),
                }
            }
        });
        wait_sync(
            || *ready.lock().unwrap(),
            "redis-cli PSUBSCRIBE to be ready",
        );
        KeyspaceWatch { child, done }
    }
}

impl Drop for KeyspaceWatch {
    fn drop(&mut self) {
        *self.done.lock().unwrap() = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
