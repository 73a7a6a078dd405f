//! Resync bookkeeping (pure). When messages may have been lost — ENOBUFS, a Redis outage, or
//! start-up — the loop takes a fresh RTM_GETLINK dump and runs every reply through the normal
//! path. The kernel reports ENOBUFS once per congestion episode, so drops *during* the dump are
//! silent: the socket's drop counter is compared at the start and at NLMSG_DONE, and the dump
//! is repeated while it grew (or the kernel flagged NLM_F_DUMP_INTR, or another overrun came).
//! A port we mirror that no complete dump mentioned has vanished: its row is deleted.

use rustc_hash::FxHashSet;

#[derive(Debug, Default)]
pub struct Resync {
    active: bool,
    again: bool,
    drops_at_start: u32,
    seen: FxHashSet<u32>,
}

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
        self.drops_at_start = drops_now;
        self.seen.clear();
        true
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

    #[test]
    fn stray_done_is_idle() {
        let mut r = Resync::default();
        assert_eq!(r.on_done(0, false, [1].into_iter()), Step::Idle);
    }
}
