"""`python3 tools/bench_compare.py distribute`: Keras `fit` of the MLP 784-256-128-10 (Adam,
global batch 256) on 60k x 784 inputs, one thread per worker:

- ferroflow on 1 worker and on 2 MPI workers (`mpirun -np 2`, the `mpi` feature);
- TensorFlow's MultiWorkerMirroredStrategy, 2 local workers joined by TF_CONFIG on 127.0.0.1;
- PyTorch DistributedDataParallel (gloo), 2 processes, each half of every global batch.

Each run trains 3 epochs and reports its fastest epoch after the first (tracing and warm-up
excluded). Prints `RATIO scaling_efficiency_2_workers` (ferroflow's throughput on 2 workers
over 1, halved) and `RATIO fit_epoch_2_workers_vs_<ref>` (the reference's epoch time over
ferroflow's, both on 2 workers; above 1 means ferroflow is faster).
"""
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, FEATURES, CLASSES, BATCH, EPOCHS = 60_000, 784, 10, 256, 3
ONE_THREAD = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
              "TF_NUM_INTEROP_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
              "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def data():
    import numpy as np
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, FEATURES), dtype=np.float32)
    i = np.arange(N)
    y = ((i * 7 + i // 13) % CLASSES).astype(np.int64)
    return x, y


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env(**extra):
    e = dict(os.environ)
    e.update(ONE_THREAD)
    e.update(extra)
    return e


def ferroflow(workers):
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "ferroflow", "--features", "mpi"], cwd=ROOT)
    exe = os.path.join(ROOT, "target", "release", "ferroflow")
    cmd = [exe, "bench", "distribute", "--json", "--reps", str(EPOCHS - 1)]
    if workers > 1:
        cmd = ["mpirun", "-np", str(workers), "-x", "RAYON_NUM_THREADS"] + cmd
    out = subprocess.check_output(cmd, cwd=ROOT, env=env())
    return json.loads(out.decode().strip().splitlines()[-1])["fit_epoch_s"]


def tf_worker(index, ports):
    """One TensorFlow worker (run by `bench_compare.py _tf_mwms INDEX PORTS`)."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports.split(",")]},
        "task": {"type": "worker", "index": int(index)},
    })
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N, seed=1).batch(BATCH)
    # TF's own multi-worker loop (Keras 3's fit does not take MWMS's per-replica batches):
    # the distributed dataset, strategy.run in a tf.function, Keras's loss scaling.
    dist = strategy.experimental_distribute_dataset(ds)
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.Input((FEATURES,)),
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(CLASSES, activation="softmax"),
        ])
        opt = tf.keras.optimizers.Adam(1e-3)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            per_example = tf.keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def dist_step(xb, yb):
        return strategy.run(step, args=(xb, yb))

    times = []
    for _ in range(EPOCHS):
        t = time.perf_counter()
        for xb, yb in dist:
            dist_step(xb, yb)
        times.append(time.perf_counter() - t)
    if int(index) == 0:
        print(json.dumps({"fit_epoch_s": min(times[1:])}))


def torch_worker(rank, port):
    """One PyTorch DDP process (run by `bench_compare.py _torch_ddp RANK PORT`)."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    rank = int(rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, CLASSES))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    x, y = data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(1)
    times = []
    for _ in range(EPOCHS):
        t = time.perf_counter()
        order = torch.randperm(N, generator=gen)
        for lo in range(0, N, BATCH):
            idx = order[lo:lo + BATCH]
            half = (len(idx) + 1) // 2
            mine = idx[:half] if rank == 0 else idx[half:]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(x[mine]), y[mine])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    if rank == 0:
        print(json.dumps({"fit_epoch_s": min(times[1:])}))
    dist.destroy_process_group()


def two_processes(args_of):
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "bench_compare.py")] + args_of(i),
                              stdout=subprocess.PIPE, env=env()) for i in range(2)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: {[p.returncode for p in procs]}")
    return json.loads(outs[0].decode().strip().splitlines()[-1])["fit_epoch_s"]


def run():
    ff1 = ferroflow(1)
    ff2 = ferroflow(2)
    print(f"RATIO scaling_efficiency_2_workers {ff1 / ff2 / 2:.3f}")
    refs = {}
    ports = ",".join(str(p) for p in free_ports(2))
    refs["tensorflow_multiworker"] = two_processes(lambda i: ["_tf_mwms", str(i), ports])
    try:
        import torch  # noqa: F401
        port = free_ports(1)[0]
        refs["torch_ddp"] = two_processes(lambda i: ["_torch_ddp", str(i), str(port)])
    except ImportError:
        print("(PyTorch is not installed here: `pip install torch` to include DDP)")
    for name, t in refs.items():
        print(f"RATIO fit_epoch_2_workers_vs_{name} {t / ff2:.3f}")
    print()
    print(f"{'run':<36} {'epoch s':>8} {'samples/s':>10}")
    rows = [("ferroflow, 1 worker x 1 thread", ff1), ("ferroflow, 2 MPI workers x 1 thread", ff2)]
    rows += [(f"{n}, 2 workers x 1 thread", t) for n, t in refs.items()]
    for name, t in rows:
        print(f"{name:<36} {t:>8.3f} {N / t:>10.0f}")
