//! PORTSYNCD_BENCH_PROFILE: a command run around the drains of one size only, so a profile
//! or a syscall count covers the drains and nothing else (scripts/callgrind uses it).

use std::time::Duration;

/// `PORTSYNCD_BENCH_PROFILE="perf record -g -o /tmp/p.data -p {pid}"` runs that command
/// around the drains of `PORTSYNCD_BENCH_PROFILE_PORTS` ports (default 1,024) only, so a
/// profile or a syscall count (`strace -c -p {pid}`) covers the drains and nothing else.
/// `PORTSYNCD_BENCH_PROFILE_STOP` runs after the drains, before the first command gets
/// SIGINT (e.g. `callgrind_control -i off {pid}; callgrind_control -d {pid}`).
pub struct Profiler(std::process::Child, i32);

impl Profiler {
    pub fn attach(pid: i32, n: u32) -> Option<Profiler> {
        let cmd = std::env::var("PORTSYNCD_BENCH_PROFILE").ok()?;
        let ports = std::env::var("PORTSYNCD_BENCH_PROFILE_PORTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        if n != ports {
            return None;
        }
        let cmd = cmd.replace("{pid}", &pid.to_string());
        let child = std::process::Command::new("sh")
            .args(["-c", &format!("exec {cmd}")])
            .spawn()
            .expect("starting the profiler");
        // Give it time to attach (perf and strace print nothing useful to wait on).
        std::thread::sleep(Duration::from_millis(500));
        Some(Profiler(child, pid))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Ok(stop) = std::env::var("PORTSYNCD_BENCH_PROFILE_STOP") {
            let stop = stop.replace("{pid}", &self.1.to_string());
            let _ = std::process::Command::new("sh")
                .args(["-c", &stop])
                .status();
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
