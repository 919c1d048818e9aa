//! `.keras` archives (zip of config.json and model.weights.h5): the loader, then one
//! prediction with the model that loaded.
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ff::keras::saving::keras_file::load_keras_bytes(data, "fuzz.keras".as_ref()) {
        ferroflow_fuzz::predict_once(&m);
    }
});
