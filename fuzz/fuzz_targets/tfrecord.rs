//! TFRecord framing (plain and gzip), each record then parsed as a `tf.train.Example`.
#![no_main]
use ferroflow as ff;
use ff::data::{Compression, TFRecordReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let compression = if data.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    };
    let input = std::io::Cursor::new(data.to_vec());
    let mut r =
        TFRecordReader::from_reader("fuzz.tfrecord", input, compression, Some(data.len() as u64));
    while let Some(Ok(rec)) = r.next_record() {
        let _ = ff::data::Example::decode_bytes(&rec);
    }
});
