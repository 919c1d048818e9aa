"""Tensors, NumPy interop, ops under TensorFlow's names, errors, GradientTape, function."""

import numpy as np
import pytest

import ferroflow as tf


def test_constant_dtypes_follow_tensorflow():
    assert tf.constant(1.5).dtype == tf.float32
    assert tf.constant([1, 2]).dtype == tf.int32
    assert tf.constant(np.array([1.0])).dtype == tf.float64
    assert tf.constant(np.array([1], dtype=np.int64)).dtype == "int64"
    assert tf.constant([True, False]).dtype == tf.bool
    assert tf.constant(2.0).shape == ()
    assert tf.constant(3.0, shape=(2, 2)).numpy().tolist() == [[3.0, 3.0], [3.0, 3.0]]
    s = tf.constant(["ab", "c"])
    assert s.dtype == tf.string and s.numpy().tolist() == [b"ab", b"c"]


def test_numpy_out_is_a_read_only_view_and_numpy_is_a_copy():
    t = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    a = np.asarray(t)
    b = np.asarray(t)
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    assert not a.flags.writeable
    c = t.numpy()
    c[0, 0] = 100
    assert float(t[0, 0]) == 0.0
    # Views stay valid after the tensor object is gone.
    del t
    assert a.sum() == 66


def test_operators_broadcasting_and_indexing():
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    b = tf.constant([10.0, 20.0])
    np.testing.assert_allclose(a + b, [[11, 22], [13, 24]])
    np.testing.assert_allclose(2 * a - 1, [[1, 3], [5, 7]])
    np.testing.assert_allclose(a @ a, np.array([[1, 2], [3, 4]]) @ np.array([[1, 2], [3, 4]]))
    np.testing.assert_allclose(a ** 2, [[1, 4], [9, 16]])
    np.testing.assert_allclose(1 / a, [[1, 0.5], [1 / 3, 0.25]], rtol=1e-6)
    assert (a > 2).numpy().tolist() == [[False, False], [True, True]]
    np.testing.assert_allclose(a[1], [3, 4])
    np.testing.assert_allclose(a[:, ::-1], [[2, 1], [4, 3]])
    assert a[None].shape == (1, 2, 2)
    assert float(a[1, 1]) == 4.0 and len(a) == 2


def test_ops_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)).astype(np.float32)
    t = tf.constant(x)
    np.testing.assert_allclose(tf.reduce_sum(t, axis=1), x.sum(1), rtol=1e-5)
    np.testing.assert_allclose(tf.reduce_mean(t), x.mean(), rtol=1e-5)
    np.testing.assert_allclose(tf.math.reduce_max(t, axis=0, keepdims=True), x.max(0, keepdims=True))
    np.testing.assert_allclose(tf.nn.relu(t), np.maximum(x, 0))
    np.testing.assert_allclose(tf.math.exp(t), np.exp(x), rtol=1e-5)
    np.testing.assert_allclose(tf.nn.softmax(t), np.exp(x) / np.exp(x).sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(tf.transpose(t), x.T)
    np.testing.assert_allclose(tf.reshape(t, [5, -1]), x.reshape(5, 3))
    np.testing.assert_allclose(tf.concat([t, t], axis=0), np.concatenate([x, x]))
    np.testing.assert_allclose(tf.stack([t, t]), np.stack([x, x]))
    assert tf.argmax(t, axis=1).numpy().tolist() == x.argmax(1).tolist()
    np.testing.assert_allclose(tf.one_hot([0, 2], 3), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(tf.matmul(t, t, transpose_b=True), x @ x.T, rtol=1e-5)
    np.testing.assert_allclose(tf.where(t > 0, t, tf.zeros_like(t)), np.where(x > 0, x, 0))
    np.testing.assert_allclose(tf.gather(t, [2, 0]), x[[2, 0]])
    np.testing.assert_allclose(tf.math.squared_difference(t, 1.0), (x - 1) ** 2, rtol=1e-5)
    assert tf.range(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert tf.shape(t).numpy().tolist() == [3, 5]
    np.testing.assert_allclose(tf.cast(tf.constant([1.7, -1.2]), tf.int32), [1, -1])


def test_errors_are_python_exceptions_with_ferroflows_message():
    a = tf.constant(np.ones((2, 3), np.float32))
    b = tf.constant(np.ones((4, 5), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[2, 3\].*\[4, 5\]"):
        tf.matmul(a, b)
    assert issubclass(tf.errors.InvalidArgumentError, ValueError)
    with pytest.raises(TypeError):
        tf.constant([1, 2]) + tf.constant([1.0, 2.0])
    with pytest.raises(ValueError):
        float(a)
    with pytest.raises(TypeError):
        tf.cast(a, "complex128")


def test_gradient_tape_variables_and_watched_tensors():
    w = tf.Variable([[1.0, 2.0], [3.0, 4.0]], name="w")
    x = tf.constant([[1.0, 1.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.matmul(x, w) ** 2)
    dw, dx = tape.gradient(y, [w, x])
    # y = (x1 + 3 x2)^2 + (2 x1 + 4 x2)^2 at x = (1, 1): 16 + 36.
    np.testing.assert_allclose(dw, [[8, 12], [8, 12]])
    np.testing.assert_allclose(dx, [[2 * 4 + 2 * 6 * 2, 2 * 4 * 3 + 2 * 6 * 4]])
    assert tape.gradient(y, {"w": w})["w"].shape == (2, 2)
    unrelated = tf.Variable(1.0)
    assert tape.gradient(y, unrelated) is None
    w.assign_sub(0.1 * dw)
    np.testing.assert_allclose(w.numpy(), [[0.2, 0.8], [2.2, 2.8]], rtol=1e-6)


def test_non_persistent_tape_answers_once():
    v = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        y = v * v
    assert float(tape.gradient(y, v)) == 6.0
    with pytest.raises(RuntimeError):
        tape.gradient(y, v)


def test_function_traces_once_per_signature_and_matches_eager():
    calls = []

    @tf.function(jit_compile=True)
    def f(x, scale):
        calls.append(1)
        return {"y": tf.nn.relu(x) * scale, "s": tf.reduce_sum(x)}

    x = np.arange(-3, 3, dtype=np.float32)
    a = f(x, 2.0)
    b = f(x + 1, 2.0)
    np.testing.assert_allclose(a["y"], np.maximum(x, 0) * 2)
    np.testing.assert_allclose(b["y"], np.maximum(x + 1, 0) * 2)
    assert len(calls) == 1 and f.experimental_get_tracing_count() == 1
    f(x, 3.0)  # a new Python value is a new trace, as in TensorFlow
    assert f.experimental_get_tracing_count() == 2


def test_function_error_in_python_is_raised_as_is():
    @tf.function
    def bad(x):
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        bad(tf.constant(1.0))


def test_numpy_in_is_zero_copy_and_never_written():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = tf.constant(x)
    assert np.asarray(t).__array_interface__["data"][0] == x.__array_interface__["data"][0]
    # The tensor keeps the array's buffer alive.
    del x
    assert float(tf.reduce_sum(t)) == 66.0
    # Ops and in-place variable updates never write a borrowed buffer.
    x = np.ones(4, dtype=np.float32)
    v = tf.Variable(x)
    v.assign_add(np.full(4, 2.0, np.float32))
    y = tf.constant(x) + 1.0
    assert x.tolist() == [1.0] * 4 and v.numpy().tolist() == [3.0] * 4 and y.numpy().tolist() == [2.0] * 4
    # Non-contiguous and unaligned arrays are copied.
    nc = np.arange(10, dtype=np.float32)[::2]
    np.testing.assert_allclose(tf.constant(nc), nc)
    raw = np.zeros(17, dtype=np.uint8)
    unaligned = raw[1:].view(np.float32)
    np.testing.assert_allclose(tf.constant(unaligned), unaligned)


def test_nn_conv_pool_moments_and_stop_gradient():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    k = rng.normal(size=(1, 1, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(tf.nn.conv2d(x, k, strides=1, padding="VALID"), x @ k[0, 0], rtol=1e-5, atol=1e-6)
    pooled = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
    np.testing.assert_allclose(pooled, x.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)))
    mean, var = tf.nn.moments(tf.constant(x), axes=[0, 1, 2])
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-4)
    v = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        y = v * tf.stop_gradient(v * 3.0)
    assert float(tape.gradient(y, v)) == 6.0
