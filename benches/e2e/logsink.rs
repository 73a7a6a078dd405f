//! The syslog socket both daemons log to in the bench: a datagram socket in a temp dir,
//! drained by a thread that counts what arrives. Ours is pointed at it with `--log-target
//! syslog` and `syslog_socket`; the C++ daemon gets it bind-mounted over `/dev/log` (see
//! `cpp.rs`). Nothing listening would let a daemon drop its lines for free, and a file
//! (the rig's stderr) costs differently: this is what the swss container does (datagrams to
//! /dev/log), and the counts let the report say both wrote their ~2 lines per event.
//! The socket is made inside the bench's namespace, whose `net.unix.max_dgram_qlen` is set
//! to 512 first: the receive queue a datagram socket gets is that sysctl of the namespace it
//! was made in, and 512 is what a SONiC host has (systemd's default; this kernel's is 10).
//! With 10, our non-blocking sender would drop lines whenever the drain thread is not
//! scheduled, while glibc's blocking syslog(3) would wait.

use crate::common::{run, Netns, TempDir};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct LogSink {
    pub path: PathBuf,
    counts: Arc<Counts>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

#[derive(Default)]
struct Counts {
    lines: AtomicU64,
    /// What our daemon said it dropped (`N log lines dropped`), summed.
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl LogSink {
    /// The socket, bound in `ns`, and its drain thread.
    pub fn start(ns: &Netns) -> LogSink {
        run(&[
            "ip",
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.unix.max_dgram_qlen=512",
        ]);
        let dir = TempDir::new("syslog");
        let path = dir.0.join("log.sock");
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (p, nsname) = (path.clone(), ns.name.clone());
        let thread = std::thread::spawn(move || {
            // This thread only: the socket takes the namespace's queue length.
            let f = std::fs::File::open(format!("/run/netns/{nsname}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = UnixDatagram::bind(&p).expect("bind the bench's syslog socket");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 8192];
            while !c.stop.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                c.lines.fetch_add(1, Ordering::Relaxed);
                if let Some(k) = dropped_in(&buf[..n]) {
                    c.dropped.fetch_add(k, Ordering::Relaxed);
                }
            }
        });
        ready_rx.recv().expect("the syslog drain thread started");
        LogSink {
            path,
            counts,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Datagrams received so far.
    pub fn lines(&self) -> u64 {
        self.counts.lines.load(Ordering::Relaxed)
    }

    /// Lines the sender reported as dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }
}

/// `… N log lines dropped …` → N.
fn dropped_in(datagram: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (head, _) = text.split_once(" log lines dropped")?;
    head.rsplit(' ').next()?.parse().ok()
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.counts.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
