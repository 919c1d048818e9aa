#!/usr/bin/env python3
"""Loads every `.keras` file ferroflow wrote into a directory with Python Keras 3
(`keras.saving.load_model`) and checks Keras's predictions against ferroflow's.

    FERROFLOW_KERAS_EXPORT_DIR=DIR cargo test -p ferroflow-keras --test keras_files
    python3 tools/check_keras_roundtrip.py DIR

Each NAME.keras comes with NAME_x<i>.npy inputs and NAME_y<i>.npy, ferroflow's outputs.
"""
import glob
import warnings
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    d = sys.argv[1]
    files = sorted(glob.glob(os.path.join(d, "*.keras")))
    if not files:
        sys.exit(f"no .keras files in {d}")
    bad = 0
    for path in files:
        name = os.path.basename(path)[:-len(".keras")]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = keras.saving.load_model(path)
        skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
        xs = [np.load(p) for p in sorted(glob.glob(os.path.join(d, f"{name}_x*.npy")))]
        want = [np.load(p) for p in sorted(glob.glob(os.path.join(d, f"{name}_y*.npy")))]
        # NumPy unicode arrays (string inputs) go in as string tensors.
        xs = [tf.constant(x) if x.dtype.kind in "US" else x for x in xs]
        got = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        got = got if isinstance(got, (list, tuple)) else [got]
        diff = max(float(np.max(np.abs(g - w) / np.maximum(np.abs(w), 1.0))) for g, w in zip(got, want))
        compiled = getattr(model, "optimizer", None) is not None and getattr(model, "compiled", False)
        ok = len(got) == len(want) and diff <= 1e-4 and not skipped
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(got)} output(s), max relative difference "
              f"{diff:.2e}{', compiled (' + type(model.optimizer).__name__ + ', iterations ' + str(int(model.optimizer.iterations.numpy())) + ')' if compiled else ''}"
              f"{''.join('; ' + s for s in skipped)}")
    if bad:
        sys.exit(f"{bad} model(s) differ")
    print(f"Keras {keras.__version__} loads all {len(files)} ferroflow .keras files with the same predictions")


if __name__ == "__main__":
    main()
