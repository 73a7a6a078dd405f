//! Batch folding, merging, probes and planning: table-driven.

use super::*;
use crate::event::fixtures::{ADMIN_DOWN, UP};

enum In {
    S(PortState),
    D,
}

/// (messages for one port in order, expected folded op)
#[test]
fn folding_table() {
    let table: Vec<(Vec<In>, PortOp)> = vec![
        (
            vec![In::S(ADMIN_DOWN)],
            PortOp {
                delete: false,
                set: Some(ADMIN_DOWN),
            },
        ),
        (
            vec![In::S(ADMIN_DOWN), In::S(UP)],
            PortOp {
                delete: false,
                set: Some(UP),
            },
        ),
        (
            vec![In::S(UP), In::D],
            PortOp {
                delete: true,
                set: None,
            },
        ),
        (
            vec![In::D, In::S(UP)],
            PortOp {
                delete: true,
                set: Some(UP),
            },
        ),
        (
            vec![In::S(UP), In::D, In::S(ADMIN_DOWN)],
            PortOp {
                delete: true,
                set: Some(ADMIN_DOWN),
            },
        ),
        (
            vec![In::D, In::D],
            PortOp {
                delete: true,
                set: None,
            },
        ),
    ];
    for (inputs, want) in table {
        let mut b = Batch::default();
        for i in inputs {
            match i {
                In::S(s) => b.set("Ethernet0", s),
                In::D => b.delete("Ethernet0"),
            }
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![("Ethernet0", want)]);
    }
}

#[test]
fn failed_batch_goes_under_newer_events() {
    let mut old = Batch::default();
    old.set("Ethernet0", UP);
    old.set("Ethernet4", UP);
    let mut new = Batch::default();
    new.delete("Ethernet4");
    new.set("Ethernet8", ADMIN_DOWN);
    new.merge_older(old);
    let got: Vec<_> = new.iter().collect();
    assert_eq!(
        got,
        vec![
            (
                "Ethernet0",
                PortOp {
                    delete: false,
                    set: Some(UP)
                }
            ),
            (
                "Ethernet4",
                PortOp {
                    delete: true,
                    set: None
                }
            ),
            (
                "Ethernet8",
                PortOp {
                    delete: false,
                    set: Some(ADMIN_DOWN)
                }
            ),
        ]
    );
}

#[test]
fn plan_gates_sets_but_not_deletes() {
    let mut b = Batch::default();
    b.set("Ethernet0", UP);
    b.delete("Ethernet96");
    b.set("Ethernet4", ADMIN_DOWN);
    b.delete("Ethernet8");
    b.set("Ethernet8", UP);
    let w = plan(&b, |n| n != "Ethernet4");
    assert_eq!(
        w,
        vec![
            StateWrite::Set("Ethernet0", UP),
            StateWrite::Del("Ethernet96"),
            StateWrite::Del("Ethernet8"),
            StateWrite::Set("Ethernet8", UP),
        ]
    );
}

/// (messages for Ethernet0 in one turn, whether its gate is asked, the writes when the
/// gate passes). A set folded into a later delete still asks the gate (spec §2.1) and
/// writes nothing superseded.
#[test]
fn issue12_folded_away_set_still_asks_the_gate() {
    let table: Vec<(Vec<In>, bool, Vec<StateWrite<'static>>)> = vec![
        (
            vec![In::S(UP)],
            true,
            vec![StateWrite::Set("Ethernet0", UP)],
        ),
        (
            vec![In::S(UP), In::D],
            true,
            vec![StateWrite::Del("Ethernet0")],
        ),
        (
            vec![In::S(UP), In::D, In::S(ADMIN_DOWN)],
            true,
            vec![
                StateWrite::Del("Ethernet0"),
                StateWrite::Set("Ethernet0", ADMIN_DOWN),
            ],
        ),
        (vec![In::D], false, vec![StateWrite::Del("Ethernet0")]),
        (
            vec![In::D, In::D],
            false,
            vec![StateWrite::Del("Ethernet0")],
        ),
        (
            vec![In::D, In::S(UP), In::D],
            true,
            vec![StateWrite::Del("Ethernet0")],
        ),
    ];
    for (inputs, gated, writes) in table {
        let mut b = Batch::default();
        for i in inputs {
            match i {
                In::S(s) => b.set("Ethernet0", s),
                In::D => b.delete("Ethernet0"),
            }
        }
        let asked: Vec<&str> = b.gated().collect();
        assert_eq!(asked.len(), usize::from(gated), "{:?}", b);
        let mut calls = 0;
        assert_eq!(
            plan(&b, |_| {
                calls += 1;
                true
            }),
            writes
        );
        assert_eq!(calls, usize::from(gated), "one gate answer per gated port");
        b.retain_probes(|_| false);
        assert!(b
            .gated()
            .all(|n| b.iter().any(|(m, op)| m == n && op.set.is_some())));
    }
}

#[test]
fn issue12_probes_survive_merge_and_split() {
    let mut old = Batch::default();
    old.set("Ethernet0", UP);
    old.set("Ethernet4", UP);
    let mut new = Batch::default();
    new.delete("Ethernet0");
    new.merge_older(old);
    assert!(new.is_probe("Ethernet0") && !new.is_probe("Ethernet4"));
    assert_eq!(new.gated().collect::<Vec<_>>(), ["Ethernet0", "Ethernet4"]);
    let rest = new.split_off(1);
    assert!(new.is_probe("Ethernet0"));
    assert_eq!(rest.gated().collect::<Vec<_>>(), ["Ethernet4"]);
    let mut all = new.clone();
    let picked = all.extract(|n| n == "Ethernet0");
    assert!(picked.is_probe("Ethernet0") && all.is_empty());
    new.clear();
    assert!(!new.is_probe("Ethernet0"));
}
