//! The one-round-trip flush, for SONiC's standard layout where APPL_DB and STATE_DB live on one
//! Redis instance, and for small flushes (`one_call`): a single script call asks the APPL_DB
//! gate of every gated port and, in the same call, writes the alert rows and each port's `DEL`
//! and gated C++-shaped `HSET` to STATE_DB. The gate is still read at the moment of the write
//! (the script is atomic), the commands Redis runs are the ones the two-step path sends, in the
//! same order, and each command's error reply comes back on its own (`redis.pcall`), so one bad
//! key still fails only itself. This file owns the script, the encoding of a flush into its
//! arguments and the decoding of its answer; pure (no I/O), so both are unit-tested and benched
//! without Redis.

use crate::batch::Batch;
use crate::dbconfig::DbLocation;
use crate::event::PortState;
use crate::keyretry::KeyError;
use crate::outbox::Row;
use crate::pst::PORT_TABLE;
use redis::{RedisError, RedisResult, Value};

/// The most ports plus alert rows a flush may have to go as one script call.
pub const ONE_CALL_MAX: usize = 16;

/// Whether a flush goes as one script call: only when APPL_DB and STATE_DB share an instance,
/// and only a small one. A single event is where a round trip is most of the latency; a burst's
/// flush amortises its round trips over many ports, and there a pipelined `HSET` costs Redis
/// less than one inside the script (≈ 20 k against 27 k instructions per port in a 512-port
/// flush) and does not hold Redis for every other client for the whole flush, as a script
/// does.
pub fn one_call(same_instance: bool, flush: &crate::outbox::Flush) -> bool {
    same_instance && flush.batch.len() + flush.rows.len() <= ONE_CALL_MAX
}

/// The script for one layout. STATE_DB's number and the `PORT_TABLE` key prefixes are
/// written into its text when it is loaded, and it runs on the APPL_DB connection, so it
/// starts on APPL_DB and selects only STATE_DB (each argument costs Redis about a thousand
/// instructions and each `redis.call` about five thousand; a number given as a string skips a
/// float format).
///
/// `ARGV`: the entry count; the entries, each a code (1 delete, 2 set, 3 delete then set,
/// 4 gate only, 5 delete and gate only; a set adds 8 if oper up and 16 if admin up), the port,
/// and for a set its mtu; then the rows (field count, key, fields; a count of 0 deletes it).
///
/// The answer: the gate as one `0`/`1` character per gated entry, then `command number, error
/// reply text` for each command that failed, numbered from 1 in the two-step pipeline's order
/// (rows first, then the entries' commands). The error text is a string, not an error reply:
/// a client reads an error nested in an array as the failure of the whole call.
pub fn flush_script(appl: &DbLocation, state: &DbLocation) -> String {
    let quote = |db: &DbLocation| lua_string(&format!("{PORT_TABLE}{}", db.separator));
    format!(
        "\
local e = tonumber(ARGV[1])
local found = {{}}
local i = 2
for _ = 1, e do
    local f = tonumber(ARGV[i]) % 8
    if f >= 2 then
        found[#found + 1] = redis.call('EXISTS', {appl_prefix} .. ARGV[i + 1]) == 1 and '1' or '0'
    end
    if f == 2 or f == 3 then i = i + 3 else i = i + 2 end
end
redis.call('SELECT', '{state_id}')
local out = {{table.concat(found)}}
local c = 0
local function check(r)
    c = c + 1
    if type(r) == 'table' and r.err then
        out[#out + 1] = c
        out[#out + 1] = r.err
    end
end
local n = #ARGV
while i <= n do
    local k = tonumber(ARGV[i])
    if k == 0 then
        check(redis.pcall('DEL', ARGV[i + 1]))
    else
        check(redis.pcall('HSET', unpack(ARGV, i + 1, i + 1 + 2 * k)))
    end
    i = i + 2 + 2 * k
end
i = 2
local g = 0
for _ = 1, e do
    local code = tonumber(ARGV[i])
    local f = code % 8
    local key = {state_prefix} .. ARGV[i + 1]
    if f % 2 == 1 then check(redis.pcall('DEL', key)) end
    if f == 2 or f == 3 then
        g = g + 1
        if found[g] == '1' then
            check(redis.pcall('HSET', key, 'state', 'ok',
                'netdev_oper_status', code % 16 >= 8 and 'up' or 'down',
                'admin_status', code >= 16 and 'up' or 'down', 'mtu', ARGV[i + 2]))
        end
        i = i + 3
    else
        if f >= 4 then g = g + 1 end
        i = i + 2
    end
end
return out
",
        state_id = state.id,
        appl_prefix = quote(appl),
        state_prefix = quote(state),
    )
}

/// A Lua string literal for `s` (every byte escaped as `\ddd`, so no separator can end it).
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(2 + 4 * s.len());
    out.push('\'');
    for b in s.bytes() {
        out.push_str(&format!("\\{b}"));
    }
    out.push('\'');
    out
}

/// `EVALSHA <sha> 0 …` for `batch` and `rows`; `None` if the flush writes and asks nothing.
pub fn flush_cmd(sha: &str, batch: &Batch, rows: &[Row]) -> Option<redis::Cmd> {
    let entries: Vec<(&str, u8, Option<PortState>)> = batch
        .iter()
        .map(|(n, op)| {
            let set = op.set.is_some();
            let probe = !set && batch.is_probe(n);
            let mut code = u8::from(op.delete) + 2 * u8::from(set) + 4 * u8::from(probe);
            if let Some(s) = op.set {
                code += 8 * u8::from(s.oper_up) + 16 * u8::from(s.admin_up);
            }
            (n, code, op.set)
        })
        .filter(|&(_, code, _)| code != 0)
        .collect();
    if entries.is_empty() && rows.is_empty() {
        return None;
    }
    let mut cmd = redis::Cmd::with_capacity(4 + 3 * entries.len(), 64 + 32 * entries.len());
    cmd.arg("EVALSHA").arg(sha).arg(0).arg(entries.len());
    for (name, code, set) in entries {
        cmd.arg(code).arg(name);
        if let Some(s) = set {
            cmd.arg(s.mtu);
        }
    }
    for (key, fields) in rows {
        cmd.arg(fields.len()).arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(v);
        }
    }
    Some(cmd)
}

/// The script's answer: the gate per gated entry (in `Batch::gated` order), and the commands
/// that got an error reply, numbered from 0 in the two-step pipeline's order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScriptReply {
    pub exists: Vec<bool>,
    pub errors: Vec<(usize, KeyError)>,
}

pub fn decode(reply: Value) -> RedisResult<ScriptReply> {
    let bad = |what: String| {
        RedisError::from((redis::ErrorKind::UnexpectedReturnType, "flush script", what))
    };
    let Value::Array(items) = reply else {
        return Err(bad(format!("not an array: {reply:?}")));
    };
    let mut items = items.into_iter();
    let exists = match items.next() {
        Some(Value::BulkString(b)) => b.iter().map(|&c| c == b'1').collect(),
        other => return Err(bad(format!("no gate answer: {other:?}"))),
    };
    let mut errors = Vec::new();
    while let Some(n) = items.next() {
        match (n, items.next()) {
            (Value::Int(n), Some(Value::BulkString(e))) if n >= 1 => {
                let text = String::from_utf8_lossy(&e);
                let (reason, detail) = text.split_once(' ').unwrap_or((&text, ""));
                let error = KeyError {
                    reason: reason.to_owned(),
                    detail: detail.to_owned(),
                };
                errors.push((n as usize - 1, error));
            }
            (n, e) => return Err(bad(format!("not a command number and error: {n:?} {e:?}"))),
        }
    }
    Ok(ScriptReply { exists, errors })
}

#[cfg(test)]
#[path = "flushscript_tests.rs"]
mod tests;
