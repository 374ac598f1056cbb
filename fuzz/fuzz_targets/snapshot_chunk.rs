//! cargo-fuzz target: see `synod_fuzz::snapshot_chunk` for the input format and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synod_fuzz::snapshot_chunk::run(data));
