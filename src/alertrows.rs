//! Which resolved alert rows STATE_DB keeps (pure). A resolved row stays for operators to
//! read, but rows are keyed by rule and netdev name, so renames and port churn would grow
//! `PORTSYNCD_ALERT_TABLE` without bound: a resolved row is deleted once it is older than the
//! age limit, and the oldest resolved rows go first when there are more than the count
//! limit. Firing rows are never expired. Time is milliseconds on a clock the caller owns.

use std::collections::VecDeque;

/// Default limits (`alert_resolved_keep`, `alert_resolved_ms` in the settings file).
pub const DEFAULT_KEEP: usize = 256;
pub const DEFAULT_AGE_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug)]
pub struct AlertRows {
    keep: usize,
    age_ms: u64,
    /// Resolved rows, oldest first: (resolved at, key).
    resolved: VecDeque<(u64, String)>,
}

impl AlertRows {
    pub fn new(keep: usize, age_ms: u64) -> AlertRows {
        AlertRows {
            keep,
            age_ms,
            resolved: VecDeque::new(),
        }
    }

    /// New limits (SIGHUP); rows past them go at the next `expire`.
    pub fn set_limits(&mut self, keep: usize, age_ms: u64) {
        self.keep = keep;
        self.age_ms = age_ms;
    }

    /// Row `key` was written at `now_ms`, firing or resolved. Returns the keys to delete
    /// (the oldest resolved rows past the count limit).
    pub fn on_write(&mut self, key: &str, resolved: bool, now_ms: u64) -> Vec<String> {
        if let Some(i) = self.resolved.iter().position(|(_, k)| k == key) {
            self.resolved.remove(i);
        }
        if resolved {
            self.resolved.push_back((now_ms, key.to_owned()));
        }
        self.expire(now_ms)
    }

    /// Keys of resolved rows past either limit at `now_ms`, oldest first; they are forgotten.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.resolved.front() {
            if self.resolved.len() > self.keep || now_ms.saturating_sub(*at) >= self.age_ms {
                out.extend(self.resolved.pop_front().map(|(_, k)| k));
            } else {
                break;
            }
        }
        crate::shrink::deque(&mut self.resolved);
        out
    }

    /// Resolved rows kept now.
    pub fn len(&self) -> usize {
        self.resolved.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resolved.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum In {
        Fire(&'static str),
        Resolve(&'static str),
        Tick,
    }

    /// Issue #12 item 4: keep 2 resolved rows for at most 1000 ms.
    /// (time, input, rows deleted, resolved rows kept after)
    #[test]
    fn issue12_resolved_rows_expire_by_count_and_age() {
        let mut r = AlertRows::new(2, 1000);
        let cases: [(u64, In, &[&str], usize); 12] = [
            (0, In::Fire("a"), &[], 0),
            (10, In::Resolve("a"), &[], 1),
            (20, In::Resolve("b"), &[], 2),
            (30, In::Resolve("c"), &["a"], 2),
            // Firing again takes a row out of the resolved set: it is never expired.
            (40, In::Fire("b"), &[], 1),
            (50, In::Resolve("d"), &[], 2),
            (1029, In::Tick, &[], 2),
            (1030, In::Tick, &["c"], 1),
            (1049, In::Tick, &[], 1),
            (1050, In::Tick, &["d"], 0),
            // "b" fired at 40 and is still firing: a tick much later keeps it.
            (99_999, In::Tick, &[], 0),
            (100_000, In::Resolve("b"), &[], 1),
        ];
        for (now, input, want, kept) in cases {
            let got = match input {
                In::Fire(k) => r.on_write(k, false, now),
                In::Resolve(k) => r.on_write(k, true, now),
                In::Tick => r.expire(now),
            };
            assert_eq!(got, want, "at {now} ms");
            assert_eq!(r.len(), kept, "at {now} ms");
        }
    }

    /// Churn of 10,000 names keeps at most `keep` rows.
    #[test]
    fn name_churn_is_bounded() {
        let mut r = AlertRows::new(DEFAULT_KEEP, DEFAULT_AGE_MS);
        let mut deleted = 0;
        for i in 0..10_000u64 {
            deleted += r.on_write(&format!("oper_down|Ethernet{i}"), true, i).len();
        }
        assert_eq!(r.len(), DEFAULT_KEEP);
        assert_eq!(deleted, 10_000 - DEFAULT_KEEP);
    }
}
