//! A private rsyslogd for the syslog tests: imuxsock on a socket in its own temp dir, omfile
//! to a file beside it, no system socket or log touched. Each line in the file is what
//! rsyslog parsed out of one datagram, tab-separated: priority, severity, the reported
//! timestamp, tag, pid, message, and the raw datagram. Start, stop, restart, SIGSTOP/SIGCONT;
//! killed in Drop.
#![allow(dead_code)]

use super::*;
use std::process::{Child, Stdio};

pub struct Rsyslog {
    dir: TempDir,
    child: Option<Child>,
    /// The socket portsyncd sends to (its `syslog_socket`).
    pub socket: PathBuf,
    pub out: PathBuf,
}

/// One line rsyslog wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub pri: String,
    pub severity: String,
    pub reported: String,
    pub tag: String,
    pub procid: String,
    pub msg: String,
    pub raw: String,
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let dir = TempDir::new("rsyslog");
        let socket = dir.0.join("log.sock");
        let out = dir.0.join("messages");
        let conf = dir.0.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" IgnoreTimestamp="off" RateLimit.Interval="0" CreatePath="on")
template(name="fields" type="string"
         string="%pri%\t%syslogseverity-text%\t%timereported%\t%syslogtag%\t%procid%\t%msg%\t%rawmsg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
                dir = dir.0.display(),
                sock = socket.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            dir,
            child: None,
            socket,
            out,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.0.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.0.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.0.join("rsyslogd.err")).unwrap())
            .spawn()
            .expect("these tests need rsyslogd (apt-get install rsyslog; scripts/deps does)");
        self.child = Some(child);
        let sock = self.socket.clone();
        let err = self.dir.0.join("rsyslogd.err");
        wait_sync(
            || {
                use std::os::unix::fs::FileTypeExt;
                std::fs::metadata(&sock).is_ok_and(|m| m.file_type().is_socket())
            },
            &format!(
                "rsyslogd to create {}: {}",
                sock.display(),
                std::fs::read_to_string(&err).unwrap_or_default()
            ),
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("rsyslogd running").id()
    }

    /// SIGTERM and wait for the exit (rsyslogd flushes its file and removes nothing else).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            run(&["kill", "-TERM", &c.id().to_string()]);
            let _ = c.wait();
        }
    }

    /// Stop, then start again on the same socket path (a new socket, as after a restart).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn pause(&self) {
        run(&["kill", "-STOP", &self.pid().to_string()]);
    }

    pub fn resume(&self) {
        run(&["kill", "-CONT", &self.pid().to_string()]);
    }

    /// Every line rsyslog wrote so far.
    pub fn lines(&self) -> Vec<Line> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(7, '\t').collect();
                (f.len() == 7).then(|| Line {
                    pri: f[0].into(),
                    severity: f[1].into(),
                    reported: f[2].into(),
                    tag: f[3].into(),
                    procid: f[4].into(),
                    msg: f[5].into(),
                    raw: f[6].into(),
                })
            })
            .collect()
    }

    /// Messages (after the tag) that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.msg.contains(needle))
            .count()
    }

    /// Wait until some message contains `needle`; returns that line.
    pub async fn wait_msg(&self, needle: &str) -> Line {
        let mut found = None;
        wait(
            || {
                found = self.lines().into_iter().find(|l| l.msg.contains(needle));
                let ok = found.is_some();
                async move { ok }
            },
            &format!(
                "rsyslog line containing {needle:?}; last lines: {:?}",
                self.lines()
                    .iter()
                    .rev()
                    .take(5)
                    .map(|l| &l.msg)
                    .collect::<Vec<_>>()
            ),
        )
        .await;
        found.expect("waited for")
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process ignores SIGTERM until continued; SIGKILL works either way.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
