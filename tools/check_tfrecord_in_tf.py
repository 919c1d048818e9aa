"""Reads a TFRecord file written by ferroflow (examples/write_tfrecord.rs) with TensorFlow
and checks every feature. Usage: python tools/check_tfrecord_in_tf.py FILE"""
import sys

import numpy as np
import tensorflow as tf

spec = {
    "x": tf.io.FixedLenFeature([3], tf.float32),
    "y": tf.io.FixedLenFeature([2], tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string),
}
count = 0
for i, rec in enumerate(tf.data.TFRecordDataset([sys.argv[1]])):
    f = tf.io.parse_single_example(rec, spec)
    np.testing.assert_allclose(f["x"].numpy(), [i * 0.5, -i, 1e-3], rtol=1e-7)
    assert f["y"].numpy().tolist() == [i, i * i], f["y"]
    assert f["name"].numpy() == f"item-{i}".encode(), f["name"]
    count += 1
if count != 10:
    sys.exit(f"read {count} records, expected 10")
print(f"TensorFlow {tf.__version__} read {count} ferroflow records with identical features")
