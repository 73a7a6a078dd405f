//! Fuzz target: see `portsyncd::fuzzing::netlink_datagram`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portsyncd::fuzzing::netlink_datagram(data));
