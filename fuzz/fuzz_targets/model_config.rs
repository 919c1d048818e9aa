//! `--model_config_file` and `--batching_parameters_file` text protos.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::model_config(data));
