"""Makes the int8 exactness fixtures: Keras models converted by TensorFlow's converter to
full-integer int8 (int8 input and output), with int8 inputs and the int8 outputs LiteRT
gives on them (its default interpreter, XNNPACK included). ferroflow's interpreter must
reproduce every output byte (crates/ferroflow-lite/tests/int8_exact.rs).

    TF_CPP_MIN_LOG_LEVEL=3 python tools/make_int8_fixtures.py [OUT_DIR]

Writes NAME.tflite, NAME_x.npy (int8, several rows run one at a time) and NAME_y.npy
(int8) into OUT_DIR (default crates/ferroflow-lite/tests/fixtures/int8). Needs
tensorflow, keras and ai-edge-litert.
"""
import os
import sys

import numpy as np
import tensorflow as tf
import keras
from ai_edge_litert.interpreter import Interpreter

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "ferroflow-lite", "tests", "fixtures", "int8")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(11)
keras.utils.set_random_seed(11)
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def mobilenet_v2():
    """MobileNetV2 (alpha 0.35, 96x96, random weights) up to its pooled features (1280
    values a row, so a drift anywhere shows): CONV_2D, DEPTHWISE_CONV_2D with ReLU6, ADD,
    PAD, MEAN."""
    m = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                       include_top=False, pooling="avg")
    return m, lambda n: rng.uniform(-1, 1, size=(n, 96, 96, 3)).astype(np.float32)


@case
def cnn_pools():
    """Convolutions (strides, dilation, valid/same), max and average pools, concat."""
    x = keras.Input((20, 20, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    a = keras.layers.MaxPooling2D(2)(a)
    b = keras.layers.Conv2D(8, 5, strides=2, padding="same")(x)
    b = keras.layers.AveragePooling2D(3, strides=1, padding="same")(b)
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="valid")(h)
    h = keras.layers.Conv2D(12, 3, dilation_rate=2, activation="relu6")(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    y = keras.layers.Dense(6)(h)
    return keras.Model(x, y), lambda n: rng.normal(size=(n, 20, 20, 3)).astype(np.float32)


@case
def layer_norm_sigmoid():
    """Dense, LayerNormalization (its builtin decomposition), sigmoid."""
    x = keras.Input((16,))
    h = keras.layers.Dense(32, activation="relu")(x)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.Dense(8)(h)
    y = keras.layers.Activation("sigmoid")(h)
    return keras.Model(x, y), lambda n: rng.normal(size=(n, 16)).astype(np.float32)


def convert(model, sample):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([sample(1)] for _ in range(64))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def main():
    for build in CASES:
        name = build.__name__
        model, sample = build()
        blob = convert(model, sample)
        interp = Interpreter(model_content=blob)
        interp.allocate_tensors()
        d_in = interp.get_input_details()[0]
        d_out = interp.get_output_details()[0]
        scale, zp = d_in["quantization"]
        xf = sample(4 if name == "mobilenet_v2" else 8)
        x = np.clip(np.round(xf / scale) + zp, -128, 127).astype(np.int8)
        rows = []
        for r in range(x.shape[0]):
            interp.set_tensor(d_in["index"], x[r:r + 1])
            interp.invoke()
            rows.append(interp.get_tensor(d_out["index"]).copy())
        y = np.concatenate(rows, axis=0)
        with open(os.path.join(OUT, name + ".tflite"), "wb") as f:
            f.write(blob)
        np.save(os.path.join(OUT, name + "_x.npy"), x)
        np.save(os.path.join(OUT, name + "_y.npy"), y)
        print(name, len(blob), "bytes, output", y.shape, y.dtype)


main()
