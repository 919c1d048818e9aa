#!/usr/bin/env python3
"""Builds small Keras 3 models covering ferroflow's layers, saves them as `.keras` files
(and the MLP also as legacy `.h5`, `.weights.h5` and `to_json()`), with fixed inputs and
Keras's outputs, for `crates/ferroflow-keras/tests/keras_files.rs`.

    python3 tools/make_keras_fixtures.py crates/ferroflow-keras/tests/fixtures/keras

Needs keras 3 with the TensorFlow backend (the CI venv has it). Weights are random with a
fixed seed; BatchNormalization statistics are set to non-trivial values so that loading
them matters.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def perturb(model, rng):
    """Gives every variable a random value so that a wrongly mapped weight shows."""
    for w in model.weights:
        v = rng.normal(0.0, 0.3, size=w.shape).astype("float32")
        if "variance" in w.path:
            v = np.abs(v) + 0.5
        w.assign(v)


def mlp():
    return keras.Sequential([
        keras.Input((8,), name="features"),
        layers.Dense(16, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.3),
        layers.Dense(12, activation="gelu"),
        layers.LayerNormalization(),
        layers.Dense(4, activation="softmax"),
    ], name="mlp")


def cnn():
    x = keras.Input((12, 12, 3), name="image")
    h = layers.Rescaling(1 / 255.0)(x)
    h = layers.Conv2D(8, 3, padding="same", use_bias=False)(h)
    h = layers.BatchNormalization()(h)
    h = layers.Activation("swish")(h)
    h = layers.DepthwiseConv2D(3, strides=2, padding="same")(h)
    h = layers.SeparableConv2D(6, 3, padding="valid", activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.ZeroPadding2D(1)(h)
    h = layers.AveragePooling2D(2, padding="same")(h)
    h = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(h)
    g = layers.GlobalAveragePooling2D()(h)
    m = layers.GlobalMaxPooling2D()(h)
    h = layers.Concatenate()([g, m])
    y = layers.Dense(5)(h)
    return keras.Model(x, y, name="cnn")


def rnn():
    ids = keras.Input((7,), dtype="int32", name="tokens")
    e = layers.Embedding(20, 6)(ids)
    h = layers.LSTM(5, return_sequences=True)(e)
    h = layers.GRU(4, return_sequences=True)(h)
    h = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True))(h)
    h = layers.TimeDistributed(layers.Dense(2))(h)
    h = layers.Conv1D(3, 2, activation="tanh")(h)
    h = layers.LSTM(4)(h)
    y = layers.Dense(3)(h)
    return keras.Model(ids, y, name="rnn")


def attention():
    x = keras.Input((6, 8), name="sequence")
    a = layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    h = layers.Add()([x, a])
    h = layers.LayerNormalization()(h)
    h = layers.Dense(8, activation="relu")(h)
    h = layers.GlobalAveragePooling1D()(h)
    y = layers.Dense(2)(h)
    return keras.Model(x, y, name="attention")


def multi_io():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    shared = layers.Dense(4, activation="tanh", name="shared")
    ha, hb = shared(layers.Dense(3)(a)), shared(b)
    c = layers.Concatenate()([ha, hb])
    p = layers.Dense(2, activation="softmax", name="p")(c)
    q = layers.Dense(1, name="q")(layers.Multiply()([ha, hb]))
    return keras.Model([a, b], [p, q], name="multi_io")


def nested():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(6, activation="relu"),
                              layers.BatchNormalization(), layers.Dense(3)], name="inner")
    x = keras.Input((4,), name="x")
    y = layers.Dense(2)(inner(x))
    return keras.Model(x, y, name="nested")


def misc():
    """The remaining layers: reshaping, merging, pooling 1D, normalisation, ReLU."""
    seq = keras.Input((6, 4), name="seq")
    img = keras.Input((5, 5, 2), name="img")
    s = layers.Normalization(mean=[0.1, -0.2, 0.3, 0.0], variance=[1.0, 2.0, 0.5, 1.5])(seq)
    s = layers.Permute((2, 1))(s)                       # (4, 6)
    s = layers.Conv1D(6, 2, padding="causal", dilation_rate=2)(s)
    a = layers.MaxPooling1D(2)(s)
    b = layers.AveragePooling1D(2, padding="same")(s)
    s = layers.Subtract()([a, b])
    s = layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.25)(s)
    g = layers.GlobalMaxPooling1D()(s)                  # (6,)
    i = layers.UpSampling2D(2)(img)
    i = layers.Conv2D(3, 3, dilation_rate=2, activation="elu")(i)
    i = layers.Flatten()(i)
    i = layers.Dense(6, activation="selu")(i)
    m = layers.Maximum()([g, i])
    n = layers.Minimum()([g, i])
    v = layers.Average()([m, n])
    d = layers.Dot(axes=1, normalize=True)([m, n])
    r = layers.RepeatVector(3)(v)
    r = layers.Reshape((18,))(r)
    y = layers.Concatenate()([r, d])
    y = layers.Dense(3, activation="leaky_relu")(y)
    return keras.Model([seq, img], y, name="misc")


WORDS = np.array(["the", "cat", "sat", "on", "mat", "dog", "ate", "a", "", "Ünï", "x y", "[UNK]"])


def categorical():
    """String, integer and float features: lookups adapted on data (their vocabularies
    are assets, tf_idf weights are layer state), salted hashing, embeddings, quantile
    bins learned by Discretization."""
    rng = np.random.default_rng(11)
    words = keras.Input((3,), dtype="string", name="words")
    ids = keras.Input((2,), dtype="int64", name="ids")
    sl = layers.StringLookup(output_mode="tf_idf", max_tokens=8)
    sl.adapt(WORDS[rng.integers(0, len(WORDS), (30, 3))])
    il = layers.IntegerLookup(num_oov_indices=2, mask_token=0)
    il.adapt(rng.integers(0, 12, (40, 2)))
    a = sl(words)
    e = layers.Flatten()(layers.Embedding(il.vocabulary_size(), 4)(il(ids)))
    h = layers.Hashing(num_bins=8, salt=3, output_mode="multi_hot")(words)
    c = layers.CategoryEncoding(num_tokens=20, output_mode="count")(ids)
    text = keras.Input((), dtype="string", name="text")
    tv = layers.TextVectorization(max_tokens=12, ngrams=2, output_mode="tf_idf")
    tv.adapt(np.array([" ".join(WORDS[rng.integers(0, len(WORDS), 4)]) for _ in range(20)]))
    t = tv(text)
    amounts = keras.Input((2,), dtype="float32", name="amounts")
    disc = layers.Discretization(num_bins=4, output_mode="multi_hot")
    disc.adapt(rng.normal(size=(100, 2)).astype("float32"))
    d = disc(amounts)
    y = layers.Dense(3)(layers.Concatenate()([a, e, h, c, t, d]))
    return keras.Model([words, ids, text, amounts], y, name="categorical")


def masked():
    """Padding masks: Embedding(mask_zero=True) into an LSTM over sequences (Dense keeps
    the mask), a backwards GRU, a bidirectional SimpleRNN and GlobalAveragePooling1D."""
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    e = layers.Embedding(20, 6, mask_zero=True)(tokens)
    s = layers.LSTM(5, return_sequences=True)(e)
    s = layers.Dense(4)(s)
    g = layers.GRU(3, go_backwards=True)(s)
    b = layers.Bidirectional(layers.SimpleRNN(3))(e)
    p = layers.GlobalAveragePooling1D()(e)
    y = layers.Dense(2)(layers.Concatenate()([g, b, p]))
    return keras.Model(tokens, y, name="masked")


def masked_merge():
    """Masks through merges, Keras's rules, which Keras 3 saves as operation nodes passed
    on as `mask=`: Add ORs its inputs' masks; Concatenate along the steps joins them, along
    the features ORs them, and an unmasked input unmasks every step; Multiply with an
    unmasked input drops the mask; Multiply, Maximum and Minimum use the masks in their
    values."""
    a = keras.Input((6,), dtype="int32", name="tokens")
    b = keras.Input((6,), dtype="int32", name="tokens_b")
    ea = layers.Embedding(20, 4, mask_zero=True)(a)
    eb = layers.Embedding(20, 4, mask_zero=True)(b)
    plain = layers.Embedding(20, 4)(b)
    added = layers.LSTM(3)(layers.Add()([ea, eb]))
    joined = layers.GlobalAveragePooling1D()(layers.Concatenate(axis=1)([ea, eb]))
    stacked = layers.GRU(3)(layers.Concatenate()([ea, eb]))
    opened = layers.GRU(2)(layers.Concatenate()([ea, plain]))
    dropped = layers.GlobalAveragePooling1D()(layers.Multiply()([ea, plain]))
    # Multiply, Maximum and Minimum also read the masks for their values.
    both = layers.LSTM(2)(layers.Multiply()([ea, eb]))
    maxed = layers.GlobalAveragePooling1D()(layers.Maximum()([ea, eb]))
    minned = layers.GlobalAveragePooling1D()(layers.Minimum()([plain, ea, eb]))
    y = layers.Dense(2)(layers.Concatenate()([added, joined, stacked, opened, dropped, both, maxed, minned]))
    return keras.Model([a, b], y, name="masked_merge")


def keras_feed(x):
    """What Keras's predict takes for an array: NumPy unicode arrays as string tensors."""
    if x.dtype.kind in "US":
        import tensorflow as tf
        return tf.constant(x)
    return x


def inputs_for(model, rng, n=5):
    out = []
    for t in model.inputs:
        shape = (n,) + tuple(t.shape[1:])
        if t.name.startswith("tokens"):
            # Padded id sequences (zeros after the last token, one zero inside a row).
            lengths = rng.integers(1, shape[1] + 1, n)
            seq = rng.integers(1, 20, size=shape)
            seq[np.arange(shape[1])[None, :] >= lengths[:, None]] = 0
            seq[0, min(1, lengths[0] - 1)] = 0 if lengths[0] > 2 else seq[0, 0]
            out.append(seq.astype("int32"))
        elif "string" in str(t.dtype) and t.name == "text":
            out.append(np.array([" ".join(WORDS[rng.integers(0, len(WORDS), 5)]) for _ in range(n)]))
        elif "string" in str(t.dtype):
            out.append(WORDS[rng.integers(0, len(WORDS), size=shape)])
        elif "int" in str(t.dtype):
            out.append(rng.integers(0, 20, size=shape).astype("int32"))
        else:
            out.append(rng.normal(0, 1, size=shape).astype("float32") * (100 if t.name == "image" else 1))
    return out


def trained(out, rng):
    """A compiled model trained a little (Adam state in the file), the batch it trains on
    next, and its predictions after that one more step in Keras: a loaded model must
    resume training exactly."""
    model = keras.Sequential([keras.Input((6,), name="x"), layers.Dense(8, activation="tanh"),
                              layers.BatchNormalization(), layers.Dense(3)], name="trained")
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = rng.normal(0, 1, (16, 6)).astype("float32")
    y = rng.normal(0, 1, (16, 3)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    model.save(os.path.join(out, "trained.keras"))
    np.save(os.path.join(out, "trained_x.npy"), x)
    np.save(os.path.join(out, "trained_t.npy"), y)
    model.train_on_batch(x, y)
    np.save(os.path.join(out, "trained_after_step.npy"), model.predict(x, verbose=0))


def write_model(out, build, rng, index):
    """Saves one perturbed model, its inputs and Keras's predictions."""
    model = build()
    perturb(model, rng)
    name = model.name
    xs = inputs_for(model, rng)
    feed = [keras_feed(x) for x in xs]
    ys = model.predict(feed if len(feed) > 1 else feed[0], verbose=0)
    ys = ys if isinstance(ys, list) else [ys]
    model.save(os.path.join(out, f"{name}.keras"))
    for i, x in enumerate(xs):
        np.save(os.path.join(out, f"{name}_x{i}.npy"), x)
    for i, y in enumerate(ys):
        np.save(os.path.join(out, f"{name}_y{i}.npy"), np.asarray(y))
    index[name] = {"inputs": len(xs), "outputs": len(ys)}
    if name == "mlp":
        model.save(os.path.join(out, "mlp_legacy.h5"))
        model.save_weights(os.path.join(out, "mlp.weights.h5"))
        with open(os.path.join(out, "mlp.json"), "w") as f:
            f.write(model.to_json())


# Models added later draw from seeds of their own, so that adding one leaves the files of
# the others as they were.
SEEDED = {"masked_merge": (masked_merge, 11)}


def main():
    """`make_keras_fixtures.py [OUT [NAME...]]`: every model, or only the ones named (their
    files replaced and index.json updated)."""
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/ferroflow-keras/tests/fixtures/keras"
    only = set(sys.argv[2:])
    os.makedirs(out, exist_ok=True)
    index_path = os.path.join(out, "index.json")
    index = {}
    if only and os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)["models"]
    if not only:
        keras.utils.set_random_seed(7)
        rng = np.random.default_rng(7)
        for build in (mlp, cnn, rnn, attention, multi_io, nested, misc, categorical, masked):
            write_model(out, build, rng, index)
        trained(out, rng)
    for name, (build, seed) in SEEDED.items():
        if not only or name in only:
            keras.utils.set_random_seed(seed)
            write_model(out, build, np.random.default_rng(seed), index)
    with open(index_path, "w") as f:
        json.dump({"keras_version": keras.__version__, "models": index}, f, indent=1)
    print(f"wrote {len(index)} models to {out}")


if __name__ == "__main__":
    main()
