//! cargo-fuzz target: see `synod_fuzz::kv_request` for the input format and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| synod_fuzz::kv_request::run(data));
