//! Issue #14 item 4: start-up as systemd runs it. A missing `database_config.json` is waited
//! for (Debian's redis-server deletes `/var/run/redis` on every restart) with `STATUS=` and
//! `EXTEND_TIMEOUT_USEC=`; a Redis socket the unit's privileges (root without
//! CAP_DAC_OVERRIDE) cannot open is logged at error with its owner, mode and the fix, and
//! `--check-config` run from a full-root shell reports the same instead of "OK".

mod common;

use common::sonic::World;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The unit's privileges: uid 0, only CAP_NET_ADMIN (CapabilityBoundingSet=CAP_NET_ADMIN).
const AS_THE_UNIT: &[&str] = &[
    "setpriv",
    "--inh-caps=-all,+net_admin",
    "--ambient-caps=-all,+net_admin",
    "--bounding-set=-all,+net_admin",
    "--",
];

fn check_config(cfg: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portsyncd"))
        .arg("--db-config")
        .arg(cfg)
        .arg("--check-config")
        .output()
        .expect("run portsyncd --check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn issue14_missing_database_config_is_waited_for_with_status() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let cfg = w.redis.cfg.clone();
    let aside = cfg.with_extension("json.aside");
    std::fs::rename(&cfg, &aside).unwrap();
    let mut d = w.daemon();
    d.wait_log(&format!("Waiting for {}", cfg.display())).await;
    d.wait_note(&format!("STATUS=waiting for {}", cfg.display()))
        .await;
    d.wait_note("EXTEND_TIMEOUT_USEC=").await;
    d.assert_running();
    assert!(
        !d.notes().iter().any(|n| n.contains("READY=1")),
        "READY before the databases exist: {:?}",
        d.notes()
    );
    std::fs::rename(&aside, &cfg).unwrap();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    assert_eq!(
        d.count_log("Waiting for"),
        1,
        "one line per reason per 30 s\n{}",
        d.log_text()
    );
}

#[tokio::test]
async fn issue14_socket_the_unit_cannot_open_is_an_error_with_owner_mode_and_fix() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    // Debian's layout: the socket belongs to another user and group, mode 0770.
    let sock = w.redis.socket.clone();
    run(&["chown", "65534:65534", &sock.display().to_string()]);
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o770)).unwrap();

    let (rc, text) = check_config(&w.redis.cfg);
    assert_eq!(
        rc, 78,
        "--check-config from a root shell must not say OK:\n{text}"
    );
    for want in [
        "mode 0770",
        "without CAP_DAC_OVERRIDE",
        "SupplementaryGroups=",
    ] {
        assert!(text.contains(want), "want {want:?} in:\n{text}");
    }

    let mut d = Daemon::start_as(&w.ns, &w.redis, AS_THE_UNIT, &[], &[]);
    d.wait_log("mode 0770 and uid 0").await;
    let line = d
        .log_text()
        .lines()
        .find(|l| l.contains("mode 0770 and uid 0"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("ERROR")
            && line.contains("Waiting for redis")
            && line.contains("SupplementaryGroups="),
        "{line}"
    );
    d.wait_note("STATUS=waiting for redis").await;
    d.wait_note("permission denied").await;
    d.assert_running();

    // The fix the message names (here: a mode that admits uid 0) is picked up without a restart.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    let (rc, text) = check_config(&w.redis.cfg);
    assert_eq!(rc, 0, "{text}");
    assert!(
        text.contains("configuration OK") && text.contains("answers PING"),
        "{text}"
    );
}

#[tokio::test]
async fn issue14_check_config_fails_when_redis_is_down() {
    let mut w = World::new().await;
    w.redis.stop();
    let (rc, text) = check_config(&w.redis.cfg);
    assert_ne!(rc, 0, "{text}");
    assert!(
        text.contains("is Redis running?") || text.contains("redis"),
        "{text}"
    );
}
