//! safetensors bytes (saved-model weights and optimizer state).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::safetensors(data));
