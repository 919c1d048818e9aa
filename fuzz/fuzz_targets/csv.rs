//! CSV files read by `csv_dataset` with typed columns (one with a default), batched.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::csv(data));
