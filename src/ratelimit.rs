//! Log rate limiting (pure): a condition that repeats every turn — a failing netlink read —
//! is logged at most once per interval, and the line that gets through says how many were
//! held back since the last one. Time is milliseconds on a clock the caller owns.

/// At most one admitted line per `interval_ms`.
#[derive(Debug)]
pub struct RateLimit {
    interval_ms: u64,
    last_ms: Option<u64>,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(interval_ms: u64) -> RateLimit {
        RateLimit {
            interval_ms,
            last_ms: None,
            suppressed: 0,
        }
    }

    /// The condition happened at `now_ms`. `Some(n)`: write the line now, adding that `n`
    /// earlier occurrences were not logged; `None`: count it and stay quiet.
    pub fn admit(&mut self, now_ms: u64) -> Option<u64> {
        match self.last_ms {
            Some(t) if now_ms.saturating_sub(t) < self.interval_ms => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_ms = Some(now_ms);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// " (n similar lines suppressed)" when `n > 0`, for the end of an admitted line.
pub fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar lines suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #12 item 4: a read failing every 10 ms is logged once a second.
    /// (time, admitted with this many suppressed?)
    #[test]
    fn issue12_repeated_errors_are_logged_once_per_interval() {
        let mut r = RateLimit::new(1000);
        let cases = [
            (0, Some(0)),
            (10, None),
            (20, None),
            (999, None),
            (1000, Some(3)),
            (1010, None),
            (5000, Some(1)),
            (5001, None),
            (6001, Some(1)),
            (9000, Some(0)),
        ];
        for (now, want) in cases {
            assert_eq!(r.admit(now), want, "at {now} ms");
        }
        let mut r = RateLimit::new(1000);
        let logged = (0..1000u64).filter(|i| r.admit(i * 10).is_some()).count();
        assert_eq!(logged, 10, "10 s of errors every 10 ms");
    }

    #[test]
    fn the_note_counts_what_was_held_back() {
        assert_eq!(suppressed_note(0), "");
        assert_eq!(suppressed_note(99), " (99 similar lines suppressed)");
    }
}
