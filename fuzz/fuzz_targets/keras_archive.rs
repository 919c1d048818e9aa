//! `.keras` archives (zip of config.json and model.weights.h5), then one prediction
//! with the model that loaded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::keras_archive(data));
