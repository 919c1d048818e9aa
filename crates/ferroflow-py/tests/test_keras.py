"""Keras models from Python: callbacks, saving, summary, progress output, the GIL,
strategies, and errors for bad configs."""

import threading
import time

import numpy as np
import pytest

import ferroflow as tf
from ferroflow import keras
from ferroflow.keras import layers


def small_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    return x, y


def mlp():
    model = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(16, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        # The model is usable from a callback while fit runs.
        self.weights_seen = len(self.model.get_weights())
        self.events.append(("epoch_end", epoch, sorted(logs)))
        if epoch == 2:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_python_callback_hooks_are_called_and_can_stop_training():
    keras.utils.set_random_seed(0)
    x, y = small_data()
    model = mlp()
    rec = Recorder()
    history = model.fit(x, y, batch_size=64, epochs=10, validation_split=0.25, callbacks=[rec], verbose=0)
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert kinds.count("epoch_end") == 3 and len(history.history["loss"]) == 3
    batches = [e[1] for e in rec.events if e[0] == "batch_end"]
    assert batches[:3] == [0, 1, 2] and len(batches) == 9  # 192 training rows / 64
    assert rec.events[-2][2] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert rec.weights_seen == 4
    assert rec.model is model


def test_early_stopping_restores_best_weights():
    keras.utils.set_random_seed(1)
    x, y = small_data()
    model = mlp()
    es = keras.callbacks.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True,
                                       min_delta=10.0)
    model.fit(x, y, epochs=5, callbacks=[es], verbose=0)
    assert es.stopped_epoch == 1


def test_progress_output_like_keras(capsys):
    x, y = small_data()
    model = mlp()
    model.fit(x, y, batch_size=64, epochs=2, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2"
    assert out[1].startswith("4/4 ━━━━━━━━━━━━━━━━━━━━ ") and "accuracy: " in out[1] and "loss: " in out[1]
    model.fit(x, y, batch_size=64, epochs=1, verbose=2)
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("4/4 - ") and "/step - accuracy" in line


def test_save_and_load_keras_archive_and_directory(tmp_path):
    keras.utils.set_random_seed(2)
    x, y = small_data()
    model = mlp()
    model.fit(x, y, epochs=2, verbose=0)
    want = model.predict(x, verbose=0)
    for path in (tmp_path / "m.keras", tmp_path / "model_dir"):
        model.save(path)
        back = keras.models.load_model(path)
        np.testing.assert_allclose(back.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = mlp()
    fresh.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)


def test_summary_prints_keras_table(capsys):
    model = mlp()
    model.summary()
    out = capsys.readouterr().out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    assert "Total params: 178" in out


def test_shared_layers_multiple_outputs_and_eager_calls():
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(4,), name="b")
    shared = layers.Dense(3, name="shared")
    sa, sb = shared(a), shared(b)
    out1 = layers.Add(name="sum")([sa, sb])
    out2 = layers.Dense(1, name="score")(sa)
    model = keras.Model(inputs=[a, b], outputs=[out1, out2])
    xa, xb = np.ones((5, 4), np.float32), np.zeros((5, 4), np.float32)
    p1, p2 = model.predict([xa, xb], verbose=0)
    assert p1.shape == (5, 3) and p2.shape == (5, 1)
    e1, e2 = model([xa, xb])
    np.testing.assert_allclose(e1, p1, rtol=1e-6)
    k = shared.get_weights()[0]
    bias = shared.get_weights()[1]
    np.testing.assert_allclose(p1, xa @ k + bias + bias, rtol=1e-5)
    assert len(model.trainable_variables) == 4


def test_gil_is_released_while_fit_runs():
    x = np.random.default_rng(0).normal(size=(20000, 64)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(256, activation="relu"),
                              layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    # The other thread kept running during fit (it would get nothing with the GIL held).
    during = [s for s in ticks if start < s < start + elapsed]
    assert len(during) > 10 * elapsed, (len(during), elapsed)


def test_mirrored_strategy_scope():
    keras.utils.set_random_seed(3)
    strategy = tf.distribute.MirroredStrategy()
    assert strategy.num_replicas_in_sync >= 1
    with strategy.scope():
        model = mlp()
    x, y = small_data()
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_bad_layer_config_names_the_option():
    with pytest.raises(tf.errors.InvalidArgumentError, match="unitz"):
        layers.Dense(4, unitz=3)
    with pytest.raises(TypeError):
        layers.Dense(4, "relu", True, True, True)
    model = mlp()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expects shape \(None, 8\)"):
        model.predict(np.ones((2, 5), np.float32), verbose=0)


def test_preprocessing_layer_adapt_and_dataset_predict():
    norm = layers.Normalization()
    data = np.array([[0.0], [2.0], [4.0]], np.float32)
    norm.adapt(data)
    np.testing.assert_allclose(norm(data), (data - 2.0) / np.sqrt(8.0 / 3.0), rtol=1e-5)
    model = mlp()
    x, _ = small_data(10)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    np.testing.assert_allclose(model.predict(ds, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_loads_a_keras_file_written_by_keras(tmp_path):
    real = pytest.importorskip("keras")
    inp = real.Input(shape=(8,))
    h = real.layers.Dense(16, activation="relu")(inp)
    out = real.layers.Dense(3, activation="softmax")(h)
    km = real.Model(inp, out)
    path = str(tmp_path / "from_keras.keras")
    km.save(path)
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    ours = keras.models.load_model(path)
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # And back: Keras reads what ferroflow writes.
    ours.save(str(tmp_path / "back.keras"))
    again = real.models.load_model(str(tmp_path / "back.keras"))
    np.testing.assert_allclose(again.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_progress_bar_redraws_in_a_jupyter_cell(capsys, monkeypatch):
    import sys
    import types
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    x, y = small_data(2048)
    model = mlp()
    model.fit(x, y, batch_size=8, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n")
    # The bar is redrawn in place (carriage returns), and ends with the epoch's line.
    assert out.count("\r") >= 2
    assert out.rstrip("\n").split("\r")[-1].startswith("256/256 ━━━━━━━━━━━━━━━━━━━━ ")
