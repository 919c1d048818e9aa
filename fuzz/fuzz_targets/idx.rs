//! IDX files (MNIST's format, plain or gzip).
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ff::data::idx_from_bytes(data, "fuzz.idx".as_ref());
});
