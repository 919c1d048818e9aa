//! Image bytes (PNG, JPEG, BMP, GIF) decoded and resized as `image_dataset_from_directory` does.
#![no_main]
use ferroflow as ff;
use ff::data::images::{decode_image, ColorMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_image(data, "fuzz.img".as_ref(), (8, 8), ColorMode::Rgb);
});
