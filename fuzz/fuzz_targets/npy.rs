//! `.npy` bytes (the arrays `ferroflow predict` reads).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::npy(data));
