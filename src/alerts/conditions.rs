//! The conditions of the alert rules (pure): for a rule and a port (or the daemon), whether it
//! holds now, as raw numbers; the value and message strings are built only when an alert
//! starts or fires.

use super::{Engine, Facts, Kind};

/// A per-port condition that holds, as raw numbers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cond {
    Flaps(u32, u64),
    DownFor(u64),
    Mtu(u32, u32),
    Missing(u64),
}

impl Cond {
    pub(super) fn describe(self, port: &str) -> (String, String) {
        match self {
            Cond::Flaps(n, window_ms) => (n.to_string(), format!("{port}: {n} oper transitions within {}s", window_ms / 1000)),
            Cond::DownFor(secs) => (secs.to_string(), format!("{port}: admin up but oper down for {secs}s")),
            Cond::Mtu(got, want) => (got.to_string(), format!("{port}: kernel mtu {got}, CONFIG_DB mtu {want}")),
            Cond::Missing(secs) => (
                secs.to_string(),
                format!("{port}: configured in CONFIG_DB but no netdev with an APPL_DB row after {secs}s"),
            ),
        }
    }
}

impl Engine {
    /// `Some` when rule `i`'s condition holds for `port`: raw numbers only; the value and
    /// message strings are built (by `describe`) only when an alert starts or fires, so a
    /// storm of transitions on an already-firing port allocates nothing.
    pub(super) fn port_condition(
        &self,
        i: usize,
        port: &str,
        now: u64,
        awaited: &[String],
    ) -> Option<Cond> {
        match self.rules[i].kind {
            Kind::Flap { max, window_ms } => {
                let n = self
                    .flaps
                    .get(port)
                    .map(|q| {
                        q.iter()
                            .filter(|t| now.saturating_sub(**t) <= window_ms)
                            .count()
                    })
                    .unwrap_or(0);
                (n > max as usize)
                    .then_some(Cond::Flaps(u32::try_from(n).unwrap_or(u32::MAX), window_ms))
            }
            Kind::OperDown { after_ms } => self
                .down_since
                .get(port)
                .filter(|s| now.saturating_sub(**s) >= after_ms)
                .map(|s| Cond::DownFor(now.saturating_sub(*s) / 1000)),
            Kind::MtuMismatch { after_ms } => self
                .mtu_off_since
                .get(port)
                .filter(|(s, _, _)| now.saturating_sub(*s) >= after_ms)
                .map(|(_, got, want)| Cond::Mtu(*got, *want)),
            Kind::MissingPort { after_ms } => {
                let since = self
                    .configured_since
                    .get(port)
                    .copied()
                    .unwrap_or(self.start_ms);
                (now.saturating_sub(since) >= after_ms && awaited.iter().any(|a| a == port))
                    .then(|| Cond::Missing(now.saturating_sub(since) / 1000))
            }
            Kind::InitStall { .. } | Kind::Resync { .. } => None,
        }
    }

    pub(super) fn global_condition(&self, i: usize, f: &Facts) -> Option<(String, String)> {
        match self.rules[i].kind {
            Kind::InitStall { after_ms } => {
                (!f.init_sent && f.now_ms.saturating_sub(self.start_ms) >= after_ms).then(|| {
                    let names: Vec<&str> = f.awaited.iter().take(8).map(String::as_str).collect();
                    let more = f.awaited.len().saturating_sub(names.len());
                    let tail = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    (
                        f.awaited.len().to_string(),
                        format!(
                            "PortInitDone not sent after {}s; awaiting {}{tail}",
                            f.now_ms.saturating_sub(self.start_ms) / 1000,
                            names.join(", ")
                        ),
                    )
                })
            }
            Kind::Resync { max, window_ms } => {
                let n = self
                    .resyncs
                    .iter()
                    .filter(|t| f.now_ms.saturating_sub(**t) <= window_ms)
                    .count();
                (n > max as usize).then(|| {
                    (
                        n.to_string(),
                        format!("{n} netlink resyncs within {}s", window_ms / 1000),
                    )
                })
            }
            _ => None,
        }
    }
}
