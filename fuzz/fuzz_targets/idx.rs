//! IDX files (MNIST's format, plain or gzip).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::idx(data));
