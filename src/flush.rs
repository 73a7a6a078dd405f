//! The flush: one `Flush` from the outbox becomes the APPL_DB gate (one script call for every
//! gated port, at flush time, never cached), the STATE_DB pipeline (our rows, then per port a
//! `DEL` and/or the C++-shaped 4-field `HSET`), then the APPL_DB ProducerStateTable sets being
//! retried and `PortInitDone`. Pipelines run with `ignore_errors()`, and each error reply is
//! mapped back to the command (and so the key) it answered (`FlushReply`); a connection error,
//! or an error reply to the gate, fails the whole flush.

use crate::batch::{plan, Batch, StateWrite};
use crate::dbconfig::DbLocation;
use crate::outbox::{Flush, FlushReply, Target, PORT_INIT_DONE};
use crate::pst::PORT_TABLE;
use crate::requests::Key;
use crate::store::{key_error, Fvs, Store};
use redis::{RedisResult, Value};

impl Store {
    /// Send one flush: gate-check the ports its batch sets or probes (APPL_DB
    /// `EXISTS PORT_TABLE:<p>` in one script call, at flush time, never cached), then its
    /// STATE_DB writes, then its APPL_DB sets and `PortInitDone` if `init`. Returns, per batch
    /// entry in order, whether its gate passed, and the commands that got an error reply. An
    /// error reply to the gate itself (one command for the whole flush) fails the flush.
    pub async fn flush(&mut self, flush: &Flush) -> RedisResult<FlushReply> {
        let batch = &flush.batch;
        let mut exists: Vec<bool> = Vec::new();
        let gated = batch.gated().count();
        if gated > 0 {
            let found = match self.gate(batch, gated).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.load_scripts().await?;
                    self.gate(batch, gated).await?
                }
                other => other?,
            };
            if found.len() != gated {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "gate script",
                    format!("{} answers for {gated} ports", found.len()),
                )));
            }
            exists = found.iter().map(|&b| b == b'1').collect();
        }
        // `plan` asks about each gated entry exactly once, in batch order: the gated order.
        let mut answers = exists.iter().copied();
        let gate: Vec<bool> = batch
            .iter()
            .map(|(n, op)| {
                (op.set.is_some() || batch.is_probe(n)) && answers.next().unwrap_or(false)
            })
            .collect();
        let mut answers = exists.iter().copied();
        let writes = plan(batch, |_| answers.next().unwrap_or(false));
        let mut errors = Vec::new();
        let rows = &flush.rows;
        if !writes.is_empty() || !rows.is_empty() {
            let mut pipe = state_pipeline(&self.dbs.state, &writes, rows);
            pipe.ignore_errors();
            let replies: Vec<Value> = pipe.query_async(&mut self.state).await?;
            if replies.iter().any(|v| matches!(v, Value::ServerError(_))) {
                // The pipeline's commands: rows, then per entry its DEL and its gated HSET.
                let targets =
                    (0..rows.len())
                        .map(Target::Row)
                        .chain(batch.iter().enumerate().flat_map(|(i, (_, op))| {
                            let del = op.delete.then_some(Target::PortDel(i));
                            let set = (op.set.is_some() && gate[i]).then_some(Target::PortSet(i));
                            del.into_iter().chain(set)
                        }));
                for (t, v) in targets.zip(&replies) {
                    if let Value::ServerError(e) = v {
                        errors.push((t, key_error(e)));
                    }
                }
            }
        }
        if flush.init || !flush.appl.is_empty() {
            let init = (
                PORT_INIT_DONE.to_owned(),
                vec![(b"lanes".to_vec(), b"0".to_vec())],
            );
            let sets: Vec<(String, Fvs)> = if flush.appl.is_empty() {
                vec![init]
            } else {
                let mut v = flush.appl.clone();
                if flush.init {
                    v.push(init);
                }
                v
            };
            for (i, e) in self.producer_sets(&sets).await? {
                let t = if i < flush.appl.len() {
                    Target::Appl(i)
                } else {
                    Target::Init
                };
                errors.push((t, e));
            }
        }
        Ok(FlushReply { gate, errors })
    }
}

/// The APPL_DB gate for a whole flush in one command: `EXISTS` on each `PORT_TABLE:<p>` key,
/// answered as one string of `0`/`1`, one character per key. Against a pipeline of `EXISTS`
/// commands this saves the daemon a command to encode and a reply to parse per port, and
/// Redis a command to read; the checks are the same reads at the same moment.
pub const GATE_SCRIPT: &str = "\
local found = {}
for i, key in ipairs(KEYS) do
    found[i] = redis.call('EXISTS', key) == 1 and '1' or '0'
end
return table.concat(found)
";

impl Store {
    /// `EVALSHA <gate> n PORT_TABLE:<p>…` for the ports of `batch` whose op sets the row.
    async fn gate(&mut self, batch: &Batch, gated: usize) -> RedisResult<Vec<u8>> {
        let mut cmd = redis::Cmd::with_capacity(gated + 3, 64 + 32 * gated);
        cmd.arg("EVALSHA").arg(&self.gate_sha).arg(gated);
        for p in batch.gated() {
            cmd.arg(Key::new(&self.dbs.appl, PORT_TABLE, p));
        }
        cmd.query_async(&mut self.appl).await
    }
}

/// The STATE_DB pipeline of a flush: our alert rows, then per port a `DEL` and/or the one
/// 4-field `HSET PORT_TABLE|<p> state ok netdev_oper_status … admin_status … mtu …` in the C++
/// field order. Pure, so the benches measure the same encoding.
pub fn state_pipeline(
    state: &DbLocation,
    writes: &[StateWrite<'_>],
    rows: &[crate::outbox::Row],
) -> redis::Pipeline {
    // Every reply is kept (none marked `ignore()`, which costs a hash-set insert per
    // command): the flush maps error replies back to their keys.
    let mut pipe = redis::Pipeline::with_capacity(rows.len() + writes.len());
    for (key, fields) in rows {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(v);
        }
        pipe.add_command(cmd);
    }
    for w in writes {
        match *w {
            StateWrite::Del(p) => {
                let mut cmd = redis::Cmd::with_capacity(2, 48);
                cmd.arg("DEL").arg(Key::new(state, PORT_TABLE, p));
                pipe.add_command(cmd);
            }
            StateWrite::Set(p, s) => {
                let mut cmd = redis::Cmd::with_capacity(10, 128);
                cmd.arg("HSET")
                    .arg(Key::new(state, PORT_TABLE, p))
                    .arg("state")
                    .arg("ok")
                    .arg("netdev_oper_status")
                    .arg(s.oper_str())
                    .arg("admin_status")
                    .arg(s.admin_str())
                    .arg("mtu")
                    .arg(s.mtu);
                pipe.add_command(cmd);
            }
        }
    }
    pipe
}
