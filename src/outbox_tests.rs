//! The outbox's table-driven tests: bounded flushes, whole-flush failures, and per-key error
//! replies (parking, retry order, PortInitDone).

use super::*;
use crate::event::fixtures::{ADMIN_DOWN, UP};
use crate::keyretry::MIN_MS;

const MAX: usize = 512;

/// A reply with every entry's gate passed and the given error replies.
fn reply(f: &Flush, errors: &[(Target, &str)]) -> FlushReply {
    FlushReply {
        gate: vec![true; f.batch.len()],
        errors: errors
            .iter()
            .map(|(t, r)| {
                (
                    *t,
                    KeyError {
                        reason: r.to_string(),
                        detail: "detail".into(),
                    },
                )
            })
            .collect(),
    }
}

fn ops(f: &Flush) -> Vec<(String, PortOp)> {
    f.batch.iter().map(|(n, op)| (n.to_owned(), op)).collect()
}

fn set(s: crate::event::PortState) -> PortOp {
    PortOp {
        delete: false,
        set: Some(s),
    }
}

#[test]
fn large_batches_go_out_in_bounded_flushes_with_init_last() {
    let mut o = Outbox::default();
    for i in 0..5 {
        o.pending_mut().set(&format!("Ethernet{i}"), UP);
    }
    o.want_init();
    for (len, init) in [(2, false), (2, false), (1, true)] {
        let f = o.take_at(2, 0).unwrap();
        assert_eq!((f.batch.len(), f.init), (len, init));
        let r = reply(&f, &[]);
        let s = o.settle(f, &r, 0, 0);
        assert!(!s.resync);
        assert_eq!(s.init_landed, init);
    }
    assert!(o.idle());
}

#[test]
fn one_flush_in_flight_and_failures_come_back() {
    let mut o = Outbox::default();
    assert!(o.take_at(MAX, 0).is_none());
    o.pending_mut().set("Ethernet0", UP);
    let f = o.take_at(MAX, 0).unwrap();
    assert!(o.take_at(MAX, 0).is_none(), "only one in flight");
    o.pending_mut().delete("Ethernet0");
    o.failed(f);
    let f = o.take_at(MAX, 0).unwrap();
    assert_eq!(
        f.batch.iter().next().unwrap().1.set,
        None,
        "the newer delete wins"
    );
    let r = reply(&f, &[]);
    assert!(
        o.settle(f, &r, 0, 0).resync,
        "a failure earlier asks for a resync"
    );
    assert!(o.idle());
}

#[test]
fn init_rides_after_pending_writes() {
    let mut o = Outbox::default();
    o.want_init();
    let f = o.take_at(MAX, 0).unwrap();
    assert!(f.init && f.batch.is_empty());
    o.failed(f);
    assert!(o.init_queued());
    let f = o.take_at(MAX, 0).unwrap();
    assert!(f.init);
    let r = reply(&f, &[]);
    let s = o.settle(f, &r, 0, 0);
    assert!(s.resync && s.init_landed);
    assert!(o.idle());
}

/// One step of the per-key table: at `now` ms, optionally fold new ops in, take a flush,
/// check what it carries, and settle it with these error replies.
struct Step {
    now: u64,
    new: Vec<(&'static str, PortOp)>,
    /// Expected flush contents (None: no flush can start).
    sent: Option<Vec<(&'static str, PortOp)>>,
    errors: Vec<(Target, &'static str)>,
    /// Keys failing after the step.
    failing: usize,
}

fn del_set(s: crate::event::PortState) -> PortOp {
    PortOp {
        delete: true,
        set: Some(s),
    }
}

const DEL: PortOp = PortOp {
    delete: true,
    set: None,
};

#[test]
fn issue11_error_replies_park_only_their_key() {
    let table = vec![
        // Three ports; Ethernet4's HSET is answered WRONGTYPE: only it is parked.
        Step {
            now: 0,
            new: vec![
                ("Ethernet0", set(UP)),
                ("Ethernet4", set(UP)),
                ("Ethernet8", set(UP)),
            ],
            sent: Some(vec![
                ("Ethernet0", set(UP)),
                ("Ethernet4", set(UP)),
                ("Ethernet8", set(UP)),
            ]),
            errors: vec![(Target::PortSet(1), "WRONGTYPE")],
            failing: 1,
        },
        // Another port's flip goes out at once, without the parked key (not due yet).
        Step {
            now: 10,
            new: vec![("Ethernet0", set(ADMIN_DOWN))],
            sent: Some(vec![("Ethernet0", set(ADMIN_DOWN))]),
            errors: vec![],
            failing: 1,
        },
        // Nothing new and the backoff not over: no flush.
        Step {
            now: 20,
            new: vec![],
            sent: None,
            errors: vec![],
            failing: 1,
        },
        // Backoff over: the parked set goes alone, fails again.
        Step {
            now: MIN_MS,
            new: vec![],
            sent: Some(vec![("Ethernet4", set(UP))]),
            errors: vec![(Target::PortSet(0), "WRONGTYPE")],
            failing: 1,
        },
        // A newer op for the failing port: it goes at once, the parked one folded under it
        // (the newer state wins, DEL/SET order kept).
        Step {
            now: MIN_MS + 1,
            new: vec![("Ethernet4", DEL), ("Ethernet4", set(ADMIN_DOWN))],
            sent: Some(vec![("Ethernet4", del_set(ADMIN_DOWN))]),
            errors: vec![(Target::PortSet(0), "OOM")],
            failing: 1,
        },
        // The DEL landed, the HSET failed: only the set is parked; once due it lands.
        Step {
            now: 10_000,
            new: vec![("Ethernet8", DEL)],
            sent: Some(vec![("Ethernet4", set(ADMIN_DOWN)), ("Ethernet8", DEL)]),
            errors: vec![],
            failing: 0,
        },
    ];
    let mut o = Outbox::default();
    for (n, step) in table.into_iter().enumerate() {
        for (p, op) in step.new {
            o.pending_mut().push(p, op);
        }
        let f = o.take_at(MAX, step.now);
        let got = f.as_ref().map(ops);
        let want = step
            .sent
            .map(|v| v.into_iter().map(|(p, op)| (p.to_owned(), op)).collect());
        assert_eq!(got, want, "step {n}");
        if let Some(f) = f {
            let r = reply(&f, &step.errors);
            let s = o.settle(f, &r, step.now, 0);
            assert!(!s.resync, "an error reply is not a connection failure");
        }
        assert_eq!(o.failing(), step.failing, "step {n}");
    }
    assert!(o.idle());
}

#[test]
fn issue11_a_healed_key_is_reported_once() {
    let mut o = Outbox::default();
    o.pending_mut().set("Ethernet4", UP);
    let f = o.take_at(MAX, 0).unwrap();
    let r = reply(&f, &[(Target::PortSet(0), "WRONGTYPE")]);
    let s = o.settle(f, &r, 0, 0);
    assert!(matches!(&s.notes[..], [Note::Failed { log: true, .. }]));
    assert_eq!(o.next_due(), Some(MIN_MS));
    let f = o.take_at(MAX, MIN_MS).unwrap();
    let r = reply(&f, &[]);
    let s = o.settle(f, &r, MIN_MS, 0);
    assert_eq!(
        s.notes,
        vec![Note::Healed {
            key: KeyId::State("Ethernet4".into()),
            attempts: 1
        }]
    );
    assert!(o.idle() && o.next_due().is_none());
}

#[test]
fn issue11_a_failing_port_dropped_at_the_gate_is_forgotten() {
    let mut o = Outbox::default();
    o.pending_mut().set("Ethernet4", UP);
    let f = o.take_at(MAX, 0).unwrap();
    let r = reply(&f, &[(Target::PortSet(0), "WRONGTYPE")]);
    o.settle(f, &r, 0, 0);
    let f = o.take_at(MAX, MIN_MS).unwrap();
    let mut r = reply(&f, &[]);
    r.gate = vec![false];
    assert!(o.settle(f, &r, MIN_MS, 0).notes.is_empty());
    assert!(o.idle() && o.failing() == 0);
}

#[test]
fn issue11_port_init_done_and_appl_sets_are_retried_alone() {
    let mut o = Outbox::default();
    let fvs = vec![(b"lanes".to_vec(), b"4".to_vec())];
    let e = KeyError {
        reason: "WRONGTYPE".into(),
        detail: String::new(),
    };
    o.park_appl("Ethernet4".into(), fvs.clone(), e, 0);
    o.want_init();
    o.pending_mut().set("Ethernet0", UP);
    // The start-up set is not due yet; PortInitDone goes with the port and fails.
    let f = o.take_at(MAX, 0).unwrap();
    assert!(f.init && f.appl.is_empty());
    let r = reply(&f, &[(Target::Init, "WRONGTYPE")]);
    let s = o.settle(f, &r, 0, 0);
    assert!(!s.init_landed);
    assert!(
        o.init_queued(),
        "parked, so the loop does not queue it twice"
    );
    assert!(o.take_at(MAX, 1).is_none());
    // Both due: both go in one flush, the set first; the set fails again, init lands.
    let f = o.take_at(MAX, 10_000).unwrap();
    assert_eq!(
        (f.init, f.appl.clone()),
        (true, vec![("Ethernet4".into(), fvs)])
    );
    let r = reply(&f, &[(Target::Appl(0), "WRONGTYPE")]);
    let s = o.settle(f, &r, 10_000, 0);
    assert!(s.init_landed && !o.init_queued());
    assert_eq!(o.failing(), 1);
    let f = o.take_at(MAX, 20_000).unwrap();
    let r = reply(&f, &[]);
    o.settle(f, &r, 20_000, 0);
    assert!(o.idle());
}

#[test]
fn issue11_rows_are_retried_and_a_newer_row_wins() {
    let mut o = Outbox::default();
    o.queue_row("A|r".into(), vec![("state", "firing".into())]);
    let f = o.take_at(MAX, 0).unwrap();
    let r = reply(&f, &[(Target::Row(0), "OOM")]);
    o.settle(f, &r, 0, 0);
    o.queue_row("A|r".into(), vec![("state", "resolved".into())]);
    let f = o.take_at(MAX, 1).unwrap();
    assert_eq!(
        f.rows,
        vec![("A|r".into(), vec![("state", "resolved".into())])]
    );
    let r = reply(&f, &[]);
    assert_eq!(o.settle(f, &r, 1, 0).notes.len(), 1, "healed");
    assert!(o.idle());
}

/// Issue #15: a storm's alert rows go out at most `ROWS_PER_FLUSH` a flush, every one of
/// them, each once.
#[test]
fn issue15_alert_rows_are_split_across_flushes() {
    let mut o = Outbox::default();
    for i in 0..300 {
        o.queue_row(
            format!("flap|Ethernet{i}"),
            vec![("state", "firing".into())],
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    while let Some(f) = o.take_at(MAX, 0) {
        sizes.push(f.rows.len());
        seen.extend(f.rows.iter().map(|(k, _)| k.clone()));
        let r = reply(&f, &[]);
        o.settle(f, &r, 0, 0);
    }
    assert_eq!(
        sizes,
        [ROWS_PER_FLUSH, ROWS_PER_FLUSH, 300 - 2 * ROWS_PER_FLUSH]
    );
    assert_eq!(seen.len(), 300);
    assert!(o.idle());
}

/// Random link ops, flushes whose commands randomly get error replies, and time passing:
/// once Redis stops answering with errors and the outbox drains, the model STATE_DB holds
/// each port's latest state (a retried key never overwrote a newer one, DEL/SET order held).
mod property {
    use super::*;
    use crate::batch::{plan, StateWrite};
    use crate::event::PortState;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const NAMES: [&str; 3] = ["Ethernet0", "Ethernet4", "Ethernet8"];

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, u32),
        Del(usize),
        /// Take a flush and settle it; bit k of the mask fails the flush's k-th command.
        Flush(u8),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 1..1000u32).prop_map(|(i, m)| Op::Set(i, m)),
            (0..3usize).prop_map(Op::Del),
            any::<u8>().prop_map(Op::Flush),
            (0..3_000u64).prop_map(Op::Wait),
        ]
    }

    fn state(mtu: u32) -> PortState {
        PortState { mtu, ..UP }
    }

    /// Send one flush to the model DB; commands whose mask bit is set fail.
    fn flush(o: &mut Outbox, db: &mut BTreeMap<String, u32>, now: u64, mask: u8) {
        let Some(f) = o.take_at(2, now) else { return };
        let writes = plan(&f.batch, |_| true);
        let mut errors = Vec::new();
        let index = |n: &str| f.batch.iter().position(|(m, _)| m == n).unwrap();
        for (k, w) in writes.iter().enumerate() {
            let failed = mask & (1 << (k % 8)) != 0;
            let e = KeyError {
                reason: "WRONGTYPE".into(),
                detail: String::new(),
            };
            match *w {
                StateWrite::Del(n) if failed => errors.push((Target::PortDel(index(n)), e)),
                StateWrite::Set(n, _) if failed => errors.push((Target::PortSet(index(n)), e)),
                StateWrite::Del(n) => {
                    db.remove(n);
                }
                StateWrite::Set(n, s) => {
                    db.insert(n.to_owned(), s.mtu);
                }
            }
        }
        let reply = FlushReply {
            gate: vec![true; f.batch.len()],
            errors,
        };
        o.settle(f, &reply, now, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn issue11_retried_keys_never_overwrite_newer_states(ops in prop::collection::vec(op(), 1..60)) {
            let mut o = Outbox::default();
            let mut db = BTreeMap::new();
            let mut want: BTreeMap<String, u32> = BTreeMap::new();
            let mut now = 0;
            for op in ops {
                match op {
                    Op::Set(i, m) => {
                        o.pending_mut().set(NAMES[i], state(m));
                        want.insert(NAMES[i].into(), m);
                    }
                    Op::Del(i) => {
                        o.pending_mut().delete(NAMES[i]);
                        want.remove(NAMES[i]);
                    }
                    Op::Flush(mask) => flush(&mut o, &mut db, now, mask),
                    Op::Wait(ms) => now += ms,
                }
            }
            // Redis heals: flush until nothing is left.
            for _ in 0..100 {
                if o.idle() {
                    break;
                }
                now += 10_000;
                flush(&mut o, &mut db, now, 0);
            }
            prop_assert!(o.idle());
            prop_assert_eq!(db, want);
        }
    }
}
