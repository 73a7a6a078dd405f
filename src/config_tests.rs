//! Tests of the settings file: defaults, the packaged file, values, bad files naming the key.
use super::*;

fn parse(text: &str) -> Result<Settings> {
    Settings::parse(Path::new("/etc/portsyncd.toml"), text)
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Settings::default());
}

/// The packaged file, as shipped, is the defaults (its alert rules are the default rules),
/// except that it turns `/metrics` on.
#[test]
fn packaged_file_is_the_defaults_with_metrics_on() {
    let text = include_str!("../packaging/portsyncd.toml");
    let want = Settings {
        metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9101))),
        ..Settings::default()
    };
    assert_eq!(parse(text).unwrap(), want);
}

#[test]
fn values_are_read() {
    let s =
        parse("log_level = \"DEBUG\"\nnetlink_rcvbuf = 65536\nredis_timeout_ms = 100\n").unwrap();
    assert_eq!(s.log_level.as_deref(), Some("DEBUG"));
    assert_eq!(s.netlink_rcvbuf, 65536);
    assert_eq!(s.redis_timeout, Duration::from_millis(100));
}

/// Issue #12 item 3: `ports` ending in a multi-byte character is a name, not a panic.
#[test]
fn issue12_ports_ending_in_multibyte_char() {
    for ports in [
        "Ethernet\u{e9}",
        "\u{1f600}",
        "\u{e9}*",
        "Eth\u{10ffff}",
        "*",
    ] {
        let text = format!("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nports = \"{ports}\"");
        assert_eq!(parse(&text).unwrap().alerts[0].ports, ports);
    }
}

/// (file text, text the one-line error must contain)
#[test]
fn bad_files_name_the_key() {
    let cases = [
        ("log_levle = \"DEBUG\"", "log_levle"),
        ("log_level = \"LOUD\"", "log_level"),
        ("netlink_rcvbuf = 1", "netlink_rcvbuf"),
        ("netlink_rcvbuf = \"big\"", "(toml)"),
        ("redis_timeout_ms = 0", "redis_timeout_ms"),
        ("[[", "(toml)"),
        ("[[alert]]\nkind = \"flapp\"", "alert[0].kind"),
        ("[[alert]]\nkind = \"flap\"\nwindow_ms = 60000", "alert[0].threshold"),
        ("[[alert]]\nkind = \"flap\"\nthreshold = 5\nwindow_ms = 10", "alert[0].window_ms"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nthreshold = 5", "alert[0].threshold"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\n[[alert]]\nkind = \"init_stall\"", "alert[1].after_ms"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nseverity = \"fatal\"", "alert[0].severity"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nports = \"Eth*0\"", "alert[0].ports"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\n[[alert]]\nkind = \"oper_down\"\nafter_ms = 2", "alert[1].name"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nport = \"x\"", "(toml)"),
        ("metrics_listen = \"localhost\"", "metrics_listen"),
        ("alert_resolved_keep = 65537", "alert_resolved_keep"),
        ("alert_resolved_ms = 2592000001", "alert_resolved_ms"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nports = \"*Eth\u{e9}\"", "alert[0].ports"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nports = \"\"", "alert[0].ports"),
        ("[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\nports = \"**\"", "alert[0].ports"),
    ];
    for (text, want) in cases {
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.starts_with("/etc/portsyncd.toml: "), "{msg}");
        assert!(msg.contains(want), "{want} not in {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}
