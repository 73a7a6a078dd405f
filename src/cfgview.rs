//! The loop's live view of CONFIG_DB `PORT|*` (pure): which ports are configured and with
//! which `mtu`, kept from keyspace notifications and a periodic re-read (notifications are
//! lost across reconnects, so the re-read is the truth). It feeds the alert engine (MTU
//! mismatches against today's config, ports added and removed) and, with
//! `track_port_count`, the `PortConfigDone` count: once the set of ports has been stable for
//! `SETTLE` (a breakout arrives as a burst of deletes and adds), a count that differs from the
//! one APPL_DB holds is due to be written again (sonic-swss#2989).

use rustc_hash::FxHashMap;
use std::time::Duration;

/// How long the set of ports must stay unchanged before the count is rewritten.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What changed in CONFIG_DB, for the alert engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A port appeared, with its `mtu` (if any, and a number).
    Added(String, Option<u32>),
    Removed(String),
    /// A known port's `mtu` changed.
    Mtu(String, Option<u32>),
}

#[derive(Debug, Default, Clone)]
pub struct CfgView {
    ports: FxHashMap<String, Option<u32>>,
    /// When the set of port names last changed (ms on the loop's clock).
    changed_ms: Option<u64>,
    /// The `PortConfigDone` count APPL_DB holds as far as we know (None: unknown).
    published: Option<usize>,
}

impl CfgView {
    /// The view at start: the ports start-up read, and the count APPL_DB holds.
    pub fn new(
        ports: impl IntoIterator<Item = (String, Option<u32>)>,
        published: Option<usize>,
    ) -> Self {
        CfgView {
            ports: ports.into_iter().collect(),
            changed_ms: None,
            published,
        }
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    pub fn mtu(&self, port: &str) -> Option<u32> {
        self.ports.get(port).copied().flatten()
    }

    pub fn contains(&self, port: &str) -> bool {
        self.ports.contains_key(port)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ports.keys().map(String::as_str)
    }

    /// One port as CONFIG_DB has it now: `None` when the key is gone.
    pub fn set_port(
        &mut self,
        name: &str,
        now: Option<Option<u32>>,
        now_ms: u64,
    ) -> Option<Change> {
        match (self.ports.get(name).copied(), now) {
            (None, None) => None,
            (Some(_), None) => {
                self.ports.remove(name);
                self.changed_ms = Some(now_ms);
                Some(Change::Removed(name.to_owned()))
            }
            (None, Some(mtu)) => {
                self.ports.insert(name.to_owned(), mtu);
                self.changed_ms = Some(now_ms);
                Some(Change::Added(name.to_owned(), mtu))
            }
            (Some(old), Some(mtu)) if old != mtu => {
                self.ports.insert(name.to_owned(), mtu);
                Some(Change::Mtu(name.to_owned(), mtu))
            }
            (Some(_), Some(_)) => None,
        }
    }

    /// A full re-read: every port CONFIG_DB has now. Returns what differed.
    pub fn replace(&mut self, all: FxHashMap<String, Option<u32>>, now_ms: u64) -> Vec<Change> {
        let gone: Vec<String> = self
            .ports
            .keys()
            .filter(|k| !all.contains_key(*k))
            .cloned()
            .collect();
        let mut out: Vec<Change> = gone
            .iter()
            .filter_map(|k| self.set_port(k, None, now_ms))
            .collect();
        let mut names: Vec<(&String, &Option<u32>)> = all.iter().collect();
        names.sort();
        for (k, mtu) in names {
            out.extend(self.set_port(k, Some(*mtu), now_ms));
        }
        out
    }

    /// With `track_port_count`: the count to write now, if the set has settled and APPL_DB's
    /// count differs from it.
    pub fn count_due(&self, now_ms: u64) -> Option<usize> {
        let settled = self
            .changed_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= SETTLE.as_millis() as u64);
        (settled && self.published != Some(self.ports.len())).then_some(self.ports.len())
    }

    /// When the settle time of the latest change ends (the loop's timer), if a count will
    /// be due then.
    pub fn settles_at(&self) -> Option<u64> {
        self.changed_ms
            .filter(|_| self.published != Some(self.ports.len()))
            .map(|t| t + SETTLE.as_millis() as u64)
    }

    /// Writing the count failed: try again one settle time from now.
    pub fn count_failed(&mut self, now_ms: u64) {
        self.changed_ms = Some(now_ms);
    }

    /// The count landed in APPL_DB.
    pub fn count_written(&mut self, n: usize) {
        self.published = Some(n);
        self.changed_ms = None;
    }

    /// The count APPL_DB holds, as far as we know.
    pub fn published(&self) -> Option<usize> {
        self.published
    }
}

/// CONFIG_DB `mtu` as a number, as the alert engine compares it.
pub fn mtu_of(fvs: &[(Vec<u8>, Vec<u8>)]) -> Option<u32> {
    let (_, v) = fvs.iter().find(|(f, _)| f == b"mtu")?;
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(names: &[&str], published: Option<usize>) -> CfgView {
        CfgView::new(names.iter().map(|n| (n.to_string(), Some(9100))), published)
    }

    /// (port, CONFIG_DB now: None = key gone, Some(mtu)) → change.
    type Row = (&'static str, Option<Option<u32>>, Option<Change>);

    /// (port, CONFIG_DB now) → change: the per-key table.
    #[test]
    fn set_port_table() {
        let table: Vec<Row> = vec![
            ("Ethernet0", Some(Some(9100)), None),
            (
                "Ethernet0",
                Some(Some(1500)),
                Some(Change::Mtu("Ethernet0".into(), Some(1500))),
            ),
            (
                "Ethernet0",
                Some(None),
                Some(Change::Mtu("Ethernet0".into(), None)),
            ),
            ("Ethernet0", None, Some(Change::Removed("Ethernet0".into()))),
            ("Ethernet0", None, None),
            (
                "Ethernet8",
                Some(Some(9100)),
                Some(Change::Added("Ethernet8".into(), Some(9100))),
            ),
        ];
        let mut v = view(&["Ethernet0"], Some(1));
        for (port, now, want) in table {
            assert_eq!(v.set_port(port, now, 0), want, "{port} {now:?}");
        }
    }

    /// A breakout (Ethernet0 removed, Ethernet0..3 added, as a burst) makes the count due only
    /// once the set has been stable for SETTLE; an MTU change never does.
    #[test]
    fn breakout_count_waits_for_the_burst_to_settle() {
        let mut v = view(&["Ethernet0", "Ethernet4"], Some(2));
        assert_eq!(v.count_due(0), None, "APPL_DB agrees");
        v.set_port("Ethernet4", Some(Some(1500)), 100);
        assert_eq!(v.count_due(100), None, "mtu changes leave the count");
        v.set_port("Ethernet0", None, 1_000);
        for (i, t) in [(0, 1_100), (1, 1_200), (2, 1_300), (3, 1_400)] {
            v.set_port(&format!("Ethernet{i}"), Some(Some(9100)), t);
        }
        let settle = SETTLE.as_millis() as u64;
        assert_eq!(v.count_due(1_400 + settle - 1), None, "still settling");
        assert_eq!(v.settles_at(), Some(1_400 + settle));
        assert_eq!(v.count_due(1_400 + settle), Some(5));
        v.count_written(5);
        assert_eq!(v.count_due(1_400 + settle), None);
        assert_eq!(v.settles_at(), None);
    }

    #[test]
    fn replace_reports_what_the_notifications_missed() {
        let mut v = view(&["Ethernet0", "Ethernet4"], Some(2));
        let all: FxHashMap<String, Option<u32>> = [
            ("Ethernet4".to_string(), Some(9000)),
            ("Ethernet8".to_string(), Some(9100)),
        ]
        .into_iter()
        .collect();
        let changes = v.replace(all, 5);
        assert_eq!(
            changes,
            vec![
                Change::Removed("Ethernet0".into()),
                Change::Mtu("Ethernet4".into(), Some(9000)),
                Change::Added("Ethernet8".into(), Some(9100)),
            ]
        );
        assert_eq!(v.len(), 2);
        assert_eq!(
            v.count_due(5 + SETTLE.as_millis() as u64),
            None,
            "same count: 2"
        );
        assert_eq!(v.settles_at(), None, "no timer when nothing will be due");
        v.set_port("Ethernet12", Some(None), 10);
        v.count_failed(20);
        assert_eq!(
            v.settles_at(),
            Some(20 + SETTLE.as_millis() as u64),
            "a failed write waits"
        );
        assert_eq!(
            CfgView::new([], None).count_due(0),
            Some(0),
            "unknown count is written"
        );
    }
}
