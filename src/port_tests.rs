//! Table-driven tests of the port state machine.
use super::*;
use crate::batch::PortOp;

fn ev(op: LinkOp, ifindex: u32, name: &str, flags: u32) -> LinkEvent {
    LinkEvent {
        op,
        ifindex,
        name: name.into(),
        flags,
        mtu: 9100,
        master: 0,
        kind: None,
        mac: Default::default(),
    }
}

fn st(oper: bool, admin: bool) -> PortState {
    PortState {
        oper_up: oper,
        admin_up: admin,
        mtu: 9100,
    }
}

/// (message, verdict, folded ops) — spec §2.1 and golden G5.
#[test]
fn decision_table() {
    let team = LinkEvent {
        kind: Some("team".into()),
        ..ev(LinkOp::New, 41, "PortChannel0001", 0x1003)
    };
    let bridged_del = LinkEvent {
        master: 40,
        ..ev(LinkOp::Del, 13, "Ethernet12", 0x1003)
    };
    let bridged_new = LinkEvent {
        master: 40,
        ..ev(LinkOp::New, 13, "Ethernet12", 0x11043)
    };
    type Row = (LinkEvent, Verdict, Vec<(&'static str, PortOp)>);
    let table: Vec<Row> = vec![
        (
            ev(LinkOp::New, 2, "eth0", 0x11043),
            Verdict::Filtered,
            vec![],
        ),
        (
            ev(LinkOp::New, 40, "Bridge", 0x11043),
            Verdict::Filtered,
            vec![],
        ),
        (
            ev(LinkOp::New, 45, "Loopback0", 0xc3),
            Verdict::Filtered,
            vec![],
        ),
        (
            ev(LinkOp::New, 46, "ethernet0", 0x1003),
            Verdict::Filtered,
            vec![],
        ),
        (team.clone(), Verdict::Team, vec![]),
        (
            LinkEvent {
                op: LinkOp::Del,
                ..team
            },
            Verdict::Team,
            vec![],
        ),
        (bridged_del, Verdict::DelWithMaster, vec![]),
        (
            bridged_new,
            Verdict::Accepted { renamed_from: None },
            vec![(
                "Ethernet12",
                PortOp {
                    delete: false,
                    set: Some(st(true, true)),
                },
            )],
        ),
        (
            ev(LinkOp::New, 10, "Ethernet0", 0x1002),
            Verdict::Accepted { renamed_from: None },
            vec![(
                "Ethernet0",
                PortOp {
                    delete: false,
                    set: Some(st(false, false)),
                },
            )],
        ),
        (
            ev(LinkOp::New, 10, "Ethernet0", 0x11003),
            Verdict::Accepted { renamed_from: None },
            vec![(
                "Ethernet0",
                PortOp {
                    delete: false,
                    set: Some(st(false, true)),
                },
            )],
        ),
        (
            ev(LinkOp::New, 44, "Ethernet0.10", 0x1003),
            Verdict::Accepted { renamed_from: None },
            vec![(
                "Ethernet0.10",
                PortOp {
                    delete: false,
                    set: Some(st(false, true)),
                },
            )],
        ),
        (
            ev(LinkOp::Del, 43, "Ethernet96", 0x1002),
            Verdict::Accepted { renamed_from: None },
            vec![(
                "Ethernet96",
                PortOp {
                    delete: true,
                    set: None,
                },
            )],
        ),
        (
            ev(LinkOp::New, 47, "PortChannel0002", 0x1003),
            Verdict::Accepted { renamed_from: None },
            vec![(
                "PortChannel0002",
                PortOp {
                    delete: false,
                    set: Some(st(false, true)),
                },
            )],
        ),
    ];
    for (input, verdict, ops) in table {
        let mut sync = PortSync::default();
        let mut batch = Batch::default();
        assert_eq!(sync.on_link(&input, &mut batch), verdict, "{input:?}");
        assert_eq!(batch.iter().collect::<Vec<_>>(), ops, "{input:?}");
    }
}

/// Golden G8: stale netdevs are ignored by ifindex, whatever they are called later, and
/// their removal does not clear STATE_DB.
#[test]
fn g8_old_interfaces_are_ignored_forever() {
    let mut sync = PortSync::new(["Ethernet0".to_string()]);
    sync.add_old_interface(10, "Ethernet0".into());
    let mut batch = Batch::default();
    for e in [
        ev(LinkOp::New, 10, "Ethernet0", 0x11043),
        ev(LinkOp::New, 10, "Ethernet0", 0x1002),
        ev(LinkOp::Del, 10, "Ethernet0", 0x1002),
    ] {
        assert_eq!(sync.on_link(&e, &mut batch), Verdict::OldInterface);
    }
    assert!(batch.is_empty());
    assert!(!sync.init_due());
    let e = ev(LinkOp::New, 50, "Ethernet0", 0x1002);
    assert_eq!(
        sync.on_link(&e, &mut batch),
        Verdict::Accepted { renamed_from: None }
    );
    sync.on_written("Ethernet0");
    assert!(sync.init_due());
    sync.mark_init_sent();
    assert!(!sync.init_due());
}

/// Issue #3 item 4 (deliberate difference from G7): a rename deletes the old row.
#[test]
fn issue3_rename_cleans_up_the_old_row() {
    let mut sync = PortSync::default();
    let mut b = Batch::default();
    sync.on_link(&ev(LinkOp::New, 12, "Ethernet8", 0x1002), &mut b);
    let mut b = Batch::default();
    let v = sync.on_link(&ev(LinkOp::New, 12, "Ethernet8_old", 0x1002), &mut b);
    assert_eq!(
        v,
        Verdict::Accepted {
            renamed_from: Some("Ethernet8".into())
        }
    );
    assert_eq!(
        b.iter().collect::<Vec<_>>(),
        vec![
            (
                "Ethernet8",
                PortOp {
                    delete: true,
                    set: None
                }
            ),
            (
                "Ethernet8_old",
                PortOp {
                    delete: false,
                    set: Some(st(false, false))
                }
            ),
        ]
    );
    let mut b = Batch::default();
    assert_eq!(
        sync.on_link(&ev(LinkOp::New, 12, "swp8", 0x1002), &mut b),
        Verdict::Accepted {
            renamed_from: Some("Ethernet8_old".into())
        }
    );
    let mut b = Batch::default();
    assert_eq!(
        sync.on_link(&ev(LinkOp::New, 12, "swp9", 0x1002), &mut b),
        Verdict::Filtered
    );
    assert!(b.is_empty());
}

/// Found by the issue #3 property test: a port deleted and re-created while the DELLINK
/// was lost must not be reported as vanished by the next resync.
#[test]
fn issue3_recreated_port_with_lost_dellink_is_not_vanished() {
    let mut sync = PortSync::default();
    let mut b = Batch::default();
    sync.on_link(&ev(LinkOp::New, 101, "Ethernet8", 0x1002), &mut b);
    sync.on_link(&ev(LinkOp::New, 102, "Ethernet8", 0x1002), &mut b);
    assert_eq!(sync.known().collect::<Vec<_>>(), vec![102]);
    assert_eq!(sync.vanish(101), None);
}

#[test]
fn g10_empty_config_is_due_at_once_and_only_once() {
    let mut sync = PortSync::new(Vec::<String>::new());
    assert!(sync.init_due());
    sync.mark_init_sent();
    assert!(!sync.init_due());
    assert!(sync.init_sent());
}

/// Issue #11: an old netdev's DELLINK is still ignored, but its ifindex is forgotten, so a
/// new netdev that reuses it is a port like any other.
#[test]
fn issue11_old_ifindex_forgotten_after_its_dellink() {
    let mut sync = PortSync::new([]);
    sync.add_old_interface(10, "Ethernet0".into());
    let mut batch = Batch::default();
    let del = ev(LinkOp::Del, 10, "Ethernet0", 0x1002);
    assert_eq!(sync.on_link(&del, &mut batch), Verdict::OldInterface);
    assert!(
        batch.is_empty(),
        "the old netdev's removal clears nothing (G8)"
    );
    let reused = ev(LinkOp::New, 10, "Ethernet0", 0x11043);
    assert_eq!(
        sync.on_link(&reused, &mut batch),
        Verdict::Accepted { renamed_from: None }
    );
}

/// Issue #11 item 2: swss restarted under the running daemon. The netdevs that exist now
/// become the stale set (the previous one is dropped), they leave the mirror without a write,
/// and every configured port is awaited again for a new `PortInitDone`.
#[test]
fn issue11_cold_sequence_again_replaces_old_set_and_awaits_again() {
    let mut sync = PortSync::new(["Ethernet0".to_string()]);
    sync.add_old_interface(7, "Ethernet0".into());
    let mut batch = Batch::default();
    sync.on_link(&ev(LinkOp::New, 20, "Ethernet0", 0x11043), &mut batch);
    sync.on_written("Ethernet0");
    sync.mark_init_sent();
    batch.clear();

    sync.replace_old_interfaces([(20, "Ethernet0".to_string())]);
    sync.await_again(["Ethernet0".to_string(), "Ethernet4".to_string()]);
    assert_eq!(sync.known().count(), 0, "stale netdevs are not mirrored");
    assert!(!sync.init_sent() && !sync.init_due());
    let stale = ev(LinkOp::New, 20, "Ethernet0", 0x1002);
    assert_eq!(sync.on_link(&stale, &mut batch), Verdict::OldInterface);
    let freed = ev(LinkOp::New, 7, "Ethernet4", 0x11043);
    assert_eq!(
        sync.on_link(&freed, &mut batch),
        Verdict::Accepted { renamed_from: None },
        "ifindexes of the previous stale set are not ignored any more"
    );
    assert!(batch.iter().all(|(n, _)| n == "Ethernet4"));
}
