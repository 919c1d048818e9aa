"""Makes the TFLite interop fixtures: small Keras 3 models converted by TensorFlow's own
TFLiteConverter (float32, dynamic-range and full-integer int8), with inputs and the
outputs LiteRT gives on them.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/make_tflite_fixtures.py [OUT_DIR]

Writes NAME.tflite, NAME_x.npy (input; NAME_x1.npy... for further inputs) and
NAME_y.npy (LiteRT's output, dequantised to float for int8 outputs) into OUT_DIR
(default crates/ferroflow-lite/tests/fixtures). Needs tensorflow and keras.
"""
import os
import sys

import numpy as np
import tensorflow as tf
import keras
from litert_io import from_output, to_input

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "ferroflow-lite", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
keras.utils.set_random_seed(7)


def mlp():
    # Weights of >= 1024 elements, so dynamic-range quantisation applies to them.
    x = keras.Input((32,), name="features")
    h = keras.layers.Dense(64, activation="relu")(x)
    h = keras.layers.Dense(48, activation="tanh")(h)
    y = keras.layers.Dense(10, activation="softmax")(h)
    return keras.Model(x, y, name="mlp"), [rng.normal(size=(4, 32)).astype(np.float32)]


def cnn():
    x = keras.Input((12, 12, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same")(x)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(h)
    h = keras.layers.Conv2D(48, 3, strides=2, padding="valid", activation="relu")(h)
    h = keras.layers.AveragePooling2D(2, padding="same")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    y = keras.layers.Dense(5, activation="softmax")(h)
    model = keras.Model(x, y, name="cnn")
    # Non-trivial BatchNormalization statistics.
    bn = model.layers[2]
    c = bn.moving_mean.shape[0]
    bn.moving_mean.assign(rng.normal(size=c).astype(np.float32) * 0.1)
    bn.moving_variance.assign(rng.uniform(0.5, 1.5, size=c).astype(np.float32))
    bn.gamma.assign(rng.uniform(0.5, 1.5, size=c).astype(np.float32))
    bn.beta.assign(rng.normal(size=c).astype(np.float32) * 0.1)
    return model, [rng.uniform(0, 1, size=(2, 12, 12, 3)).astype(np.float32)]


def multi_input():
    a = keras.Input((6,), name="a")
    b = keras.Input((4,), name="b")
    ha = keras.layers.Dense(8, activation="relu")(a)
    hb = keras.layers.Dense(8)(b)
    s = keras.layers.Add()([ha, hb])
    c = keras.layers.Concatenate()([s, hb])
    y = keras.layers.Dense(3)(c)
    xs = [rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)]
    return keras.Model([a, b], y, name="multi_input"), xs


def conv_gelu_layernorm():
    # TF lowers Flatten on a dynamic batch to SHAPE/STRIDED_SLICE/PACK/RESHAPE.
    x = keras.Input((10, 10, 3), name="image")
    h = keras.layers.Conv2D(4, 3, activation="gelu")(x)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.Dropout(0.1)(h)
    y = keras.layers.Dense(3)(h)
    return keras.Model(x, y, name="conv_gelu_layernorm"), [rng.normal(size=(2, 10, 10, 3)).astype(np.float32)]


def sequence():
    # Conv1D becomes EXPAND_DIMS/CONV_2D/RESHAPE; Permute a TRANSPOSE; REDUCE_PROD in shapes.
    x = keras.Input((7, 5), name="sequence")
    h = keras.layers.Conv1D(6, 3, padding="same", activation="relu")(x)
    h = keras.layers.Dense(4)(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    h = keras.layers.Reshape((2, 2))(h)
    h = keras.layers.Permute((2, 1))(h)
    y = keras.layers.Flatten()(h)
    return keras.Model(x, y, name="sequence"), [rng.normal(size=(3, 7, 5)).astype(np.float32)]


def int_embedding():
    # Integer ids: GATHER guarded by LESS/SELECT_V2 for negative ids.
    x = keras.Input((6,), dtype="int32", name="ids")
    h = keras.layers.Embedding(30, 8)(x)
    h = keras.layers.GlobalAveragePooling1D()(h)
    y = keras.layers.Dense(2, activation="sigmoid")(h)
    return keras.Model(x, y, name="int_embedding"), [rng.integers(0, 30, size=(3, 6)).astype(np.int32)]


def convert(model, xs, mode):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("dynamic", "int8"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        names = [t.name for t in model.inputs]

        def sample(x):
            shape = (1,) + x.shape[1:]
            if x.min() < 0:
                return rng.normal(size=shape).astype(np.float32)
            return rng.uniform(0, 1, size=shape).astype(np.float32)

        def rep():
            # Keyed by input name: the converter's input order may differ from Keras's.
            for _ in range(32):
                yield {n: sample(x) for n, x in zip(names, xs)}
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def run_litert(blob, xs):
    """Runs the model one row at a time (batch 1, as converted) and stacks the rows."""
    interp = tf.lite.Interpreter(model_content=blob)
    interp.allocate_tensors()
    ins = interp.get_input_details()
    out = interp.get_output_details()[0]
    rows = []
    for r in range(xs[0].shape[0]):
        for d, x in zip(ins, xs):
            interp.set_tensor(d["index"], to_input(x[r:r + 1], d))
        interp.invoke()
        rows.append(from_output(interp.get_tensor(out["index"]), out))
    return np.concatenate(rows, axis=0), [d["name"] for d in ins]


for build, modes in ((mlp, ("float", "dynamic", "int8")), (cnn, ("float", "dynamic", "int8")),
                     (multi_input, ("float", "dynamic", "int8")), (conv_gelu_layernorm, ("float",)),
                     (sequence, ("float",)), (int_embedding, ("float",))):
    model, xs = build()
    for mode in modes:
        name = f"{model.name}_{mode}"
        blob = convert(model, xs, mode)
        # LiteRT may order inputs differently from Keras; feed in its order.
        interp = tf.lite.Interpreter(model_content=blob)
        order = [d["name"] for d in interp.get_input_details()]
        keras_names = [t.name for t in model.inputs]
        ordered = []
        for n in order:
            match = [i for i, k in enumerate(keras_names) if n.endswith(f"_{k}:0") or n == k]
            ordered.append(xs[match[0]] if match else xs[len(ordered)])
        y, _ = run_litert(blob, ordered)
        with open(os.path.join(OUT, name + ".tflite"), "wb") as f:
            f.write(blob)
        for i, x in enumerate(ordered):
            np.save(os.path.join(OUT, f"{name}_x{'' if i == 0 else i}.npy"), x)
        np.save(os.path.join(OUT, name + "_y.npy"), y.astype(np.float32))
        print(name, len(blob), "bytes, inputs", order, "output", y.shape)
