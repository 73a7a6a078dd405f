//! What the bench measured, kept per size and daemon, and the tables it prints: the scale
//! table (one row per size and daemon), the side-by-side figures at the reference size with
//! the C++ ÷ ours ratio, and the floor. Every multi-run figure is the median with its spread
//! (min–max of the runs).

use crate::floor::Floor;
use crate::stats::{percentile, ratio, Stat};
use crate::subject::Kind;

/// One daemon at one size.
#[derive(Default)]
pub struct Sized {
    /// Drain wall time (ms), CPU per event (µs), log datagrams per event: [down, up].
    pub ms: [Vec<f64>; 2],
    pub cpu: [Vec<f64>; 2],
    /// Syslog datagrams received during all the drains, and the events in them.
    pub log_lines: u64,
    pub events: u64,
    pub n_ports: u64,
    /// Events lost in drains that did not complete (those drains are not in `ms`/`cpu`).
    pub lost: u64,
    /// Lines our daemon reported dropping (its syslog backlog was full).
    pub dropped: u64,
    pub cold: Vec<f64>,
    /// VmRSS once the ports are up and popped, VmRSS and VmHWM after the drains (kB).
    pub idle_kb: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Sized {
    /// `0`, or `412 of 20000 (3 drains incomplete)`.
    fn lost_text(&self) -> String {
        if self.lost == 0 {
            return if self.events == 0 {
                "–".into()
            } else {
                "0".into()
            };
        }
        let done = self.ms[0].len() + self.ms[1].len();
        let all = (self.events / self.n_ports.max(1)) as usize;
        format!(
            "{} of {} ({} of {all} drains incomplete)",
            self.lost,
            self.events,
            all - done
        )
    }

    fn lines_per_event(&self) -> Stat {
        if self.events == 0 {
            return Stat::default();
        }
        one_f(self.log_lines as f64 / self.events as f64)
    }

    fn events_per_s(&self, d: usize, n: u32) -> String {
        let s = Stat::of(&self.ms[d]);
        if s.n == 0 {
            return "–".into();
        }
        format!("{:.0}", f64::from(n) / s.med * 1e3)
    }
}

pub struct Results {
    pub kinds: Vec<Kind>,
    pub sizes: Vec<u32>,
    /// [size index][kind index]
    pub at: Vec<Vec<Sized>>,
    /// Steady latencies (µs, sorted) per kind, if measured.
    pub steady: Vec<Vec<f64>>,
    pub floor: Option<Floor>,
    /// Steady latencies (µs, sorted) of the floor's reader, if measured.
    pub steady_floor: Vec<f64>,
}

fn kb(v: u64) -> String {
    if v == 0 {
        "–".into()
    } else {
        v.to_string()
    }
}

impl Results {
    pub fn print_scale(&self) {
        if self
            .at
            .iter()
            .flatten()
            .all(|s| s.ms[0].is_empty() && s.cold.is_empty())
        {
            return;
        }
        println!("## scale (median (min–max) of the runs)\n");
        println!("| ports | daemon | drain down (ms) | drain up (ms) | events/s down / up | CPU per event down (µs) | CPU per event up (µs) | log lines per event | cold start to PortConfigDone (ms) | VmRSS idle → after drains (kB) | VmHWM (kB) | events lost |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (i, &n) in self.sizes.iter().enumerate() {
            for (k, kind) in self.kinds.iter().enumerate() {
                let s = &self.at[i][k];
                let lines = s.lines_per_event();
                let dropped = if s.dropped > 0 {
                    format!(" ({} dropped)", s.dropped)
                } else {
                    String::new()
                };
                println!(
                    "| {n} | {} | {} | {} | {} / {} | {} | {} | {}{dropped} | {} | {} → {} | {} | {} |",
                    kind.label(),
                    Stat::of(&s.ms[0]).show(2),
                    Stat::of(&s.ms[1]).show(2),
                    s.events_per_s(0, n),
                    s.events_per_s(1, n),
                    Stat::of(&s.cpu[0]).show(2),
                    Stat::of(&s.cpu[1]).show(2),
                    lines.show(2),
                    Stat::of(&s.cold).show(1),
                    kb(s.idle_kb),
                    kb(s.rss_kb),
                    kb(s.hwm_kb),
                    s.lost_text(),
                );
            }
        }
        println!();
    }

    /// The figures at `n` ports (and the steady latency), one column per daemon.
    pub fn print_figures(&self, n: u32) {
        let Some(i) = self.sizes.iter().position(|&s| s == n) else {
            return;
        };
        let both = self.kinds.len() == 2;
        let mut head = String::from("| figure |");
        let mut rule = String::from("|---|");
        for k in &self.kinds {
            head += &format!(" {} |", k.label());
            rule += "---|";
        }
        if both {
            head += " C++ ÷ ours |";
            rule += "---|";
        }
        let mut rows: Vec<(String, Vec<Stat>, usize)> = Vec::new();
        let at = &self.at[i];
        let col = |f: &dyn Fn(&Sized) -> Stat| at.iter().map(f).collect::<Vec<Stat>>();
        for (d, dir) in ["down", "up"].iter().enumerate() {
            rows.push((
                format!("burst drain, {n} ports {dir} (ms)"),
                col(&|s| Stat::of(&s.ms[d])),
                2,
            ));
        }
        for (d, dir) in ["down", "up"].iter().enumerate() {
            rows.push((
                format!("daemon CPU per event, {dir} drain (µs, schedstat)"),
                col(&|s| Stat::of(&s.cpu[d])),
                2,
            ));
        }
        if at.iter().any(|s| s.events > 0) {
            let lost = at.iter().map(|s| one_f(s.lost as f64)).collect();
            let name = format!("events lost in the drains (of {} flips)", at[0].events);
            rows.push((name, lost, 0));
        }
        rows.push((
            "log lines per event in the drains (syslog datagrams)".into(),
            col(&|s| s.lines_per_event()),
            2,
        ));
        rows.push((
            format!("cold start to PortConfigDone, {n} ports (ms)"),
            col(&|s| Stat::of(&s.cold)),
            1,
        ));
        rows.push((
            "VmRSS after the drains (kB)".into(),
            col(&|s| one(s.rss_kb)),
            0,
        ));
        rows.push((
            "VmHWM after the drains (kB)".into(),
            col(&|s| one(s.hwm_kb)),
            0,
        ));
        if self.steady.iter().all(|l| !l.is_empty()) {
            for (p, name) in [(0.5, "P50"), (0.9, "P90"), (0.99, "P99"), (0.999, "P99.9")] {
                let c = self
                    .steady
                    .iter()
                    .map(|l| one_f(percentile(l, p)))
                    .collect();
                rows.push((format!("steady single-flip latency {name}, netlink call → STATE_DB notification (µs, {} flips)", self.steady[0].len()), c, 0));
            }
        }
        rows.retain(|(_, c, _)| c.iter().any(|s| s.n > 0));
        if rows.is_empty() {
            return;
        }
        println!(
            "## figures at {n} ports{}\n",
            if both {
                " (ratio: C++ ÷ ours; above 1, ours is faster or smaller)"
            } else {
                ""
            }
        );
        println!("{head}\n{rule}");
        for (name, c, prec) in rows {
            let mut line = format!("| {name} |");
            for s in &c {
                line += &format!(" {} |", s.show(prec));
            }
            if both && !name.starts_with("log lines") && !name.starts_with("events lost") {
                line += &format!(" {} |", ratio(c[0].med, c[1].med));
            } else if both {
                line += " – |";
            }
            println!("{line}");
        }
        println!();
    }

    pub fn print_floor(&self, n: u32) {
        if !self.steady_floor.is_empty() {
            let l = &self.steady_floor;
            println!(
                "## the floor's reader, steady single-flip latency ({} flips, interleaved with the daemons)\n",
                l.len()
            );
            println!("| P50 | P90 | P99 | P99.9 |\n|---|---|---|---|");
            let p = |q| format!("{:.0}", percentile(l, q));
            println!("| {} | {} | {} | {} |\n", p(0.5), p(0.9), p(0.99), p(0.999));
        }
        let Some(f) = &self.floor else { return };
        let Some(i) = self.sizes.iter().position(|&s| s == n) else {
            return;
        };
        println!("## the floor (../shared/tools/floor, {n} ports), back to back\n");
        println!("| CPU per event (µs) | down | up |\n|---|---|---|");
        println!(
            "| mode 0: recv only | {} | {} |",
            f.cpu[0][0].show(2),
            f.cpu[0][1].show(2)
        );
        println!(
            "| mode 1: recv + parse + pipelined HSET | {} | {} |",
            f.cpu[1][0].show(2),
            f.cpu[1][1].show(2)
        );
        for (k, kind) in self.kinds.iter().enumerate() {
            let s = &self.at[i][k];
            let r = |d: usize| {
                let c = Stat::of(&s.cpu[d]);
                if c.n == 0 {
                    "–".to_string()
                } else {
                    format!("{:.2}×", c.med / f.cpu[1][d].med)
                }
            };
            println!("| {} ÷ mode 1 | {} | {} |", kind.label(), r(0), r(1));
        }
        println!();
    }
}

fn one(v: u64) -> Stat {
    if v == 0 {
        Stat::default()
    } else {
        one_f(v as f64)
    }
}

fn one_f(v: f64) -> Stat {
    Stat::of(&[v])
}
