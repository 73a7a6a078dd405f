//! Issue #15: our ProducerStateTable set script writes a set's fields with one multi-field
//! `HSET` (per 1,000 arguments) where swss-common runs one `HSET` per field. These tests run
//! the same sets through both forms on one real Redis, into two tables, and check that what a
//! consumer sees is identical: the temp hash (fields and their order), the key set, and one
//! `PUBLISH` per key that was not pending — then that the rig's consumer pops every key.

mod common;

use common::sonic::World;
use common::*;

/// The per-field form (spec §3.2), as the reference: SADD, one HSET per field, PUBLISH if added.
const PER_FIELD: &str = "\
local added = redis.call('SADD', KEYS[2], ARGV[2])
for i = 3, #KEYS do
    redis.call('HSET', KEYS[i], ARGV[2 * i - 3], ARGV[2 * i - 2])
end
if added > 0 then
    redis.call('PUBLISH', KEYS[1], ARGV[1])
end
";

type Fields = Vec<(String, String)>;

fn fields(n: usize, tag: &str) -> Fields {
    (0..n)
        .map(|i| (format!("f{i}"), format!("{tag}{i}")))
        .collect()
}

/// The sets, in order: a 7-field port, a merge into that pending key (an overlapping field
/// and a new one), a zero-field set, a field named twice in one set (the later value wins in
/// both forms), and a set of 700 fields (1,400 arguments: two HSET slices).
fn cases() -> Vec<(&'static str, Fields)> {
    let pair = |f: &str, v: &str| (f.to_string(), v.to_string());
    vec![
        ("Ethernet0", fields(7, "a")),
        ("Ethernet0", vec![pair("f3", "merged"), pair("extra", "x")]),
        ("Ethernet4", vec![]),
        ("Ethernet8", vec![pair("mtu", "1500"), pair("mtu", "9100")]),
        ("Ethernet12", fields(700, "b")),
    ]
}

async fn run_sets(w: &mut World, sha: &str, table: &str) {
    for (key, fvs) in cases() {
        let fvs: Vec<(Vec<u8>, Vec<u8>)> = fvs
            .into_iter()
            .map(|(f, v)| (f.into_bytes(), v.into_bytes()))
            .collect();
        let cmd = portsyncd::pst::set_cmd(sha, &w.appl_db, table, key, &fvs);
        let _: () = cmd
            .query_async(&mut w.appl)
            .await
            .unwrap_or_else(|e| panic!("{table} set of {key}: {e}"));
    }
}

async fn load(w: &mut World, script: &str) -> String {
    q(&mut w.appl, redis::cmd("SCRIPT").arg("LOAD").arg(script)).await
}

#[tokio::test]
async fn issue15_one_hset_per_set_shows_the_consumer_what_per_field_hsets_do() {
    let mut w = World::new().await;
    let ours = load(&mut w, portsyncd::pst::SET_SCRIPT).await;
    let reference = load(&mut w, PER_FIELD).await;
    run_sets(&mut w, &ours, "PORT_TABLE").await;
    run_sets(&mut w, &reference, "REF_TABLE").await;

    let mut want_keys = smembers(&mut w.appl, "REF_TABLE_KEY_SET").await;
    let mut got_keys = smembers(&mut w.appl, "PORT_TABLE_KEY_SET").await;
    want_keys.sort();
    got_keys.sort();
    assert_eq!(got_keys, want_keys, "the key set");
    assert_eq!(got_keys.len(), 4);
    for key in &want_keys {
        let want = hgetall(&mut w.appl, &format!("_REF_TABLE:{key}")).await;
        let got = hgetall(&mut w.appl, &format!("_PORT_TABLE:{key}")).await;
        assert_eq!(got, want, "the temp hash of {key}, fields in order");
    }
    assert_eq!(
        hgetall(&mut w.appl, "_PORT_TABLE:Ethernet12").await.len(),
        700,
        "both 1,000-argument slices written"
    );

    // One PUBLISH per key that was new in the key set (the merge publishes nothing), in both.
    let mon = w.mon().await;
    let publishes = |channel: &str| {
        mon.commands()
            .iter()
            .filter(|c| {
                c.args[0] == "PUBLISH" && c.args.get(1).map(String::as_str) == Some(channel)
            })
            .count()
    };
    assert_eq!(publishes("REF_TABLE_CHANNEL@0"), 4);
    assert_eq!(publishes("PORT_TABLE_CHANNEL@0"), 4);
    // Ours: one HSET per set with fields (two for the 700-field one), not one per field.
    let hsets = mon
        .commands()
        .iter()
        .filter(|c| c.lua && c.args[0] == "HSET" && c.args[1].starts_with("_PORT_TABLE:"))
        .count();
    assert_eq!(hsets, 5, "HSETs of our script");

    // The rig's consumer (ConsumerStateTable's pops) moves every key, fields intact.
    assert_eq!(w.pop().await, 4, "keys popped");
    assert!(!exists(&mut w.appl, "PORT_TABLE_KEY_SET").await);
    for key in &want_keys {
        let want = hmap(&mut w.appl, &format!("_REF_TABLE:{key}")).await;
        let got = hmap(&mut w.appl, &format!("PORT_TABLE:{key}")).await;
        assert_eq!(got, want, "PORT_TABLE:{key} after the pop");
    }
}
