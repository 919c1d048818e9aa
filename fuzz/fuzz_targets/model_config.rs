//! `--model_config_file` and `--batching_parameters_file` text protos.
#![no_main]
use ferroflow::serve::config::{parse_batching_text, parse_model_config_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_model_config_text(text);
    let _ = parse_batching_text(text);
});
