#!/usr/bin/env python3
"""Generates TensorFlow golden gradients for ferroflow-core's differentiable ops.

Reads the op cases of crates/ferroflow-core/tests/fixtures/core_golden.json (made by
tools/gen_core_golden.py), and for each differentiable one records, with tf.GradientTape,
the gradient of sum(w * op(inputs)) for fixed random weights w with respect to every
floating-point input. Writes crates/ferroflow-core/tests/fixtures/grad_golden.json.

    python3 tools/gen_grad_golden.py
"""
import json
import os

import numpy as np
import tensorflow as tf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "crates", "ferroflow-core", "tests", "fixtures")
NOT_DIFFERENTIABLE = {
    "floor", "ceil", "round", "floor_div", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "argmax", "argmin", "argsort", "one_hot",
}
DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


def tensor(v):
    return np.array(v["data"], np.float64).reshape(v["shape"]).astype(DTYPES[v["dtype"]])


def spec_slices(spec):
    out = []
    for part in spec.split(","):
        if ":" not in part:
            out.append(int(part))
        else:
            p = [int(x) if x else None for x in part.split(":")]
            out.append(slice(p[0], p[1], p[2] if len(p) > 2 else None))
    return tuple(out)


def run(op, a, x):
    unary = {
        "neg": tf.negative, "abs": tf.abs, "square": tf.square, "sign": tf.sign, "relu": tf.nn.relu,
        "relu6": tf.nn.relu6, "exp": tf.exp, "log": tf.math.log, "log1p": tf.math.log1p, "sqrt": tf.sqrt,
        "rsqrt": tf.math.rsqrt, "reciprocal": tf.math.reciprocal, "tanh": tf.tanh, "sigmoid": tf.sigmoid,
        "gelu": lambda v: tf.nn.gelu(v, approximate=False), "gelu_tanh": lambda v: tf.nn.gelu(v, approximate=True),
        "silu": tf.nn.silu, "softplus": tf.nn.softplus, "selu": tf.nn.selu, "sin": tf.sin, "cos": tf.cos,
        "erf": tf.math.erf,
    }
    binary = {"add": tf.add, "sub": tf.subtract, "mul": tf.multiply, "div": tf.divide, "pow": tf.pow,
              "maximum": tf.maximum, "minimum": tf.minimum, "squared_difference": tf.math.squared_difference,
              "floor_mod": tf.math.floormod}
    reduce = {"sum": tf.reduce_sum, "mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min,
              "prod": tf.reduce_prod, "variance": tf.math.reduce_variance, "logsumexp": tf.reduce_logsumexp}
    if op in unary:
        return unary[op](x[0])
    if op in binary:
        return binary[op](x[0], x[1])
    if op in reduce:
        return reduce[op](x[0], axis=a["axes"], keepdims=a["keepdims"])
    if op == "elu":
        return tf.nn.elu(x[0])
    if op == "leaky_relu":
        return tf.nn.leaky_relu(x[0], alpha=a["alpha"])
    if op == "where":
        return tf.where(x[0], x[1], x[2])
    if op == "clip":
        return tf.clip_by_value(x[0], a["lo"], a["hi"])
    if op == "matmul":
        return tf.linalg.matmul(x[0], x[1], transpose_a=a["ta"], transpose_b=a["tb"])
    if op == "einsum":
        return tf.einsum(a["equation"], *x)
    if op == "tensordot":
        return tf.tensordot(x[0], x[1], axes=[a["axes_a"], a["axes_b"]])
    if op == "softmax":
        return tf.nn.softmax(x[0], axis=a["axis"])
    if op == "log_softmax":
        return tf.nn.log_softmax(x[0], axis=a["axis"])
    if op == "transpose":
        return tf.transpose(x[0], a["perm"])
    if op == "concat":
        return tf.concat(x, axis=a["axis"])
    if op == "stack":
        return tf.stack(x, axis=a["axis"])
    if op == "pad":
        mode = {"constant": "CONSTANT", "reflect": "REFLECT", "symmetric": "SYMMETRIC"}[a["mode"]]
        return tf.pad(x[0], a["paddings"], mode=mode, constant_values=a.get("value", 0.0))
    if op == "tile":
        return tf.tile(x[0], a["multiples"])
    if op == "strided_slice":
        return x[0][spec_slices(a["spec"])]
    if op == "gather":
        return tf.gather(x[0], x[1], axis=a["axis"])
    if op == "gather_nd":
        return tf.gather_nd(x[0], x[1])
    if op == "scatter_nd":
        return tf.scatter_nd(x[0], x[1], a["shape"])
    if op == "top_k":
        return tf.math.top_k(x[0], k=a["k"]).values
    if op == "sort":
        return tf.sort(x[0], axis=a["axis"], direction="DESCENDING" if a["descending"] else "ASCENDING")
    if op == "cumsum":
        return tf.math.cumsum(x[0], axis=a["axis"], exclusive=a["exclusive"], reverse=a["reverse"])
    if op == "conv2d":
        return tf.nn.conv2d(x[0], x[1], strides=a["strides"], padding=a["padding"], dilations=a["dilations"])
    if op == "depthwise_conv2d":
        s = a["strides"]
        return tf.nn.depthwise_conv2d(x[0], x[1], strides=[1, s[0], s[1], 1], padding=a["padding"])
    if op == "conv1d":
        return tf.nn.conv1d(x[0], x[1], stride=a["stride"], padding=a["padding"])
    if op == "conv2d_transpose":
        n, cout = x[0].shape[0], x[1].shape[2]
        shape = [n, a["output_hw"][0], a["output_hw"][1], cout]
        return tf.nn.conv2d_transpose(x[0], x[1], shape, strides=a["strides"], padding=a["padding"])
    if op == "max_pool2d":
        return tf.nn.max_pool2d(x[0], a["ksize"], a["strides"], a["padding"])
    if op == "avg_pool2d":
        return tf.nn.avg_pool2d(x[0], a["ksize"], a["strides"], a["padding"])
    if op == "max_pool1d":
        return tf.nn.max_pool1d(x[0], a["ksize"], a["strides"], a["padding"])
    if op == "avg_pool1d":
        return tf.nn.avg_pool1d(x[0], a["ksize"], a["strides"], a["padding"])
    if op == "batch_norm":
        return tf.nn.batch_normalization(x[0], x[1], x[2], x[3], x[4], a["epsilon"])
    if op == "layer_norm":
        mean, var = tf.nn.moments(x[0], axes=[-1], keepdims=True)
        return tf.nn.batch_normalization(x[0], mean, var, x[2], x[1], a["epsilon"])
    raise KeyError(op)


def main():
    rng = np.random.default_rng(7)
    with open(os.path.join(FIXTURES, "core_golden.json")) as f:
        core = json.load(f)["cases"]
    cases = []
    for n, c in enumerate(core):
        op = c["op"]
        if op in NOT_DIFFERENTIABLE:
            continue
        inputs = [tensor(v) for v in c["inputs"]]
        if not any(np.issubdtype(i.dtype, np.floating) for i in inputs):
            continue
        xs = [tf.constant(i) for i in inputs]
        with tf.GradientTape() as tape:
            for x in xs:
                if x.dtype.is_floating:
                    tape.watch(x)
            y = run(op, c["attrs"], xs)
            w = rng.standard_normal(y.shape).astype(y.dtype.as_numpy_dtype)
            loss = tf.reduce_sum(y * w)
        grads = tape.gradient(loss, xs)
        out = []
        for x, g in zip(xs, grads):
            if not x.dtype.is_floating:
                out.append(None)
                continue
            if g is None:
                g = tf.zeros_like(x)
            g = tf.convert_to_tensor(g)  # IndexedSlices become dense
            out.append(g.numpy().astype(np.float64).ravel().tolist())
        cases.append({"case": n, "weights": w.astype(np.float64).ravel().tolist(), "grads": out})
    path = os.path.join(FIXTURES, "grad_golden.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/gen_grad_golden.py", "tensorflow": tf.__version__, "cases": cases}, f,
                  separators=(",", ":"))
    print(f"wrote {len(cases)} gradient cases to {path}")


if __name__ == "__main__":
    main()
