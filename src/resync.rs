//! Resync bookkeeping (pure). When messages may have been lost — ENOBUFS, a Redis outage, or
//! start-up — the loop takes a fresh RTM_GETLINK dump and runs every reply through the normal
//! path. The kernel reports ENOBUFS once per congestion episode, so drops *during* the dump are
//! silent: the socket's drop counter is compared at the start and at NLMSG_DONE, and the dump
//! is repeated while it grew (or the kernel flagged NLM_F_DUMP_INTR, or another overrun came).
//! A port we mirror that no complete dump mentioned has vanished: its row is deleted.
//! A dump request the kernel refused (send error) is retried with backoff until one goes out,
//! so a failed send never leaves the resync active and waiting forever (issue #12 item 4).

use rustc_hash::FxHashSet;

#[derive(Debug, Default)]
pub struct Resync {
    active: bool,
    again: bool,
    drops_at_start: u32,
    seen: FxHashSet<u32>,
    /// When the last dump request failed to send: retry it at this time (clock ms).
    retry_at_ms: Option<u64>,
    /// The current retry delay (0 until a send fails).
    retry_ms: u64,
}

/// First and largest delay between attempts to send a refused dump request.
pub const RETRY_MIN_MS: u64 = 100;
pub const RETRY_MAX_MS: u64 = 5_000;

/// What the loop must do at the end of a dump.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// No resync was running (a stray NLMSG_DONE).
    Idle,
    /// Messages were lost during this dump: send another.
    DumpAgain,
    /// The dump was complete and lossless; these mirrored ifindexes no longer exist.
    Finished { vanished: Vec<u32> },
}

impl Resync {
    pub fn active(&self) -> bool {
        self.active
    }

    /// Something was lost. Returns true when a dump must be sent now; false when one is
    /// already running (it will be repeated once it ends).
    pub fn request(&mut self, drops_now: u32) -> bool {
        if self.active {
            self.again = true;
            return false;
        }
        self.active = true;
        self.again = false;
        self.retry_at_ms = None;
        self.retry_ms = 0;
        self.drops_at_start = drops_now;
        self.seen.clear();
        true
    }

    /// The dump request went out.
    pub fn sent(&mut self) {
        self.retry_at_ms = None;
        self.retry_ms = 0;
    }

    /// Sending the dump request failed at `now_ms`: returns the delay before the retry.
    pub fn send_failed(&mut self, now_ms: u64) -> u64 {
        self.retry_ms = (self.retry_ms * 2).clamp(RETRY_MIN_MS, RETRY_MAX_MS);
        self.retry_at_ms = Some(now_ms + self.retry_ms);
        self.retry_ms
    }

    /// Whether a refused dump request must be sent again now. Messages seen since the
    /// refused request count for the dump that will answer the retry.
    pub fn retry_due(&self, now_ms: u64) -> bool {
        self.active && self.retry_at_ms.is_some_and(|t| now_ms >= t)
    }

    /// A NEWLINK arrived (dump reply or event) while a dump runs: that ifindex exists.
    pub fn on_newlink(&mut self, ifindex: u32) {
        if self.active {
            self.seen.insert(ifindex);
        }
    }

    /// NLMSG_DONE arrived. `known` is every ifindex we mirror now.
    pub fn on_done(
        &mut self,
        drops_now: u32,
        interrupted: bool,
        known: impl Iterator<Item = u32>,
    ) -> Step {
        if !self.active {
            return Step::Idle;
        }
        if self.again || interrupted || drops_now != self.drops_at_start {
            self.again = false;
            self.drops_at_start = drops_now;
            self.seen.clear();
            return Step::DumpAgain;
        }
        self.active = false;
        self.retry_at_ms = None;
        self.retry_ms = 0;
        let mut vanished: Vec<u32> = known.filter(|i| !self.seen.contains(i)).collect();
        vanished.sort_unstable();
        self.seen.clear();
        Step::Finished { vanished }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_dump_finishes_and_reports_vanished() {
        let mut r = Resync::default();
        assert!(r.request(5));
        r.on_newlink(10);
        r.on_newlink(12);
        assert_eq!(
            r.on_done(5, false, [10, 11, 12].into_iter()),
            Step::Finished { vanished: vec![11] }
        );
        assert!(!r.active());
    }

    /// (drops grew, interrupted, overrun during the dump) → dump again.
    #[test]
    fn lossy_dumps_repeat() {
        for (drops_after, interrupted, overrun) in
            [(6, false, false), (5, true, false), (5, false, true)]
        {
            let mut r = Resync::default();
            assert!(r.request(5));
            if overrun {
                assert!(!r.request(5));
            }
            assert_eq!(
                r.on_done(drops_after, interrupted, [1].into_iter()),
                Step::DumpAgain
            );
            r.on_newlink(1);
            assert_eq!(
                r.on_done(drops_after, false, [1].into_iter()),
                Step::Finished { vanished: vec![] }
            );
        }
    }

    /// Issue #12 item 4: (step, retry due at this time?) — a refused send is retried with a
    /// doubling, capped delay until one goes out; only then can the dump finish.
    #[test]
    fn issue12_refused_dump_request_is_retried() {
        enum S {
            Request,
            Failed(u64, u64),
            Check,
            Sent,
            Done(Step),
        }
        let steps = [
            (S::Request, 0, false),
            (S::Failed(0, 100), 99, false),
            (S::Check, 100, true),
            (S::Failed(100, 200), 299, false),
            (S::Check, 300, true),
            (S::Failed(300, 400), 700, true),
            (S::Failed(700, 800), 1500, true),
            (S::Failed(1500, 1600), 3100, true),
            (S::Failed(3100, 3200), 6300, true),
            (S::Failed(6300, 5000), 11299, false),
            (S::Check, 11300, true),
            (S::Sent, 99_999, false),
            (S::Done(Step::Finished { vanished: vec![] }), 99_999, false),
            (S::Request, 0, false),
            (S::Failed(0, 100), 100, true),
            (S::Done(Step::Finished { vanished: vec![] }), 100, false),
            (S::Request, 0, false),
            (S::Failed(0, 100), 100, true),
        ];
        let mut r = Resync::default();
        for (i, (step, at, due)) in steps.into_iter().enumerate() {
            match step {
                S::Request => assert!(r.request(0), "step {i}"),
                S::Failed(now, delay) => assert_eq!(r.send_failed(now), delay, "step {i}"),
                S::Check => {}
                S::Sent => r.sent(),
                S::Done(want) => assert_eq!(r.on_done(0, false, [].into_iter()), want, "step {i}"),
            }
            assert_eq!(r.retry_due(at), due, "step {i}");
        }
        // A new resync after a success starts from the smallest delay again.
        r.request(0);
        r.sent();
        assert!(!r.request(0));
        assert_eq!(r.send_failed(0), 100);
    }

    #[test]
    fn stray_done_is_idle() {
        let mut r = Resync::default();
        assert_eq!(r.on_done(0, false, [1].into_iter()), Step::Idle);
    }
}
