//! `tf.train.Example` protobufs parsed against a fixed feature spec (fixed and
//! variable-length floats, ints and bytes).
#![no_main]
use ferroflow as ff;
use ff::data::FeatureSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ff::data::Example::decode_bytes(data);
    let spec = ferroflow_fuzz::example_spec();
    let spec: Vec<(&str, FeatureSpec)> =
        spec.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    let _ = ff::data::parse_example(data, &spec);
});
