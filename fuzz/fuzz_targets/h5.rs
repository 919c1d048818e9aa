//! Legacy full-model `.h5` files (HDF5 with the config in an attribute), then one
//! prediction with the model that loaded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::h5(data));
