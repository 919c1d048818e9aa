"""Python subclasses of keras.layers.Layer and keras.Model, trained by fit and by a
GradientTape loop in tf.function."""

import numpy as np
import pytest

import ferroflow as tf
from ferroflow import keras
from ferroflow.keras import layers


class Linear(layers.Layer):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                 trainable=True, name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

    def call(self, inputs):
        return tf.matmul(inputs, self.w) + self.b

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


class MLP(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(32, activation="relu")
        self.dropout = layers.Dropout(0.1)
        self.out = Linear(2)

    def call(self, inputs, training=False):
        return self.out(self.dropout(self.hidden(inputs), training=training))


def data(n=512):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    return x, y


def test_custom_layer_weights_and_eager_call():
    layer = Linear(3)
    x = np.ones((2, 5), np.float32)
    y = layer(x)
    assert y.shape == (2, 3)
    assert [w.shape for w in layer.weights] == [(5, 3), (3,)]
    np.testing.assert_allclose(y, x @ layer.get_weights()[0], rtol=1e-5)
    assert layer.get_config()["units"] == 3


def test_custom_layer_in_a_functional_model_trains():
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(6,))
    h = layers.Dense(32, activation="relu")(inp)
    out = Linear(2)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = data()
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.85
    assert len(model.trainable_variables) == 4


def test_subclassed_model_fit_and_gradient_tape():
    keras.utils.set_random_seed(1)
    model = MLP()
    x, y = data()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.85
    assert len(model.trainable_variables) == 4
    # The same model in a custom loop.
    opt = keras.optimizers.SGD(learning_rate=0.05)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    first = float(step(x[:64], y[:64]))
    for _ in range(20):
        last = float(step(x[:64], y[:64]))
    assert last < first
    assert model.predict(x[:3], verbose=0).shape == (3, 2)


def test_errors_in_python_call_are_reported():
    class Broken(layers.Layer):
        def call(self, inputs):
            raise RuntimeError("bad call")

    with pytest.raises(tf.errors.InvalidArgumentError, match="bad call"):
        Broken()(np.ones((1, 2), np.float32))
