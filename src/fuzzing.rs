//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test: each takes
//! arbitrary bytes and drives one parser of untrusted input. None may panic; each checks an
//! invariant of its output.

use crate::batch::Batch;
use crate::event::NetlinkInput;
use std::path::Path;

/// Netlink datagram → our events → the port state machine.
pub fn netlink_datagram(data: &[u8]) {
    let mut out = Vec::new();
    crate::netlink::decode_datagram(data, &mut out);
    let mut sync = crate::port::PortSync::new(["Ethernet0".to_string()]);
    let mut batch = Batch::default();
    for input in &out {
        if let NetlinkInput::Link { ev, .. } = input {
            sync.on_link(ev, &mut batch);
        }
    }
    // Every port the batch touches is a name the kernel could have sent.
    for (name, _) in batch.iter() {
        assert!(crate::port::PREFIXES.iter().any(|p| name.starts_with(p)));
    }
}

/// `database_config.json` text.
pub fn db_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) =
        crate::dbconfig::DbConfig::parse(Path::new("fuzz.json"), text).and_then(|c| c.sonic_dbs())
    {
        let msg = e.to_string();
        assert!(
            msg.starts_with("fuzz.json: ") && !msg.contains('\n') || msg.contains("valid JSON"),
            "{msg}"
        );
    }
}

/// The TOML settings file. The bytes are tried three ways: as the whole file; as the value of
/// every string key (so the fuzzer reaches each value check, multi-byte characters and all,
/// without first having to write valid TOML); and as integers at and around every range's
/// bounds for every integer key. The last two only for short inputs (values are short; a
/// long input would cost dozens of parses and slow the fuzzer to a crawl).
pub fn settings(data: &[u8]) {
    if data.len() <= 16 {
        settings_integers(data);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    settings_text(text);
    if text.len() > 64 {
        return;
    }
    let quoted = toml_string(text);
    for key in ["log_level", "metrics_listen", "db_config", "syslog_socket"] {
        settings_text(&format!("{key} = {quoted}\n"));
    }
    for key in ["ports", "name", "severity"] {
        settings_text(&format!(
            "[[alert]]\nkind = \"oper_down\"\nafter_ms = 1\n{key} = {quoted}\n"
        ));
    }
    settings_text(&format!("[[alert]]\nkind = {quoted}\nafter_ms = 1\n"));
}

/// Every integer key at the input's first 8 bytes (little-endian) and at a range bound the
/// first byte picks, and one either side of it.
fn settings_integers(data: &[u8]) {
    let mut raw = [0u8; 8];
    for (d, b) in raw.iter_mut().zip(data) {
        *d = *b;
    }
    let n = i64::from_le_bytes(raw);
    let pick = BOUNDS[usize::from(data.first().copied().unwrap_or(0)) % BOUNDS.len()];
    for v in [n, pick, pick.wrapping_sub(1), pick.wrapping_add(1)] {
        for key in [
            "netlink_rcvbuf",
            "redis_timeout_ms",
            "max_datagrams_per_turn",
            "max_ports_per_flush",
            "shutdown_flush_ms",
            "heartbeat_ms",
            "alert_resolved_keep",
            "alert_resolved_ms",
        ] {
            settings_text(&format!("{key} = {v}\n"));
        }
        for (kind, key) in [
            ("flap", "threshold"),
            ("resync", "window_ms"),
            ("oper_down", "after_ms"),
            ("init_stall", "for_ms"),
        ] {
            let rest = match kind {
                "flap" => "window_ms = 60000",
                "resync" => "threshold = 3",
                "oper_down" => "",
                _ => "after_ms = 1",
            };
            settings_text(&format!(
                "[[alert]]\nkind = \"{kind}\"\n{key} = {v}\n{rest}\n"
            ));
        }
    }
}

/// Every range bound the settings check, and the integer widths around them.
const BOUNDS: [i64; 13] = [
    0,
    1,
    10,
    100,
    1000,
    4096,
    65536,
    600_000,
    1 << 30,
    2_592_000_000,
    u32::MAX as i64,
    i64::MAX,
    i64::MIN,
];

fn settings_text(text: &str) {
    if let Err(e) = crate::config::Settings::parse(Path::new("fuzz.toml"), text) {
        let msg = e.to_string();
        assert!(msg.starts_with("fuzz.toml: "), "{msg}");
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// CONFIG_DB fields copied verbatim into a ProducerStateTable set: the command keeps every
/// byte and the protocol's argument layout.
pub fn producer_fields(data: &[u8]) {
    let mut parts = data.split(|b| *b == 0);
    let key = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let fields: Vec<&[u8]> = parts.collect();
    let fvs: Vec<(Vec<u8>, Vec<u8>)> = fields
        .chunks(2)
        .map(|c| {
            (
                crate::pst::strip_special(c[0]).to_vec(),
                c.get(1).copied().unwrap_or_default().to_vec(),
            )
        })
        .collect();
    let db = crate::dbconfig::DbLocation {
        name: "APPL_DB".into(),
        socket: "/s".into(),
        id: 0,
        separator: ':',
    };
    let cmd = crate::pst::set_cmd("sha", &db, crate::pst::PORT_TABLE, &key, &fvs);
    let n = cmd.args_iter().count();
    // EVALSHA sha numkeys | channel keyset temp×n | G key | f v ×n
    assert_eq!(n, 3 + 2 + fvs.len() + 2 + 2 * fvs.len());
    for (f, _) in &fvs {
        assert!(!f.contains(&b'@'));
    }
}
