#!/usr/bin/env python3
"""Runs one workload suite in ferroflow and in the reference frameworks, in the same run.

    python3 tools/bench_compare.py core    # tensor kernels vs NumPy and TensorFlow
    python3 tools/bench_compare.py train   # MLP train step vs TensorFlow (and PyTorch)
    python3 tools/bench_compare.py function  # eager vs compiled steps vs tf.function(jit_compile=True)
    python3 tools/bench_compare.py tflite  # MobileNetV2 (float, int8; 1 and 2 threads) and the
                                           # demo CNN .tflite (float, int8) at batch 1 vs LiteRT
    python3 tools/bench_compare.py serve   # ferroflow serve vs a Python Keras HTTP server, under wrk;
                                           # then REST vs gRPC at batch 1/32, 8/64 connections
    python3 tools/bench_compare.py distribute  # fit of a 60k x 784 MLP on 1 and 2 MPI workers vs
                                           # TF MultiWorkerMirroredStrategy and PyTorch DDP
    python3 tools/bench_compare.py recsys  # train step of a 1M / 10M x 64 embedding table (LazyAdam,
                                           # Adagrad) vs TensorFlow: step time, peak memory
    python3 tools/bench_compare.py web     # ferroflow-wasm vs TF.js's WASM backend in headless
                                           # Chromium: demo CNN and MobileNetV2 at batch 1, bytes
    python3 tools/bench_compare.py python  # from Python: fit of the 60k x 784 MLP, a batch-1
                                           # predict loop, import time vs Keras 3 / TensorFlow

PyTorch joins the `train` comparison when it is importable (it is large to install, so the
script does not install it; `pip install torch` into .venv-bench to include it).

Prints `RATIO <name> <value>` lines, where value = reference_time / ferroflow_time (above 1
means ferroflow is faster), then the raw figures. References run in a venv that this script
creates on first use (.venv-bench, with numpy and tensorflow-cpu) unless the current
Python already has them.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv-bench")
SUITES = ("core", "train", "keras", "data", "function", "tflite", "serve", "web", "onnx", "distribute", "recsys", "python")
# Figures where smaller is better (times); the rest are rates.
LOWER_IS_BETTER = {"tiny_add", "mlp_train_step_ms", "fit_epoch_s", "fit_peak_rss_mib", "data_peak_rss_mib",
                   "mlp_b32_compiled_ms", "mlp_b128_compiled_ms", "cnn_b32_compiled_ms",
                   "mlp_b32_eager_ms", "mlp_b128_eager_ms", "cnn_b32_eager_ms",
                   "eager_peak_rss_mib", "compiled_peak_rss_mib", "cnn_float_ms", "cnn_int8_ms",
                   "effnetv2b0_b1_ms", "effnetv2b0_b16_ms", "effnetv2b0_peak_rss_mib"}


def ensure_references():
    """Re-executes this script inside a venv that has numpy and tensorflow."""
    try:
        import numpy  # noqa: F401
        import tensorflow  # noqa: F401
        import ai_edge_litert  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "tensorflow-cpu"])
    if subprocess.call([py, "-c", "import ai_edge_litert"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q", "ai-edge-litert"])
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("the bench venv lacks numpy, tensorflow or ai-edge-litert")
    os.execv(py, [py] + sys.argv)


def best_of(f, reps):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def ferroflow_exe():
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "ferroflow"], cwd=ROOT)
    return os.path.join(ROOT, "target", "release", "ferroflow")


def ferroflow_suite(suite, reps, extra=()):
    exe = ferroflow_exe()
    out = subprocess.check_output([exe, "bench", suite, "--json", "--reps", str(reps), *extra], cwd=ROOT)
    return json.loads(out)


TFLITE_DIR = os.path.join(ROOT, "target", "bench-tflite")


def tflite_model_dir():
    """Trains the demo CNN (a few epochs) and saves it with its float and int8 .tflite files."""
    if not os.path.exists(os.path.join(TFLITE_DIR, "model_int8.tflite")):
        subprocess.check_call([ferroflow_exe(), "demo", "--model", "cnn", "--epochs", "5",
                               "--save", TFLITE_DIR], cwd=ROOT, stdout=subprocess.DEVNULL)
    return TFLITE_DIR


def reference_tflite(reps):
    """Batch-1 latency of the same .tflite files in LiteRT (default threads, XNNPACK)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from litert_io import from_output, to_input
    x = np.load(os.path.join(TFLITE_DIR, "sample_inputs.npy"))[:1].astype(np.float32)
    out = {}
    for name, file in (("float", "model.tflite"), ("int8", "model_int8.tflite")):
        interp = Interpreter(model_path=os.path.join(TFLITE_DIR, file))
        interp.allocate_tensors()
        inp, res = interp.get_input_details()[0], interp.get_output_details()[0]
        calls = 200

        def run():
            for _ in range(calls):
                # What `ferroflow predict` does per call: quantise the float input, run,
                # dequantise the output.
                interp.set_tensor(inp["index"], to_input(x, inp))
                interp.invoke()
                from_output(interp.get_tensor(res["index"]), res)
        out[f"cnn_{name}_ms"] = best_of(run, reps) / calls * 1e3
        out[f"cnn_{name}_kib"] = os.path.getsize(os.path.join(TFLITE_DIR, file)) / 1024
    return {"litert": out}


def reference_train(reps):
    """One forward/backward/Adam step of an MLP 784-256-128-10, batch 128, in ms."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    x, onehot, init = train_problem()
    steps = 20
    res = {}

    tvars = [tf.Variable(a) for pair in init for a in pair]
    opt = tf.keras.optimizers.Adam(1e-3)
    xt, yt = tf.constant(x), tf.constant(onehot)

    @tf.function
    def tf_step():
        with tf.GradientTape() as tape:
            h = xt
            for i in range(3):
                h = tf.matmul(h, tvars[2 * i]) + tvars[2 * i + 1]
                if i < 2:
                    h = tf.nn.relu(h)
            loss = -tf.reduce_mean(tf.reduce_sum(yt * tf.nn.log_softmax(h), axis=-1))
        grads = tape.gradient(loss, tvars)
        opt.apply_gradients(zip(grads, tvars))
        return loss

    def run_tf():
        for _ in range(steps):
            tf_step()
        tvars[0].numpy()

    res["tensorflow"] = {"mlp_train_step_ms": best_of(run_tf, reps) / steps * 1e3}
    # PyTorch and TensorFlow cannot share a process (their bundled LLVMs clash), so the
    # PyTorch column runs in a child process of the same interpreter.
    try:
        out = subprocess.check_output([sys.executable, os.path.abspath(__file__), "_torch_train", str(reps)])
        res["pytorch"] = json.loads(out)
    except subprocess.CalledProcessError:
        print("(PyTorch is not installed in this venv; its column is skipped)", file=sys.stderr)
    return res


def train_problem():
    """The MLP training problem every framework runs: data and initial weights."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    labels = (np.arange(128) * 7) % 10
    onehot = np.eye(10, dtype=np.float32)[labels]
    sizes = [784, 256, 128, 10]
    init = [((rng.uniform(-1, 1, (a, b)) * np.sqrt(6 / (a + b))).astype(np.float32), np.zeros(b, np.float32))
            for a, b in zip(sizes, sizes[1:])]
    return x, onehot, init


def torch_train(reps):
    """The PyTorch column of the train suite (run in a child process)."""
    try:
        import torch
    except ImportError:
        sys.exit(1)
    x, onehot, init = train_problem()
    steps = 20
    torch.set_num_threads(os.cpu_count() or 1)
    params = [torch.tensor(a, requires_grad=True) for pair in init for a in pair]
    topt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    xp, yp = torch.tensor(x), torch.tensor(onehot)

    def run_torch():
        for _ in range(steps):
            topt.zero_grad()
            h = xp
            for i in range(3):
                h = h @ params[2 * i] + params[2 * i + 1]
                if i < 2:
                    h = torch.relu(h)
            loss = -(yp * torch.log_softmax(h, -1)).sum(-1).mean()
            loss.backward()
            topt.step()

    print(json.dumps({"mlp_train_step_ms": best_of(run_torch, reps) / steps * 1e3}))


def reference_keras(reps):
    """Keras 3 (TF backend) fit of the same MLP on the same-shaped data, and
    EfficientNetV2B0 inference, each in a child process so that its peak RSS is its own."""
    res = {}
    for mode in ("_keras_fit", "_keras_effnet"):
        out = subprocess.check_output([sys.executable, os.path.abspath(__file__), mode, str(reps)])
        res.update(json.loads(out.decode().strip().splitlines()[-1]))
    return {"keras": res}


def keras_effnet(reps):
    """EfficientNetV2B0 (weights=None) inference at batch 1 and 16 with the compiled
    predict function (`predict_on_batch`), best of `reps`, and peak RSS."""
    import resource
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras
    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetV2B0(weights=None)
    out = {}
    for batch, n in ((1, reps * 2), (16, reps)):
        x = np.random.default_rng(5).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
        model.predict_on_batch(x)
        out[f"effnetv2b0_b{batch}_ms"] = best_of(lambda: model.predict_on_batch(x), n) * 1e3
    out["effnetv2b0_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def keras_fit():
    """The Keras column of the keras suite: best epoch time of 3 and peak RSS."""
    import resource

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_python

    _, times = bench_python.fit_mlp(keras, *bench_python.mlp_data())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"fit_epoch_s": min(times), "fit_peak_rss_mib": rss}))


def reference_data(reps):
    """tf.data running the same pipelines, in a child process (its own peak RSS)."""
    out = subprocess.check_output([sys.executable, os.path.abspath(__file__), "_tf_data", str(reps)])
    return {"tf.data": json.loads(out.decode().strip().splitlines()[-1])}


def tf_data(reps):
    """The tf.data column of the data suite."""
    import resource
    import tempfile
    import time

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    n = 60_000
    x = np.random.default_rng(1).random((n, 784), dtype=np.float32)
    y = ((np.arange(n) * 7) % 10).astype(np.int64)

    def augment(img, label):
        img = (img - 0.5) * 2.0
        img = tf.reshape(img, (28, 28, 1))
        img = tf.image.random_flip_left_right(img)
        return tf.reshape(img, (784,)), label

    def rate(ds):
        best = float("inf")
        for _ in range(max(reps, 1)):
            t = time.perf_counter()
            count = 0
            for _, yb in ds:
                count += int(yb.shape[0])
            best = min(best, time.perf_counter() - t)
            assert count == n, count
        return n / best

    pipeline = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000, seed=0)
                .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(128).prefetch(tf.data.AUTOTUNE))
    slices = rate(pipeline)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.tfrecord")
        with tf.io.TFRecordWriter(path) as w:
            for i in range(n):
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
                    "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y[i]])),
                }))
                w.write(ex.SerializeToString())
        spec = {"x": tf.io.FixedLenFeature([784], tf.float32), "y": tf.io.FixedLenFeature([], tf.int64)}

        def parse(rec):
            f = tf.io.parse_single_example(rec, spec)
            return f["x"], f["y"]

        records = (tf.data.TFRecordDataset([path]).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
                   .batch(128).prefetch(tf.data.AUTOTUNE))
        tfrec = rate(records)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"pipeline_elements_per_s": slices, "tfrecord_elements_per_s": tfrec, "data_peak_rss_mib": rss}))


def function_problem(kind, batch):
    """Data and initial weights of the `function` suite's models (same shapes as ferroflow's)."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = (np.arange(batch) * 7) % 10
    onehot = np.eye(10, dtype=np.float32)[labels]
    glorot = lambda fi, fo, shape: (rng.uniform(-1, 1, shape) * np.sqrt(6 / (fi + fo))).astype(np.float32)
    if kind == "mlp":
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        sizes = [784, 256, 128, 10]
        init = [glorot(a, b, (a, b)) for a, b in zip(sizes, sizes[1:])]
        init = [w for k in init for w in (k, np.zeros(k.shape[1], np.float32))]
    else:
        x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
        init = [glorot(9, 144, (3, 3, 1, 16)), np.zeros(16, np.float32),
                glorot(144, 288, (3, 3, 16, 32)), np.zeros(32, np.float32),
                glorot(1568, 10, (1568, 10)), np.zeros(10, np.float32)]
    return x, onehot, init


def reference_function(reps):
    """The same train steps in TensorFlow, compiled with tf.function(jit_compile=True)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    res = {}
    for kind, batch, steps in (("mlp", 32, 30), ("mlp", 128, 30), ("cnn", 32, 5)):
        x, onehot, init = function_problem(kind, batch)
        tvars = [tf.Variable(a) for a in init]
        opt = tf.keras.optimizers.Adam(1e-3)
        opt.build(tvars)
        xt, yt = tf.constant(x), tf.constant(onehot)

        def logits(h):
            if kind == "mlp":
                for i in range(3):
                    h = tf.matmul(h, tvars[2 * i]) + tvars[2 * i + 1]
                    if i < 2:
                        h = tf.nn.relu(h)
                return h
            for i in range(2):
                h = tf.nn.conv2d(h, tvars[2 * i], 1, "SAME") + tvars[2 * i + 1]
                h = tf.nn.max_pool2d(tf.nn.relu(h), 2, 2, "VALID")
            return tf.matmul(tf.reshape(h, (batch, -1)), tvars[4]) + tvars[5]

        @tf.function(jit_compile=True)
        def step():
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(tf.reduce_sum(yt * tf.nn.log_softmax(logits(xt)), axis=-1))
            grads = tape.gradient(loss, tvars)
            opt.apply_gradients(zip(grads, tvars))
            return loss

        def run():
            for _ in range(steps):
                step()
            tvars[0].numpy()

        res[f"{kind}_b{batch}_compiled_ms"] = best_of(run, reps) / steps * 1e3
    return {"tensorflow_xla": res}


def function_memory():
    """Memory of ferroflow's eager and compiled steps, each mode in its own process: peak
    RSS as users run it, and the most heap one step holds above what was in use before it,
    measured with the buffer cache off (FERROFLOW_POOL_MB=0) so that it counts what the
    step needs rather than what the cache keeps."""
    exe = os.path.join(ROOT, "target", "release", "ferroflow")
    out = {}
    for mode in ("eager", "compiled"):
        cmd = [exe, "bench", "function", "--json", "--reps", "3", "--mode", mode]
        r = json.loads(subprocess.check_output(cmd, cwd=ROOT))
        out[f"{mode}_peak_rss_mib"] = r[f"{mode}_peak_rss_mib"]
        # Only the memory figure is read from this run: one timing repetition is enough.
        cmd[cmd.index("--reps") + 1] = "1"
        r = json.loads(subprocess.check_output(cmd, cwd=ROOT, env=dict(os.environ, FERROFLOW_POOL_MB="0")))
        out[f"{mode}_step_peak_heap_mib"] = r[f"{mode}_step_peak_heap_mib"]
    return out


def reference_core(reps):
    """The same workloads and units as `ferroflow bench core` (bigger is better but for ns)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    res = {"numpy": {}, "tensorflow": {}}
    for name, m, k, n in (("matmul_1024", 1024, 1024, 1024), ("matmul_2048", 2048, 2048, 2048), ("matmul_64x784x128", 64, 784, 128)):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        r = min(reps, 3) if m >= 2048 else reps * 3
        ta, tb = tf.constant(a), tf.constant(b)
        res["numpy"][name] = 2 * m * k * n / best_of(lambda: a @ b, r) / 1e9
        res["tensorflow"][name] = 2 * m * k * n / best_of(lambda: tf.linalg.matmul(ta, tb).numpy(), r) / 1e9
    n = 1 << 24
    x = rng.uniform(-1, 1, n).astype(np.float32)
    y = rng.uniform(-1, 1, n).astype(np.float32)
    tx, ty = tf.constant(x), tf.constant(y)
    res["numpy"]["add_2^24"] = 12 * n / best_of(lambda: x + y, reps) / 1e9
    res["tensorflow"]["add_2^24"] = 12 * n / best_of(lambda: tf.add(tx, ty), reps) / 1e9
    res["numpy"]["exp_2^24"] = 8 * n / best_of(lambda: np.exp(x), reps) / 1e9
    res["tensorflow"]["exp_2^24"] = 8 * n / best_of(lambda: tf.exp(tx), reps) / 1e9
    res["numpy"]["sum_2^24"] = 4 * n / best_of(lambda: x.sum(), reps) / 1e9
    res["tensorflow"]["sum_2^24"] = 4 * n / best_of(lambda: tf.reduce_sum(tx).numpy(), reps) / 1e9
    img = tf.constant(rng.standard_normal((32, 32, 32, 64), dtype=np.float32))
    ker = tf.constant(rng.standard_normal((3, 3, 64, 64), dtype=np.float32) * 0.1)
    flops = 2 * 32 * 32 * 32 * 64 * 64 * 9
    res["tensorflow"]["conv2d_32x32x64_3x3x64_b32"] = flops / best_of(lambda: tf.nn.conv2d(img, ker, 1, "SAME").numpy(), reps) / 1e9
    a1, b1 = np.ones(1, np.float32), np.ones(1, np.float32)
    t1, u1 = tf.constant(a1), tf.constant(b1)
    iters = 20000
    res["numpy"]["tiny_add"] = best_of(lambda: [a1 + b1 for _ in range(iters)], reps) / iters * 1e9
    res["tensorflow"]["tiny_add"] = best_of(lambda: [tf.add(t1, u1) for _ in range(iters)], reps) / iters * 1e9
    return res

SERVE_DIR = os.path.join(ROOT, "target", "bench-serve")


def serve_model_dir():
    """The demo MLP saved as version 1 of model `digits`."""
    base = os.path.join(SERVE_DIR, "digits")
    if not os.path.exists(os.path.join(base, "1", "config.json")):
        subprocess.check_call([ferroflow_exe(), "demo", "--epochs", "10", "--save", os.path.join(base, "1")],
                              cwd=ROOT, stdout=subprocess.DEVNULL)
    return base


def start_logged(cmd, marker, log_path):
    """Starts `cmd` with stderr to `log_path`; returns (process, the text after `marker`)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while time.time() < deadline:
        text = open(log_path).read()
        if marker in text:
            return proc, text.split(marker, 1)[1].split()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"{cmd[0]} did not start:\n" + open(log_path).read())


def status_mib(pid, key):
    """A memory figure of /proc/PID/status in MiB (`VmHWM`: peak, `VmRSS`: now)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid):
    return status_mib(pid, "VmHWM")


def split_cores():
    """(server, client) command prefixes that pin a server and its load generator to
    disjoint halves of this process's cores with taskset (on a small machine, a client
    sharing the server's cores puts the OS's time slices into the server's latency), and
    the number of client cores; no pinning where taskset is missing or there is one core."""
    import shutil
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or not shutil.which("taskset"):
        return [], [], max(1, len(cores))
    half = len(cores) // 2
    cpus = lambda cs: ["taskset", "-c", ",".join(map(str, cs))]
    return cpus(cores[:half]), cpus(cores[half:]), len(cores) - half


def wrk(url, body, seconds, connections, prefix=(), threads=2):
    """Runs wrk against `url` with a POST body; returns requests/s, p50 and p99 in ms."""
    import shutil
    import tempfile
    if not shutil.which("wrk"):
        sys.exit("the serve suite needs wrk (Debian: apt-get install wrk)")
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 f"wrk.body = {json.dumps(body)}\n")
    script.close()
    out = subprocess.check_output([*prefix, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                                   "--latency", "-s", script.name, url], text=True)
    os.unlink(script.name)

    def ms(tok):
        for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
            if tok.endswith(unit):
                return float(tok[:-len(unit)]) * f
        return float(tok)
    res = {"non_2xx": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            res["p50_ms"] = ms(parts[1])
        elif parts[:1] == ["99%"]:
            res["p99_ms"] = ms(parts[1])
        elif line.strip().startswith("Non-2xx"):
            res["non_2xx"] = int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            res["socket_errors"] = line.strip()
    return res


def bench_serve():
    """Batch-1 requests to the demo MLP under wrk: ferroflow serve with and without
    server-side batching, and a minimal Python HTTP server calling Keras `predict` (and,
    as a stronger baseline, calling the Keras model directly), same model, same run."""
    import numpy as np
    base = serve_model_dir()
    seconds = int(os.environ.get("BENCH_SERVE_SECONDS", "10"))
    conns = int(os.environ.get("BENCH_SERVE_CONNECTIONS", "8"))
    x = np.load(os.path.join(base, "1", "sample_inputs.npy"))[:1].astype(np.float32)
    body = json.dumps({"instances": x.tolist()})
    params = os.path.join(SERVE_DIR, "batching.config")
    with open(params, "w") as f:
        # TF Serving's advice for CPUs: no timeout (batch what queued while the last batch
        # ran), one batch thread.
        f.write("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 0 }\n"
                "num_batch_threads { value: 1 }\n")
    exe = ferroflow_exe()
    runs = {
        "ferroflow": [exe, "serve", "--model_name", "digits", "--model_base_path", base,
                      "--rest_api_port", "0", "--port", "0", "--rest_api_bind_address", "127.0.0.1"],
        "ferroflow_batching": [exe, "serve", "--model_name", "digits", "--model_base_path", base,
                               "--rest_api_port", "0", "--port", "0", "--rest_api_bind_address", "127.0.0.1",
                               "--enable_batching", "--batching_parameters_file", params],
        "keras_predict": [sys.executable, os.path.abspath(__file__), "_keras_server", base, "predict"],
        "keras_call": [sys.executable, os.path.abspath(__file__), "_keras_server", base, "call"],
    }
    results = {}
    for name, cmd in runs.items():
        marker = "Exporting HTTP/REST API at:"
        proc, addr = start_logged(cmd, marker, os.path.join(SERVE_DIR, f"{name}.log"))
        url = f"http://{addr}/v1/models/digits:predict"
        import urllib.request
        req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
        first = json.loads(urllib.request.urlopen(req).read())["predictions"]
        wrk(url, body, 1, conns)  # warm-up
        r = wrk(url, body, seconds, conns)
        r["peak_rss_mib"] = peak_rss_mib(proc.pid)
        r["first_prediction"] = first
        proc.terminate()
        proc.wait()
        results[name] = r
    ref = np.array(results["ferroflow"]["first_prediction"])
    for name, r in results.items():
        diff = float(np.abs(np.array(r.pop("first_prediction")) - ref).max())
        r["max_abs_diff_vs_ferroflow"] = diff
    for ff_name in ("ferroflow", "ferroflow_batching"):
        for ref_name in ("keras_predict", "keras_call"):
            ff, rf = results[ff_name], results[ref_name]
            print(f"RATIO serve_b1_rps_{ff_name}_vs_{ref_name} {ff['rps'] / rf['rps']:.3f}")
            print(f"RATIO serve_b1_p50_{ff_name}_vs_{ref_name} {rf['p50_ms'] / ff['p50_ms']:.3f}")
        print(f"RATIO serve_peak_rss_{ff_name}_vs_keras {results['keras_predict']['peak_rss_mib'] / results[ff_name]['peak_rss_mib']:.3f}")
    print()
    print(f"demo MLP, batch 1 per request, wrk -t2 -c{conns} -d{seconds}s, loopback")
    print(f"{'server':<22} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8} {'non-2xx':>8} {'max|diff|':>10}")
    for name, r in results.items():
        print(f"{name:<22} {r['rps']:>11.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['peak_rss_mib']:>8.1f} "
              f"{r['non_2xx']:>8} {r['max_abs_diff_vs_ferroflow']:>10.2e}")


def grpc_load(addr, rows, seconds, connections, prefix=()):
    """The `grpc_load` example against a running server: requests/s, p50, p99."""
    exe = os.path.join(ROOT, "target", "release", "examples", "grpc_load")
    out = subprocess.check_output([*prefix, exe, addr, "digits", "input_layer", str(rows), "64", str(connections),
                                   str(seconds)], text=True)
    return json.loads(out)


def bench_serve_apis():
    """REST (wrk) and gRPC (the `grpc_load` example, also loopback) against one ferroflow
    serve without batching: requests/s and p50/p99 at batch 1 and 32, 8 and 64
    connections; the targets are REST p99 under 2 ms at 8 connections (batch 1) and gRPC
    at least 1.5x REST's request rate at batch 32."""
    import numpy as np
    base = serve_model_dir()
    seconds = int(os.environ.get("BENCH_SERVE_SECONDS", "10"))
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "ferroflow", "--example", "grpc_load"],
                          cwd=ROOT)
    exe = ferroflow_exe()
    server_cpus, client_cpus, client_threads = split_cores()
    cmd = [*server_cpus, exe, "serve", "--model_name", "digits", "--model_base_path", base,
           "--rest_api_port", "0", "--port", "0", "--rest_api_bind_address", "127.0.0.1"]
    log = os.path.join(SERVE_DIR, "apis.log")
    proc, rest_addr = start_logged(cmd, "Exporting HTTP/REST API at:", log)
    grpc_addr = open(log).read().split("Running gRPC ModelServer at ", 1)[1].split()[0]
    x = np.load(os.path.join(base, "1", "sample_inputs.npy")).astype(np.float32)
    url = f"http://{rest_addr}/v1/models/digits:predict"
    rows = {}
    for batch in (1, 32):
        body = json.dumps({"instances": x[:batch].tolist()})
        for conns in (8, 64):
            wrk(url, body, 1, conns, client_cpus, client_threads)
            rows[("rest", batch, conns)] = wrk(url, body, seconds, conns, client_cpus, client_threads)
            grpc_load(grpc_addr, batch, 1, conns, client_cpus)
            rows[("grpc", batch, conns)] = grpc_load(grpc_addr, batch, seconds, conns, client_cpus)
    proc.terminate()
    proc.wait()
    for batch in (1, 32):
        for conns in (8, 64):
            g, r = rows[("grpc", batch, conns)], rows[("rest", batch, conns)]
            print(f"RATIO serve_grpc_vs_rest_rps_b{batch}_c{conns} {g['rps'] / r['rps']:.3f}")
    rest_p99 = rows[("rest", 1, 8)]["p99_ms"]
    ratio = rows[("grpc", 32, 8)]["rps"] / rows[("rest", 32, 8)]["rps"]
    print(f"TARGET serve_rest_p99_b1_c8_under_2ms {rest_p99:.3f} {'met' if rest_p99 < 2 else 'missed'}")
    print(f"TARGET serve_grpc_rps_b32_at_least_1.5x_rest {ratio:.3f} {'met' if ratio >= 1.5 else 'missed'}")
    print()
    pinning = (f"server on cores {server_cpus[-1]}, clients on {client_cpus[-1]}" if server_cpus
               else "server and clients share the cores")
    print(f"demo MLP, one server, no batching, {seconds} s per row, loopback, {pinning} "
          f"(wrk -t{client_threads} for REST)")
    print(f"{'api':<6} {'batch':>5} {'conns':>5} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for (api, batch, conns), r in rows.items():
        print(f"{api:<6} {batch:>5} {conns:>5} {r['rps']:>11.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")


ONNX_DIR = os.path.join(ROOT, "target", "bench-onnx")


def bench_onnx(reps):
    """Batch-1 and batch-16 latency (p50) of torchvision resnet18 and mobilenet_v2 exported
    to ONNX (random weights), imported by ferroflow against onnxruntime's CPU provider with
    2 threads, in the same run."""
    import numpy as np
    import onnxruntime as ort
    if not os.path.exists(os.path.join(ONNX_DIR, "mobilenet_v2.onnx")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_onnx_import_fixtures.py"),
                               ONNX_DIR], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    for name in ("resnet18", "mobilenet_v2"):
        path = os.path.join(ONNX_DIR, f"{name}.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for batch in (1, 16):
            x = np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32)
            feed = {sess.get_inputs()[0].name: x}
            sess.run(None, feed)
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                sess.run(None, feed)
                times.append((time.perf_counter() - t) * 1e3)
            ort_ms = float(np.median(times))
            out = subprocess.check_output([ferroflow_exe(), "bench", "onnx", "--model", path, "--batch", str(batch),
                                           "--reps", str(reps), "--json"], cwd=ROOT)
            ff_ms = json.loads(out)[f"{name}_b{batch}_p50_ms"]
            rows.append((name, batch, ff_ms, ort_ms))
            print(f"RATIO onnx_{name}_b{batch}_vs_onnxruntime {ort_ms / ff_ms:.3f}")
    print()
    print(f"p50 latency (ms), {reps} calls; onnxruntime CPU with 2 threads")
    print(f"{'model':<14} {'batch':>5} {'ferroflow':>10} {'onnxruntime':>12}")
    for name, batch, ff_ms, ort_ms in rows:
        print(f"{name:<14} {batch:>5} {ff_ms:>10.2f} {ort_ms:>12.2f}")


def keras_server(base, mode):
    """A minimal TF-Serving-shaped HTTP server around a Keras model: the ferroflow saved
    model's config.json is Keras 3's serialisation, and its weights are keyed by Keras
    weight paths, so Keras rebuilds the same model."""
    import struct
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    d = os.path.join(base, "1")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.pop("compile_config", None)
    model = keras.saving.deserialize_keras_object(cfg)
    raw = open(os.path.join(d, "model.weights.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    for w in model.weights:
        h = header[w.path]
        a, b = h["data_offsets"]
        w.assign(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(h["shape"]))
    run = (lambda x: model.predict(x, verbose=0)) if mode == "predict" else \
        (lambda x: np.asarray(model(x, training=False)))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            y = run(np.asarray(req["instances"], dtype=np.float32))
            out = json.dumps({"predictions": y.tolist()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"Exporting HTTP/REST API at:127.0.0.1:{server.server_address[1]} ...", file=sys.stderr, flush=True)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def main():
    suite = sys.argv[1] if len(sys.argv) > 1 else "core"
    if suite == "_torch_train":
        torch_train(int(sys.argv[2]))
        return
    if suite == "_keras_fit":
        keras_fit()
        return
    if suite == "_keras_effnet":
        keras_effnet(int(sys.argv[2]))
        return
    if suite == "_tf_data":
        tf_data(int(sys.argv[2]))
        return
    if suite == "_keras_server":
        keras_server(sys.argv[2], sys.argv[3])
        return
    if suite in ("_tf_mwms", "_torch_ddp"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_distribute
        {"_tf_mwms": bench_distribute.tf_worker, "_torch_ddp": bench_distribute.torch_worker}[suite](*sys.argv[2:4])
        return
    if suite not in SUITES:
        sys.exit(f"unknown suite '{suite}' (available: {', '.join(SUITES)})")
    ensure_references()
    if suite == "serve":
        bench_serve()
        print()
        bench_serve_apis()
        return
    reps = int(os.environ.get("BENCH_REPS", "7"))
    if suite == "onnx":
        bench_onnx(int(os.environ.get("BENCH_REPS", "20")))
        return
    if suite == "distribute":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_distribute
        bench_distribute.run()
        return
    if suite == "recsys":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_recsys
        bench_recsys.run(ferroflow_exe(), int(os.environ.get("BENCH_REPS", "20")))
        return
    if suite == "python":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_python
        bench_python.run()
        return
    if suite == "web":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_web
        bench_web.run(ferroflow_exe(), int(os.environ.get("BENCH_REPS", "30")))
        return
    if suite == "tflite":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_tflite_apps
        bench_tflite_apps.run(ferroflow_exe(), TFLITE_DIR, int(os.environ.get("BENCH_APP_REPS", "20")))
    extra = ("--model", tflite_model_dir()) if suite == "tflite" else ()
    ff = ferroflow_suite(suite, reps, extra)
    if suite == "keras":
        ff.update(ferroflow_suite("keras", reps, ("--mode", "efficientnet")))
    refs = {"core": reference_core, "train": reference_train, "keras": reference_keras,
            "data": reference_data, "function": reference_function,
            "tflite": reference_tflite}[suite](reps)
    if suite == "function":
        ff.update(function_memory())
        for w in ("mlp_b32", "mlp_b128", "cnn_b32"):
            print(f"RATIO {w}_compiled_vs_eager {ff[w + '_eager_ms'] / ff[w + '_compiled_ms']:.3f}")
        print(f"RATIO peak_rss_eager_vs_compiled {ff['eager_peak_rss_mib'] / ff['compiled_peak_rss_mib']:.3f}")
        print(f"RATIO step_peak_heap_eager_vs_compiled "
              f"{ff['eager_step_peak_heap_mib'] / ff['compiled_step_peak_heap_mib']:.3f}")
    for ref, figures in refs.items():
        for name, value in figures.items():
            if name not in ff or name.endswith("_kib"):
                continue
            ratio = value / ff[name] if name in LOWER_IS_BETTER else ff[name] / value
            print(f"RATIO {name}_vs_{ref} {ratio:.3f}")
    print()
    units = {"tiny_add": "ns", "mlp_train_step_ms": "ms", "fit_epoch_s": "s", "fit_peak_rss_mib": "MiB",
             "pipeline_elements_per_s": "elements/s", "tfrecord_elements_per_s": "elements/s",
             "data_peak_rss_mib": "MiB", "eager_peak_rss_mib": "MiB", "compiled_peak_rss_mib": "MiB",
             "eager_step_peak_heap_mib": "MiB", "compiled_step_peak_heap_mib": "MiB"}
    units.update({f"{w}_{m}_ms": "ms" for w in ("mlp_b32", "mlp_b128", "cnn_b32") for m in ("eager", "compiled")})
    units.update({"effnetv2b0_b1_ms": "ms", "effnetv2b0_b16_ms": "ms", "effnetv2b0_peak_rss_mib": "MiB"})
    units.update({"cnn_float_ms": "ms", "cnn_int8_ms": "ms", "cnn_float_kib": "KiB", "cnn_int8_kib": "KiB"})
    if suite == "tflite":
        print(f"RATIO float_vs_int8_file_size {ff['cnn_float_kib'] / ff['cnn_int8_kib']:.2f}")
    names = list(refs)
    print(f"{'workload':<30} {'ferroflow':>12} " + " ".join(f"{r:>12}" for r in names) + "  unit")
    for name, value in ff.items():
        unit = units.get(name, "GFLOP/s" if "matmul" in name or "conv" in name else "GB/s")
        cols = [refs[r].get(name) for r in names]
        cells = " ".join(f"{c:>12.2f}" if c is not None else f"{'-':>12}" for c in cols)
        print(f"{name:<30} {value:>12.2f} {cells}  {unit}")


if __name__ == "__main__":
    main()
