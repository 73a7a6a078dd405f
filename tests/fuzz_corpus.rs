//! Issue #7: every file in the fuzz seed corpus (and every crash the fuzzers ever found, once
//! added there) replays through the fuzz entry points on the stable toolchain in every CI run.

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        f(&data);
        // Every prefix too: truncated input is the commonest hostile input.
        for cut in (0..data.len()).step_by(7) {
            f(&data[..cut]);
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus for {target}");
}

#[test]
fn issue7_corpus_netlink_datagram() {
    replay("netlink_datagram", portsyncd::fuzzing::netlink_datagram);
}

#[test]
fn issue7_corpus_db_config() {
    replay("db_config", portsyncd::fuzzing::db_config);
}

#[test]
fn issue7_corpus_settings() {
    replay("settings", portsyncd::fuzzing::settings);
}

#[test]
fn issue7_corpus_producer_fields() {
    replay("producer_fields", portsyncd::fuzzing::producer_fields);
}
