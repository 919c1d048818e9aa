//! Image bytes (PNG, JPEG, BMP, GIF) decoded and resized as
//! `image_dataset_from_directory` does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::image(data));
