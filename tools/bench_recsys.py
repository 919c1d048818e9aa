"""`tools/bench_compare.py recsys`: the train step of an embedding-heavy model in ferroflow
and TensorFlow, each configuration in a process of its own (so peak memory is its own).

The model: a ROWS x 64 table, 1024 examples of 8 ids each, mean-pooled, a linear output
of one unit, mean squared error against 0.5. Optimisers: ferroflow's LazyAdam against
Keras's Adam (TensorFlow has no lazy Adam any more; Keras's updates every row), and Adagrad
in both. Prints RATIO lines:

  recsys_<rows>_<opt>_step_vs_tensorflow   TF step time / ferroflow's (above 1: faster)
  recsys_<rows>_<opt>_memory_vs_tensorflow TF peak RSS / ferroflow's (2 means half)
  recsys_10m_vs_1m_<opt>_step              ferroflow's 10M-row step / its 1M-row step
"""
import json
import os
import resource
import subprocess
import sys

ROWS = (1_000_000, 10_000_000)
OPTS = ("lazy_adam", "adagrad")
DIM, BATCH, IDS = 64, 1024, 8


def tf_worker(rows, opt, reps):
    """Runs in a subprocess: the TensorFlow step, JSON figures on stdout."""
    import time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import keras
    rows, reps = int(rows), int(reps)
    table = tf.Variable(tf.random.uniform((rows, DIM), -0.05, 0.05, seed=1))
    w = tf.Variable(tf.random.uniform((DIM, 1), -0.1, 0.1, seed=2))
    optimizer = keras.optimizers.Adam(0.001) if opt == "lazy_adam" else keras.optimizers.Adagrad(0.01)
    target = tf.fill((BATCH, 1), 0.5)

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            pooled = tf.reduce_mean(tf.gather(table, ids), axis=1)
            loss = tf.reduce_mean(tf.square(tf.matmul(pooled, w) - target))
        grads = tape.gradient(loss, [table, w])
        optimizer.apply_gradients(zip(grads, [table, w]))
        return loss

    times = []
    for s in range(reps + 2):
        i = np.arange(BATCH * IDS, dtype=np.uint64)
        ids = ((i * 2_654_435_761 + s * 40_503) % rows).astype(np.int64).reshape(BATCH, IDS)
        start = time.perf_counter()
        step(tf.constant(ids)).numpy()
        if s >= 2:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({"step_ms": times[len(times) // 2],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(ff_exe, reps):
    ff, tf = {}, {}
    labels = [(rows, opt, f"{rows // 1_000_000}m_{opt}") for rows in ROWS for opt in OPTS]
    # Every ferroflow run first: a run right after TensorFlow's (16 GB for 10M rows under
    # Adam) starts on memory the system has only just taken back, and its first writes
    # there are slower on some machines (virtual machines most).
    for rows, opt, label in labels:
        out = subprocess.run([ff_exe, "bench", "recsys", "--mode", f"{rows}:{opt}", "--reps", str(reps),
                              "--json"], check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        ff[label] = {k.split(f"{label}_")[1]: v for k, v in figures.items()}
    for rows, opt, label in labels:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "_tf", str(rows), opt, str(reps)],
                             check=True, capture_output=True, text=True).stdout
        tf[label] = json.loads(out.strip().splitlines()[-1])
        print(f"RATIO recsys_{label}_step_vs_tensorflow {tf[label]['step_ms'] / ff[label]['step_ms']:.3f}",
              flush=True)
        print(f"RATIO recsys_{label}_memory_vs_tensorflow "
              f"{tf[label]['peak_rss_mib'] / ff[label]['peak_rss_mib']:.3f}", flush=True)
    for opt in OPTS:
        print(f"RATIO recsys_10m_vs_1m_{opt}_step {ff['10m_' + opt]['step_ms'] / ff['1m_' + opt]['step_ms']:.3f}")
    print()
    print(f"{'workload':<24} {'ferroflow ms':>13} {'TF ms':>9} {'ferroflow MiB':>14} {'TF MiB':>9}")
    for label in ff:
        print(f"{label:<24} {ff[label]['step_ms']:>13.2f} {tf[label]['step_ms']:>9.2f} "
              f"{ff[label]['peak_rss_mib']:>14.0f} {tf[label]['peak_rss_mib']:>9.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_tf":
        tf_worker(*sys.argv[2:5])
