"""The `web` suite of bench_compare.py: ferroflow-wasm against TF.js's WASM backend.

Batch-1 latency of the demo CNN and of MobileNetV2 (alpha 1.0, 224x224, random weights
from keras.applications, fixed seed) in the same headless Chromium run (Debian's, driven
by playwright-core), both runtimes with SIMD: single-threaded, and TF.js threaded on 2
threads; plus the bytes a page downloads for each runtime (wasm + JS, gzip -9).

The same Keras model feeds both: ferroflow loads its `.keras` file, TF.js the tensorflowjs
converter's graph model of it (Keras `export` -> SavedModel -> `convert_tf_saved_model`).
"""
import json
import os
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "target", "bench-web")
BENCH_JS = os.path.join(ROOT, "web-tests", "bench")
BUNDLE = os.path.join(ROOT, "target", "ferroflow-web")
# The converter's own pins (jax, flax, decision forests) are not needed for graph models.
TFJS_PIP = ["tensorflowjs==4.22.0", "tf-keras", "tensorflow-hub", "six", "importlib_resources"]


def to_tfjs(keras_path, out_dir):
    """Converts a .keras file to a TF.js graph model (run in a subprocess: the converter
    imports modules it never uses for this path, stood in for here)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # noqa: F401 (imported before the stand-ins, which it must not see)
    for name in ("tensorflow_decision_forests", "jax", "flax", "jax.experimental",
                 "jax.experimental.jax2tf"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as tfjs
    saved = out_dir + "_savedmodel"
    keras.saving.load_model(keras_path).export(saved, format="tf_saved_model", verbose=False)
    tfjs.convert_tf_saved_model(saved, out_dir, signature_def="serve", saved_model_tags="serve")


def prepare_models(ff_exe):
    """The demo CNN and MobileNetV2 as .keras files and TF.js graph models."""
    os.makedirs(MODELS, exist_ok=True)
    cnn = os.path.join(MODELS, "demo_cnn.keras")
    if not os.path.exists(cnn):
        trained = os.path.join(MODELS, "demo_cnn_saved")
        subprocess.check_call([ff_exe, "demo", "--model", "cnn", "--epochs", "5", "--save", trained],
                              cwd=ROOT, stdout=subprocess.DEVNULL)
        subprocess.check_call([ff_exe, "convert", "--model", trained, "--to", "keras", "--output", cnn],
                              cwd=ROOT, stdout=subprocess.DEVNULL)
    mobilenet = os.path.join(MODELS, "mobilenetv2.keras")
    if not os.path.exists(mobilenet):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        keras.utils.set_random_seed(3)
        keras.applications.MobileNetV2(weights=None).save(mobilenet)
    if subprocess.call([sys.executable, "-c", "import tensorflowjs"], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL) != 0:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *TFJS_PIP])
    for path in (cnn, mobilenet):
        out = path[:-len(".keras")] + "_tfjs"
        if not os.path.exists(os.path.join(out, "model.json")):
            subprocess.check_call([sys.executable, os.path.abspath(__file__), "_tfjs", path, out],
                                  stdout=subprocess.DEVNULL)


def run(ff_exe, reps):
    """Builds the bundle, prepares the models, times both runtimes and prints RATIO lines."""
    subprocess.check_call(["bash", os.path.join(ROOT, "tools", "build_wasm.sh"), BUNDLE], cwd=ROOT)
    if not os.path.isdir(os.path.join(BENCH_JS, "node_modules")):
        subprocess.check_call(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH_JS)
    prepare_models(ff_exe)
    out = subprocess.check_output(["node", os.path.join(BENCH_JS, "bench.mjs"), "--bundle", BUNDLE,
                                   "--models", MODELS, "--reps", str(reps)], cwd=ROOT)
    res = json.loads(out)
    lat = res["latency"]
    rows = []
    for model in ("demo_cnn", "mobilenetv2"):
        ff = lat[f"{model}_ferroflow_t1"]["median"]
        tf1 = lat[f"{model}_tfjs_t1"]["median"]
        tf2 = lat[f"{model}_tfjs_t2"]["median"]
        print(f"RATIO web_{model}_b1_single_thread_vs_tfjs_wasm {tf1 / ff:.3f}")
        # ferroflow-wasm has no threaded build yet: its single thread against TF.js's two.
        print(f"RATIO web_{model}_b1_threaded_vs_tfjs_wasm {tf2 / ff:.3f}")
        rows.append((model, ff, tf1, tf2))
    b = res["bytes"]
    print(f"RATIO web_runtime_download_bytes_vs_tfjs {b['tfjs_simd'] / b['ferroflow']:.3f}")
    print()
    print(f"{'batch-1 latency (median ms)':<28} {'ferroflow 1T':>12} {'TF.js 1T':>10} {'TF.js 2T':>10}")
    for model, ff, tf1, tf2 in rows:
        print(f"{model:<28} {ff:>12.2f} {tf1:>10.2f} {tf2:>10.2f}")
    print(f"runtime download (gzip): ferroflow {b['ferroflow'] / 1024:.0f} KiB "
          f"(ferroflow.js, glue, wasm); TF.js {b['tfjs_simd'] / 1024:.0f} KiB (tfjs-core, "
          f"tfjs-converter, tfjs-backend-wasm, SIMD wasm), {b['tfjs_threaded_simd'] / 1024:.0f} KiB threaded")
    print("ferroflow-wasm has no threaded build: the threaded rows compare its one thread with TF.js's two")


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "_tfjs":
    to_tfjs(sys.argv[2], sys.argv[3])
