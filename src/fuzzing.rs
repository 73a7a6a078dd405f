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

/// The TOML settings file.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::config::Settings::parse(Path::new("fuzz.toml"), text) {
        assert!(e.to_string().starts_with("fuzz.toml: "));
    }
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
