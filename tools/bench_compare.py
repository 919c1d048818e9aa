#!/usr/bin/env python3
"""Runs one workload suite in ferroflow and in the reference frameworks, in the same run.

    python3 tools/bench_compare.py core

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
SUITES = ("core",)


def ensure_references():
    """Re-executes this script inside a venv that has numpy and tensorflow."""
    try:
        import numpy  # noqa: F401
        import tensorflow  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "tensorflow-cpu"])
    os.execv(py, [py] + sys.argv)


def best_of(f, reps):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def ferroflow_core(reps):
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "ferroflow"], cwd=ROOT)
    exe = os.path.join(ROOT, "target", "release", "ferroflow")
    out = subprocess.check_output([exe, "bench", "core", "--json", "--reps", str(reps)], cwd=ROOT)
    return json.loads(out)


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


def main():
    suite = sys.argv[1] if len(sys.argv) > 1 else "core"
    if suite not in SUITES:
        sys.exit(f"unknown suite '{suite}' (available: {', '.join(SUITES)})")
    ensure_references()
    reps = int(os.environ.get("BENCH_REPS", "7"))
    ff = ferroflow_core(reps)
    refs = reference_core(reps)
    lower_is_better = {"tiny_add"}
    for ref, figures in refs.items():
        for name, value in figures.items():
            if name not in ff:
                continue
            ratio = value / ff[name] if name in lower_is_better else ff[name] / value
            print(f"RATIO {name}_vs_{ref} {ratio:.3f}")
    print()
    units = {"tiny_add": "ns"}
    print(f"{'workload':<30} {'ferroflow':>12} {'numpy':>12} {'tensorflow':>12}  unit")
    for name, value in ff.items():
        unit = units.get(name, "GFLOP/s" if "matmul" in name or "conv" in name else "GB/s")
        cols = [refs[r].get(name) for r in ("numpy", "tensorflow")]
        cells = " ".join(f"{c:>12.2f}" if c is not None else f"{'-':>12}" for c in cols)
        print(f"{name:<30} {value:>12.2f} {cells}  {unit}")


if __name__ == "__main__":
    main()
