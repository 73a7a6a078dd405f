//! Table-driven tests of the alert engine with a fake clock.

use super::*;
use crate::event::fixtures::{ADMIN_DOWN, OPER_DOWN, UP};

fn rule(kind: Kind, for_ms: u64) -> Rule {
    Rule {
        name: kind.name().into(),
        kind,
        severity: Severity::Warning,
        ports: "Ethernet*".into(),
        for_ms,
    }
}

fn names(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Fire(a) => format!("fire {} {}", a.rule, a.port),
            Effect::Resolve(a) => format!("resolve {} {}", a.rule, a.port),
        })
        .collect()
}

enum Step {
    /// (time, port, old, new)
    T(u64, &'static str, Option<PortState>, Option<PortState>),
    /// (time, port, CONFIG_DB change, the port's current state)
    Cfg(u64, &'static str, ConfigChange, Option<PortState>),
    /// (time, awaited ports, init sent)
    Tick(u64, &'static [&'static str], bool),
    Resync(u64),
}

fn run(rules: Vec<Rule>, mtu: &[(&str, u32)], steps: Vec<(Step, &[&str])>) {
    let cfg = mtu.iter().map(|(p, m)| (p.to_string(), *m)).collect();
    let mut e = Engine::new(rules, 0, cfg);
    for (i, (step, want)) in steps.into_iter().enumerate() {
        let got = match step {
            Step::T(now, p, o, n) => e.on_transition(p, o, n, now),
            Step::Cfg(now, p, c, cur) => e.on_config(p, c, cur, now),
            Step::Tick(now, awaited, init_sent) => {
                let a: Vec<String> = awaited.iter().map(|s| s.to_string()).collect();
                e.tick(&Facts {
                    now_ms: now,
                    awaited: &a,
                    init_sent,
                })
            }
            Step::Resync(now) => {
                e.on_resync(now);
                Vec::new()
            }
        };
        assert_eq!(names(&got), want.to_vec(), "step {i}");
    }
}

#[test]
fn flap_fires_once_and_resolves_after_the_window() {
    let k = Kind::Flap {
        max: 3,
        window_ms: 10_000,
    };
    let mut steps: Vec<(Step, &[&str])> = Vec::new();
    for t in 0..3u64 {
        let (o, n) = if t % 2 == 0 {
            (UP, OPER_DOWN)
        } else {
            (OPER_DOWN, UP)
        };
        steps.push((Step::T(t * 1000, "Ethernet0", Some(o), Some(n)), &[]));
    }
    steps.push((
        Step::T(3000, "Ethernet0", Some(OPER_DOWN), Some(UP)),
        &["fire flap Ethernet0"],
    ));
    steps.push((Step::T(4000, "Ethernet0", Some(UP), Some(OPER_DOWN)), &[])); // no duplicate
    steps.push((Step::Tick(9000, &[], true), &[]));
    steps.push((Step::Tick(15_000, &[], true), &["resolve flap Ethernet0"]));
    steps.push((Step::Tick(16_000, &[], true), &[]));
    run(vec![rule(k, 0)], &[], steps);
}

#[test]
fn for_duration_holds_back_firing_and_a_short_blip_never_fires() {
    let k = Kind::OperDown { after_ms: 0 };
    run(
        vec![rule(k, 5000)],
        &[],
        vec![
            (Step::T(0, "Ethernet0", Some(UP), Some(OPER_DOWN)), &[]),
            (Step::Tick(2000, &[], true), &[]),
            (Step::T(3000, "Ethernet0", Some(OPER_DOWN), Some(UP)), &[]), // pending dropped silently
            (Step::T(4000, "Ethernet0", Some(UP), Some(OPER_DOWN)), &[]),
            (Step::Tick(8000, &[], true), &[]),
            (Step::Tick(9000, &[], true), &["fire oper_down Ethernet0"]),
            (Step::Tick(10_000, &[], true), &[]),
            (
                Step::T(11_000, "Ethernet0", Some(OPER_DOWN), Some(ADMIN_DOWN)),
                &["resolve oper_down Ethernet0"],
            ),
        ],
    );
}

#[test]
fn oper_down_needs_admin_up() {
    let k = Kind::OperDown { after_ms: 1000 };
    run(
        vec![rule(k, 0)],
        &[],
        vec![
            (Step::T(0, "Ethernet4", Some(UP), Some(ADMIN_DOWN)), &[]),
            (Step::Tick(5000, &[], true), &[]),
            (
                Step::T(6000, "Ethernet4", Some(ADMIN_DOWN), Some(OPER_DOWN)),
                &[],
            ),
            (Step::Tick(7500, &[], true), &["fire oper_down Ethernet4"]),
            (
                Step::T(8000, "Ethernet4", Some(OPER_DOWN), None),
                &["resolve oper_down Ethernet4"],
            ),
        ],
    );
}

#[test]
fn missing_port_and_init_stall_name_the_awaited_ports() {
    let rules = vec![
        rule(Kind::MissingPort { after_ms: 1000 }, 0),
        rule(Kind::InitStall { after_ms: 2000 }, 0),
    ];
    let cfg = std::collections::HashMap::<String, u32>::new();
    let mut e = Engine::new(rules, 0, cfg.into_iter().collect());
    let awaited = vec!["Ethernet12".to_string()];
    assert!(e
        .tick(&Facts {
            now_ms: 500,
            awaited: &awaited,
            init_sent: false
        })
        .is_empty());
    assert_eq!(
        names(&e.tick(&Facts {
            now_ms: 1500,
            awaited: &awaited,
            init_sent: false
        })),
        ["fire missing_port Ethernet12"]
    );
    let fx = e.tick(&Facts {
        now_ms: 2500,
        awaited: &awaited,
        init_sent: false,
    });
    let Effect::Fire(a) = &fx[0] else {
        panic!("{fx:?}")
    };
    assert_eq!((a.rule.as_str(), a.port.as_str()), ("init_stall", "-"));
    assert!(a.message.contains("awaiting Ethernet12"), "{}", a.message);
    let fx = e.tick(&Facts {
        now_ms: 3000,
        awaited: &[],
        init_sent: true,
    });
    assert_eq!(
        names(&fx),
        ["resolve missing_port Ethernet12", "resolve init_stall -"]
    );
}

#[test]
fn mtu_mismatch_against_config_db() {
    let k = Kind::MtuMismatch { after_ms: 1000 };
    let small = PortState { mtu: 1500, ..UP };
    run(
        vec![rule(k, 0)],
        &[("Ethernet0", 9100)],
        vec![
            (Step::T(0, "Ethernet0", None, Some(small)), &[]),
            (Step::T(0, "Ethernet8", None, Some(small)), &[]), // not configured: no expectation
            (
                Step::Tick(1000, &[], true),
                &["fire mtu_mismatch Ethernet0"],
            ),
            (
                Step::T(2000, "Ethernet0", Some(small), Some(UP)),
                &["resolve mtu_mismatch Ethernet0"],
            ),
        ],
    );
}

/// Issue #13: `config interface mtu` changes CONFIG_DB and then the kernel (portmgrd): the
/// mismatch between the two steps never lasts `after_ms`, so nothing fires; a kernel change
/// without CONFIG_DB still fires; a port removed from CONFIG_DB resolves its alert; a port
/// added at run time starts its missing-port timer then.
#[test]
fn issue13_alerts_follow_the_live_config() {
    let mtu = Kind::MtuMismatch { after_ms: 1000 };
    let missing = Kind::MissingPort { after_ms: 1000 };
    let small = PortState { mtu: 1500, ..UP };
    run(
        vec![rule(mtu, 0), rule(missing, 0)],
        &[("Ethernet0", 9100)],
        vec![
            (Step::T(0, "Ethernet0", None, Some(UP)), &[]),
            (
                Step::Cfg(100, "Ethernet0", ConfigChange::Mtu(Some(1500)), Some(UP)),
                &[],
            ),
            (Step::T(150, "Ethernet0", Some(UP), Some(small)), &[]),
            (Step::Tick(2000, &[], true), &[]),
            (Step::T(3000, "Ethernet0", Some(small), Some(UP)), &[]),
            (
                Step::Tick(4000, &[], true),
                &["fire mtu_mismatch Ethernet0"],
            ),
            (
                Step::Cfg(4100, "Ethernet0", ConfigChange::Removed, Some(UP)),
                &["resolve mtu_mismatch Ethernet0"],
            ),
            (
                Step::Cfg(5000, "Ethernet8", ConfigChange::Added(Some(9100)), None),
                &[],
            ),
            (Step::Tick(5500, &["Ethernet8"], true), &[]),
            (
                Step::Tick(6000, &["Ethernet8"], true),
                &["fire missing_port Ethernet8"],
            ),
        ],
    );
}

#[test]
fn resync_storm() {
    let k = Kind::Resync {
        max: 2,
        window_ms: 10_000,
    };
    run(
        vec![rule(k, 0)],
        &[],
        vec![
            (Step::Resync(0), &[]),
            (Step::Resync(1000), &[]),
            (Step::Tick(1500, &[], true), &[]),
            (Step::Resync(2000), &[]),
            (Step::Tick(2500, &[], true), &["fire resync -"]),
            (Step::Tick(13_000, &[], true), &["resolve resync -"]),
        ],
    );
}

#[test]
fn port_patterns() {
    let mut r = rule(Kind::OperDown { after_ms: 0 }, 0);
    assert!(r.matches("Ethernet0") && r.matches("Ethernet-IB0") && !r.matches("PortChannel1"));
    r.ports = "Ethernet4".into();
    assert!(r.matches("Ethernet4") && !r.matches("Ethernet40"));
    r.ports = "*".into();
    assert!(r.matches("PortChannel1"));
}
