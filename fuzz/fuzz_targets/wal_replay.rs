//! cargo-fuzz target: see `synod_fuzz::wal_replay` for the input format and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synod_fuzz::wal_replay::run(data));
