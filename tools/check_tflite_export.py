"""Checks ferroflow's .tflite exports in the official LiteRT interpreter.

    python tools/check_tflite_export.py DIR [TOLERANCE]

DIR holds NAME.tflite, NAME_x.npy (NAME_x1.npy... for further inputs, in the model's input
order) and NAME_y.npy, ferroflow's own prediction. Each model is loaded by ai-edge-litert's
Interpreter, resized to the batch of NAME_x.npy, run, and its first output compared with
NAME_y.npy (max absolute difference <= TOLERANCE, default 1e-5). For int8 models, float
inputs are quantised with the model's input parameters, int8 outputs dequantised, and the
outputs must be identical (NAME_y.npy then comes from ferroflow's interpreter on the same
file, whose int8 kernels reproduce LiteRT's). Exits non-zero on any failure.
"""
import glob
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from litert_io import from_output, to_input

directory = sys.argv[1]
tolerance = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5
failures = 0
models = sorted(glob.glob(os.path.join(directory, "*.tflite")))
if not models:
    sys.exit(f"no .tflite files in {directory}")
for path in models:
    name = os.path.splitext(os.path.basename(path))[0]
    xs = []
    while True:
        suffix = "" if not xs else str(len(xs))
        f = os.path.join(directory, f"{name}_x{suffix}.npy")
        if not os.path.exists(f):
            break
        xs.append(np.load(f))
    want = np.load(os.path.join(directory, f"{name}_y.npy"))
    interp = Interpreter(model_path=path)
    details = interp.get_input_details()
    if len(details) != len(xs):
        print(f"FAIL {name}: LiteRT sees {len(details)} inputs, {len(xs)} given")
        failures += 1
        continue
    for d, x in zip(details, xs):
        interp.resize_tensor_input(d["index"], x.shape)
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), xs):
        interp.set_tensor(d["index"], to_input(x, d))
    interp.invoke()
    out = interp.get_output_details()[0]
    got = from_output(interp.get_tensor(out["index"]), out)
    allowed = 0.0 if out["dtype"] == np.int8 else tolerance
    ops = [o["op_name"] for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]
    diff = float(np.abs(got.astype(np.float32) - want).max()) if got.shape == want.shape else float("inf")
    ok = diff <= allowed
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: shape {got.shape}, max |LiteRT - ferroflow| = {diff:.3g} (allowed {allowed:.3g}), ops {ops}")
sys.exit(1 if failures else 0)
