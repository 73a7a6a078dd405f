//! What still has to reach Redis (pure). Link messages fold into the pending `Batch`; at most
//! one flush is in flight. A flush that fails as a whole (connection lost, timeout) goes back
//! *under* whatever arrived since (so the latest state per port wins and per-port DEL/SET order
//! holds), and marks that Redis may have lost writes, which the loop answers with a resync once
//! a flush succeeds again. A flush that lands with error replies for some commands parks just
//! those keys (`keyretry`): each goes out again on its own backoff, or at once under a newer op
//! for the same port, merged the same way. The pending map is keyed by port, so it is bounded
//! by the number of ports whatever Redis does.

use crate::batch::{Batch, PortOp};
use crate::keyretry::{KeyError, KeyId, KeyRetry, Note};
use crate::store::Fvs;

pub use crate::backoff::Backoff;
use rustc_hash::FxHashMap;

/// A STATE_DB row of our own (alerts): key and fields, latest write wins.
pub type Row = (String, Vec<(&'static str, String)>);

/// The APPL_DB key of the init marker.
pub const PORT_INIT_DONE: &str = "PortInitDone";

/// Alert rows per flush. A storm can fire an alert for every port at once (1,024 flap
/// alerts); written in one pipeline, their ≈ 300 kB of commands grew the Redis connection's
/// write buffer, which never shrinks, and the peak (issue #15). The rest go in the next
/// flushes, one round trip each.
pub const ROWS_PER_FLUSH: usize = 128;

/// One flush: the STATE_DB writes of a batch, then the APPL_DB sets, then `PortInitDone` if
/// `init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flush {
    pub batch: Batch,
    pub init: bool,
    /// Alert rows, written after the port rows.
    pub rows: Vec<Row>,
    /// ProducerStateTable sets being retried (start-up sets that got an error reply).
    pub appl: Vec<(String, Fvs)>,
}

/// Which command of a flush an error reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `DEL` / `HSET` of batch entry `i`.
    PortDel(usize),
    PortSet(usize),
    /// `rows[i]`, `appl[i]`.
    Row(usize),
    Appl(usize),
    Init,
}

/// What Redis answered to a flush that reached it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReply {
    /// Per batch entry: its gate was asked and passed.
    pub gate: Vec<bool>,
    /// The commands that got an error reply (usually none).
    pub errors: Vec<(Target, KeyError)>,
}

impl FlushReply {
    /// Whether batch entry `i`'s `DEL` or `HSET` got an error reply.
    pub fn port_failed(&self, i: usize) -> bool {
        self.errors
            .iter()
            .any(|(t, _)| matches!(*t, Target::PortDel(j) | Target::PortSet(j) if j == i))
    }
}

/// What a landed flush means for the loop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Key failures and heals to report.
    pub notes: Vec<Note>,
    /// `PortInitDone` is in APPL_DB now.
    pub init_landed: bool,
    /// An earlier whole-flush failure means a resync is due now.
    pub resync: bool,
}

#[derive(Debug, Default)]
pub struct Outbox {
    pending: Batch,
    init: bool,
    inflight: bool,
    reconcile: bool,
    rows: FxHashMap<String, Vec<(&'static str, String)>>,
    appl: Vec<(String, Fvs)>,
    /// An emptied batch kept for its capacity, so the next turn's ports do not regrow it.
    spare: Batch,
    /// Failing keys' backoff, and their payloads waiting for it.
    retry: KeyRetry,
    parked: Batch,
    parked_rows: FxHashMap<String, Vec<(&'static str, String)>>,
    parked_appl: Vec<(String, Fvs)>,
    parked_init: bool,
}

fn state_key(name: &str) -> KeyId {
    KeyId::State(name.to_owned())
}

/// Add or replace `key`'s set, keeping first-queued order.
fn upsert(sets: &mut Vec<(String, Fvs)>, key: String, fvs: Fvs) {
    match sets.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = fvs,
        None => sets.push((key, fvs)),
    }
}

impl Outbox {
    /// Where the loop folds new link messages.
    pub fn pending_mut(&mut self) -> &mut Batch {
        &mut self.pending
    }

    /// Ports waiting to be sent (not counting the flush in flight or failing keys).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn inflight(&self) -> bool {
        self.inflight
    }

    /// Keys parked after an error reply, waiting for their retry.
    pub fn failing(&self) -> usize {
        self.retry.len()
    }

    /// When the earliest failing key may be retried (loop clock, ms).
    pub fn next_due(&self) -> Option<u64> {
        self.retry.next_due()
    }

    /// Shutdown: retry every failing key now.
    pub fn hurry(&mut self, now_ms: u64) {
        self.retry.hurry(now_ms);
    }

    /// Nothing pending, parked or in flight.
    pub fn idle(&self) -> bool {
        !self.inflight
            && self.pending.is_empty()
            && !self.init
            && self.rows.is_empty()
            && self.appl.is_empty()
            && self.parked.is_empty()
            && self.parked_rows.is_empty()
            && self.parked_appl.is_empty()
            && !self.parked_init
    }

    /// Alert rows queued, not yet taken by a flush.
    pub fn rows_len(&self) -> usize {
        self.rows.len()
    }

    /// Queue a row write; a later write of the same key replaces it.
    pub fn queue_row(&mut self, key: String, fields: Vec<(&'static str, String)>) {
        self.parked_rows.remove(&key);
        self.rows.insert(key, fields);
    }

    /// Queue `PortInitDone` (sent after everything pending with it).
    pub fn want_init(&mut self) {
        self.init = true;
    }

    /// `PortInitDone` is queued, in flight's retry, or parked after an error reply.
    pub fn init_queued(&self) -> bool {
        self.init || self.parked_init
    }

    /// A ProducerStateTable set that got an error reply outside a flush (start-up): park it
    /// for retry like any failing key.
    pub fn park_appl(&mut self, key: String, fvs: Fvs, error: KeyError, now_ms: u64) -> Note {
        let note = self
            .retry
            .failed(KeyId::Appl(key.clone()), error, now_ms, key.len() as u64);
        upsert(&mut self.parked_appl, key, fvs);
        note
    }

    /// Bring parked keys back: a port with a newer pending op goes now, under it; anything
    /// else once its backoff has passed.
    fn unpark(&mut self, now_ms: u64) {
        if self.retry.is_empty() {
            return;
        }
        if !self.parked.is_empty() {
            let (pending, retry) = (&self.pending, &self.retry);
            let back = self
                .parked
                .extract(|n| pending.contains(n) || retry.due(&KeyId::State(n.to_owned()), now_ms));
            if !back.is_empty() {
                self.pending.merge_older(back);
            }
        }
        let retry = &self.retry;
        let due: Vec<String> = self
            .parked_rows
            .keys()
            .filter(|k| retry.due(&KeyId::Row((*k).clone()), now_ms))
            .cloned()
            .collect();
        for k in due {
            if let Some(f) = self.parked_rows.remove(&k) {
                self.rows.entry(k).or_insert(f);
            }
        }
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked_appl)
            .into_iter()
            .partition(|(k, _)| retry.due(&KeyId::Appl(k.clone()), now_ms));
        self.parked_appl = wait;
        for (k, f) in ready {
            if !self.appl.iter().any(|(q, _)| *q == k) {
                self.appl.push((k, f));
            }
        }
        if self.parked_init && retry.due(&KeyId::Appl(PORT_INIT_DONE.into()), now_ms) {
            self.parked_init = false;
            self.init = true;
        }
    }

    /// `take_at` for a caller without failing keys (nothing parked is due at time 0).
    pub fn take(&mut self, max: usize) -> Option<Flush> {
        self.take_at(max, 0)
    }

    /// The flush landed with no error reply. Returns true when an earlier failure means a
    /// resync is due now.
    pub fn succeeded(&mut self) -> bool {
        self.inflight = false;
        std::mem::take(&mut self.reconcile)
    }

    /// Start a flush of at most `max` ports if none is in flight and there is work, bringing
    /// back the parked keys due at `now_ms` (loop clock). `PortInitDone` rides with the flush
    /// that empties the pending batch.
    pub fn take_at(&mut self, max: usize, now_ms: u64) -> Option<Flush> {
        if self.inflight {
            return None;
        }
        self.unpark(now_ms);
        if self.pending.is_empty() && !self.init && self.rows.is_empty() && self.appl.is_empty() {
            // Whatever is due was brought back above; a due key left has nothing to send
            // (cannot happen), and must not keep waking the loop.
            self.retry.drop_due(now_ms);
            return None;
        }
        self.inflight = true;
        let rest = if self.pending.len() > max.max(1) {
            self.pending.split_off(max.max(1))
        } else {
            std::mem::take(&mut self.spare)
        };
        let batch = std::mem::replace(&mut self.pending, rest);
        let init = self.pending.is_empty() && std::mem::take(&mut self.init);
        let rows = if self.rows.len() <= ROWS_PER_FLUSH {
            self.rows.drain().collect()
        } else {
            let keys: Vec<String> = self.rows.keys().take(ROWS_PER_FLUSH).cloned().collect();
            keys.into_iter()
                .filter_map(|k| self.rows.remove_entry(&k))
                .collect()
        };
        let appl = std::mem::take(&mut self.appl);
        Some(Flush {
            batch,
            init,
            rows,
            appl,
        })
    }

    /// The flush reached Redis: park the keys that got an error reply, forget the ones that
    /// landed, and hand the batch back for its capacity.
    pub fn settle(
        &mut self,
        flush: Flush,
        reply: &FlushReply,
        now_ms: u64,
        entropy: u64,
    ) -> Settled {
        let mut out = Settled {
            resync: self.succeeded(),
            ..Settled::default()
        };
        let mut init_failed = false;
        let mut failed_ports: Vec<(usize, bool)> = Vec::new();
        for (i, (target, error)) in reply.errors.iter().enumerate() {
            let e = entropy.wrapping_add(i as u64);
            let (key, err) = (target, error.clone());
            match *key {
                Target::PortDel(j) | Target::PortSet(j) => {
                    let Some((name, _)) = flush.batch.iter().nth(j) else {
                        continue;
                    };
                    if failed_ports.iter().any(|(k, _)| *k == j) {
                        continue;
                    }
                    failed_ports.push((j, matches!(*key, Target::PortDel(_))));
                    out.notes
                        .push(self.retry.failed(state_key(name), err, now_ms, e));
                }
                Target::Row(j) => {
                    let Some((k, f)) = flush.rows.get(j) else {
                        continue;
                    };
                    out.notes
                        .push(self.retry.failed(KeyId::Row(k.clone()), err, now_ms, e));
                    if !self.rows.contains_key(k) {
                        self.parked_rows.insert(k.clone(), f.clone());
                    }
                }
                Target::Appl(j) => {
                    let Some((k, f)) = flush.appl.get(j) else {
                        continue;
                    };
                    out.notes
                        .push(self.retry.failed(KeyId::Appl(k.clone()), err, now_ms, e));
                    upsert(&mut self.parked_appl, k.clone(), f.clone());
                }
                Target::Init => {
                    init_failed = true;
                    out.notes.push(self.retry.failed(
                        KeyId::Appl(PORT_INIT_DONE.into()),
                        err,
                        now_ms,
                        e,
                    ));
                    self.parked_init = true;
                }
            }
        }
        // Park what a failing port still needs: all of it if its DEL failed, else its set.
        if !failed_ports.is_empty() {
            let mut older = Batch::default();
            for (i, (name, op)) in flush.batch.iter().enumerate() {
                if let Some((_, del_failed)) = failed_ports.iter().find(|(j, _)| *j == i) {
                    let op = if *del_failed {
                        op
                    } else {
                        PortOp {
                            delete: false,
                            set: op.set,
                        }
                    };
                    older.push(name, op);
                }
            }
            older.merge_older(std::mem::take(&mut self.parked));
            self.parked = older;
        }
        if !self.retry.is_empty() {
            for (i, (name, op)) in flush.batch.iter().enumerate() {
                if failed_ports.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                let key = state_key(name);
                let gate = reply.gate.get(i).copied().unwrap_or(false);
                if op.set.is_some() && !gate && !op.delete {
                    // Dropped at the gate: nothing left to write for it.
                    self.retry.forget(&key);
                } else if !self.parked.contains(name) {
                    out.notes.extend(self.retry.landed(&key));
                }
            }
            let failed = |t: Target| reply.errors.iter().any(|(e, _)| *e == t);
            for (j, (k, _)) in flush.rows.iter().enumerate() {
                if !failed(Target::Row(j)) {
                    out.notes.extend(self.retry.landed(&KeyId::Row(k.clone())));
                }
            }
            for (j, (k, _)) in flush.appl.iter().enumerate() {
                if !failed(Target::Appl(j)) {
                    out.notes.extend(self.retry.landed(&KeyId::Appl(k.clone())));
                }
            }
            if flush.init && !init_failed {
                out.notes
                    .extend(self.retry.landed(&KeyId::Appl(PORT_INIT_DONE.into())));
            }
        }
        out.init_landed = flush.init && !init_failed;
        let mut batch = flush.batch;
        batch.clear();
        self.spare = batch;
        out
    }

    /// The flush failed as a whole (possibly after some writes landed): keep it for a retry.
    pub fn failed(&mut self, flush: Flush) {
        self.inflight = false;
        self.pending.merge_older(flush.batch);
        self.init |= flush.init;
        for (key, fields) in flush.rows {
            self.rows.entry(key).or_insert(fields);
        }
        for (key, fvs) in flush.appl {
            if !self.appl.iter().any(|(k, _)| *k == key) {
                self.appl.push((key, fvs));
            }
        }
        self.reconcile = true;
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
