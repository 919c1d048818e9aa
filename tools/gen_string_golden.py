"""Golden values of TensorFlow's string ops, and NumPy's string .npy files.

Writes crates/ferroflow-core/tests/fixtures/strings_golden.json (inputs, TF outputs) and
strings_unicode.npy / strings_bytes.npy (as NumPy writes `<U` and `|S` arrays), which
crates/ferroflow-core/tests/strings_golden.rs checks ferroflow against.

    python3 tools/gen_string_golden.py
"""
import base64
import json
import os

import numpy as np
import tensorflow as tf

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-core", "tests", "fixtures")

TEXTS = [
    "Hello, World!",
    "  leading and trailing\t",
    "ÀÉÎ õü ß",
    "a,,b,c",
    "",
    "tab\tsep  double  space",
    "MiXeD 123 4.5e2",
    "it's \"quoted\" [brackets] {braces}",
    "日本語 テキスト",
    "x$y\\z",
    "x   y z",
    "a ",
    "   ",
    " a b c ",
]
NUMBERS = [" 1.5", "-2", "1e3", "inf", "-inf", "+7", "0.1", "3.4028235e38", "  42  "]
PUNCT = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


def strs(t):
    return [base64.b64encode(x).decode() for x in np.asarray(t).reshape(-1).tolist()]


def floats_json(values):
    """Floats for JSON, the non-finite ones as the strings "nan", "inf" and "-inf"."""
    return [v if np.isfinite(v) else str(v) for v in map(float, values)]


def ragged(r):
    return {"values": strs(r.flat_values.numpy()), "row_splits": r.row_splits.numpy().tolist()}


def main():
    x = tf.constant(TEXTS)
    g = {"texts": strs(x.numpy()), "cases": []}

    def case(name, out, **args):
        g["cases"].append({"op": name, "args": args, "out": out})

    case("lower", strs(tf.strings.lower(x)))
    case("lower_unicode", strs(tf.strings.lower(x, encoding="utf-8")))
    case("upper", strs(tf.strings.upper(x)))
    case("upper_unicode", strs(tf.strings.upper(x, encoding="utf-8")))
    case("strip", strs(tf.strings.strip(x)))
    case("length_bytes", tf.strings.length(x).numpy().tolist())
    case("length_chars", tf.strings.length(x, unit="UTF8_CHAR").numpy().tolist())
    for pattern, rewrite, glob in [(PUNCT, "", True), (r"(\w+) (\w+)", r"\2 \1", True),
                                   (r"\s+", " ", True), ("o", "0", False), (r"\$", "$$", True)]:
        case("regex_replace", strs(tf.strings.regex_replace(x, pattern, rewrite, glob)),
             pattern=pattern, rewrite=rewrite, replace_global=glob)
    for pattern in [r".*\d.*", r"[a-z ,]*", ""]:
        case("regex_full_match", tf.strings.regex_full_match(x, pattern).numpy().tolist(), pattern=pattern)
    case("split_whitespace", ragged(tf.strings.split(x)))
    case("split_comma", ragged(tf.strings.split(x, sep=",")), sep=",")
    case("split_two_spaces_max1", ragged(tf.strings.split(x, sep="  ", maxsplit=1)), sep="  ", maxsplit=1)
    for m in [0, 1, 2]:
        case(f"split_whitespace_max{m}", ragged(tf.strings.split(x, maxsplit=m)), maxsplit=m)
        case(f"split_space_max{m}", ragged(tf.strings.split(x, sep=" ", maxsplit=m)), sep=" ", maxsplit=m)
    case("join", strs(tf.strings.join([x, tf.strings.upper(x)], separator="|")), separator="|")
    case("reduce_join", strs(tf.strings.reduce_join(tf.reshape(x, [2, 7]), axis=1, separator="/")),
         separator="/")
    n = tf.constant(NUMBERS)
    g["numbers"] = NUMBERS
    g["to_number_f32"] = floats_json(tf.strings.to_number(n, tf.float32).numpy())
    ints = tf.constant(["-2", "+7", "  42  ", "2147483647"])
    g["int_texts"] = ints.numpy().astype(str).tolist()
    g["to_number_i32"] = tf.strings.to_number(ints, tf.int32).numpy().tolist()
    floats = np.array([1.5, -0.0, 1e20, 3.14159265, np.nan, -np.inf, 1e-7], dtype=np.float32)
    g["floats"] = floats_json(floats)
    g["as_string_f32"] = strs(tf.strings.as_string(floats))
    g["as_string_f32_p2"] = strs(tf.strings.as_string(floats, precision=2))
    g["as_string_i64"] = strs(tf.strings.as_string(np.array([-3, 0, 2**40], dtype=np.int64)))
    words = tf.constant([f"w{i}-{'x' * (i % 70)}" for i in range(500)])
    g["hash_inputs"] = strs(words.numpy())
    g["hash_fast_1009"] = tf.strings.to_hash_bucket_fast(words, 1009).numpy().tolist()
    g["hash_strong_1009_7_11"] = tf.strings.to_hash_bucket_strong(words, 1009, [7, 11]).numpy().tolist()
    with open(os.path.join(OUT, "strings_golden.json"), "w") as f:
        json.dump(g, f, indent=1, ensure_ascii=True)
    np.save(os.path.join(OUT, "strings_unicode.npy"), np.array(TEXTS[:8]).reshape(2, 4))
    np.save(os.path.join(OUT, "strings_bytes.npy"), np.array([b"\xff\x00a", b"", b"plain"]))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
