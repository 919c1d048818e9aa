"""`tools/bench_compare.py tflite`, the application part: MobileNetV2 and EfficientNetV2B0
(224x224, random weights) converted by TF's converter to float32 and int8, at batch 1 and
16 on 1 and 2 threads, in ferroflow's interpreter and in LiteRT (XNNPACK, its default
delegate), each LiteRT run in a process of its own. Prints:

  RATIO <model>_<mode>_b<batch>_t<threads>_vs_litert   LiteRT p50 / ferroflow p50 (each the
                                      median over alternating rounds)
  PEAK <fp32|int8>_t<threads> ...     the machine's peak in this run: the best of a 2048^3
                                      product in ferroflow's and LiteRT's FULLY_CONNECTED,
                                      and (fp32) NumPy and TensorFlow on as many threads
  LAYER <row> op<k> ...               the heaviest convolutions of each row: time, achieved
                                      GFLOP/s (GOP/s for int8) and the fraction of the peak

then a table of both latencies and both peak RSS figures.
"""
import json
import os
import subprocess
import sys

APP_MODELS = {"mobilenetv2": "MobileNetV2", "efficientnetv2b0": "EfficientNetV2B0"}
THREADS = (1, 2)
# The peak's product is PEAK_N x PEAK_N x PEAK_N.
PEAK_N = 2048
# Heaviest layers reported per row.
TOP_LAYERS = 3
# Alternating runs of ferroflow and LiteRT per row (BENCH_APP_ROUNDS); each side's p50 is
# the median of its runs.
ROUNDS = int(os.environ.get("BENCH_APP_ROUNDS", "3"))


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def convert(model, paths, input_shape):
    """Writes Keras `model` converted by TF's converter to float32 (`paths["float"]`) and
    full-integer int8 with int8 input and output (`paths["int8"]`), calibrated on uniform
    [-1, 1) inputs of `input_shape` (batch 1)."""
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(3)
    for mode, path in paths.items():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if mode == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: (
                [rng.uniform(-1, 1, size=(1, *input_shape)).astype(np.float32)] for _ in range(8))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        with open(path, "wb") as f:
            f.write(conv.convert())


def model_files(directory, name, build, input_shape):
    """`{mode: path}` of model `name` (made by `build()`) as float32 and int8 .tflite files
    in `directory`, converted on first use."""
    paths = {m: os.path.join(directory, f"{name}_{m}.tflite") for m in ("float", "int8")}
    if not all(os.path.exists(p) for p in paths.values()):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        keras.utils.set_random_seed(3)
        os.makedirs(directory, exist_ok=True)
        convert(build(), paths, input_shape)
    return paths


def app_files(directory, name):
    """keras.applications model `name` at 224x224 (random weights, fixed seed)."""
    import keras
    return model_files(directory, name, lambda: getattr(keras.applications, APP_MODELS[name])(weights=None),
                       (224, 224, 3))


def peak_files(directory):
    """One PEAK_N x PEAK_N Dense layer without bias: at batch PEAK_N, a PEAK_N^3 product."""
    def build():
        import keras
        return keras.Sequential([keras.Input((PEAK_N,)), keras.layers.Dense(PEAK_N, use_bias=False)])
    return model_files(directory, f"peak_fc{PEAK_N}", build, (PEAK_N,))


def litert_latency(path, batch, threads, reps):
    """p50 ms of LiteRT (XNNPACK, its default delegate) on `path` at `batch`, and the peak
    RSS in MiB of the process that ran it (a Python interpreter with only LiteRT and
    NumPy loaded), measured in a child process of its own."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the forking parent.
    code = f"""
import json, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path={path!r}, num_threads={threads})
d = it.get_input_details()[0]
if {batch} != 1:
    it.resize_tensor_input(d["index"], [{batch}, *d["shape"][1:]])
it.allocate_tensors()
d = it.get_input_details()[0]
rng = np.random.default_rng(0)
x = (rng.integers(-128, 128, size=d["shape"]).astype(d["dtype"]) if d["dtype"] == np.int8
     else rng.uniform(-1, 1, size=d["shape"]).astype(np.float32))
it.set_tensor(d["index"], x)
times = []
for _ in range({reps} + 2):
    t = time.perf_counter()
    it.invoke()
    times.append(time.perf_counter() - t)
times = sorted(times[2:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"p50_ms": times[len(times) // 2] * 1e3, "peak_rss_mib": int(hwm.split()[1]) / 1024}}))
"""
    out = subprocess.check_output([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    return json.loads(out.decode().strip().splitlines()[-1])


def reference_matmul_gflops(threads, reps=3):
    """Best GFLOP/s of NumPy and TensorFlow on a float32 PEAK_N^3 product, in a child
    process limited to `threads` threads."""
    code = f"""
import json, os, time
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads(1)
n = {PEAK_N}
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
ta, tb = tf.constant(a), tf.constant(b)
def best(f):
    f()
    t = float("inf")
    for _ in range({reps}):
        s = time.perf_counter(); f(); t = min(t, time.perf_counter() - s)
    return 2 * n ** 3 / t / 1e9
print(json.dumps({{"NumPy": best(lambda: a @ b), "TF": best(lambda: tf.matmul(ta, tb).numpy())}}))
"""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.check_output([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    return json.loads(out.decode().strip().splitlines()[-1])


def ferroflow_bench(exe, path, batch, threads, reps, profile=0):
    """`ferroflow bench tflite` on `path`: its JSON figures."""
    out = subprocess.check_output(
        [exe, "bench", "tflite", "--model", path, "--batch", str(batch), "--threads", str(threads),
         "--reps", str(reps), "--profile", str(profile), "--json"])
    return json.loads(out)


def p50_ms(figures):
    return next(v for k, v in figures.items() if k.endswith("_p50_ms"))


def machine_peaks(exe, directory):
    """{(mode, threads): (rate, {source: rate})}: fp32 GFLOP/s and int8 GOP/s peaks."""
    paths = peak_files(directory)
    flops = 2 * PEAK_N ** 3 / 1e9
    peaks = {}
    for threads in THREADS:
        for mode, path in paths.items():
            by = {"ferroflow": flops / (p50_ms(ferroflow_bench(exe, path, PEAK_N, threads, 3)) / 1e3),
                  "LiteRT": flops / (litert_latency(path, PEAK_N, threads, 3)["p50_ms"] / 1e3)}
            if mode == "float":
                by.update(reference_matmul_gflops(threads))
            peaks[(mode, threads)] = (max(by.values()), by)
            unit = "GFLOP/s" if mode == "float" else "GOP/s"
            parts = ", ".join(f"{k} {v:.1f}" for k, v in by.items())
            print(f"PEAK {'fp32' if mode == 'float' else 'int8'}_t{threads} {max(by.values()):.1f} {unit} "
                  f"(best of a {PEAK_N}^3 product: {parts})", flush=True)
    return peaks


def print_layers(row, figures, peak):
    """LAYER lines for the heaviest layers of a profiled ferroflow run."""
    for layer in figures.get("layers", []):
        unit = "GOP/s" if layer["int8"] else "GFLOP/s"
        shape = "x".join(str(d) for d in layer["output_shape"])
        print(f"LAYER {row} op{layer['index']} {layer['op']} out {shape}: {layer['ms']:.3f} ms, "
              f"{layer['gflops']:.1f} {unit}, {layer['gflops'] / peak:.2f} of peak", flush=True)


def run(exe, directory, reps):
    """The application rows; see the module's doc."""
    peaks = machine_peaks(exe, directory)
    rows = []
    for model in APP_MODELS:
        for mode, path in app_files(directory, model).items():
            for batch in (1, 16):
                n = reps if batch == 1 else max(3, reps // 3)
                for threads in THREADS:
                    # Rounds alternate the two, and each side's figure is its median over
                    # them: on a shared machine a stretch of interference then lands on
                    # one round of each rather than on one side's only run.
                    ours = ferroflow_bench(exe, path, batch, threads, n, profile=TOP_LAYERS)
                    lite = litert_latency(path, batch, threads, n)
                    ff_runs, lite_runs = [p50_ms(ours)], [lite["p50_ms"]]
                    for _ in range(ROUNDS - 1):
                        ff_runs.append(p50_ms(ferroflow_bench(exe, path, batch, threads, n)))
                        lite_runs.append(litert_latency(path, batch, threads, n)["p50_ms"])
                    ff_ms, lite_ms = median(ff_runs), median(lite_runs)
                    name = f"{model}_{mode}_b{batch}_t{threads}"
                    print(f"RATIO {name}_vs_litert {lite_ms / ff_ms:.3f}", flush=True)
                    print_layers(name, ours, peaks[(mode, threads)][0])
                    rows.append((name, ff_ms, lite_ms, ours.get("peak_rss_mib"), lite["peak_rss_mib"]))
    print(f"{'workload':<34} {'ferroflow ms':>12} {'LiteRT ms':>10} {'ff RSS MiB':>11} {'LiteRT RSS MiB':>15}")
    for name, a, b, rss, lrss in rows:
        print(f"{name:<34} {a:>12.2f} {b:>10.2f} {rss:>11.1f} {lrss:>15.1f}")
    print("(peak RSS: ferroflow's bench process; LiteRT's Python process, interpreter and NumPy included)")
    print()
