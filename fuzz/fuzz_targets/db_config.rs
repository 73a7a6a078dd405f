//! Fuzz target: see `portsyncd::fuzzing::db_config`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portsyncd::fuzzing::db_config(data));
