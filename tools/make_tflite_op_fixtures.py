"""Makes one small .tflite file per builtin op that production models use beyond the
basic set (PRELU, resizes, depth/space rearrangement, TRANSPOSE_CONV, SPLIT, SLICE, TILE,
UNPACK, GATHER_ND, ARG_MAX/MIN, L2 and local response normalisation, MIRROR_PAD,
CUMSUM, float16 and sparse weights, a built-in custom op...), each converted by TensorFlow's own TFLiteConverter and run
by LiteRT (ai-edge-litert) for the expected outputs.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/make_tflite_op_fixtures.py [OUT_DIR]

Writes op_NAME.tflite, op_NAME_x.npy (op_NAME_x1.npy... for further inputs), op_NAME_y.npy
(op_NAME_y1.npy... for further outputs, in LiteRT's output order) and ops_manifest.json
({name: {"inputs": n, "outputs": m, "builtins": [...], "tolerance": relative}}) into OUT_DIR (default
crates/ferroflow-lite/tests/fixtures/ops). Needs tensorflow and keras.
"""
import json
import os
import struct
import sys

import flatbuffers

import numpy as np
import tensorflow as tf
import keras
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "ferroflow-lite", "tests", "fixtures", "ops")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(11)
keras.utils.set_random_seed(11)
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def normal(*shape):
    return rng.normal(size=shape).astype(np.float32)


def function(f, *xs):
    """A tf.function of fixed input shapes, converted."""
    spec = [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in xs]
    cf = tf.function(f, input_signature=spec).get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])
    return conv.convert(), list(xs)


def keras_model(model, *xs, float16=False):
    # Non-zero biases: the converter drops zero ones, leaving the bias input untested.
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.assign(rng.normal(size=bias.shape).astype(np.float32) * 0.5)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if float16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    return conv.convert(), list(xs)


@case
def prelu_shared():
    x = keras.Input((6, 6, 4), batch_size=1)
    h = keras.layers.Conv2D(4, 3, padding="same")(x)
    p = keras.layers.PReLU(shared_axes=[1, 2])
    y = p(h)
    m = keras.Model(x, y)
    p.alpha.assign(rng.uniform(0.05, 0.5, size=p.alpha.shape).astype(np.float32))
    return keras_model(m, normal(1, 6, 6, 4))


@case
def prelu_full():
    x = keras.Input((3, 5), batch_size=2)
    p = keras.layers.PReLU()
    m = keras.Model(x, p(x))
    p.alpha.assign(rng.uniform(-0.5, 0.5, size=p.alpha.shape).astype(np.float32))
    return keras_model(m, normal(2, 3, 5))


@case
def resize_bilinear_half_pixel():
    return function(lambda x: tf.image.resize(x, [9, 7], "bilinear"), normal(1, 5, 4, 3))


@case
def resize_bilinear_align_corners():
    return function(lambda x: tf.compat.v1.image.resize_bilinear(x, [9, 7], align_corners=True),
                    normal(2, 5, 4, 3))


@case
def resize_bilinear_legacy():
    return function(lambda x: tf.compat.v1.image.resize_bilinear(x, [3, 7]), normal(1, 5, 4, 2))


@case
def resize_nearest_half_pixel():
    return function(lambda x: tf.image.resize(x, [10, 5], "nearest"), normal(1, 4, 3, 2))


@case
def resize_nearest_align_corners():
    return function(
        lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [7, 9], align_corners=True),
        normal(1, 4, 3, 2))


@case
def resize_nearest_legacy():
    return function(lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [2, 9]),
                    normal(1, 4, 3, 2))


@case
def depth_to_space():
    return function(lambda x: tf.nn.depth_to_space(x, 2), normal(1, 3, 4, 8))


@case
def space_to_depth():
    return function(lambda x: tf.nn.space_to_depth(x, 2), normal(2, 4, 6, 3))


@case
def transpose_conv_same():
    x = keras.Input((5, 5, 3), batch_size=1)
    y = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(x)
    return keras_model(keras.Model(x, y), normal(1, 5, 5, 3))


@case
def transpose_conv_valid():
    x = keras.Input((4, 3, 2), batch_size=1)
    y = keras.layers.Conv2DTranspose(3, (3, 2), strides=(2, 1), padding="valid")(x)
    return keras_model(keras.Model(x, y), normal(1, 4, 3, 2))


@case
def split():
    return function(lambda x: tf.split(x, 3, axis=-1), normal(2, 4, 6))


@case
def split_v():
    return function(lambda x: tf.split(x, [1, 2, 3], axis=1), normal(2, 6, 3))


@case
def slice():
    return function(lambda x: tf.slice(x, [0, 1, 2], [-1, 2, 3]) * 2.0, normal(2, 4, 6))


@case
def tile():
    return function(lambda x: tf.tile(x, [2, 1, 3]), normal(2, 3, 2))


@case
def unpack():
    return function(lambda x: tf.unstack(x, axis=1), normal(2, 3, 4))


@case
def gather_nd():
    idx = tf.constant([[0, 1], [1, 2], [0, 0]])
    return function(lambda x: tf.gather_nd(x, idx), normal(2, 3, 4))


@case
def arg_max():
    return function(lambda x: tf.argmax(x, axis=-1), normal(3, 7))


@case
def arg_min():
    return function(lambda x: tf.argmin(x, axis=1, output_type=tf.int32), normal(2, 5, 3))


@case
def l2_normalization():
    return function(lambda x: tf.math.l2_normalize(x, axis=-1), normal(3, 8))


@case
def local_response_normalization():
    return function(
        lambda x: tf.nn.local_response_normalization(x, depth_radius=2, bias=1.5, alpha=0.3,
                                                      beta=0.6),
        normal(1, 3, 3, 7))


@case
def mirror_pad_reflect():
    return function(lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], "REFLECT"),
                    normal(1, 4, 4, 2))


@case
def mirror_pad_symmetric():
    return function(lambda x: tf.pad(x, [[1, 0], [0, 3]], "SYMMETRIC"), normal(3, 4))


@case
def cumsum():
    return function(lambda x: tf.math.cumsum(x, axis=1, exclusive=True, reverse=True),
                    normal(2, 5, 3))


@case
def cumsum_plain():
    return function(lambda x: tf.math.cumsum(x, axis=-1), normal(4, 6))


@case
def hard_swish_and_squared_difference():
    return function(lambda a, b: tf.math.squared_difference(a * tf.nn.relu6(a + 3.0) / 6.0, b),
                    normal(2, 6), normal(2, 6))


@case
def cnn_float16_weights():
    x = keras.Input((8, 8, 3), batch_size=1)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    h = keras.layers.DepthwiseConv2D(3, padding="same")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    y = keras.layers.Dense(4)(h)
    return keras_model(keras.Model(x, y), normal(1, 8, 8, 3), float16=True)


@case
def custom_transpose_conv_bias():
    """MediaPipe's Convolution2DTransposeBias custom op (segmentation models), which
    LiteRT's Python build runs: a TF-converted TRANSPOSE_CONV with bias rewritten into it
    (inputs image, filter, bias; options padding, stride_w, stride_h as int32)."""
    x = keras.Input((5, 4, 3), batch_size=1)
    y = keras.layers.Conv2DTranspose(4, (3, 2), strides=(2, 2), padding="same")(x)
    blob, xs = keras_model(keras.Model(x, y), normal(1, 5, 4, 3))
    m = schema.ModelT.InitFromPackedBuf(blob, 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "Convolution2DTransposeBias"
    code.version = 1
    m.operatorCodes.append(code)
    for op in m.subgraphs[0].operators:
        c = m.operatorCodes[op.opcodeIndex]
        if max(c.builtinCode, c.deprecatedBuiltinCode) != schema.BuiltinOperator.TRANSPOSE_CONV:
            continue
        o = op.builtinOptions
        padding = 1 if o.padding == schema.Padding.SAME else 2
        op.inputs = [op.inputs[2], op.inputs[1], op.inputs[3]]
        op.builtinOptionsType, op.builtinOptions = 0, None
        op.customOptions = list(struct.pack("<iii", padding, o.strideW, o.strideH))
        op.opcodeIndex = len(m.operatorCodes) - 1
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), xs


def dense_with_pruned_weights(pattern):
    """A Dense layer whose kernel is 75-80 % zeros: at random ("random") or in 1x4 blocks
    along the input axis ("blocks"), which TF's converter stores sparse."""
    x = keras.Input((32,), batch_size=1)
    d = keras.layers.Dense(48)
    m = keras.Model(x, d(x))
    w = rng.normal(size=(32, 48)).astype(np.float32)
    if pattern == "random":
        w[rng.uniform(size=w.shape) < 0.8] = 0
    else:
        w.reshape(8, 4, 48).transpose(0, 2, 1)[rng.uniform(size=(8, 48)) < 0.75] = 0
    d.kernel.assign(w)
    d.bias.assign(rng.normal(size=48).astype(np.float32))
    return m


def sparse(model, dynamic=False):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if dynamic:
        conv.optimizations.append(tf.lite.Optimize.DEFAULT)
    return conv.convert()


@case
def sparse_csr_densify():
    """Random sparsity: a CSR weight tensor decoded by DENSIFY."""
    return sparse(dense_with_pruned_weights("random")), [normal(1, 32)]


@case
def sparse_blocks_fully_connected():
    """Block sparsity: 1x4 blocks read by FULLY_CONNECTED itself (no DENSIFY)."""
    return sparse(dense_with_pruned_weights("blocks")), [normal(1, 32)]


@case
def sparse_dynamic_range_int8():
    """Dynamic range: int8 CSR weights; LiteRT quantises the activations on every call,
    as ferroflow does."""
    return sparse(dense_with_pruned_weights("random"), dynamic=True), [normal(1, 32)]


@case
def int16_activations():
    """16x8 quantisation (int16 activations, int8 weights) with float edges; LiteRT's
    integer kernels and ferroflow's agree to the int16 rounding (1e-3 relative)."""
    x = keras.Input((16,), batch_size=1)
    h = keras.layers.Dense(24, activation="relu")(x)
    y = keras.layers.Dense(5)(h)
    model = keras.Model(x, y)
    for layer in model.layers[1:]:
        layer.bias.assign(rng.normal(size=layer.bias.shape).astype(np.float32) * 0.5)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([normal(1, 16)] for _ in range(64))
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv.convert(), [normal(1, 16)], 1e-3


def recurrent(layer, steps=5, features=4):
    """A Keras recurrent layer: TF's converter makes a WHILE loop over the time steps
    (condition and body subgraphs: LESS/LOGICAL_AND, FULLY_CONNECTED, SPLIT, GATHER...)."""
    x = keras.Input((steps, features), batch_size=1)
    return keras_model(keras.Model(x, layer(x)), normal(1, steps, features))


@case
def while_lstm():
    return recurrent(keras.layers.LSTM(8))


@case
def while_lstm_sequences():
    return recurrent(keras.layers.LSTM(6, return_sequences=True))


@case
def while_gru():
    return recurrent(keras.layers.GRU(8))


@case
def while_simple_rnn():
    return recurrent(keras.layers.SimpleRNN(7, return_sequences=True))


@case
def while_bidirectional_lstm():
    """Two WHILE loops, the backward one over REVERSE_V2 of the sequence."""
    return recurrent(keras.layers.Bidirectional(keras.layers.LSTM(5)))


def int8(model, x):
    """Full-integer int8 with float edges (QUANTIZE ... DEQUANTIZE); ferroflow's int8 path
    gives LiteRT's outputs exactly (tolerance 0)."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([normal(*x.shape)] for _ in range(32))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert(), [x], 0.0


def attention():
    x = keras.Input((5, 8), batch_size=1)
    return keras.Model(x, keras.layers.MultiHeadAttention(2, 4)(x, x))


@case
def attention_int8():
    return int8(attention(), normal(1, 5, 8))


@case
def attention_float16():
    return keras_model(attention(), normal(1, 5, 8), float16=True)


@case
def layer_norm_int8():
    x = keras.Input((6, 8), batch_size=1)
    return int8(keras.Model(x, keras.layers.LayerNormalization()(x)), normal(1, 6, 8))


@case
def transpose_conv_prelu_int8():
    x = keras.Input((5, 5, 3), batch_size=1)
    h = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    p = keras.layers.PReLU(shared_axes=[1, 2])
    m = keras.Model(x, p(h))
    p.alpha.assign(rng.uniform(0.05, 0.5, size=p.alpha.shape).astype(np.float32))
    return int8(m, normal(1, 5, 5, 3))


def builtins(blob):
    """The op names in the file, as LiteRT reports them."""
    interp = Interpreter(model_content=blob)
    return sorted({d["op_name"] if d["op_name"] != "CUSTOM" else "CUSTOM(%s)" % d.get("custom_name", "?")
                   for d in interp._get_ops_details()})


def run_litert(blob, xs):
    try:
        interp = Interpreter(model_content=blob)
        interp.allocate_tensors()
    except RuntimeError:
        # XNNPACK cannot take every kernel (hybrid sparse FULLY_CONNECTED): LiteRT's
        # builtin kernels then, as LiteRT itself falls back on a device without it.
        from ai_edge_litert.interpreter import OpResolverType
        interp = Interpreter(model_content=blob,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), xs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


manifest = {}
for name, build in CASES.items():
    blob, xs, *tolerance = build()
    ys = run_litert(blob, xs)
    base = os.path.join(OUT, f"op_{name}")
    with open(base + ".tflite", "wb") as f:
        f.write(blob)
    for i, x in enumerate(xs):
        np.save(f"{base}_x{'' if i == 0 else i}.npy", x)
    for i, y in enumerate(ys):
        np.save(f"{base}_y{'' if i == 0 else i}.npy", y)
    manifest[name] = {"inputs": len(xs), "outputs": len(ys), "builtins": builtins(blob),
                      "tolerance": tolerance[0] if tolerance else 1e-5}
    print(name, len(blob), "bytes", manifest[name]["builtins"], [y.shape for y in ys])
with open(os.path.join(OUT, "ops_manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")
