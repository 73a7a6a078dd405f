//! The real portsyncd binary inside a namespace, with a NOTIFY_SOCKET the rig reads.
#![allow(dead_code)]

use super::*;
use std::process::{Child, Command, Stdio};

/// The real binary, run inside a namespace; killed on drop. It gets a `NOTIFY_SOCKET` that
/// the rig reads, like systemd would.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
    /// The settings file of `start_with_metrics`.
    _settings: Option<TempDir>,
}

impl Daemon {
    pub fn start(ns: &Netns, redis: &Redis) -> Daemon {
        Self::start_args(ns, redis, &[], &[])
    }

    pub fn start_args(ns: &Netns, redis: &Redis, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_as(ns, redis, &[], args, env)
    }

    /// Like `start_args`, with /metrics on 127.0.0.1:9101 (off by default: the C++ daemon opens
    /// no port), from a settings file holding `toml` after that key.
    pub fn start_with_metrics(ns: &Netns, redis: &Redis, toml: &str, args: &[&str]) -> Daemon {
        let dir = TempDir::new("settings");
        let cfg = dir.0.join("portsyncd.toml");
        std::fs::write(&cfg, format!("metrics_listen = \"127.0.0.1:9101\"\n{toml}")).unwrap();
        let cfg = cfg.display().to_string();
        let mut all = vec!["--config", cfg.as_str()];
        all.extend_from_slice(args);
        let mut d = Self::start_args(ns, redis, &all, &[]);
        d._settings = Some(dir);
        d
    }

    /// Like `start_args`, with `prefix` (e.g. a `setpriv …` command line) between
    /// `ip netns exec` and the binary. The daemon's working directory is its own temp dir.
    pub fn start_as(
        ns: &Netns,
        redis: &Redis,
        prefix: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = TempDir::new("daemon");
        let log = dir.0.join("portsyncd.log");
        let notify_path = dir.0.join("notify.sock");
        let sock =
            std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
        // Writable for a daemon that dropped root (the least-privilege test).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        let log_target: &[&str] = if args.contains(&"--log-target") {
            &[]
        } else {
            &["--log-target", "stderr"]
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(prefix)
            .args([env!("CARGO_BIN_EXE_portsyncd"), "--db-config"])
            .arg(&redis.cfg)
            .args(log_target)
            .args(args)
            .current_dir(&dir.0)
            .env("NOTIFY_SOCKET", &notify_path)
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn portsyncd");
        Daemon {
            child,
            log,
            notes,
            _dir: dir,
            _settings: None,
        }
    }

    /// The daemon's working directory.
    pub fn dir(&self) -> &Path {
        &self._dir.0
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_log(&self, needle: &str) {
        wait(
            || async { self.log_text().contains(needle) },
            &format!("log line {needle:?}\n--- log ---\n{}", self.log_text()),
        )
        .await;
    }

    /// Start-up is over (`READY=1`): stale netdevs were enumerated, so netdevs created from
    /// now on are new ones (orchagent waits for this in SONiC too, sonic-buildimage#4821).
    pub async fn wait_started(&self) {
        self.wait_note("READY=1").await;
    }

    /// sd_notify datagrams received so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    pub async fn wait_note(&self, needle: &str) {
        wait(
            || async { self.notes().iter().any(|n| n.contains(needle)) },
            &format!(
                "sd_notify {needle:?}; got {:?}\n--- log ---\n{}",
                self.notes(),
                self.log_text()
            ),
        )
        .await;
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    pub fn signal(&self, sig: &str) {
        run(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "portsyncd exited\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- portsyncd log (last 40 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
