"""Checks ferroflow's ONNX import against onnxruntime's outputs.

    python tools/check_onnx_import.py --ff target/release/ferroflow DIR [DIR...]

Each DIR holds NAME.onnx, NAME_x0.npy... and NAME_y0.npy... (onnxruntime's outputs, from
tools/make_onnx_import_fixtures.py or committed fixtures). `ferroflow predict --model
NAME.onnx` runs each, one --input per graph input in order, and every output must match:
max |diff| / max |y| within 1e-4. Exits non-zero on any failure.

With --tflite, each model also makes the round trip ONNX -> ferroflow -> .tflite
(`ferroflow convert --model NAME.onnx --to tflite`), and LiteRT's outputs on the same
inputs must match onnxruntime's within the same tolerance. Models with If/Loop, whose
branch is picked at run time, must be refused by name instead.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ff", required=True)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--tflite", action="store_true", help="also check the ONNX -> TFLite round trip in LiteRT")
    args = ap.parse_args()
    ok = True
    count = 0
    work = tempfile.mkdtemp()
    for d in args.dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.onnx"))):
            name = os.path.splitext(os.path.basename(path))[0]
            xs = sorted(glob.glob(os.path.join(d, f"{name}_x*.npy")), key=lambda p: int(p.rsplit("_x", 1)[1][:-4]))
            ys = sorted(glob.glob(os.path.join(d, f"{name}_y*.npy")), key=lambda p: int(p.rsplit("_y", 1)[1][:-4]))
            if not ys:
                continue
            count += 1
            out = os.path.join(work, f"{name}.npy")
            cmd = [args.ff, "predict", "--model", path, *sum((["--input", x] for x in xs), []), "--output", out]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                ok = False
                print(f"FAIL {name}: ferroflow predict failed:\n{run.stderr.strip()}")
                continue
            worst = 0.0
            for i, y in enumerate(ys):
                got = np.load(out if i == 0 else os.path.join(work, f"{name}_{i}.npy"))
                want = np.load(y)
                if got.shape != want.shape:
                    ok = False
                    worst = float("inf")
                    print(f"FAIL {name}: output {i} has shape {got.shape}, onnxruntime's {want.shape}")
                    break
                scale = max(float(np.abs(want).max()), 1e-6)
                worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) / scale)
            good = worst <= args.tolerance
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {name}: {len(ys)} output(s), max |diff| / max |y| = {worst:.2e}")
            if args.tflite:
                ok &= round_trip(args, path, name, xs, ys, work)
    if count == 0:
        sys.exit("no ONNX fixtures found")
    if not ok:
        sys.exit("ONNX import check failed")
    print(f"all {count} imported ONNX models match onnxruntime")


def round_trip(args, path, name, xs, ys, work):
    """ONNX -> .tflite with ferroflow, run in LiteRT, compared with onnxruntime's outputs."""
    from ai_edge_litert.interpreter import Interpreter

    lite = os.path.join(work, f"{name}.tflite")
    run = subprocess.run([args.ff, "convert", "--model", path, "--to", "tflite", "--output", lite],
                         capture_output=True, text=True)
    if run.returncode != 0:
        refused = "If/Loop" in run.stderr
        print(f"{'ok  ' if refused else 'FAIL'} {name} -> tflite: refused: {run.stderr.strip().splitlines()[0]}")
        return refused
    interp = Interpreter(model_path=lite)
    inputs = [np.load(x) for x in xs]
    details = interp.get_input_details()
    if len(details) != len(inputs):
        print(f"FAIL {name} -> tflite: LiteRT sees {len(details)} inputs, {len(inputs)} given")
        return False
    for d, x in zip(details, inputs):
        interp.resize_tensor_input(d["index"], x.shape)
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], x.astype(d["dtype"]))
    interp.invoke()
    outs = interp.get_output_details()
    worst = 0.0
    for i, y in enumerate(ys):
        want = np.load(y)
        got = interp.get_tensor(outs[i]["index"])
        if got.shape != want.shape:
            print(f"FAIL {name} -> tflite: output {i} has shape {got.shape}, onnxruntime's {want.shape}")
            return False
        scale = max(float(np.abs(want).max()), 1e-6)
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) / scale)
    good = worst <= args.tolerance
    ops = len([o for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"])
    print(f"{'ok  ' if good else 'FAIL'} {name} -> tflite in LiteRT: {len(ys)} output(s), {ops} ops, max |diff| / max |y| = {worst:.2e}")
    return good


if __name__ == "__main__":
    main()
