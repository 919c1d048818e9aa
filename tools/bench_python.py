"""The `python` suite of bench_compare.py: ferroflow's Python package against Keras 3 on
TensorFlow, the same script with the import changed, each in its own process.

- `fit` of the 60k x 784 MLP (Dense 256/128/10, Adam, batch 128): best epoch of 3;
- a batch-1 `model.predict` loop on that model: median ms per call;
- `import ferroflow` against `import tensorflow` in a fresh interpreter: best of 5.

RATIO lines are Keras time / ferroflow time (above 1: ferroflow is faster).
"""

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_package():
    """Installs ferroflow's Python package (release build) into this venv if it is missing."""
    if subprocess.call([sys.executable, "-c", "import ferroflow"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                               os.path.join(ROOT, "crates", "ferroflow-py")])


def fit_mlp(keras, x, y):
    """Fits the 60k x 784 MLP for 3 epochs with `keras` (any module with Keras's API);
    returns the model and its epoch times."""
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=128, epochs=3, verbose=0, callbacks=[Timer()])
    return model, times


def mlp_data():
    import numpy as np
    n = 60_000
    return np.random.default_rng(1).random((n, 784), dtype=np.float32), (np.arange(n) * 7) % 10


def worker(framework):
    """Runs the workload with `framework` (ferroflow or keras) and prints its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if framework == "ferroflow":
        from ferroflow import keras
    else:
        import keras
    x, y = mlp_data()
    model, times = fit_mlp(keras, x, y)
    for i in range(10):
        model.predict(x[i:i + 1], verbose=0)
    calls = []
    for i in range(200):
        t = time.perf_counter()
        model.predict(x[i:i + 1], verbose=0)
        calls.append(time.perf_counter() - t)
    print(json.dumps({"fit_epoch_s": min(times), "predict_b1_ms": statistics.median(calls) * 1e3}))


def import_time(module):
    best = float("inf")
    for _ in range(5):
        out = subprocess.check_output([
            sys.executable, "-c",
            f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        best = min(best, float(out.decode().strip().splitlines()[-1]))
    return best


def run():
    ensure_package()
    figures = {}
    for fw in ("ferroflow", "keras"):
        out = subprocess.check_output([sys.executable, os.path.abspath(__file__), fw])
        figures[fw] = json.loads(out.decode().strip().splitlines()[-1])
    figures["ferroflow"]["import_s"] = import_time("ferroflow")
    figures["keras"]["import_s"] = import_time("tensorflow")
    ff, kr = figures["ferroflow"], figures["keras"]
    print(f"RATIO python_fit_epoch_vs_keras {kr['fit_epoch_s'] / ff['fit_epoch_s']:.3f}")
    print(f"RATIO python_predict_b1_vs_keras {kr['predict_b1_ms'] / ff['predict_b1_ms']:.3f}")
    print(f"RATIO python_import_vs_tensorflow {kr['import_s'] / ff['import_s']:.3f}")
    print()
    print(f"{'workload':<20} {'ferroflow':>12} {'keras/tf':>12}  unit")
    for name, unit in (("fit_epoch_s", "s"), ("predict_b1_ms", "ms"), ("import_s", "s")):
        print(f"{name:<20} {ff[name]:>12.4f} {kr[name]:>12.4f}  {unit}")


if __name__ == "__main__":
    worker(sys.argv[1])
