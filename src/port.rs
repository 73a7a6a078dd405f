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

/// Whether portsyncd handles a netdev of this name (the C++ prefix filter).
pub fn qualifies(name: &str) -> bool {
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

    /// A cold sequence run again while the loop runs (swss restarted): the netdevs that exist
    /// now are the stale ones, replacing the previous set (those are gone, and their ifindexes
    /// may come back on new netdevs). They are no longer mirrored; their rows are swss's to
    /// clear (its cold start deletes STATE_DB `PORT_TABLE*`).
    pub fn replace_old_interfaces(&mut self, links: impl IntoIterator<Item = (u32, String)>) {
        self.old.clear();
        for (ifindex, name) in links {
            self.mirror.remove(ifindex);
            self.old.insert(ifindex, name);
        }
    }

    /// Await these configured ports for `PortInitDone` again (a cold sequence run again).
    pub fn await_again(&mut self, expected: impl IntoIterator<Item = String>) {
        self.expected = expected.into_iter().collect();
        self.init_sent = false;
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
            if ev.op == LinkOp::Del {
                // Ignored like every message of an old netdev, but the netdev is gone: forget
                // its ifindex, so the set stays bounded and a reused ifindex is a new port.
                self.old.remove(&ev.ifindex);
            }
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
        if self.expected.remove(port) && self.expected.is_empty() {
            // Sized for every configured port; nothing is awaited again in this process.
            self.expected.shrink_to_fit();
        }
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
        // The common case, a known netdev changing state, allocates nothing.
        if let Some((known, s)) = self.by_index.get_mut(&ifindex) {
            if known == name {
                *s = state;
                return;
            }
        }
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
#[path = "port_tests.rs"]
mod tests;
