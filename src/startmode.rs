//! How a start begins (pure): *cold*, *warm* or *reattach*, decided from what Redis shows, and
//! the watch that notices swss restarting under a running daemon. The C++ daemon only ever
//! starts together with a fresh swss, so it always starts cold (or warm); a service restarted
//! on its own finds swss still running, and a cold start then would bring every port down.
//! `PortConfigDone` in APPL_DB is the witness: swss's cold start flushes APPL_DB (spec §6.3),
//! so the marker exists only while the swss that consumed it is still running.

use std::time::Duration;

/// `--start-mode`: what the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StartArg {
    /// Decide from APPL_DB (the default): cold, warm or reattach
    #[default]
    Auto,
    /// The C++ cold start, whatever APPL_DB shows (publishes again, brings netdevs down)
    Cold,
    /// Publish nothing, touch no netdev; rewrite STATE_DB from a fresh dump
    Reattach,
}

/// How this start runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The C++ cold start: publish CONFIG_DB ports and `PortConfigDone`, bring stale netdevs
    /// down and ignore them, await every port for `PortInitDone`.
    Cold,
    /// The C++ warm restart: nothing published, nothing brought down, `PortInitDone` again.
    Warm,
    /// This daemon restarted while swss kept running: nothing published, nothing brought
    /// down or ignored, every port's row rewritten from the dump, `PortInitDone` only if
    /// APPL_DB lacks it.
    Reattach,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Reattach => "reattach",
        }
    }
}

/// Where APPL_DB holds `PortConfigDone`, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Absent,
    /// `PORT_TABLE:PortConfigDone`: orchagent consumed it.
    Consumed,
    /// `_PORT_TABLE:PortConfigDone`: published, not yet popped.
    Pending,
}

impl Marker {
    /// From `EXISTS PORT_TABLE:<m>` and `EXISTS _PORT_TABLE:<m>`.
    pub fn from_exists(consumed: bool, pending: bool) -> Marker {
        match (consumed, pending) {
            (true, _) => Marker::Consumed,
            (false, true) => Marker::Pending,
            (false, false) => Marker::Absent,
        }
    }

    pub fn present(self) -> bool {
        self != Marker::Absent
    }
}

/// The C++ warm-start check (spec §4), run first as in C++.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmCheck {
    /// `WARM_RESTART_ENABLE_TABLE` enables neither `system` nor `swss`.
    Disabled,
    /// Enabled, and `WARM_RESTART_TABLE|portsyncd` has a `restore_count`.
    Warm,
    /// Enabled without a `restore_count`: the C++ daemon falls back to a cold start.
    FallBack,
}

/// The decision table (ARCHITECTURE.md "Start modes"): the mode and the reason logged with it.
/// Where warm restart is enabled the C++ path is kept unchanged (warm, or its fall-back to
/// cold); only where it is not does `PortConfigDone` tell a swss start from a daemon restart.
pub fn decide(arg: StartArg, warm: WarmCheck, config_done: Marker) -> (Mode, &'static str) {
    match (arg, warm, config_done) {
        (StartArg::Cold, _, _) => (Mode::Cold, "--start-mode cold"),
        (StartArg::Reattach, _, _) => (Mode::Reattach, "--start-mode reattach"),
        (StartArg::Auto, WarmCheck::Warm, _) => (
            Mode::Warm,
            "warm restart enabled and WARM_RESTART_TABLE|portsyncd has a restore_count",
        ),
        (StartArg::Auto, WarmCheck::FallBack, _) => (
            Mode::Cold,
            "warm restart enabled but no restore_count: the C++ fall-back to a cold start",
        ),
        (StartArg::Auto, WarmCheck::Disabled, Marker::Absent) => (
            Mode::Cold,
            "APPL_DB has no PortConfigDone: swss has just (re)started",
        ),
        (StartArg::Auto, WarmCheck::Disabled, Marker::Consumed) => (
            Mode::Reattach,
            "APPL_DB has PORT_TABLE:PortConfigDone: swss kept running, this daemon restarted",
        ),
        (StartArg::Auto, WarmCheck::Disabled, Marker::Pending) => (
            Mode::Reattach,
            "APPL_DB has _PORT_TABLE:PortConfigDone pending: swss kept running, this daemon restarted",
        ),
    }
}

/// When the loop next looks for `PortConfigDone` (pure). Normally once per heartbeat; after
/// a keyspace event says `PORT_TABLE:PortInitDone` was deleted (swss's cold stop does that,
/// spec §6.3, and its start flushes APPL_DB soon after) every `FAST` for `FAST_FOR`, so the
/// flush is noticed within a fraction of a second instead of a heartbeat.
#[derive(Debug, Clone, Default)]
pub struct SwssWatch {
    /// Whether this process has seen or written `PortConfigDone` (only then can it vanish).
    armed: bool,
    /// Fast checks until this time (ms on the loop's clock).
    fast_until_ms: Option<u64>,
    /// A re-publication is running: no new one starts.
    busy: bool,
}

/// What a `PortConfigDone` check found, as the watch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStep {
    /// Nothing to do.
    Nothing,
    /// swss restarted cold: run the cold sequence again.
    Republish,
}

pub const FAST: Duration = Duration::from_millis(200);
pub const FAST_FOR: Duration = Duration::from_secs(120);

impl SwssWatch {
    /// `PortConfigDone` is known to exist (found at start, or our write of it landed).
    pub fn arm(&mut self) {
        self.armed = true;
    }

    /// Whether a check is worth running at all now.
    pub fn wants_check(&self) -> bool {
        self.armed && !self.busy
    }

    /// The keyspace event: `PORT_TABLE:PortInitDone` was deleted.
    pub fn on_init_deleted(&mut self, now_ms: u64) {
        self.fast_until_ms = Some(now_ms + FAST_FOR.as_millis() as u64);
    }

    /// While fast checks are on, the next one is due `FAST` from now.
    pub fn fast(&self, now_ms: u64) -> bool {
        self.fast_until_ms.is_some_and(|t| now_ms < t)
    }

    /// A check found the marker present or absent.
    pub fn on_checked(&mut self, present: bool) -> WatchStep {
        if !self.wants_check() || present {
            return WatchStep::Nothing;
        }
        self.busy = true;
        self.fast_until_ms = None;
        WatchStep::Republish
    }

    /// The re-publication ended; `ok` means `PortConfigDone` was written again.
    pub fn on_republished(&mut self, ok: bool) {
        self.busy = false;
        self.armed = ok || self.armed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (--start-mode, warm check, PortConfigDone) → mode: ARCHITECTURE.md's table.
    #[test]
    fn decision_table() {
        use Marker::*;
        use StartArg::Auto;
        use WarmCheck::*;
        let table = [
            (Auto, Disabled, Absent, Mode::Cold),
            (Auto, Disabled, Consumed, Mode::Reattach),
            (Auto, Disabled, Pending, Mode::Reattach),
            (Auto, Warm, Absent, Mode::Warm),
            (Auto, Warm, Consumed, Mode::Warm),
            (Auto, FallBack, Consumed, Mode::Cold),
            (Auto, FallBack, Absent, Mode::Cold),
            (StartArg::Cold, Disabled, Consumed, Mode::Cold),
            (StartArg::Cold, Warm, Consumed, Mode::Cold),
            (StartArg::Reattach, Disabled, Absent, Mode::Reattach),
            (StartArg::Reattach, Warm, Consumed, Mode::Reattach),
        ];
        for (arg, warm, marker, want) in table {
            assert_eq!(
                decide(arg, warm, marker).0,
                want,
                "{arg:?} {warm:?} {marker:?}"
            );
        }
        assert_eq!(Marker::from_exists(true, true), Consumed);
        assert_eq!(Marker::from_exists(false, true), Pending);
        assert_eq!(Marker::from_exists(false, false), Absent);
    }

    #[test]
    fn watch_republishes_once_per_disappearance_and_only_when_armed() {
        let mut w = SwssWatch::default();
        assert_eq!(w.on_checked(false), WatchStep::Nothing, "never saw it");
        w.arm();
        assert_eq!(w.on_checked(true), WatchStep::Nothing);
        assert_eq!(w.on_checked(false), WatchStep::Republish);
        assert!(!w.wants_check(), "busy while re-publishing");
        assert_eq!(w.on_checked(false), WatchStep::Nothing);
        w.on_republished(true);
        assert!(w.wants_check());
        assert_eq!(w.on_checked(false), WatchStep::Republish, "gone again");
        w.on_republished(false);
        assert!(w.wants_check(), "a failed re-publication is tried again");
    }

    #[test]
    fn init_delete_speeds_up_checks_until_republished() {
        let mut w = SwssWatch::default();
        w.arm();
        assert!(!w.fast(0));
        w.on_init_deleted(1_000);
        assert!(w.fast(1_000 + 5_000));
        assert!(!w.fast(1_000 + FAST_FOR.as_millis() as u64));
        assert_eq!(w.on_checked(false), WatchStep::Republish);
        assert!(!w.fast(2_000), "fast checks end with the re-publication");
    }
}
