"""Makes the fixtures of `ferroflow inspect`'s tests: a TFLite file with operators
ferroflow cannot run (a magnitude spectrum: RFFT2D with COMPLEX64 tensors and
COMPLEX_ABS, as TF's converter writes tf.signal.rfft), and, for it and the TF-converted
fixtures of ferroflow-lite, what LiteRT itself reports of each file (input and output
names, dtypes, shape signatures, quantisation; the operator list) as NAME.litert.json.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/make_inspect_fixtures.py

Writes into crates/ferroflow/tests/fixtures. Needs tensorflow and ai-edge-litert.
"""
import json
import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "ferroflow", "tests", "fixtures")
LITE = os.path.join(ROOT, "crates", "ferroflow-lite", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)


class SpectrumModel(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.abs(tf.signal.rfft(x))}


def complex_spectrum():
    m = SpectrumModel()
    fn = m.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], m)
    path = os.path.join(OUT, "spectrum_c64.tflite")
    with open(path, "wb") as f:
        f.write(conv.convert())
    return path


def litert_view(path):
    interp = Interpreter(model_path=path)

    def tensor(d):
        scale, zero = d["quantization"]
        return {
            "name": d["name"],
            "dtype": np.dtype(d["dtype"]).name,
            "shape_signature": [int(x) for x in d["shape_signature"]],
            "scale": float(scale),
            "zero_point": int(zero),
        }

    return {
        "inputs": [tensor(d) for d in interp.get_input_details()],
        "outputs": [tensor(d) for d in interp.get_output_details()],
        "ops": [o["op_name"] for o in interp._get_ops_details()],
    }


def main():
    paths = [complex_spectrum()]
    paths += [os.path.join(LITE, n + ".tflite") for n in ("mlp_int8", "cnn_int8", "multi_input_int8")]
    for p in paths:
        name = os.path.basename(p)[: -len(".tflite")]
        with open(os.path.join(OUT, name + ".litert.json"), "w") as f:
            json.dump(litert_view(p), f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
