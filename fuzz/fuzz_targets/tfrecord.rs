//! TFRecord framing (plain, or gzip by its magic number), each record then parsed as
//! a `tf.train.Example`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::tfrecord(data));
