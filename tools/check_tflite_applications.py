#!/usr/bin/env python3
"""TFLite coverage of `keras.applications`: TF's own converter, four modes, ferroflow
against the official LiteRT interpreter.

    python3 tools/check_tflite_applications.py --ff target/release/ferroflow DIR
        [--models mobilenetv2,resnet50] [--modes float32,int8] [--size 224] [--keep]

Each model is built with `weights=None` and a fixed seed, with non-trivial BatchNorm
statistics, then converted by `tf.lite.TFLiteConverter` as:

- `float32`: the plain conversion;
- `float16`: `supported_types=[tf.float16]` (FLOAT16 weights feeding DEQUANTIZE);
- `dynamic`: `optimizations=[DEFAULT]` alone (int8 weights, hybrid kernels);
- `int8`: full integer with a representative dataset, int8 input and output.

The same two images (values 0-255) run in LiteRT (`ai-edge-litert`, default delegate) and
in `ferroflow predict`. Allowed: max |LiteRT - ferroflow| <= 1e-4 * max |LiteRT| for
float32 and float16; identical int8 outputs for int8. Dynamic range: the hybrid kernels
quantise activations on every call, and ferroflow quantises them as LiteRT does
(`ferroflow-lite/src/hybrid.rs`); but where the float sums before a quantisation differ
in their last bit, a value can round to the neighbouring step, and such flips spread
through the layers. The bound is one int8 step of the output's range (max |y| / 127) or,
where LiteRT's own dynamic-range output is further than that from its float32 output,
that distance: ferroflow is then no further from LiteRT than LiteRT's quantisation is
from float.

The other direction (modes `ff_float32` and `ff_int8`): the Keras model is saved as
`.keras`, `ferroflow convert` exports it (int8 calibrated on the same 8 images), and LiteRT
runs the export: float32 against Keras's own prediction (1e-4 relative, and `ferroflow
predict` of the `.keras` file too), int8 identical to `ferroflow predict` on the same file.

Float modes compare logits (a softmax over random weights is nearly flat and would hide
differences); int8 keeps the softmax head the applications ship with. Prints one line per
model and mode; exits non-zero on any failure. Files go to DIR (removed unless --keep).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from litert_io import to_input  # noqa: E402

APPS = keras.applications
MODELS = {
    "mobilenetv2": APPS.MobileNetV2,
    "mobilenetv3small": APPS.MobileNetV3Small,
    "mobilenetv3large": APPS.MobileNetV3Large,
    "efficientnetb0": APPS.EfficientNetB0,
    "efficientnetv2b0": APPS.EfficientNetV2B0,
    "resnet50": APPS.ResNet50,
    "densenet121": APPS.DenseNet121,
}
MODES = ["float32", "float16", "dynamic", "int8", "ff_float32", "ff_int8"]


def build(name, size, rng, softmax):
    keras.utils.set_random_seed(7)
    head = {} if softmax else {"classifier_activation": None}
    model = MODELS[name](weights=None, input_shape=(size, size, 3), **head)
    for w in model.weights:
        if w.path.endswith("moving_mean"):
            w.assign(rng.normal(0, 0.1, size=w.shape).astype("float32"))
        elif w.path.endswith("moving_variance"):
            w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))
    return model


def convert(model, mode, calibration):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[None]] for c in calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def litert(path, x):
    """LiteRT's raw output (int8 stays int8) and the output's quantisation."""
    interp = Interpreter(model_path=path)
    d = interp.get_input_details()[0]
    interp.resize_tensor_input(d["index"], x.shape)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], to_input(x, d))
    interp.invoke()
    out = interp.get_output_details()[0]
    return interp.get_tensor(out["index"]), out["quantization"]


def ferroflow(ff, *args):
    """Runs the ferroflow CLI; its last error line when it fails."""
    run = subprocess.run([ff, *args], capture_output=True, text=True)
    if run.returncode != 0:
        return (run.stderr.strip().splitlines() or ["(no message)"])[-1]
    return None


def predict(ff, path, x_path, y_path):
    """`ferroflow predict` (float input quantised with the input's own parameters, as
    litert_io.to_input does; int8 outputs dequantised)."""
    error = ferroflow(ff, "predict", "--model", path, "--input", x_path, "--output", y_path)
    return (None, error) if error else (np.load(y_path), None)


def compare_int8(got, want, scale, zero_point):
    """(ok, detail): ferroflow's dequantised output against LiteRT's int8 one."""
    if got.shape != want.shape:
        return False, f"shape {got.shape} against {want.shape}"
    steps = np.abs(np.round(got / scale + zero_point) - want.astype(np.float32))
    detail = f"max |LiteRT - ferroflow| = {steps.max():g} steps, {int((steps > 0).sum())} of {steps.size} differ"
    return steps.max() == 0, detail


def compare_float(got, want, allowed_of_peak, what="LiteRT - ferroflow"):
    """(ok, detail) for float outputs; `allowed_of_peak(peak)` is the bound."""
    peak = float(np.abs(want).max())
    if got.shape != want.shape:
        return False, f"shape {got.shape} against {want.shape}"
    diff = float(np.abs(got - want).max())
    allowed = allowed_of_peak(peak)
    return diff <= allowed, f"max |{what}| = {diff:.3g} (allowed {allowed:.3g}, max |y| {peak:.3g})"


class Run:
    """One model's files and checks."""

    def __init__(self, args, name, x, calibration):
        self.args, self.name, self.x, self.calibration = args, name, x, calibration
        self.models = {}
        self.float_reference = None
        np.save(self.path("x.npy"), x)
        np.save(self.path("calibration.npy"), calibration)

    def path(self, suffix):
        return os.path.join(self.args.dir, f"{self.name}_{suffix}")

    def model(self, softmax):
        if softmax not in self.models:
            self.models[softmax] = build(self.name, self.args.size, np.random.default_rng(1), softmax)
        return self.models[softmax]

    def tf_converted(self, mode):
        """TF's converter in `mode`, LiteRT against ferroflow on the file."""
        path = self.path(f"{mode}.tflite")
        with open(path, "wb") as f:
            f.write(convert(self.model(mode == "int8"), mode, self.calibration))
        want, (scale, zero_point) = litert(path, self.x)
        got, error = predict(self.args.ff, path, self.path("x.npy"), self.path(f"{mode}_y.npy"))
        if error:
            return False, f"ferroflow predict failed: {error}"
        if mode == "int8":
            return compare_int8(got, want, scale, zero_point)
        if mode == "float32":
            self.float_reference = want
        if mode == "dynamic":
            if self.float_reference is None:
                ref = self.path("float32_ref.tflite")
                with open(ref, "wb") as f:
                    f.write(convert(self.model(False), "float32", self.calibration))
                self.float_reference = litert(ref, self.x)[0]
            quantisation_error = float(np.abs(want - self.float_reference).max())
            return compare_float(got, want, lambda peak: max(peak / 127.0, quantisation_error))
        return compare_float(got, want, lambda peak: 1e-4 * peak)

    def ferroflow_exported(self, mode):
        """ferroflow's export of the `.keras` file, run in LiteRT."""
        int8 = mode == "ff_int8"
        keras_path = self.path("int8.keras" if int8 else "float.keras")
        model = self.model(int8)
        if not os.path.exists(keras_path):
            model.save(keras_path)
        path = self.path(f"{mode}.tflite")
        extra = ["--quantize", "int8", "--representative", self.path("calibration.npy")] if int8 else []
        error = ferroflow(self.args.ff, "convert", "--model", keras_path, "--to", "tflite",
                          "--output", path, *extra)
        if error:
            return False, f"ferroflow convert failed: {error}"
        try:
            want, (scale, zero_point) = litert(path, self.x)
        except Exception as e:  # noqa: BLE001 - LiteRT's refusal is the finding
            return False, f"LiteRT refuses ferroflow's export: {e}"
        if int8:
            got, error = predict(self.args.ff, path, self.path("x.npy"), self.path(f"{mode}_y.npy"))
            if error:
                return False, f"ferroflow predict failed: {error}"
            return compare_int8(got, want, scale, zero_point)
        keras_y = model.predict(self.x, verbose=0)
        ok, detail = compare_float(want, keras_y, lambda peak: 1e-4 * peak, "LiteRT - Keras")
        # ferroflow's own run of the .keras file, against Keras as well.
        got, error = predict(self.args.ff, keras_path, self.path("x.npy"), self.path("keras_y.npy"))
        if error:
            return False, f"{detail}; ferroflow predict of the .keras failed: {error}"
        ok2, detail2 = compare_float(got, keras_y, lambda peak: 1e-4 * peak, "ferroflow - Keras")
        return ok and ok2, f"{detail}; .keras in ferroflow: {detail2}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--ff", required=True, help="the ferroflow binary")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, args.size, args.size, 3)).astype(np.float32)
    calibration = rng.uniform(0, 255, size=(8, args.size, args.size, 3)).astype(np.float32)
    failures = 0
    for name in args.models.split(","):
        run = Run(args, name, x, calibration)
        for mode in args.modes.split(","):
            t0 = time.time()
            check = run.ferroflow_exported if mode.startswith("ff_") else run.tf_converted
            ok, detail = check(mode)
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name} {mode}: {detail} [{time.time() - t0:.1f} s]", flush=True)
        del run
        keras.backend.clear_session()
        if not args.keep:
            for f in os.listdir(args.dir):
                if f.startswith(name + "_"):
                    os.remove(os.path.join(args.dir, f))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
