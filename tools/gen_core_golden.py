#!/usr/bin/env python3
"""Generates TensorFlow golden values for ferroflow-core's ops.

Writes crates/ferroflow-core/tests/fixtures/core_golden.json: a list of cases, each with
the op name, attributes, inputs and TensorFlow's outputs. `cargo test` reads the file and
never needs Python. Run with a Python that has tensorflow-cpu and numpy installed:

    python3 tools/gen_core_golden.py
"""
import json
import os

import numpy as np
import tensorflow as tf

rng = np.random.default_rng(20261124)
cases = []


def arr(t):
    a = np.asarray(t)
    kind = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}[str(a.dtype)]
    data = a.astype(np.float64).ravel().tolist() if kind != "bool" else a.astype(np.float64).ravel().tolist()
    return {"shape": list(a.shape), "dtype": kind, "data": data}


def case(op, inputs, outputs, **attrs):
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    cases.append({"op": op, "attrs": attrs, "inputs": [arr(i) for i in inputs], "outputs": [arr(o) for o in outs]})


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# Elementwise unary ops, over values that cover each op's interesting regions.
x = np.concatenate([randn(20) * 3, np.array([-0.5, 0.0, 1e-4, -1e-4, 0.3, 8.0, -8.0, 15.0, -15.0], np.float32)])
pos = np.abs(randn(24)) * 4 + 1e-3
unary = {
    "neg": tf.negative, "abs": tf.abs, "square": tf.square, "sign": tf.sign, "relu": tf.nn.relu,
    "relu6": tf.nn.relu6, "exp": tf.exp, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
    "gelu": lambda v: tf.nn.gelu(v, approximate=False), "gelu_tanh": lambda v: tf.nn.gelu(v, approximate=True),
    "silu": tf.nn.silu, "softplus": tf.nn.softplus, "selu": tf.nn.selu, "sin": tf.sin, "cos": tf.cos,
    "erf": tf.math.erf, "floor": tf.floor, "ceil": tf.math.ceil, "round": tf.round,
}
for name, f in unary.items():
    for dt in (np.float32, np.float64):
        v = x.astype(dt)
        case(name, [v], f(v).numpy())
for name, f in {"log": tf.math.log, "log1p": tf.math.log1p, "sqrt": tf.sqrt, "rsqrt": tf.math.rsqrt, "reciprocal": tf.math.reciprocal}.items():
    case(name, [pos], f(pos).numpy())
case("elu", [x], tf.nn.elu(x).numpy(), alpha=1.0)
case("leaky_relu", [x], tf.nn.leaky_relu(x, alpha=0.2).numpy(), alpha=0.2)
case("log1p", [np.array([1e-7, -1e-7, 0.5, -0.5], np.float32)], tf.math.log1p(np.array([1e-7, -1e-7, 0.5, -0.5], np.float32)).numpy())

# Binary ops with broadcasting.
a, b = randn(2, 3, 4), randn(3, 1)
bpos = np.abs(randn(1, 4)) + 0.5
binary = {"add": tf.add, "sub": tf.subtract, "mul": tf.multiply, "maximum": tf.maximum, "minimum": tf.minimum,
          "squared_difference": tf.math.squared_difference}
for name, f in binary.items():
    case(name, [a, b], f(a, b).numpy())
case("div", [a, bpos], tf.divide(a, bpos).numpy())
case("pow", [np.abs(a) + 0.1, b], tf.pow(np.abs(a) + 0.1, b).numpy())
case("floor_div", [a * 5, bpos], tf.math.floordiv(a * 5, bpos).numpy())
case("floor_mod", [a * 5, bpos], tf.math.floormod(a * 5, bpos).numpy())
ia, ib = rng.integers(-20, 20, (3, 4)).astype(np.int32), rng.integers(1, 6, (4,)).astype(np.int32) * np.array([1, -1, 1, -1], np.int32)
case("floor_div", [ia, ib], tf.math.floordiv(ia, ib).numpy())
case("floor_mod", [ia, ib], tf.math.floormod(ia, ib).numpy())

# Comparisons, select, clip.
c1, c2 = np.round(randn(3, 4)), np.round(randn(4))
for name, f in {"equal": tf.equal, "not_equal": tf.not_equal, "less": tf.less, "less_equal": tf.less_equal,
                "greater": tf.greater, "greater_equal": tf.greater_equal}.items():
    case(name, [c1, c2], f(c1, c2).numpy())
cond = randn(3, 1) > 0
case("where", [cond, a[0], b], tf.where(cond, a[0], b).numpy())
case("clip", [a], tf.clip_by_value(a, -0.5, 0.7).numpy(), lo=-0.5, hi=0.7)

# Reductions.
r = randn(3, 4, 5)
for name, f in {"sum": tf.reduce_sum, "mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min,
                "prod": tf.reduce_prod, "variance": tf.math.reduce_variance, "logsumexp": tf.reduce_logsumexp}.items():
    for axes in ([0], [1], [2], [0, 2], [0, 1, 2]):
        for keep in (False, True):
            case(name, [r], f(r, axis=axes, keepdims=keep).numpy(), axes=axes, keepdims=keep)
for axis in (0, 1, 2):
    case("argmax", [r], tf.argmax(r, axis=axis).numpy(), axis=axis)
    case("argmin", [r], tf.argmin(r, axis=axis).numpy(), axis=axis)

# Matmul, einsum, tensordot.
m1, m2 = randn(2, 3, 5), randn(5, 4)
case("matmul", [m1, m2], tf.linalg.matmul(m1, m2).numpy(), ta=False, tb=False)
m3, m4 = randn(2, 5, 3), randn(2, 4, 5)
case("matmul", [m3, m4], tf.linalg.matmul(m3, m4, transpose_a=True, transpose_b=True).numpy(), ta=True, tb=True)
case("einsum", [m1, m2], tf.einsum("bij,jk->bki", m1, m2).numpy(), equation="bij,jk->bki")
case("einsum", [r], tf.einsum("ijk->kj", r).numpy(), equation="ijk->kj")
case("tensordot", [r, randn(5, 4, 2)], tf.tensordot(r, (t := randn(5, 4, 2)), axes=[[1, 2], [1, 0]]).numpy(), axes_a=[1, 2], axes_b=[1, 0])
cases[-1]["inputs"][1] = arr(t)

# Softmax family.
s = randn(3, 7) * 3
for axis in (-1, 0):
    case("softmax", [s], tf.nn.softmax(s, axis=axis).numpy(), axis=axis)
    case("log_softmax", [s], tf.nn.log_softmax(s, axis=axis).numpy(), axis=axis)

# Shape and indexing ops.
case("transpose", [r], tf.transpose(r, [2, 0, 1]).numpy(), perm=[2, 0, 1])
case("concat", [a[:, :2], a[:, 1:]], tf.concat([a[:, :2], a[:, 1:]], axis=1).numpy(), axis=1)
case("stack", [b, b * 2], tf.stack([b, b * 2], axis=1).numpy(), axis=1)
case("pad", [b], tf.pad(b, [[1, 2], [0, 1]], constant_values=3.0).numpy(), paddings=[[1, 2], [0, 1]], mode="constant", value=3.0)
case("pad", [a[0]], tf.pad(a[0], [[2, 1], [1, 3]], mode="REFLECT").numpy(), paddings=[[2, 1], [1, 3]], mode="reflect")
case("pad", [a[0]], tf.pad(a[0], [[2, 1], [1, 3]], mode="SYMMETRIC").numpy(), paddings=[[2, 1], [1, 3]], mode="symmetric")
case("tile", [b], tf.tile(b, [2, 3]).numpy(), multiples=[2, 3])
case("strided_slice", [r], r[2:0:-1, 1::2, -2].copy(), spec="2:0:-1,1::2,-2")
gi = np.array([[2, 0], [1, 1]], np.int32)
case("gather", [r, gi], tf.gather(r, gi, axis=1).numpy(), axis=1)
gnd = np.array([[0, 1], [2, 3]], np.int64)
case("gather_nd", [r, gnd], tf.gather_nd(r, gnd).numpy())
si, su = np.array([[1], [3], [1]], np.int32), randn(3, 2)
case("scatter_nd", [si, su], tf.scatter_nd(si, su, [5, 2]).numpy(), shape=[5, 2])
oi = np.array([0, 3, 1, -1], np.int32)
case("one_hot", [oi], tf.one_hot(oi, 4).numpy(), depth=4)
tk = randn(3, 6)
v_, i_ = tf.math.top_k(tk, k=3)
case("top_k", [tk], [v_.numpy(), i_.numpy()], k=3)
case("sort", [tk], tf.sort(tk, axis=0, direction="DESCENDING").numpy(), axis=0, descending=True)
case("argsort", [tk], tf.argsort(tk, axis=-1).numpy(), axis=-1, descending=False)
for excl in (False, True):
    for rev in (False, True):
        case("cumsum", [r], tf.math.cumsum(r, axis=1, exclusive=excl, reverse=rev).numpy(), axis=1, exclusive=excl, reverse=rev)

# Convolutions and pooling (NHWC / HWIO).
img = randn(2, 7, 6, 4)
for pad in ("SAME", "VALID"):
    for strides, dil in (((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 1), (2, 2))):
        k = randn(3, 3, 4, 5)
        out = tf.nn.conv2d(img, k, strides=strides, padding=pad, dilations=dil).numpy()
        case("conv2d", [img, k], out, strides=list(strides), padding=pad, dilations=list(dil))
kg = randn(3, 3, 2, 6)
case("conv2d", [img, kg], tf.nn.conv2d(img, kg, strides=1, padding="SAME").numpy(), strides=[1, 1], padding="SAME", dilations=[1, 1])
kd = randn(3, 3, 4, 2)
case("depthwise_conv2d", [img, kd], tf.nn.depthwise_conv2d(img, kd, strides=[1, 2, 2, 1], padding="SAME").numpy(), strides=[2, 2], padding="SAME")
seq, k1 = randn(2, 9, 3), randn(3, 3, 4)
case("conv1d", [seq, k1], tf.nn.conv1d(seq, k1, stride=2, padding="SAME").numpy(), stride=2, padding="SAME")
kt = randn(3, 3, 5, 4)
case("conv2d_transpose", [img, kt], tf.nn.conv2d_transpose(img, kt, [2, 14, 12, 5], strides=2, padding="SAME").numpy(),
     output_hw=[14, 12], strides=[2, 2], padding="SAME")
case("conv2d_transpose", [img, kt], tf.nn.conv2d_transpose(img, kt, [2, 9, 8, 5], strides=1, padding="VALID").numpy(),
     output_hw=[9, 8], strides=[1, 1], padding="VALID")
for pad in ("SAME", "VALID"):
    case("max_pool2d", [img], tf.nn.max_pool2d(img, 3, 2, pad).numpy(), ksize=[3, 3], strides=[2, 2], padding=pad)
    case("avg_pool2d", [img], tf.nn.avg_pool2d(img, 3, 2, pad).numpy(), ksize=[3, 3], strides=[2, 2], padding=pad)
    case("max_pool1d", [seq], tf.nn.max_pool1d(seq, 2, 2, pad).numpy(), ksize=2, strides=2, padding=pad)
    case("avg_pool1d", [seq], tf.nn.avg_pool1d(seq, 3, 2, pad).numpy(), ksize=3, strides=2, padding=pad)

# Normalisation.
mean, var = tf.nn.moments(tf.constant(img), axes=[0, 1, 2])
gamma, beta = randn(4), randn(4)
case("batch_norm", [img, mean.numpy(), var.numpy(), beta, gamma],
     tf.nn.batch_normalization(img, mean, var, beta, gamma, 1e-3).numpy(), epsilon=1e-3)
ln = tf.keras.layers.LayerNormalization(epsilon=1e-3)
ln.build(img.shape)
ln.gamma.assign(np.linspace(0.5, 1.5, 4).astype(np.float32))
ln.beta.assign(np.linspace(-1, 1, 4).astype(np.float32))
case("layer_norm", [img, ln.gamma.numpy(), ln.beta.numpy()], ln(img).numpy(), epsilon=1e-3)

out = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-core", "tests", "fixtures", "core_golden.json")
with open(out, "w") as f:
    json.dump({"generator": f"tensorflow {tf.__version__}", "cases": cases}, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")
