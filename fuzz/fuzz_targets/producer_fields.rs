//! Fuzz target: see `portsyncd::fuzzing::producer_fields`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portsyncd::fuzzing::producer_fields(data));
