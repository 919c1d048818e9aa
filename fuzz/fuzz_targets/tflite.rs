//! `.tflite` flatbuffers: the validating reader (and, for files it refuses, the
//! inspector that names what is unsupported), then one run of the interpreter on zeros
//! of the declared input shapes when they are small.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferroflow::fuzzing::tflite(data));
