"""TensorFlow's canonical snippets with only the imports changed
(``import tensorflow as tf`` -> ``import ferroflow as tf``, ``from tensorflow import keras``
-> ``from ferroflow import keras``), trained on the shipped digits data.

The file is plain TensorFlow otherwise: ``SNIPPETS_WITH=tensorflow pytest test_tf_snippets.py``
runs it unchanged on TensorFlow and Keras 3.
"""

import gzip
import os

import numpy as np

if os.environ.get("SNIPPETS_WITH") == "tensorflow":
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers
else:
    import ferroflow as tf
    from ferroflow import keras
    from ferroflow.keras import layers

# The demo (`ferroflow demo`, the same MLP in Rust) reaches about 0.97 held-out accuracy.
DEMO_ACCURACY = 0.94
DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ferroflow-keras",
                      "data", "digits.csv.gz")


def load_digits():
    """The shipped 8x8 digits (pixels 0-16, label last), split 80/20 with a fixed shuffle."""
    with gzip.open(DIGITS, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    order = np.random.default_rng(42).permutation(len(data))
    data = data[order]
    x, y = data[:, :64], data[:, 64]
    n_test = len(data) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def digits():
    (x_train, y_train), (x_test, y_test) = load_digits()
    return (x_train.astype("float32") / 16.0, y_train), (x_test.astype("float32") / 16.0, y_test)


def test_sequential_mlp_compile_fit_validation_split():
    keras.utils.set_random_seed(1)
    (x_train, y_train), (x_test, y_test) = digits()
    model = keras.Sequential([
        keras.layers.Input(shape=(64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=25, validation_split=0.1, verbose=0)
    assert len(history.history["loss"]) == 25
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "val_accuracy" in history.history
    loss, acc = model.evaluate(x_test, y_test, verbose=2)
    assert acc >= DEMO_ACCURACY, acc
    probability_model = keras.Sequential([model, keras.layers.Softmax()])
    p = probability_model(x_test[:5])
    np.testing.assert_allclose(np.sum(np.asarray(p), axis=1), 1.0, rtol=1e-5)


def test_functional_multi_input_embedding_pooling_concatenate():
    keras.utils.set_random_seed(2)
    (x_train, y_train), (x_test, y_test) = load_digits()
    # Two views of each image: its pixels as a sequence of tokens (0-16), and as numbers.
    tokens_in = keras.Input(shape=(64,), dtype="int32", name="tokens")
    pixels_in = keras.Input(shape=(64,), name="pixels")
    t = layers.Embedding(input_dim=17, output_dim=16)(tokens_in)
    t = layers.GlobalAveragePooling1D()(t)
    p = layers.Dense(64, activation="relu")(pixels_in)
    x = layers.Concatenate()([t, p])
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="digit")(x)
    model = keras.Model(inputs=[tokens_in, pixels_in], outputs=out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit({"tokens": x_train.astype("int32"), "pixels": x_train / 16.0}, y_train,
              batch_size=32, epochs=20, verbose=0)
    _, acc = model.evaluate([x_test.astype("int32"), x_test / 16.0], y_test, verbose=0)
    assert acc >= DEMO_ACCURACY, acc
    assert {"tokens", "pixels", "digit"} <= {l.name for l in model.layers}


def test_gradient_tape_train_step():
    keras.utils.set_random_seed(3)
    (x_train, y_train), (x_test, y_test) = digits()
    model = keras.Sequential([
        layers.Dense(64, activation="relu", input_shape=(64,)),
        layers.Dense(10),
    ])
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train_acc_metric = keras.metrics.SparseCategoricalAccuracy()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss_value = loss_fn(y, logits)
        grads = tape.gradient(loss_value, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        train_acc_metric.update_state(y, logits)
        return loss_value

    train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    train_dataset = train_dataset.shuffle(buffer_size=1024).batch(32, drop_remainder=True)
    losses = []
    for epoch in range(15):
        for x_batch, y_batch in train_dataset:
            losses.append(float(train_step(x_batch, y_batch)))
        train_acc = float(train_acc_metric.result())
        train_acc_metric.reset_state()
    assert losses[-1] < losses[0]
    # One batch shape: the later steps ran the compiled plan (TensorFlow traces a second
    # time once the optimiser has made its slots).
    assert train_step.experimental_get_tracing_count() <= 2
    assert train_acc > 0.9, train_acc
    logits = model(x_test)
    acc = float(np.mean(np.argmax(np.asarray(logits), axis=1) == y_test))
    assert acc >= DEMO_ACCURACY, acc


def test_tf_data_pipeline():
    keras.utils.set_random_seed(4)
    (x_train, y_train), (x_test, y_test) = load_digits()

    def normalize(image, label):
        return tf.cast(image, tf.float32) / 16.0, label

    ds_train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    ds_train = ds_train.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    ds_train = ds_train.cache()
    ds_train = ds_train.shuffle(1000)
    ds_train = ds_train.batch(32)
    ds_train = ds_train.prefetch(tf.data.AUTOTUNE)
    ds_test = tf.data.Dataset.from_tensor_slices((x_test, y_test))
    ds_test = ds_test.map(normalize, num_parallel_calls=tf.data.AUTOTUNE).batch(128).cache()
    model = keras.models.Sequential([
        keras.layers.Input(shape=(64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    history = model.fit(ds_train, epochs=15, validation_data=ds_test, verbose=0)
    assert history.history["val_sparse_categorical_accuracy"][-1] >= DEMO_ACCURACY
    batches = list(ds_test.as_numpy_iterator())
    assert batches[0][0].shape == (128, 64) and batches[0][0].dtype == np.float32


def test_tflite_int8_conversion():
    keras.utils.set_random_seed(5)
    (x_train, y_train), (x_test, y_test) = digits()
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=20, verbose=0)

    def representative_dataset():
        for i in range(100):
            yield [x_train[i:i + 1].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite_model = converter.convert()
    assert tflite_model[4:8] == b"TFL3"

    interpreter = tf.lite.Interpreter(model_content=tflite_model)
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]
    assert input_details["dtype"] == np.int8 and output_details["dtype"] == np.int8
    scale, zero_point = input_details["quantization"]
    correct = 0
    for i in range(len(x_test)):
        q = np.round(x_test[i:i + 1] / scale + zero_point).clip(-128, 127).astype(np.int8)
        interpreter.set_tensor(input_details["index"], q)
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(output_details["index"])[0]) == y_test[i])
    assert correct / len(x_test) >= DEMO_ACCURACY - 0.02, correct / len(x_test)
