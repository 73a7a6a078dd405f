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

/// Issue #12 item 6: on a healthy switch the default rules never fire — ports admin up without
/// a cable, and a `config interface mtu` (CONFIG_DB first, the kernel a moment later through
/// portmgrd), for an hour of ticks — while a port that really is missing still fires.
#[test]
fn issue12_default_rules_are_quiet_on_a_healthy_switch() {
    let mtu1500 = PortState { mtu: 1500, ..UP };
    let mut steps: Vec<(Step, &[&str])> = vec![
        (Step::T(0, "Ethernet0", None, Some(UP)), &[]),
        (Step::T(0, "Ethernet4", None, Some(OPER_DOWN)), &[]),
        (Step::T(0, "Ethernet8", None, Some(OPER_DOWN)), &[]),
        (Step::T(0, "Ethernet12", None, Some(ADMIN_DOWN)), &[]),
        (
            Step::Cfg(1000, "Ethernet0", ConfigChange::Mtu(Some(1500)), Some(UP)),
            &[],
        ),
        (Step::T(1050, "Ethernet0", Some(UP), Some(mtu1500)), &[]),
    ];
    for t in (5_000..3_600_000).step_by(5_000) {
        steps.push((Step::Tick(t, &[], true), &[]));
    }
    let mtu = [
        ("Ethernet0", 9100),
        ("Ethernet4", 9100),
        ("Ethernet8", 9100),
    ];
    run(default_rules(), &mtu, steps);
    // The defaults still catch a configured port that never appears.
    run(
        default_rules(),
        &mtu,
        vec![
            (Step::Tick(119_999, &["Ethernet16"], true), &[]),
            (
                Step::Tick(120_000, &["Ethernet16"], true),
                &["fire missing_port Ethernet16"],
            ),
        ],
    );
}

/// Issue #15: a port's flap history keeps only the newest `max + 1` times — a port flapping
/// every millisecond for the whole window kept 10,000 — and the rule still fires and
/// resolves exactly when the whole history would say.
#[test]
fn issue15_flap_history_keeps_only_what_the_rule_needs() {
    let k = Kind::Flap {
        max: 3,
        window_ms: 10_000,
    };
    let mut e = Engine::new(vec![rule(k, 0)], 0, Default::default());
    let flip = |t: u64| {
        if t.is_multiple_of(2) {
            (UP, OPER_DOWN)
        } else {
            (OPER_DOWN, UP)
        }
    };
    let mut fired = Vec::new();
    for t in 0..10_000u64 {
        let (o, n) = flip(t);
        fired.extend(names(&e.on_transition("Ethernet0", Some(o), Some(n), t)));
        assert!(e.flaps["Ethernet0"].len() <= 4, "at {t} ms");
    }
    assert_eq!(fired, ["fire flap Ethernet0"]);
    // (time, transition or tick, effects): the newest four decide; old ones age out.
    let mut e = Engine::new(vec![rule(k, 0)], 0, Default::default());
    let steps: [(u64, bool, &[&str]); 7] = [
        (0, true, &[]),
        (1_000, true, &[]),
        (5_000, true, &[]),
        (9_000, true, &["fire flap Ethernet0"]),
        (9_500, true, &[]),   // 0 is dropped from the history: five do not fit
        (11_000, false, &[]), // 1,000 … 9,500: still four within 10 s
        (11_001, false, &["resolve flap Ethernet0"]), // 1,000 is out of the window
    ];
    for (i, (t, transition, want)) in steps.into_iter().enumerate() {
        let got = if transition {
            let (o, n) = flip(i as u64);
            e.on_transition("Ethernet0", Some(o), Some(n), t)
        } else {
            e.tick(&Facts {
                now_ms: t,
                awaited: &[],
                init_sent: true,
            })
        };
        assert_eq!(names(&got), want.to_vec(), "step {i}");
    }
}

/// Issue #15: an instance keeps numbers, not an `Alert`; the resolve effect still carries the
/// message and value the alert fired with, and `firing` names the rule.
#[test]
fn issue15_resolve_repeats_what_the_alert_fired_with() {
    let k = Kind::Flap {
        max: 1,
        window_ms: 10_000,
    };
    let mut e = Engine::new(vec![rule(k, 0)], 0, Default::default());
    e.on_transition("Ethernet8", Some(UP), Some(OPER_DOWN), 0);
    let fx = e.on_transition("Ethernet8", Some(OPER_DOWN), Some(UP), 1000);
    let [Effect::Fire(fired)] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert_eq!(fired.message, "Ethernet8: 2 oper transitions within 10s");
    assert_eq!((fired.value.as_str(), fired.since_ms), ("2", 1000));
    assert_eq!(e.firing().collect::<Vec<_>>(), ["flap"]);
    let fx = e.tick(&Facts {
        now_ms: 20_000,
        awaited: &[],
        init_sent: true,
    });
    let [Effect::Resolve(resolved)] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert_eq!(resolved, fired);
    assert_eq!(e.firing().count(), 0);
}

/// Issue #15: 1,024 ports firing flap alerts grow the engine's tables; once they resolve, the
/// tick gives the room back and says the heap is worth trimming, once.
#[test]
fn issue15_tables_shrink_after_a_storm_resolves() {
    let k = Kind::Flap {
        max: 1,
        window_ms: 10_000,
    };
    let mut e = Engine::new(vec![rule(k, 0)], 0, Default::default());
    let ports: Vec<String> = (0..1024).map(|i| format!("Ethernet{}", i * 4)).collect();
    for p in &ports {
        e.on_transition(p, Some(UP), Some(OPER_DOWN), 0);
        e.on_transition(p, Some(OPER_DOWN), Some(UP), 1);
    }
    assert_eq!(e.firing().count(), 1024);
    let grown = (e.active[0].capacity(), e.flaps.capacity());
    let tick = |e: &mut Engine, now_ms| {
        e.tick(&Facts {
            now_ms,
            awaited: &[],
            init_sent: true,
        })
        .len()
    };
    assert_eq!(tick(&mut e, 5_000), 0);
    assert!(!e.take_shrunk(), "nothing to give back while firing");
    assert_eq!(tick(&mut e, 20_000), 1024, "all resolve");
    assert!(e.take_shrunk());
    assert!(!e.take_shrunk(), "said once");
    let now = (e.active[0].capacity(), e.flaps.capacity());
    assert!(now.0 < 64 && now.1 < 64, "{grown:?} → {now:?}");
}
