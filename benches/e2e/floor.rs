//! PORTSYNCD_BENCH_FLOOR=1: the floor (../shared/tools/floor, read-only shared code, run as
//! it is) back to back with the daemons' 1,024-port drains — CPU per event of a bare
//! netlink reader (mode 0) and of reader + pipelined HSET (mode 1), down and up — and its
//! mode-1 reader, built from the same source, as a third subject of the steady latency: a
//! reader that writes each event's row at once, with no gate, log or state.

use crate::stats::Stat;
use std::path::PathBuf;
use std::process::Command;

pub struct Floor {
    /// [mode][0 = down, 1 = up]: CPU µs per event over the reps.
    pub cpu: [[Stat; 2]; 2],
}

/// Where run.sh is: PORTSYNCD_BENCH_FLOOR names its directory, or (`1`) the shared tools
/// beside the repository (a clone in /work/main or a worktree in /work/wt/…).
fn dir() -> Option<PathBuf> {
    let v = std::env::var("PORTSYNCD_BENCH_FLOOR").ok()?;
    if v.is_empty() || v == "0" {
        return None;
    }
    if v != "1" {
        return Some(PathBuf::from(v));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = ["../shared/tools/floor", "../../shared/tools/floor"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.join("run.sh").is_file());
    Some(found.unwrap_or_else(|| {
        panic!("PORTSYNCD_BENCH_FLOOR=1: no shared/tools/floor/run.sh beside {}; give its directory instead", root.display())
    }))
}

pub fn wanted() -> bool {
    dir().is_some()
}

/// `run.sh ports reps`, parsed.
pub fn run(ports: u32, reps: usize) -> Floor {
    let d = dir().expect("PORTSYNCD_BENCH_FLOOR set");
    let out = Command::new("bash")
        .arg(d.join("run.sh"))
        .arg(ports.to_string())
        .arg(reps.to_string())
        .output()
        .expect("run the floor's run.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "floor run.sh failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&text)
}

/// Lines like `mode=1 rep=2 down events=1024 wall_ms=9 cpu_us_per_event=1.71`.
fn parse(text: &str) -> Floor {
    let mut v: [[Vec<f64>; 2]; 2] = Default::default();
    for line in text.lines() {
        assert!(!line.starts_with("timeout"), "the floor timed out: {line}");
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(mode), Some(dir), Some(cpu)) = (
            f.first().and_then(|m| m.strip_prefix("mode=")),
            f.get(2),
            f.iter().find_map(|x| x.strip_prefix("cpu_us_per_event=")),
        ) else {
            continue;
        };
        let m: usize = mode.parse().expect("floor mode");
        let d = usize::from(*dir == "up");
        v[m.min(1)][d].push(cpu.parse().expect("floor cpu_us_per_event"));
    }
    assert!(
        v.iter().flatten().all(|x| !x.is_empty()),
        "the floor printed no mode 0/1 down/up figures:\n{text}"
    );
    Floor {
        cpu: [
            [Stat::of(&v[0][0]), Stat::of(&v[0][1])],
            [Stat::of(&v[1][0]), Stat::of(&v[1][1])],
        ],
    }
}

/// The floor's reader (`nlfloor.c`), compiled with `cc -O2` into `dir` for the steady figure.
pub fn reader(dir: &std::path::Path) -> PathBuf {
    let src = self::dir()
        .expect("PORTSYNCD_BENCH_FLOOR set")
        .join("nlfloor.c");
    let bin = dir.join("nlfloor");
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc (apt-get install gcc) to build the floor's reader");
    assert!(
        out.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}
