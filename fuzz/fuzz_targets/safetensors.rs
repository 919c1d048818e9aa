//! safetensors bytes (saved-model weights and optimizer state).
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ff::keras::saving::tensor_file::from_bytes(data, "fuzz.safetensors".as_ref());
});
