"""TFRecord files written by TensorFlow, for ferroflow-data/tests/tfrecord.rs.

Writes tests/fixtures/tf_examples.tfrecord (tf.train.Example records with float, int64
and bytes features, one with a missing feature), a GZIP copy, and tf_examples.json
with the values.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/gen_tfrecord_fixture.py
"""
import json
import os

import numpy as np
import tensorflow as tf

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-data", "tests", "fixtures")
rng = np.random.default_rng(3)
records = []
path = os.path.join(OUT, "tf_examples.tfrecord")
with tf.io.TFRecordWriter(path) as w:
    for i in range(7):
        image = rng.standard_normal(6).astype(np.float32)
        label = int(rng.integers(0, 10))
        tokens = rng.integers(-5, 1000, size=i).tolist()
        raw = bytes(rng.integers(0, 256, size=5, dtype=np.uint8))
        feature = {
            "image": tf.train.Feature(float_list=tf.train.FloatList(value=image)),
            "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=tokens)),
            "raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw])),
        }
        if i != 3:
            feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
        ex = tf.train.Example(features=tf.train.Features(feature=feature))
        w.write(ex.SerializeToString())
        records.append({
            "image": image.tolist(),
            "label": label if i != 3 else None,
            "tokens": tokens,
            "raw": list(raw),
        })
# The same records gzip-compressed (compression_type="GZIP").
with tf.io.TFRecordWriter(os.path.join(OUT, "tf_examples.tfrecord.gz"), options="GZIP") as w:
    for rec in tf.data.TFRecordDataset([path]):
        w.write(rec.numpy())
with open(os.path.join(OUT, "tf_examples.json"), "w") as f:
    json.dump({"tensorflow_version": tf.__version__, "records": records}, f)
print(f"wrote {len(records)} records to {path}")
