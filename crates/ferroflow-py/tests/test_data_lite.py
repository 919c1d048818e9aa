"""tf.data pipelines with Python functions, and TFLite float / dynamic-range export."""

import numpy as np
import pytest

import ferroflow as tf
from ferroflow import keras


def test_dataset_transformations():
    ds = tf.data.Dataset.range(10).filter(lambda x: x % 2 == 0).map(lambda x: x * 10)
    assert [int(v) for v in ds] == [0, 20, 40, 60, 80]
    pairs = tf.data.Dataset.from_tensor_slices({"a": np.arange(6), "b": np.arange(6) * 2.0}).batch(4)
    got = list(pairs.as_numpy_iterator())
    assert got[0]["a"].tolist() == [0, 1, 2, 3] and got[1]["b"].tolist() == [8.0, 10.0]
    assert len(tf.data.Dataset.range(7).batch(3)) == 3
    assert int(tf.data.Dataset.range(3).repeat().cardinality()) == tf.data.INFINITE_CARDINALITY
    take = tf.data.Dataset.range(3).repeat().take(7)
    assert [int(v) for v in take] == [0, 1, 2, 0, 1, 2, 0]


def test_map_errors_surface():
    ds = tf.data.Dataset.range(3).map(lambda x: 1 / 0)
    with pytest.raises(Exception, match="division by zero"):
        list(ds)


def test_parallel_map_keeps_order():
    ds = tf.data.Dataset.range(100).map(lambda x: x + 1, num_parallel_calls=tf.data.AUTOTUNE)
    assert [int(v) for v in ds] == list(range(1, 101))


def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3)])
    m.compile(optimizer="adam", loss="mse")
    return m


def test_tflite_float_and_dynamic_range_match_keras():
    m = model()
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    want = m.predict(x, verbose=0)
    for opts, tol in (([], 1e-5), ([tf.lite.Optimize.DEFAULT], 0.05)):
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.optimizations = opts
        interp = tf.lite.Interpreter(model_content=conv.convert())
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        assert inp["dtype"] == np.float32 and list(inp["shape_signature"]) == [-1, 6]
        interp.resize_tensor_input(inp["index"], [4, 6])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        np.testing.assert_allclose(interp.get_tensor(out["index"]), want, atol=tol, rtol=tol)


def test_interpreter_checks_input_types(tmp_path):
    m = model()
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    interp = tf.lite.Interpreter(model_path=str(path))
    with pytest.raises(ValueError, match="expected type FLOAT32"):
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ones((1, 6), np.int32))
    runner = interp.get_signature_runner()
    out = runner(**{interp.get_input_details()[0]["name"]: np.ones((1, 6), np.float32)})
    assert list(out.values())[0].shape == (1, 3)
    with pytest.raises(ValueError):
        tf.lite.Interpreter(model_content=b"not a model")
