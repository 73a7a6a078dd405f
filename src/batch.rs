//! One loop turn's STATE_DB writes, folded per port. Several link messages for one port in a
//! turn become at most one `DEL` followed by at most one 4-field `HSET` with the latest state,
//! which leaves Redis exactly as the C++ daemon's one-write-per-message would, with fewer
//! commands. A failed flush is merged back *under* anything that arrived since, so per-port
//! order is kept across retries. A set folded away by a later delete leaves a *probe*: the
//! port's APPL_DB gate is still asked (spec §2.1: C++ stops awaiting a port on the NEWLINK
//! whose gate passes), but nothing superseded is written. Pure: no I/O.

use crate::event::PortState;
use rustc_hash::{FxHashMap, FxHashSet};

/// What to do with one port's STATE_DB row: optionally delete it, then optionally set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortOp {
    pub delete: bool,
    pub set: Option<PortState>,
}

impl PortOp {
    /// `self` followed by `later`, as one op with the same final effect.
    pub fn then(self, later: PortOp) -> PortOp {
        if later.delete {
            later
        } else {
            PortOp {
                delete: self.delete,
                set: later.set.or(self.set),
            }
        }
    }
}

/// Ports touched in a turn, in first-touch order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    order: Vec<String>,
    ops: FxHashMap<String, PortOp>,
    /// Ports whose set was folded into a later delete: gate-checked, not written.
    probes: FxHashSet<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Empty it, keeping its capacity.
    pub fn clear(&mut self) {
        self.order.clear();
        self.ops.clear();
        self.probes.clear();
    }

    /// Fold `op` in after whatever the batch already holds for `name`.
    pub fn push(&mut self, name: &str, op: PortOp) {
        match self.ops.get_mut(name) {
            Some(cur) => {
                if op.delete && cur.set.is_some() {
                    self.probes.insert(name.to_owned());
                }
                *cur = cur.then(op);
            }
            None => {
                self.order.push(name.to_owned());
                self.ops.insert(name.to_owned(), op);
            }
        }
    }

    pub fn set(&mut self, name: &str, state: PortState) {
        self.push(
            name,
            PortOp {
                delete: false,
                set: Some(state),
            },
        );
    }

    pub fn delete(&mut self, name: &str) {
        self.push(
            name,
            PortOp {
                delete: true,
                set: None,
            },
        );
    }

    /// Split off everything after the first `n` ports (first-touch order).
    pub fn split_off(&mut self, n: usize) -> Batch {
        if n >= self.order.len() {
            return Batch::default();
        }
        let rest_order = self.order.split_off(n);
        let mut rest = Batch::default();
        for name in rest_order {
            let op = self.ops.remove(&name).expect("order and ops agree");
            if self.probes.remove(&name) {
                rest.probes.insert(name.clone());
            }
            rest.ops.insert(name.clone(), op);
            rest.order.push(name);
        }
        rest
    }

    /// Put an older batch (one whose flush failed) underneath this one.
    pub fn merge_older(&mut self, older: Batch) {
        let newer = std::mem::replace(self, older);
        self.probes.extend(newer.probes);
        for name in newer.order {
            let op = newer.ops[&name];
            self.push(&name, op);
        }
    }

    /// Whether the batch touches `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.ops.contains_key(name)
    }

    /// Move the ports `pick` chooses into a new batch (first-touch order kept in both).
    pub fn extract(&mut self, mut pick: impl FnMut(&str) -> bool) -> Batch {
        let mut out = Batch::default();
        for name in std::mem::take(&mut self.order) {
            if !pick(&name) {
                self.order.push(name);
                continue;
            }
            let op = self.ops.remove(&name).expect("order and ops agree");
            if self.probes.remove(&name) {
                out.probes.insert(name.clone());
            }
            out.ops.insert(name.clone(), op);
            out.order.push(name);
        }
        out
    }

    /// Whether `name`'s gate is asked although its op sets nothing (a folded-away set).
    pub fn is_probe(&self, name: &str) -> bool {
        !self.probes.is_empty() && self.probes.contains(name)
    }

    /// Keep only the probes `keep` wants (the loop keeps those of ports still awaited).
    pub fn retain_probes(&mut self, mut keep: impl FnMut(&str) -> bool) {
        if !self.probes.is_empty() {
            self.probes.retain(|n| keep(n));
        }
    }

    /// `(port, op)` in first-touch order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, PortOp)> {
        self.order.iter().map(|n| (n.as_str(), self.ops[n]))
    }

    /// Ports whose latest op sets the row, or that are probes: these need the APPL_DB gate
    /// check.
    pub fn gated(&self) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(|(n, op)| op.set.is_some() || self.is_probe(n))
            .map(|(n, _)| n)
    }
}

/// One STATE_DB command, naming a port of the batch it was planned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite<'a> {
    Del(&'a str),
    Set(&'a str, PortState),
}

/// The STATE_DB commands for a batch, given which gated ports have an APPL_DB entry now
/// (`in_appl_db` is asked once per gated port, in `gated()` order, probes included).
/// A set whose gate fails is dropped (the C++ "Cannot find … in port table" case); a delete is
/// never gated; a probe writes nothing.
pub fn plan(batch: &Batch, mut in_appl_db: impl FnMut(&str) -> bool) -> Vec<StateWrite<'_>> {
    let mut out = Vec::with_capacity(batch.len());
    for (name, op) in batch.iter() {
        if op.delete {
            out.push(StateWrite::Del(name));
        }
        match op.set {
            Some(state) => {
                if in_appl_db(name) {
                    out.push(StateWrite::Set(name, state));
                }
            }
            None => {
                if batch.is_probe(name) {
                    in_appl_db(name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
