//! TF Serving request bodies (`:predict`, `:classify`, `:regress`) decoded against fixed
//! signatures, under the budget `--rest_api_max_body_bytes` sets.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::serve_request(data));
