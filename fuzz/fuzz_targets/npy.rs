//! `.npy` bytes (the arrays `ferroflow predict` reads).
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ff::npy::from_npy_bytes(data, "fuzz.npy");
});
