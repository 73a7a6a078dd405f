//! Fuzz target: see `portsyncd::fuzzing::settings`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portsyncd::fuzzing::settings(data));
