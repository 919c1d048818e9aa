//! Writes a TFRecord file of `tf.train.Example`s with float, int64 and bytes features
//! (`cargo run -p ferroflow --example write_tfrecord -- OUT.tfrecord`); CI reads it back
//! with TensorFlow (`tools/check_tfrecord_in_tf.py`).

use ferroflow as ff;
use ff::data::{Example, TFRecordWriter};

fn main() -> ff::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ferroflow.tfrecord".into());
    let mut w = TFRecordWriter::create(&path)?;
    for i in 0..10i64 {
        let ex = Example::builder()
            .floats("x", &[i as f32 * 0.5, -(i as f32), 1e-3])
            .ints("y", &[i, i * i])
            .bytes("name", vec![format!("item-{i}").into_bytes()]);
        w.write(&ex.encode())?;
    }
    w.flush()?;
    println!("wrote 10 examples to {path}");
    Ok(())
}
