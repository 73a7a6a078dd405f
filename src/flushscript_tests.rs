//! The one-call flush's encoding and decoding, table-driven: a batch and rows → the script's
//! arguments; a script answer → gates and per-command errors (or a whole-flush error).

use super::*;
use crate::event::PortState;
use std::path::PathBuf;

fn db(id: i64, separator: char) -> DbLocation {
    DbLocation {
        name: String::new(),
        socket: PathBuf::from("/run/redis.sock"),
        id,
        separator,
    }
}

fn st(oper_up: bool, admin_up: bool, mtu: u32) -> PortState {
    PortState {
        oper_up,
        admin_up,
        mtu,
    }
}

/// The arguments after `EVALSHA <sha> 0`, as strings.
fn args(batch: &Batch, rows: &[Row]) -> Option<Vec<String>> {
    let cmd = flush_cmd("sha", batch, rows)?;
    let all: Vec<String> = cmd
        .args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("a flush has no cursor argument: {other:?}"),
        })
        .collect();
    assert_eq!(all[..3], ["EVALSHA", "sha", "0"]);
    Some(all[3..].to_vec())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn issue15_one_call_flush_encodes_each_entry_kind() {
    let up = st(true, true, 9100);
    let down = st(false, true, 1500);
    // (what the turn did, the rows, the arguments; None: nothing to send). A set's code is
    // 2 + 8 if oper up + 16 if admin up.
    type Case = (
        Vec<(&'static str, Option<PortState>)>,
        Vec<Row>,
        Option<Vec<&'static str>>,
    );
    let table: Vec<Case> = vec![
        (vec![], vec![], None),
        (
            vec![("Ethernet0", Some(up))],
            vec![],
            Some(vec!["1", "26", "Ethernet0", "9100"]),
        ),
        (
            vec![("Ethernet4", None)],
            vec![],
            Some(vec!["1", "1", "Ethernet4"]),
        ),
        // Delete then re-create in one turn: the DEL, then the gated HSET.
        (
            vec![("Ethernet8", None), ("Ethernet8", Some(down))],
            vec![],
            Some(vec!["1", "19", "Ethernet8", "1500"]),
        ),
        // A set folded into a later delete: DEL, and the gate still asked (spec §2.1).
        (
            vec![("Ethernet12", Some(up)), ("Ethernet12", None)],
            vec![],
            Some(vec!["1", "5", "Ethernet12"]),
        ),
        // Rows only, one written and one deleted (an expired alert row).
        (
            vec![],
            vec![
                (
                    "ALERT|flap|Ethernet0".into(),
                    vec![("state", "firing".into())],
                ),
                ("ALERT|flap|Ethernet4".into(), vec![]),
            ],
            Some(vec![
                "0",
                "1",
                "ALERT|flap|Ethernet0",
                "state",
                "firing",
                "0",
                "ALERT|flap|Ethernet4",
            ]),
        ),
    ];
    for (ops, rows, want) in table {
        let mut b = Batch::default();
        for (name, op) in &ops {
            match op {
                Some(s) => b.set(name, *s),
                None => b.delete(name),
            }
        }
        if ops.len() == 2 && ops[0].1.is_some() && ops[1].1.is_none() {
            assert!(
                b.is_probe(ops[0].0),
                "the case meant a folded-away set: {b:?}"
            );
        }
        assert_eq!(
            args(&b, &rows),
            want.map(|w| strings(&w)),
            "{ops:?} {rows:?}"
        );
    }
}

/// A script answer as it comes off the wire (RESP2).
fn wire(resp: &str) -> Value {
    redis::parse_redis_value(resp.as_bytes()).unwrap()
}

#[test]
fn issue15_one_call_flush_answer_decodes_gates_and_per_command_errors() {
    let ke = |reason: &str, detail: &str| KeyError {
        reason: reason.into(),
        detail: detail.into(),
    };
    // (the answer, the gates, the failed commands numbered from 0; None: the flush fails)
    type Case = (&'static str, Option<(Vec<bool>, Vec<(usize, KeyError)>)>);
    let table: Vec<Case> = vec![
        ("*1\r\n$0\r\n\r\n", Some((vec![], vec![]))),
        (
            "*1\r\n$3\r\n101\r\n",
            Some((vec![true, false, true], vec![])),
        ),
        (
            "*3\r\n$2\r\n11\r\n:2\r\n$33\r\nWRONGTYPE Operation against a key\r\n",
            Some((
                vec![true, true],
                vec![(1, ke("WRONGTYPE", "Operation against a key"))],
            )),
        ),
        (
            "*5\r\n$1\r\n1\r\n:1\r\n$13\r\nOOM no memory\r\n:3\r\n$13\r\nOOM no memory\r\n",
            Some((
                vec![true],
                vec![(0, ke("OOM", "no memory")), (2, ke("OOM", "no memory"))],
            )),
        ),
        // Not the script's shape: the whole flush fails (and is retried), nothing is guessed.
        ("$2\r\n11\r\n", None),
        ("*0\r\n", None),
        ("*2\r\n$1\r\n1\r\n:1\r\n", None),
        ("*3\r\n$1\r\n1\r\n:0\r\n$5\r\nERR x\r\n", None),
        ("*3\r\n$1\r\n1\r\n$1\r\n1\r\n$5\r\nERR x\r\n", None),
        ("*3\r\n$1\r\n1\r\n:1\r\n:2\r\n", None),
    ];
    for (resp, want) in table {
        let got = decode(wire(resp)).ok().map(|r| (r.exists, r.errors));
        assert_eq!(got, want, "{resp:?}");
    }
}

#[test]
fn issue15_one_call_flush_script_embeds_the_layout() {
    let script = flush_script(&db(0, ':'), &db(6, '|'));
    // It runs on the APPL_DB connection: it selects only STATE_DB.
    assert!(!script.contains("redis.call('SELECT', '0')"), "{script}");
    assert!(script.contains("redis.call('SELECT', '6')"), "{script}");
    // `PORT_TABLE:` and `PORT_TABLE|`, byte by byte, so no separator can end the literal.
    assert!(script.contains(&lua_string("PORT_TABLE:")), "{script}");
    assert!(script.contains(&lua_string("PORT_TABLE|")), "{script}");
    assert_eq!(lua_string("P'|"), r"'\80\39\124'");
}

#[test]
fn issue15_one_call_only_for_small_flushes_on_one_instance() {
    use crate::outbox::Flush;
    let up = st(true, true, 9100);
    // (same instance, ports, alert rows, one call?)
    let table = [
        (true, 1, 0, true),
        (true, 0, 1, true),
        (true, ONE_CALL_MAX, 0, true),
        (true, ONE_CALL_MAX - 1, 1, true),
        (true, ONE_CALL_MAX + 1, 0, false),
        (true, ONE_CALL_MAX, 1, false),
        (true, 512, 0, false),
        (false, 1, 0, false),
        (false, 0, 1, false),
    ];
    for (same, ports, rows, want) in table {
        let mut f = Flush::default();
        for i in 0..ports {
            f.batch.set(&format!("Ethernet{}", 4 * i), up);
        }
        f.rows = (0..rows)
            .map(|i| (format!("ALERT|flap|Ethernet{i}"), vec![]))
            .collect();
        assert_eq!(one_call(same, &f), want, "{same} {ports} {rows}");
    }
}
