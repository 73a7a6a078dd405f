//! The flush: one `Flush` from the outbox becomes the APPL_DB gate (every gated port, at flush
//! time, never cached) and the STATE_DB writes (our rows, then per port a `DEL` and/or the
//! C++-shaped 4-field `HSET`) — one script call for a small flush when APPL_DB and STATE_DB
//! share an instance (`flushscript.rs`), else a gate script call then a pipeline — then the
//! APPL_DB ProducerStateTable sets being retried and `PortInitDone`. Pipelines run with
//! `ignore_errors()`, and each error reply is mapped back to the command (and so the key) it
//! answered (`FlushReply`); a connection error, or an error reply to the gate, fails the whole
//! flush.

use crate::batch::{plan, Batch, StateWrite};
use crate::dbconfig::DbLocation;
use crate::flushscript::{self, flush_cmd};
use crate::keyretry::KeyError;
use crate::outbox::{Flush, FlushReply, Target, PORT_INIT_DONE};
use crate::pst::PORT_TABLE;
use crate::requests::Key;
use crate::store::{key_error, Fvs, Store};
use redis::{RedisResult, Value};

impl Store {
    /// Send one flush: gate-check the ports its batch sets or probes (APPL_DB
    /// `EXISTS PORT_TABLE:<p>`, at flush time, never cached), then its STATE_DB writes — in one
    /// script call for a small flush when APPL_DB and STATE_DB share an instance
    /// (`flushscript::one_call`), else the gate script then a pipeline — then its APPL_DB sets
    /// and `PortInitDone` if `init`. Returns, per batch entry in order, whether its gate passed,
    /// and the commands that got an error reply.
    /// An error reply to the gate itself (one command for the whole flush) fails the flush.
    pub async fn flush(&mut self, flush: &Flush) -> RedisResult<FlushReply> {
        let same_instance = self.dbs.appl.socket == self.dbs.state.socket;
        let (gate, mut errors) = if flushscript::one_call(same_instance, flush) {
            self.state_in_one_call(flush).await?
        } else {
            self.state_in_two_steps(flush).await?
        };
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

type StateErrors = Vec<(Target, KeyError)>;

impl Store {
    /// The gate and the STATE_DB writes in one script call (one round trip).
    async fn state_in_one_call(&mut self, flush: &Flush) -> RedisResult<(Vec<bool>, StateErrors)> {
        let batch = &flush.batch;
        let rows = &flush.rows;
        let Some(mut cmd) = flush_cmd(&self.flush_sha, batch, rows) else {
            return Ok((vec![false; batch.len()], Vec::new()));
        };
        let reply: Value = match cmd.query_async(&mut self.appl).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_scripts().await?;
                if let Some(again) = flush_cmd(&self.flush_sha, batch, rows) {
                    cmd = again;
                }
                cmd.query_async(&mut self.appl).await?
            }
            other => other?,
        };
        let reply = flushscript::decode(reply)?;
        let gate = entry_gates(batch, &reply.exists)?;
        let mut errors = Vec::new();
        if !reply.errors.is_empty() {
            let targets: Vec<Target> = command_targets(batch, &gate, flush.rows.len()).collect();
            for (n, e) in reply.errors {
                let Some(&t) = targets.get(n) else {
                    return Err(unexpected(format!(
                        "an error for command {n} of {}",
                        targets.len()
                    )));
                };
                errors.push((t, e));
            }
        }
        Ok((gate, errors))
    }

    /// The gate script, then the STATE_DB pipeline: for a burst, or APPL_DB and STATE_DB on two
    /// instances.
    async fn state_in_two_steps(&mut self, flush: &Flush) -> RedisResult<(Vec<bool>, StateErrors)> {
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
            exists = found.iter().map(|&b| b == b'1').collect();
        }
        let gate = entry_gates(batch, &exists)?;
        // `plan` asks about each gated entry exactly once, in batch order: the gated order.
        let mut answers = exists.iter().copied();
        let writes = plan(batch, |_| answers.next().unwrap_or(false));
        let mut errors = Vec::new();
        let rows = &flush.rows;
        if !writes.is_empty() || !rows.is_empty() {
            let mut pipe = state_pipeline(&self.dbs.state, &writes, rows);
            pipe.ignore_errors();
            let replies: Vec<Value> = pipe.query_async(&mut self.state).await?;
            if replies.iter().any(|v| matches!(v, Value::ServerError(_))) {
                for (t, v) in command_targets(batch, &gate, rows.len()).zip(&replies) {
                    if let Value::ServerError(e) = v {
                        errors.push((t, key_error(e)));
                    }
                }
            }
        }
        Ok((gate, errors))
    }
}

/// Per batch entry, whether its gate was asked and passed, from the answers in `gated()`
/// order (one per gated entry, or the reply is not the gate's).
fn entry_gates(batch: &Batch, exists: &[bool]) -> RedisResult<Vec<bool>> {
    let gated = batch.gated().count();
    if exists.len() != gated {
        return Err(unexpected(format!(
            "{} gate answers for {gated} ports",
            exists.len()
        )));
    }
    let mut answers = exists.iter().copied();
    Ok(batch
        .iter()
        .map(|(n, op)| (op.set.is_some() || batch.is_probe(n)) && answers.next().unwrap_or(false))
        .collect())
}

/// What each STATE_DB command of a flush was for, in the order both paths send them: the
/// rows, then per entry its `DEL` and its `HSET` if the gate passed.
fn command_targets<'a>(
    batch: &'a Batch,
    gate: &'a [bool],
    rows: usize,
) -> impl Iterator<Item = Target> + 'a {
    (0..rows)
        .map(Target::Row)
        .chain(batch.iter().enumerate().flat_map(|(i, (_, op))| {
            let del = op.delete.then_some(Target::PortDel(i));
            let set = (op.set.is_some() && gate[i]).then_some(Target::PortSet(i));
            del.into_iter().chain(set)
        }))
}

fn unexpected(what: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "gate", what))
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
        // A row with no fields is an expired alert row (`alertrows.rs`): delete it.
        if fields.is_empty() {
            pipe.add_command(redis::cmd("DEL").arg(key).to_owned());
            continue;
        }
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
