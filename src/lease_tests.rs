//! Table tests for the lease rule (`decide`) and the starting instance's watch (`Watch`).

use super::*;

fn me() -> Identity {
    Identity {
        pid: "100".into(),
        host: "sonic".into(),
        boot_id: "boot-a".into(),
        pidns: "pid:[1]".into(),
    }
}

/// A row held by `pid` on (`host`, `boot`, `ns`), heartbeat at `hb`, every 5 s.
fn row(state: &str, pid: &str, host: &str, boot: &str, ns: &str, hb: &str) -> Row {
    Row {
        state: state.into(),
        id: Identity {
            pid: pid.into(),
            host: host.into(),
            boot_id: boot.into(),
            pidns: ns.into(),
        },
        heartbeat_ms: hb.into(),
        interval_ms: "5000".into(),
    }
}

const NOW: u64 = 1_000_000;

#[test]
fn decide_table() {
    use Free::*;
    let fresh = (NOW - 1_000).to_string();
    let old = (NOW - 15_001).to_string(); // 3 × 5 s + 1 ms
    let edge = (NOW - 15_000).to_string();
    let gone = |_: &str| false;
    let alive = |_: &str| true;
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Row, &dyn Fn(&str) -> bool, Option<Free>)> = vec![
        ("no row", Row::default(), &alive, Some(Absent)),
        (
            "row without pid",
            row("running", "", "h", "b", "n", &fresh),
            &alive,
            Some(Absent),
        ),
        (
            "clean exit",
            row("stopped", "7", "other", "boot-b", "pid:[2]", &fresh),
            &alive,
            Some(NotRunning),
        ),
        (
            "unknown state",
            row("weird", "7", "other", "boot-b", "pid:[2]", &fresh),
            &alive,
            Some(NotRunning),
        ),
        (
            "ours",
            row("running", "100", "sonic", "boot-a", "pid:[1]", &fresh),
            &alive,
            Some(Ours),
        ),
        (
            "bad heartbeat",
            row("running", "7", "other", "boot-b", "pid:[2]", "x"),
            &alive,
            Some(Malformed),
        ),
        (
            "stale, other host",
            row("running", "7", "other", "boot-b", "pid:[2]", &old),
            &alive,
            Some(Stale),
        ),
        (
            "at the limit is fresh",
            row("running", "7", "other", "boot-b", "pid:[2]", &edge),
            &alive,
            None,
        ),
        (
            "fresh, other host",
            row("running", "7", "other", "boot-b", "pid:[2]", &fresh),
            &gone,
            None,
        ),
        (
            "fresh, other pidns, pid gone here",
            row("running", "7", "sonic", "boot-a", "pid:[2]", &fresh),
            &gone,
            None,
        ),
        (
            "fresh, same pidns, pid gone",
            row("running", "7", "sonic", "boot-a", "pid:[1]", &fresh),
            &gone,
            Some(HolderGone),
        ),
        (
            "starting, same pidns, pid gone",
            row("starting", "7", "sonic", "boot-a", "pid:[1]", &fresh),
            &gone,
            Some(HolderGone),
        ),
        (
            "fresh, same pidns, alive",
            row("running", "7", "sonic", "boot-a", "pid:[1]", &fresh),
            &alive,
            None,
        ),
        (
            "starting, alive",
            row("starting", "7", "sonic", "boot-a", "pid:[1]", &fresh),
            &alive,
            None,
        ),
        (
            "same pid, other boot, fresh",
            row("running", "100", "sonic", "boot-b", "pid:[1]", &fresh),
            &alive,
            None,
        ),
    ];
    for (what, r, alive, want) in cases {
        assert_eq!(decide(&r, NOW, &me(), alive), want, "{what}");
    }
}

#[test]
fn unknown_boot_or_namespace_never_counts_as_shared() {
    let blank = Identity {
        boot_id: String::new(),
        pidns: String::new(),
        ..me()
    };
    let r = row("running", "7", "sonic", "", "", &(NOW - 10).to_string());
    assert_eq!(decide(&r, NOW, &blank, |_| false), None);
}

#[test]
fn stale_limit_is_three_intervals_at_least_five_seconds() {
    let mut r = row("running", "7", "h", "b", "n", "0");
    for (interval, want) in [
        ("5000", 15_000),
        ("100", 5_000),
        ("", 15_000),
        ("x", 15_000),
    ] {
        r.interval_ms = interval.into();
        assert_eq!(r.stale_after_ms(), want, "interval {interval:?}");
    }
}

#[test]
fn watch_refuses_once_the_holder_renews_or_after_its_stale_limit() {
    let held = |hb: u64| {
        row(
            "running",
            "7",
            "other",
            "boot-b",
            "pid:[2]",
            &hb.to_string(),
        )
    };
    // (now, heartbeat seen) -> step
    let cases = [
        (NOW, NOW - 100, Step::Wait),         // first look
        (NOW + 200, NOW - 100, Step::Wait),   // not renewed yet
        (NOW + 400, NOW + 300, Step::Refuse), // renewed while we watched: it is alive
    ];
    let mut w = Watch::default();
    for (now, hb, want) in cases {
        assert_eq!(w.step(&held(hb), now), want, "now {now} heartbeat {hb}");
    }
    let mut w = Watch::default();
    assert_eq!(w.step(&held(NOW), NOW), Step::Wait);
    assert_eq!(w.step(&held(NOW), NOW + 16_000), Step::Wait);
    assert_eq!(w.step(&held(NOW), NOW + 16_001), Step::Refuse);
}

#[test]
fn script_tokens_match_the_row_fields_in_order() {
    let values: Vec<String> = ["running", "7", "h", "b", "n", "123", "5000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = Row::from_values(&values);
    assert_eq!(r.token(), "running\n7\nh\nb\nn\n123");
    assert_eq!(r.id.token(), "7\nh\nb\nn");
    assert_eq!(r.interval_ms, "5000");
}

#[test]
fn pid_alive_sees_this_process_and_rejects_junk() {
    assert!(pid_alive(&std::process::id().to_string()));
    for junk in ["", "abc", "-1", "../1", "1 2"] {
        assert!(!pid_alive(junk), "{junk:?}");
    }
}

#[test]
fn describe_names_the_holder() {
    let r = row(
        "running",
        "7",
        "other",
        "boot-b",
        "pid:[2]",
        &(NOW - 1_200).to_string(),
    );
    assert_eq!(
        r.describe(NOW),
        "pid 7 on host other (boot id boot-b, pid:[2]), state running, heartbeat 1.2s ago"
    );
}
