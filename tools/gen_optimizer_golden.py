#!/usr/bin/env python3
"""Generates Keras 3 optimiser trajectories for ferroflow-keras's optimiser tests.

For each optimiser configuration (every optimiser, schedule and clipping option), runs 20
steps on two fixed problems with tf.GradientTape and the real keras.optimizers class:
  - "quadratic": loss = sum(a * (w - c)^2) + sum(e * (b - d)^2), w: [2, 3], b: [3];
  - "mlp": loss = mean((tanh(x W1 + b1) W2 + b2 - y)^2) with x: [8, 4], W1: [4, 5], W2: [5, 3];
  - "embedding": loss = mean((mean_j table[ids[step]] u - y)^2), table: [30, 4], a sparse
    (IndexedSlices) gradient of 18 distinct rows, other rows at every step.
Records the loss before every step and the variables after every step.
Writes crates/ferroflow-keras/tests/fixtures/optimizer_golden.json.

    python3 tools/gen_optimizer_golden.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "crates", "ferroflow-keras", "tests", "fixtures", "optimizer_golden.json")
S = keras.optimizers.schedules

CONFIGS = {
    "sgd": dict(kind="sgd", learning_rate=0.1),
    "sgd_momentum": dict(kind="sgd", learning_rate=0.05, momentum=0.9),
    "sgd_nesterov": dict(kind="sgd", learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam": dict(kind="adam", learning_rate=0.05),
    "adam_amsgrad": dict(kind="adam", learning_rate=0.05, amsgrad=True),
    "adamw": dict(kind="adamw", learning_rate=0.05, weight_decay=0.01),
    "rmsprop": dict(kind="rmsprop", learning_rate=0.01),
    "rmsprop_centered_momentum": dict(kind="rmsprop", learning_rate=0.01, momentum=0.5, centered=True),
    "adagrad": dict(kind="adagrad", learning_rate=0.1),
    "ftrl": dict(kind="ftrl", learning_rate=0.1),
    "ftrl_regularized": dict(kind="ftrl", learning_rate=0.1, learning_rate_power=-0.6, l1=0.01, l2=0.02,
                             l2_shrinkage=0.005, beta=0.3, initial_accumulator_value=0.2),
    "adam_exponential_decay": dict(kind="adam", schedule=dict(kind="exponential", initial=0.05, decay_steps=5, rate=0.5, staircase=False)),
    "sgd_exponential_staircase": dict(kind="sgd", schedule=dict(kind="exponential", initial=0.1, decay_steps=4, rate=0.7, staircase=True)),
    "sgd_cosine": dict(kind="sgd", schedule=dict(kind="cosine", initial=0.1, decay_steps=15, alpha=0.1)),
    "adam_cosine_warmup": dict(kind="adam", schedule=dict(kind="cosine", initial=0.0, decay_steps=10, alpha=0.0, warmup_target=0.05, warmup_steps=5)),
    "sgd_piecewise": dict(kind="sgd", schedule=dict(kind="piecewise", boundaries=[5, 10], values=[0.1, 0.05, 0.01])),
    "adam_clipnorm": dict(kind="adam", learning_rate=0.05, clipnorm=0.5),
    "sgd_global_clipnorm": dict(kind="sgd", learning_rate=0.1, global_clipnorm=0.3),
    "rmsprop_clipvalue": dict(kind="rmsprop", learning_rate=0.01, clipvalue=0.1),
}


def schedule(s):
    if s["kind"] == "exponential":
        return S.ExponentialDecay(s["initial"], s["decay_steps"], s["rate"], staircase=s["staircase"])
    if s["kind"] == "cosine":
        return S.CosineDecay(s["initial"], s["decay_steps"], alpha=s["alpha"],
                             warmup_target=s.get("warmup_target"), warmup_steps=s.get("warmup_steps", 0))
    return S.PiecewiseConstantDecay(s["boundaries"], s["values"])


def optimizer(c):
    lr = schedule(c["schedule"]) if "schedule" in c else c["learning_rate"]
    clip = {k: c[k] for k in ("clipnorm", "clipvalue", "global_clipnorm") if k in c}
    k = c["kind"]
    if k == "sgd":
        return keras.optimizers.SGD(lr, momentum=c.get("momentum", 0.0), nesterov=c.get("nesterov", False), **clip)
    if k == "adam":
        return keras.optimizers.Adam(lr, amsgrad=c.get("amsgrad", False), **clip)
    if k == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=c["weight_decay"], **clip)
    if k == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=c.get("momentum", 0.0), centered=c.get("centered", False), **clip)
    if k == "ftrl":
        return keras.optimizers.Ftrl(lr, learning_rate_power=c.get("learning_rate_power", -0.5),
                                     initial_accumulator_value=c.get("initial_accumulator_value", 0.1),
                                     l1_regularization_strength=c.get("l1", 0.0),
                                     l2_regularization_strength=c.get("l2", 0.0),
                                     l2_shrinkage_regularization_strength=c.get("l2_shrinkage", 0.0),
                                     beta=c.get("beta", 0.0), **clip)
    return keras.optimizers.Adagrad(lr, **clip)


rng = np.random.default_rng(3)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
PROBLEMS = {
    "quadratic": dict(
        consts=dict(a=np.abs(f32(2, 3)) + 0.5, c=f32(2, 3), e=np.abs(f32(3)) + 0.5, d=f32(3)),
        init=dict(w=f32(2, 3), b=f32(3)),
    ),
    "mlp": dict(
        consts=dict(x=f32(8, 4), y=f32(8, 3)),
        init=dict(w1=f32(4, 5) * 0.5, b1=f32(5) * 0.1, w2=f32(5, 3) * 0.5, b2=f32(3) * 0.1),
    ),
    # Sparse gradients: each step gathers 18 distinct rows of a 30-row table (ids[step]), so
    # rows go untouched for some steps and Keras's default (non-lazy) semantics show. The ids
    # of a step are distinct: with repeats, Keras on TensorFlow squares each repeat's slice
    # before summing (Adam's velocity, Adagrad's accumulator, global norms), where its other
    # backends and ferroflow sum the repeats first.
    "embedding": dict(
        consts=dict(ids=np.stack([np.random.default_rng(5 + s).permutation(30)[:18].reshape(6, 3)
                                  for s in range(20)]).astype(np.float32),
                    u=f32(4, 1), y=f32(6, 1)),
        init=dict(table=f32(30, 4) * 0.5),
    ),
}


def loss_fn(name, k, v, step):
    if name == "embedding":
        ids = k["ids"][step].astype(np.int64)
        e = tf.reduce_mean(tf.gather(v["table"], ids), axis=1)
        return tf.reduce_mean(tf.square(tf.matmul(e, k["u"]) - k["y"]))
    if name == "quadratic":
        return tf.reduce_sum(k["a"] * tf.square(v["w"] - k["c"])) + tf.reduce_sum(k["e"] * tf.square(v["b"] - k["d"]))
    h = tf.tanh(tf.matmul(k["x"], v["w1"]) + v["b1"])
    return tf.reduce_mean(tf.square(tf.matmul(h, v["w2"]) + v["b2"] - k["y"]))


def main():
    out = {"generator": "tools/gen_optimizer_golden.py", "keras": keras.__version__, "steps": 20,
           "configs": CONFIGS, "problems": {}, "runs": []}
    for pname, p in PROBLEMS.items():
        out["problems"][pname] = {
            "consts": {k: {"shape": list(v.shape), "data": v.ravel().tolist()} for k, v in p["consts"].items()},
            "init": {k: {"shape": list(v.shape), "data": v.ravel().tolist()} for k, v in p["init"].items()},
        }
        for cname, c in CONFIGS.items():
            vars_ = {k: tf.Variable(v) for k, v in p["init"].items()}
            names = list(vars_)
            opt = optimizer(c)
            losses, values = [], []
            for step in range(20):
                with tf.GradientTape() as tape:
                    loss = loss_fn(pname, p["consts"], vars_, step)
                grads = tape.gradient(loss, [vars_[n] for n in names])
                opt.apply_gradients(zip(grads, [vars_[n] for n in names]))
                losses.append(float(loss.numpy()))
                values.append({n: vars_[n].numpy().ravel().tolist() for n in names})
            out["runs"].append({"problem": pname, "config": cname, "losses": losses, "values": values})
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {len(out['runs'])} trajectories to {OUT}")


if __name__ == "__main__":
    main()
