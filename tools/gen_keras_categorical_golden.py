"""Golden values of Keras 3's categorical preprocessing layers.

For each case: the layer's config as made (`init_config`), the data it adapts on (if
any), its config afterwards, its vocabulary, and its output on an input. Writes
crates/ferroflow-keras/tests/fixtures/categorical_golden.json, which
crates/ferroflow-keras/tests/categorical_golden.rs checks ferroflow against.

    python3 tools/gen_keras_categorical_golden.py
"""
import json
import os

import numpy as np
import keras

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-keras", "tests", "fixtures",
                   "categorical_golden.json")

rng = np.random.default_rng(7)
WORDS = np.array(["the", "cat", "sat", "on", "mat", "dog", "ate", "a", "[UNK]", "", "Ünï", "x y"])


def words(shape):
    return WORDS[rng.integers(0, len(WORDS), size=shape)]


def jsonable(v):
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def case(cases, name, layer, x, adapt=None):
    init = layer.get_config()
    if adapt is not None:
        layer.adapt(adapt)
    y = np.asarray(layer(x))
    entry = {
        "name": name,
        "class": type(layer).__name__,
        "init_config": jsonable(init),
        "config": jsonable(layer.get_config()),
        "input": jsonable(x),
        "input_dtype": str(np.asarray(x).dtype.kind),
        "output": jsonable(y),
        "output_shape": list(y.shape),
    }
    if adapt is not None:
        entry["adapt"] = jsonable(adapt)
        entry["adapt_dtype"] = str(np.asarray(adapt).dtype.kind)
    if hasattr(layer, "get_vocabulary"):
        entry["vocabulary"] = jsonable(layer.get_vocabulary())
    cases.append(entry)


def main():
    cases = []
    L = keras.layers
    corpus = words((40, 5))
    x = words((6, 5))
    case(cases, "string_adapt_int", L.StringLookup(), x, adapt=corpus)
    case(cases, "string_adapt_max_tokens_mask", L.StringLookup(max_tokens=6, mask_token="", num_oov_indices=2), x,
         adapt=corpus)
    case(cases, "string_adapt_multi_hot", L.StringLookup(output_mode="multi_hot"), x, adapt=corpus)
    case(cases, "string_adapt_count_pad", L.StringLookup(output_mode="count", max_tokens=12, pad_to_max_tokens=True),
         x, adapt=corpus)
    case(cases, "string_adapt_tf_idf", L.StringLookup(output_mode="tf_idf"), x, adapt=corpus)
    case(cases, "string_adapt_one_hot", L.StringLookup(output_mode="one_hot"), words((7, 1)), adapt=corpus)
    case(cases, "string_vector_adapt", L.StringLookup(), words((9,)), adapt=words((30,)))
    vocab = ["cat", "dog", "mat", "the"]
    case(cases, "string_vocab_oov3_salt", L.StringLookup(vocabulary=vocab, num_oov_indices=3, salt=42), x)
    case(cases, "string_vocab_oov3", L.StringLookup(vocabulary=vocab, num_oov_indices=3), x)
    case(cases, "string_vocab_tf_idf", L.StringLookup(vocabulary=vocab, output_mode="tf_idf",
                                                      idf_weights=[0.5, 1.0, 1.5, 2.0]), x)
    case(cases, "string_invert", L.StringLookup(vocabulary=vocab, invert=True, mask_token="[M]"),
         np.array([[0, 1, 2, 3], [4, 5, 6, 9]]))
    ints = rng.integers(0, 20, size=(40, 4))
    xi = rng.integers(-3, 25, size=(5, 4))
    case(cases, "int_adapt", L.IntegerLookup(), xi, adapt=ints)
    case(cases, "int_adapt_mask_oov2", L.IntegerLookup(mask_token=0, num_oov_indices=2, max_tokens=10), xi,
         adapt=ints)
    case(cases, "int_farmhash_oov4", L.IntegerLookup(vocabulary=[3, 5, 7], num_oov_indices=4, oov_method="farmhash"),
         xi)
    case(cases, "int_multi_hot_vocab", L.IntegerLookup(vocabulary=[3, 5, 7, 11], output_mode="multi_hot"), xi)
    case(cases, "int_invert", L.IntegerLookup(vocabulary=[30, 50, 70], invert=True),
         np.array([[0, 1, 2, 3, 4]]))
    hx = words((5, 3))
    case(cases, "hash_fast", L.Hashing(num_bins=7), hx)
    case(cases, "hash_salt_pair", L.Hashing(num_bins=7, salt=[11, 13]), hx)
    case(cases, "hash_salt_one", L.Hashing(num_bins=1000, salt=5), hx)
    case(cases, "hash_mask", L.Hashing(num_bins=5, mask_value=""), hx)
    case(cases, "hash_ints", L.Hashing(num_bins=9), xi)
    case(cases, "hash_ints_mask", L.Hashing(num_bins=9, mask_value=3), xi)
    case(cases, "hash_floats", L.Hashing(num_bins=9), np.array([[1.7, -2.2, 3.0]], dtype="float32"))
    case(cases, "hash_multi_hot", L.Hashing(num_bins=6, output_mode="multi_hot"), hx)
    case(cases, "hash_one_hot", L.Hashing(num_bins=6, output_mode="one_hot"), words((4, 1)))
    case(cases, "hash_count", L.Hashing(num_bins=6, output_mode="count"), hx)
    cx = rng.integers(0, 6, size=(4, 3))
    case(cases, "cat_multi_hot", L.CategoryEncoding(num_tokens=6), cx)
    case(cases, "cat_count", L.CategoryEncoding(num_tokens=6, output_mode="count"), cx)
    case(cases, "cat_one_hot", L.CategoryEncoding(num_tokens=6, output_mode="one_hot"), cx[:, :1])
    case(cases, "cat_one_hot_vector", L.CategoryEncoding(num_tokens=6, output_mode="one_hot"), cx[0])
    texts = np.array(["The cat, the HAT!", "a dog's dinner", "  spaces   everywhere ", "", "Ünï côdé text",
                      "the the the cat", "[UNK] tokens?", "dog-eat-dog"])
    more = np.array(["The cat sat.", "the dog ate the cat's food", "Hello, World", "cat cat dog"])
    case(cases, "text_default", L.TextVectorization(), more, adapt=texts)
    case(cases, "text_seq_len", L.TextVectorization(max_tokens=8, output_sequence_length=4), more, adapt=texts)
    case(cases, "text_bigrams_multi_hot", L.TextVectorization(ngrams=2, output_mode="multi_hot"), more, adapt=texts)
    case(cases, "text_tf_idf", L.TextVectorization(output_mode="tf_idf", standardize="lower"), more[:, None],
         adapt=texts)
    case(cases, "text_count_chars", L.TextVectorization(split="character", output_mode="count", standardize=None),
         more, adapt=texts)
    case(cases, "text_vocab_ngrams_13", L.TextVectorization(vocabulary=["cat", "dog", "the cat"], ngrams=(1, 3)),
         more)
    case(cases, "text_no_split", L.TextVectorization(split=None, output_sequence_length=1), more[:, None],
         adapt=texts)
    # Discretization: given boundaries, and quantiles learned from data of several sizes
    # (fewer points than 1/epsilon, more, ties, a skewed distribution) and epsilons.
    fx = rng.normal(size=(6, 4)).astype("float32") * 2
    case(cases, "disc_boundaries", L.Discretization(bin_boundaries=[-1.0, 0.0, 0.5, 2.0]), fx)
    case(cases, "disc_boundaries_one_hot", L.Discretization(bin_boundaries=[0.0, 1.0], output_mode="one_hot"),
         fx[:, :1])
    case(cases, "disc_boundaries_count", L.Discretization(bin_boundaries=[-0.5, 0.5], output_mode="count"), fx)
    case(cases, "disc_adapt_small", L.Discretization(num_bins=4), fx,
         adapt=rng.normal(size=(30,)).astype("float32"))
    case(cases, "disc_adapt_large", L.Discretization(num_bins=5), fx,
         adapt=rng.normal(size=(2000, 3)).astype("float32"))
    case(cases, "disc_adapt_skewed_eps", L.Discretization(num_bins=7, epsilon=0.05), fx,
         adapt=rng.exponential(size=(777,)).astype("float32"))
    case(cases, "disc_adapt_ties", L.Discretization(num_bins=3, output_mode="multi_hot"), fx,
         adapt=np.repeat(np.array([0.0, 1.0, 1.0, 2.0, 5.0], dtype="float32"), 40))
    case(cases, "disc_adapt_uneven_step", L.Discretization(num_bins=10, epsilon=0.003), fx,
         adapt=rng.uniform(-3, 3, size=(1234,)).astype("float32"))
    hashes = np.array([f"{w}-{i}-{'é' * (i % 5)}{rng.integers(1 << 40)}" for i, w in enumerate(words((10000,)))])
    bins = {
        "input": jsonable(hashes),
        "fast": np.asarray(L.Hashing(num_bins=100003)(hashes)).tolist(),
        "salted": np.asarray(L.Hashing(num_bins=100003, salt=[123, 456])(hashes)).tolist(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"keras": keras.__version__, "cases": cases, "hash_10000": bins}, f)
    print("wrote", OUT, len(cases), "cases")


if __name__ == "__main__":
    main()
