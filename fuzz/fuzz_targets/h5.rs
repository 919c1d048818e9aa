//! Legacy full-model `.h5` files (HDF5 with the config in an attribute), then one
//! prediction with the model that loaded.
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.h5");
    if let Ok(m) = ff::keras::saving::keras_file::load_legacy_h5_bytes(data.to_vec(), path) {
        ferroflow_fuzz::predict_once(&m);
    }
});
