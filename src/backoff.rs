//! Capped exponential backoff with jitter (pure), for retrying a whole flush while Redis
//! is unreachable.

use std::time::Duration;

/// Capped exponential backoff with jitter, for retrying Redis.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, cur: min }
    }

    /// The next delay; `entropy` spreads retries of several daemons (any varying number).
    pub fn next(&mut self, entropy: u64) -> Duration {
        let base = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        let jitter_us = (base.as_micros() as u64 / 4).max(1);
        base + Duration::from_micros(entropy % jitter_us)
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let d: Vec<u128> = (0..5).map(|_| b.next(0).as_millis()).collect();
        assert_eq!(d, [50, 100, 200, 300, 300]);
        let j = b.next(7_000);
        assert!(
            j >= Duration::from_millis(300) && j < Duration::from_millis(375),
            "{j:?}"
        );
        b.reset();
        assert_eq!(b.next(0), Duration::from_millis(50));
    }
}
