//! `tf.train.Example` protobufs parsed against a spec with every kind of feature.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::example(data));
