//! The pure port state machine: which link messages portsyncd acts on (spec §2.1: name
//! prefixes, team kind, DELLINK-with-master, stale ifindexes), the set of configured ports
//! still awaited before `PortInitDone` (`g_portSet`), and rename clean-up. Input: a
//! `LinkEvent`; output: a verdict plus the STATE_DB write folded into the turn's `Batch`.
//! No sockets, no clock, no Redis.

use crate::batch::Batch;
use crate::event::{LinkEvent, LinkOp, PortState};
use rustc_hash::{FxHashMap, FxHashSet};

/// Name prefixes portsyncd handles (case-sensitive, like the C++ daemon).
pub const PREFIXES: [&str; 2] = ["Ethernet", "PortChannel"];

/// Why a message was or was not acted on. Every variant except `Filtered` is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Name outside the prefixes: silently ignored, no DB access.
    Filtered,
    /// `kind == "team"`: teamsyncd owns LAG netdevs.
    Team,
    /// RTM_DELLINK carrying a master (a port leaving a bridge), not a netdev removal.
    DelWithMaster,
    /// The ifindex belonged to a netdev that existed before a cold start.
    OldInterface,
    /// Folded into the batch. `renamed_from` names a row deleted because its netdev was renamed.
    Accepted { renamed_from: Option<String> },
}

/// What a message means for the name map: set when accepted, cleared on delete.
fn qualifies(name: &str) -> bool {
    PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Debug, Default, Clone)]
pub struct PortSync {
    /// Configured ports whose netdev has not yet been written (`g_portSet`).
    expected: FxHashSet<String>,
    /// ifindexes of netdevs found at a cold start; ignored for the life of the process.
    old: FxHashMap<u32, String>,
    /// What we mirror: netdevs whose rows we write (rename clean-up, resync diff).
    mirror: Mirror,
    init_sent: bool,
}

impl PortSync {
    pub fn new(expected: impl IntoIterator<Item = String>) -> Self {
        PortSync {
            expected: expected.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Cold-start pruning: the port was already consumed by orchagent (its APPL_DB row has
    /// `admin_status`), so it is not awaited.
    pub fn prune(&mut self, port: &str) {
        self.expected.remove(port);
    }

    pub fn add_old_interface(&mut self, ifindex: u32, name: String) {
        self.old.insert(ifindex, name);
    }

    pub fn expected(&self) -> impl Iterator<Item = &str> {
        self.expected.iter().map(String::as_str)
    }

    /// The name and state we mirror for an ifindex.
    pub fn state_of(&self, ifindex: u32) -> Option<(&str, PortState)> {
        self.mirror
            .by_index
            .get(&ifindex)
            .map(|(n, s)| (n.as_str(), *s))
    }

    /// Every mirrored port's name and state.
    pub fn states(&self) -> impl Iterator<Item = (&str, PortState)> {
        self.mirror.by_index.values().map(|(n, s)| (n.as_str(), *s))
    }

    /// Mirrored ports as (oper up, oper down).
    pub fn oper_counts(&self) -> (usize, usize) {
        let up = self
            .mirror
            .by_index
            .values()
            .filter(|(_, s)| s.oper_up)
            .count();
        (up, self.mirror.by_index.len() - up)
    }

    /// The ifindex of every netdev whose state we mirror.
    pub fn known(&self) -> impl Iterator<Item = u32> + '_ {
        self.mirror.by_index.keys().copied()
    }

    /// Decide on one message; accepted ones are folded into `batch`.
    pub fn on_link(&mut self, ev: &LinkEvent, batch: &mut Batch) -> Verdict {
        if self.old.contains_key(&ev.ifindex) {
            return if qualifies(&ev.name) {
                Verdict::OldInterface
            } else {
                Verdict::Filtered
            };
        }
        // A known ifindex under a new name: the old row would be left stale (G7). Remove it.
        let mut renamed_from = None;
        let renamed = self
            .mirror
            .name_of(ev.ifindex)
            .is_some_and(|prev| prev != ev.name);
        if ev.op == LinkOp::New && renamed {
            let prev = self.mirror.remove(ev.ifindex).unwrap_or_default();
            batch.delete(&prev);
            renamed_from = Some(prev);
        }
        if !qualifies(&ev.name) {
            return match renamed_from {
                Some(_) => Verdict::Accepted { renamed_from },
                None => Verdict::Filtered,
            };
        }
        if ev.kind.as_deref() == Some("team") {
            return Verdict::Team;
        }
        if ev.master != 0 && ev.op == LinkOp::Del {
            return Verdict::DelWithMaster;
        }
        match ev.op {
            LinkOp::New => {
                self.mirror.insert(ev.ifindex, &ev.name, ev.port_state());
                batch.set(&ev.name, ev.port_state());
            }
            LinkOp::Del => {
                self.mirror.remove(ev.ifindex);
                batch.delete(&ev.name);
            }
        }
        Verdict::Accepted { renamed_from }
    }

    /// Would this message change what we mirror? (A resync dump reply that differs means an
    /// event was lost.)
    pub fn differs(&self, ev: &LinkEvent) -> bool {
        qualifies(&ev.name)
            && !self.old.contains_key(&ev.ifindex)
            && self.mirror.by_index.get(&ev.ifindex) != Some(&(ev.name.clone(), ev.port_state()))
    }

    /// A mirrored netdev was missing from a complete dump: forget it and return its name.
    pub fn vanish(&mut self, ifindex: u32) -> Option<String> {
        self.mirror.remove(ifindex)
    }

    /// A port's state landed in STATE_DB (its APPL_DB gate passed): it is no longer awaited.
    pub fn on_written(&mut self, port: &str) {
        self.expected.remove(port);
    }

    /// `PortInitDone` is due: every configured port was seen, and it was not sent yet.
    pub fn init_due(&self) -> bool {
        !self.init_sent && self.expected.is_empty()
    }

    pub fn mark_init_sent(&mut self) {
        self.init_sent = true;
    }

    pub fn init_sent(&self) -> bool {
        self.init_sent
    }
}

/// ifindex ↔ name of the netdevs we mirror. Names are unique in a namespace, so a name seen
/// under a new ifindex means the old netdev is gone (its DELLINK was lost): it is forgotten,
/// not reported as vanished later (which would delete the live port's row).
#[derive(Debug, Default, Clone)]
struct Mirror {
    by_index: FxHashMap<u32, (String, PortState)>,
    by_name: FxHashMap<String, u32>,
}

impl Mirror {
    fn name_of(&self, ifindex: u32) -> Option<&str> {
        self.by_index.get(&ifindex).map(|(n, _)| n.as_str())
    }

    fn insert(&mut self, ifindex: u32, name: &str, state: PortState) {
        if let Some(old) = self.by_name.insert(name.to_owned(), ifindex) {
            if old != ifindex {
                self.by_index.remove(&old);
            }
        }
        if let Some((old_name, _)) = self.by_index.insert(ifindex, (name.to_owned(), state)) {
            if old_name != name {
                self.by_name.remove(&old_name);
            }
        }
    }

    fn remove(&mut self, ifindex: u32) -> Option<String> {
        let (name, _) = self.by_index.remove(&ifindex)?;
        if self.by_name.get(&name) == Some(&ifindex) {
            self.by_name.remove(&name);
        }
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::PortOp;

    fn ev(op: LinkOp, ifindex: u32, name: &str, flags: u32) -> LinkEvent {
        LinkEvent {
            op,
            ifindex,
            name: name.into(),
            flags,
            mtu: 9100,
            master: 0,
            kind: None,
            mac: String::new(),
        }
    }

    fn st(oper: bool, admin: bool) -> PortState {
        PortState {
            oper_up: oper,
            admin_up: admin,
            mtu: 9100,
        }
    }

    /// (message, verdict, folded ops) — spec §2.1 and golden G5.
    #[test]
    fn decision_table() {
        let team = LinkEvent {
            kind: Some("team".into()),
            ..ev(LinkOp::New, 41, "PortChannel0001", 0x1003)
        };
        let bridged_del = LinkEvent {
            master: 40,
            ..ev(LinkOp::Del, 13, "Ethernet12", 0x1003)
        };
        let bridged_new = LinkEvent {
            master: 40,
            ..ev(LinkOp::New, 13, "Ethernet12", 0x11043)
        };
        type Row = (LinkEvent, Verdict, Vec<(&'static str, PortOp)>);
        let table: Vec<Row> = vec![
            (
                ev(LinkOp::New, 2, "eth0", 0x11043),
                Verdict::Filtered,
                vec![],
            ),
            (
                ev(LinkOp::New, 40, "Bridge", 0x11043),
                Verdict::Filtered,
                vec![],
            ),
            (
                ev(LinkOp::New, 45, "Loopback0", 0xc3),
                Verdict::Filtered,
                vec![],
            ),
            (
                ev(LinkOp::New, 46, "ethernet0", 0x1003),
                Verdict::Filtered,
                vec![],
            ),
            (team.clone(), Verdict::Team, vec![]),
            (
                LinkEvent {
                    op: LinkOp::Del,
                    ..team
                },
                Verdict::Team,
                vec![],
            ),
            (bridged_del, Verdict::DelWithMaster, vec![]),
            (
                bridged_new,
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "Ethernet12",
                    PortOp {
                        delete: false,
                        set: Some(st(true, true)),
                    },
                )],
            ),
            (
                ev(LinkOp::New, 10, "Ethernet0", 0x1002),
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "Ethernet0",
                    PortOp {
                        delete: false,
                        set: Some(st(false, false)),
                    },
                )],
            ),
            (
                ev(LinkOp::New, 10, "Ethernet0", 0x11003),
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "Ethernet0",
                    PortOp {
                        delete: false,
                        set: Some(st(false, true)),
                    },
                )],
            ),
            (
                ev(LinkOp::New, 44, "Ethernet0.10", 0x1003),
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "Ethernet0.10",
                    PortOp {
                        delete: false,
                        set: Some(st(false, true)),
                    },
                )],
            ),
            (
                ev(LinkOp::Del, 43, "Ethernet96", 0x1002),
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "Ethernet96",
                    PortOp {
                        delete: true,
                        set: None,
                    },
                )],
            ),
            (
                ev(LinkOp::New, 47, "PortChannel0002", 0x1003),
                Verdict::Accepted { renamed_from: None },
                vec![(
                    "PortChannel0002",
                    PortOp {
                        delete: false,
                        set: Some(st(false, true)),
                    },
                )],
            ),
        ];
        for (input, verdict, ops) in table {
            let mut sync = PortSync::default();
            let mut batch = Batch::default();
            assert_eq!(sync.on_link(&input, &mut batch), verdict, "{input:?}");
            assert_eq!(batch.iter().collect::<Vec<_>>(), ops, "{input:?}");
        }
    }

    /// Golden G8: stale netdevs are ignored by ifindex, whatever they are called later, and
    /// their removal does not clear STATE_DB.
    #[test]
    fn g8_old_interfaces_are_ignored_forever() {
        let mut sync = PortSync::new(["Ethernet0".to_string()]);
        sync.add_old_interface(10, "Ethernet0".into());
        let mut batch = Batch::default();
        for e in [
            ev(LinkOp::New, 10, "Ethernet0", 0x11043),
            ev(LinkOp::New, 10, "Ethernet0", 0x1002),
            ev(LinkOp::Del, 10, "Ethernet0", 0x1002),
        ] {
            assert_eq!(sync.on_link(&e, &mut batch), Verdict::OldInterface);
        }
        assert!(batch.is_empty());
        assert!(!sync.init_due());
        let e = ev(LinkOp::New, 50, "Ethernet0", 0x1002);
        assert_eq!(
            sync.on_link(&e, &mut batch),
            Verdict::Accepted { renamed_from: None }
        );
        sync.on_written("Ethernet0");
        assert!(sync.init_due());
        sync.mark_init_sent();
        assert!(!sync.init_due());
    }

    /// Issue #3 item 4 (deliberate difference from G7): a rename deletes the old row.
    #[test]
    fn issue3_rename_cleans_up_the_old_row() {
        let mut sync = PortSync::default();
        let mut b = Batch::default();
        sync.on_link(&ev(LinkOp::New, 12, "Ethernet8", 0x1002), &mut b);
        let mut b = Batch::default();
        let v = sync.on_link(&ev(LinkOp::New, 12, "Ethernet8_old", 0x1002), &mut b);
        assert_eq!(
            v,
            Verdict::Accepted {
                renamed_from: Some("Ethernet8".into())
            }
        );
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![
                (
                    "Ethernet8",
                    PortOp {
                        delete: true,
                        set: None
                    }
                ),
                (
                    "Ethernet8_old",
                    PortOp {
                        delete: false,
                        set: Some(st(false, false))
                    }
                ),
            ]
        );
        let mut b = Batch::default();
        assert_eq!(
            sync.on_link(&ev(LinkOp::New, 12, "swp8", 0x1002), &mut b),
            Verdict::Accepted {
                renamed_from: Some("Ethernet8_old".into())
            }
        );
        let mut b = Batch::default();
        assert_eq!(
            sync.on_link(&ev(LinkOp::New, 12, "swp9", 0x1002), &mut b),
            Verdict::Filtered
        );
        assert!(b.is_empty());
    }

    /// Found by the issue #3 property test: a port deleted and re-created while the DELLINK
    /// was lost must not be reported as vanished by the next resync.
    #[test]
    fn issue3_recreated_port_with_lost_dellink_is_not_vanished() {
        let mut sync = PortSync::default();
        let mut b = Batch::default();
        sync.on_link(&ev(LinkOp::New, 101, "Ethernet8", 0x1002), &mut b);
        sync.on_link(&ev(LinkOp::New, 102, "Ethernet8", 0x1002), &mut b);
        assert_eq!(sync.known().collect::<Vec<_>>(), vec![102]);
        assert_eq!(sync.vanish(101), None);
    }

    #[test]
    fn g10_empty_config_is_due_at_once_and_only_once() {
        let mut sync = PortSync::new(Vec::<String>::new());
        assert!(sync.init_due());
        sync.mark_init_sent();
        assert!(!sync.init_due());
        assert!(sync.init_sent());
    }
}
