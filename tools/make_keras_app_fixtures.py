#!/usr/bin/env python3
"""Builds `keras.applications` models with `weights=None` and a fixed seed and saves
what `crates/ferroflow-keras/tests/applications.rs` compares against.

    python3 tools/make_keras_app_fixtures.py DIR            # large files, for .ci/run
    python3 tools/make_keras_app_fixtures.py --architecture crates/ferroflow-keras/tests/fixtures/applications

DIR gets, per model: NAME.keras, NAME.weights.h5 (Keras 3 layout), NAME_legacy.h5 (the
legacy layout of the files keras.applications downloads), NAME_x.npy (two 224x224 RGB
images, values 0-255) and NAME_y.npy (Keras's outputs). These are ~30 MB per model, so
CI regenerates them instead of committing them. `--architecture` writes the small,
committed description of each model (layer names, classes, output shapes, parameter
counts) for the architecture test.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402

MODELS = {
    "efficientnetv2b0": lambda **kw: keras.applications.EfficientNetV2B0(weights=None, **kw),
    "mobilenetv2": lambda **kw: keras.applications.MobileNetV2(weights=None, **kw),
    "resnet50": lambda **kw: keras.applications.ResNet50(weights=None, **kw),
}
# (name, constructor kwargs) of the architecture variants described for the test.
VARIANTS = [
    ("efficientnetv2b0", {}),
    ("efficientnetv2b0", {"include_top": False, "pooling": "avg", "input_shape": (160, 192, 3)}),
    ("efficientnetv2b0", {"include_top": False, "include_preprocessing": False, "input_shape": (None, None, 3)}),
    ("efficientnetv2b0", {"classes": 10, "classifier_activation": None}),
    ("mobilenetv2", {}),
    ("mobilenetv2", {"alpha": 0.35, "include_top": False, "pooling": "max", "input_shape": (160, 160, 3)}),
    ("mobilenetv2", {"alpha": 1.3, "input_shape": (97, 131, 3), "classes": 7}),
    ("resnet50", {}),
    ("resnet50", {"include_top": False, "pooling": "avg", "input_shape": (200, 180, 3)}),
]


def perturb(model, rng):
    """Non-trivial BatchNormalization statistics, so that loading them matters."""
    for w in model.weights:
        if w.path.endswith("moving_mean"):
            w.assign(rng.normal(0, 0.1, size=w.shape).astype("float32"))
        elif w.path.endswith("moving_variance"):
            w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))


def describe(model):
    return {
        "name": model.name,
        "params": int(model.count_params()),
        "input_shape": list(model.inputs[0].shape),
        "output_shape": list(model.outputs[0].shape),
        "layers": [[l.name, l.__class__.__name__, len(l.weights)] for l in model.layers],
    }


def architecture(out):
    os.makedirs(out, exist_ok=True)
    descs = []
    for name, kw in VARIANTS:
        keras.backend.clear_session()  # fresh auto-generated names, as in a new process
        m = MODELS[name](**kw)
        d = describe(m)
        d["kwargs"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        descs.append(d)
    with open(os.path.join(out, "architectures.json"), "w") as f:
        json.dump(descs, f)
    print(f"wrote {len(descs)} architecture descriptions to {out}")


def weights_files(out):
    from keras.src.legacy.saving import legacy_h5_format
    import h5py
    os.makedirs(out, exist_ok=True)
    for name, build in MODELS.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        rng = np.random.default_rng(3)
        m = build()
        perturb(m, rng)
        x = rng.uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
        y = m.predict(x, verbose=0)
        np.save(os.path.join(out, f"{name}_x.npy"), x)
        np.save(os.path.join(out, f"{name}_y.npy"), y)
        m.save(os.path.join(out, f"{name}.keras"))
        m.save_weights(os.path.join(out, f"{name}.weights.h5"))
        with h5py.File(os.path.join(out, f"{name}_legacy.h5"), "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, m)
        print(f"wrote {name} to {out}")


if __name__ == "__main__":
    if sys.argv[1] == "--architecture":
        architecture(sys.argv[2])
    else:
        weights_files(sys.argv[1])
