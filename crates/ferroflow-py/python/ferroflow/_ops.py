"""The op namespaces (top level, ``math``, ``nn``, ``random``) under TensorFlow's names.
The elementwise ops come from the core's own op list (``_native.unary_names()``); only the
names TensorFlow spells differently are mapped here."""

import types

from . import _native
from ._dtypes import as_dtype, float32, int32

# The core's op name -> TensorFlow's, where they differ.
_UNARY_TF = {"neg": "negative", "gelu_tanh": None, "silu": "silu"}
_BINARY_TF = {"sub": "subtract", "mul": "multiply", "div": "divide", "floor_div": "floordiv",
              "floor_mod": "floormod"}
# Activations that TensorFlow puts under tf.nn rather than tf.math.
_NN_ONLY = {"relu", "relu6", "gelu", "silu", "selu"}

math = types.ModuleType("ferroflow.math", "Elementwise math and reductions (tf.math).")
nn = types.ModuleType("ferroflow.nn", "Neural-network ops (tf.nn).")
random = types.ModuleType("ferroflow.random", "Random tensors (tf.random).")
top = {}


def _unary(core):
    def f(x, name=None):
        return _native.unary(core, x)
    return f


def _binary(core):
    def f(x, y, name=None):
        return _native.binary(core, x, y)
    return f


for _core in _native.unary_names():
    _tf = _UNARY_TF.get(_core, _core)
    if _tf is None:
        continue
    _f = _unary(_core)
    _f.__name__ = _tf
    if _core in _NN_ONLY:
        setattr(nn, _tf, _f)
    else:
        setattr(math, _tf, _f)
        top[_tf] = _f
    if _core in ("sigmoid", "tanh", "softplus"):
        setattr(nn, _tf, _f)
nn.swish = nn.silu
_gelu = nn.gelu


def _gelu_approx(features, approximate=False, name=None):
    return _native.unary("gelu_tanh" if approximate else "gelu", features)


nn.gelu = _gelu_approx
for _core in _native.binary_names():
    _tf = _BINARY_TF.get(_core, _core)
    _f = _binary(_core)
    _f.__name__ = _tf
    setattr(math, _tf, _f)
    top[_tf] = _f
math.truediv = math.divide
math.mod = math.floormod


def _reduction(op):
    def f(input_tensor, axis=None, keepdims=False, name=None):
        return _native.reduce(op, input_tensor, axis, keepdims)
    f.__name__ = "reduce_" + op
    return f


for _op in _native.reduce_names():
    _f = _reduction(_op)
    setattr(math, _f.__name__, _f)
    top[_f.__name__] = _f


def argmax(input, axis=None, output_type=None, name=None):
    r = _native.argmax(input, 0 if axis is None else axis, False)
    return r if output_type is None else _native.cast(r, output_type)


def argmin(input, axis=None, output_type=None, name=None):
    r = _native.argmax(input, 0 if axis is None else axis, True)
    return r if output_type is None else _native.cast(r, output_type)


def softmax(logits, axis=-1, name=None):
    return _native.softmax(logits, axis, False)


def log_softmax(logits, axis=-1, name=None):
    return _native.softmax(logits, axis, True)


def leaky_relu(features, alpha=0.2, name=None):
    return _native.parametric("leaky_relu", features, alpha)


def elu(features, name=None):
    return _native.parametric("elu", features, 1.0)


def dropout(x, rate, noise_shape=None, seed=None, name=None):
    return _native.dropout(x, rate, seed)


def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None):
    logits = _native.convert_to_tensor(logits)
    depth = logits.shape[-1]
    onehot = _native.one_hot(labels, depth, 1.0, 0.0, logits.dtype)
    return -_native.reduce("sum", onehot * _native.softmax(logits, -1, True), -1, False)


def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    return -_native.reduce("sum", _native.convert_to_tensor(labels, float32) * _native.softmax(logits, axis, True), axis, False)


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    x = _native.convert_to_tensor(logits)
    z = _native.convert_to_tensor(labels, x.dtype)
    # max(x, 0) - x * z + log(1 + exp(-|x|)), TensorFlow's stable form.
    return _native.unary("relu", x) - x * z + _native.unary("log1p", _native.unary("exp", -_native.unary("abs", x)))


for _name, _f in dict(softmax=softmax, log_softmax=log_softmax, leaky_relu=leaky_relu, elu=elu,
                      dropout=dropout,
                      sparse_softmax_cross_entropy_with_logits=sparse_softmax_cross_entropy_with_logits,
                      softmax_cross_entropy_with_logits=softmax_cross_entropy_with_logits,
                      sigmoid_cross_entropy_with_logits=sigmoid_cross_entropy_with_logits).items():
    setattr(nn, _name, _f)
math.softmax, math.log_softmax = softmax, log_softmax
math.argmax, math.argmin = argmax, argmin
math.sigmoid = nn.sigmoid


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None, name=None):
    if data_format != "NHWC":
        raise NotImplementedError("ferroflow's conv2d takes NHWC input")
    return _native.conv2d(input, filters, strides, padding, dilations)


def max_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):
    return _native.pool2d("max", input, ksize, strides, padding)


def avg_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None):
    return _native.pool2d("avg", input, ksize, strides, padding)


def moments(x, axes, shift=None, keepdims=False, name=None):
    return _native.moments(x, list(axes), keepdims)


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    inv = _native.unary("rsqrt", _native.binary("add", variance, variance_epsilon))
    if scale is not None:
        inv = inv * scale
    y = (x - mean) * inv
    return y if offset is None else y + offset


for _name, _f in dict(conv2d=conv2d, max_pool2d=max_pool2d, avg_pool2d=avg_pool2d,
                      moments=moments, batch_normalization=batch_normalization).items():
    setattr(nn, _name, _f)
nn.max_pool, nn.avg_pool = max_pool2d, avg_pool2d


def top_k(input, k=1, sorted=True, name=None):
    return _native.top_k(input, k)


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):
    return _native.cumsum(x, axis, exclusive, reverse)


math.top_k, math.cumsum = top_k, cumsum


def _random(kind, a_name, b_name, a_default, b_default):
    def f(shape, *args, dtype=float32, seed=None, name=None, **kwargs):
        vals = dict(zip((a_name, b_name), args))
        vals.update(kwargs)
        return _native.random(kind, list(shape), float(vals.get(a_name, a_default)),
                              float(vals.get(b_name, b_default)), dtype, seed)
    return f


random.normal = _random("normal", "mean", "stddev", 0.0, 1.0)
random.truncated_normal = _random("truncated_normal", "mean", "stddev", 0.0, 1.0)
random.uniform = _random("uniform", "minval", "maxval", 0.0, 1.0)
random.set_seed = _native.set_seed


def zeros(shape, dtype=float32, name=None):
    return _native.fill(list(shape) if not isinstance(shape, int) else [shape], 0.0, dtype)


def ones(shape, dtype=float32, name=None):
    return _native.fill(list(shape) if not isinstance(shape, int) else [shape], 1.0, dtype)


def fill(dims, value, name=None):
    v = _native.convert_to_tensor(value)
    return _native.fill(list(dims), float(v), v.dtype)


def zeros_like(input, dtype=None, name=None):
    t = _native.convert_to_tensor(input)
    return _native.fill(list(t.shape), 0.0, dtype or t.dtype)


def ones_like(input, dtype=None, name=None):
    t = _native.convert_to_tensor(input)
    return _native.fill(list(t.shape), 1.0, dtype or t.dtype)


def range_(start, limit=None, delta=1, dtype=None, name="range"):
    if limit is None:
        start, limit = 0, start
    if dtype is None:
        dtype = float32 if any(isinstance(v, float) for v in (start, limit, delta)) else int32
    return _native.range(float(start), float(limit), float(delta), dtype)


def shape(input, out_type=None, name=None):
    return _native.shape_of(input)


def rank(input, name=None):
    return _native.constant(len(_native.convert_to_tensor(input).shape), int32)


def size(input, out_type=None, name=None):
    return _native.constant(_native.convert_to_tensor(input).size, int32)


def where(condition, x=None, y=None, name=None):
    return _native.where_(condition, x, y)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return _native.clip_by_value(t, float(clip_value_min), float(clip_value_max))


def sort(values, axis=-1, direction="ASCENDING", name=None):
    return _native.sort(values, axis, direction, False)


def argsort(values, axis=-1, direction="ASCENDING", stable=False, name=None):
    return _native.sort(values, axis, direction, True)


def squeeze(input, axis=None, name=None):
    return _native.squeeze(input, axis)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    return _native.one_hot(indices, depth, 1.0 if on_value is None else float(on_value),
                           0.0 if off_value is None else float(off_value), dtype or float32)


def cast(x, dtype, name=None):
    return _native.cast(x, as_dtype(dtype))


def identity(input, name=None):
    return _native.convert_to_tensor(input)


def stop_gradient(input, name=None):
    return _native.stop_gradient(input)


def norm(tensor, ord="euclidean", axis=None, keepdims=None, name=None):
    return _native.unary("sqrt", _native.reduce("sum", _native.unary("square", tensor), axis, bool(keepdims)))


def l2_normalize(x, axis=None, epsilon=1e-12, name=None):
    sq = _native.reduce("sum", _native.unary("square", x), axis, True)
    return x * _native.unary("rsqrt", _native.binary("maximum", sq, epsilon))


math.l2_normalize = nn.l2_normalize = l2_normalize
math.reduce_euclidean_norm = norm

top.update(
    argmax=argmax, argmin=argmin, zeros=zeros, ones=ones, fill=fill, zeros_like=zeros_like,
    ones_like=ones_like, range=range_, shape=shape, rank=rank, size=size, where=where,
    clip_by_value=clip_by_value, sort=sort, argsort=argsort, squeeze=squeeze, one_hot=one_hot,
    cast=cast, identity=identity, stop_gradient=stop_gradient, norm=norm,
    matmul=_native.matmul, reshape=_native.reshape, transpose=_native.transpose,
    concat=_native.concat, stack=_native.stack, unstack=_native.unstack, split=_native.split,
    expand_dims=_native.expand_dims, gather=_native.gather, eye=_native.eye,
    tile=_native.tile, reverse=_native.reverse, broadcast_to=_native.broadcast_to,
    einsum=_native.einsum, constant=_native.constant, convert_to_tensor=_native.convert_to_tensor,
)
math.matmul = _native.matmul
math.abs = top["abs"]
