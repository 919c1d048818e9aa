"""One epoch of Keras 3 training (TF backend) for ferroflow-keras/tests/training_equivalence.rs.

A small MLP and a small CNN are built with a fixed seed, trained one epoch with Adam on
fixed data in order (shuffle=False, batch 32); the fixture holds the model config, the
data, the initial weights and the weights after the epoch.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/gen_keras_training_golden.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402

L = keras.layers
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-keras", "tests", "fixtures", "keras_training.json")


def arr(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "dtype": str(a.dtype), "data": a.ravel().tolist()}


def run(name, model, x, y, loss, optimizer):
    init = [w.numpy().copy() for w in model.weights]
    model.compile(optimizer=optimizer, loss=loss)
    hist = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    return {
        "name": name,
        "model": keras.saving.serialize_keras_object(model),
        "optimizer": keras.saving.serialize_keras_object(model.optimizer),
        "loss": loss,
        "x": arr(x),
        "y": arr(y),
        "initial_weights": [arr(w) for w in init],
        "final_weights": [arr(w.numpy()) for w in model.weights],
        "keras_loss": float(hist.history["loss"][0]),
    }


rng = np.random.default_rng(5)
cases = []

keras.utils.set_random_seed(1)
x = np.round(rng.standard_normal((128, 64)), 3).astype("float32")
y = rng.integers(0, 10, 128).astype("int32")
mlp = keras.Sequential([keras.Input((64,)), L.Dense(32, activation="relu"), L.Dense(16, activation="tanh"), L.Dense(10, activation="softmax")], name="mlp")
cases.append(run("mlp_adam", mlp, x, y, "sparse_categorical_crossentropy", keras.optimizers.Adam(1e-3)))

keras.utils.set_random_seed(2)
xi = np.round(rng.standard_normal((96, 8, 8, 1)), 3).astype("float32")
yi = rng.integers(0, 10, 96).astype("int32")
inp = keras.Input((8, 8, 1))
h = L.Conv2D(6, 3, activation="relu", padding="same")(inp)
h = L.MaxPooling2D()(h)
h = L.Conv2D(8, 3, activation="relu")(h)
h = L.Flatten()(h)
out = L.Dense(10, activation="softmax")(h)
cnn = keras.Model(inp, out, name="cnn")
cases.append(run("cnn_adam", cnn, xi, yi, "sparse_categorical_crossentropy", keras.optimizers.Adam(2e-3)))

keras.utils.set_random_seed(3)
xr = np.round(rng.standard_normal((64, 5)), 3).astype("float32")
yr = (xr @ rng.standard_normal((5, 2))).astype("float32")
reg = keras.Sequential([keras.Input((5,)), L.Dense(8, activation="relu"), L.Dense(2)], name="reg")
cases.append(run("mlp_rmsprop_mse", reg, xr, yr, "mean_squared_error", keras.optimizers.RMSprop(1e-2, momentum=0.5)))

with open(OUT, "w") as f:
    json.dump({"keras_version": keras.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT) // 1024} KiB)")
