#!/usr/bin/env python3
"""Writes the small seed inputs of the fuzz targets that the committed fixtures do not
cover (fuzz/seeds/<target>/), with the standard library only. The fixtures themselves
(.npy, .keras, .h5, .tflite, .tfrecord) are added to the corpora by tools/fuzz.sh.

    python3 tools/make_fuzz_seeds.py
"""
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def idx(code, shape, raw):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + raw


def png(w, h, rgb):
    def chunk(kind, body):
        c = kind + body
        return struct.pack(">I", len(body)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb[y * w * 3:(y + 1) * w * 3]) for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bmp(w, h):
    row = bytes([(x * 40) % 256 for x in range(w * 3)])
    row += b"\x00" * (-len(row) % 4)
    pixels = row * h
    header = b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def gif():
    # A 2x2 image with a 2-colour table and one LZW-coded frame.
    return (b"GIF89a" + struct.pack("<HHBBB", 2, 2, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 2, 2, 0) + b"\x02\x02\x44\x01\x00\x3b")


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, wire, body):
    key = varint((num << 3) | wire)
    return key + (varint(len(body)) + body if wire == 2 else body)


def example(features):
    """A tf.train.Example: {name: ("float"|"int"|"bytes", values)}."""
    entries = b""
    for name, (kind, values) in features.items():
        if kind == "float":
            lst = field(1, 2, b"".join(struct.pack("<f", v) for v in values))
            feat = field(2, 2, lst)
        elif kind == "int":
            lst = field(1, 2, b"".join(varint(v & 0xFFFFFFFFFFFFFFFF) for v in values))
            feat = field(3, 2, lst)
        else:
            lst = b"".join(field(1, 2, v) for v in values)
            feat = field(1, 2, lst)
        entry = field(1, 2, name.encode()) + field(2, 2, feat)
        entries += field(1, 2, entry)
    return field(1, 2, entries)


def main():
    f32 = lambda xs: b"".join(struct.pack("<f", x) for x in xs)
    put("safetensors", "weights.safetensors", safetensors(
        {"dense/kernel": ("F32", [2, 3], f32(range(6))), "dense/bias": ("F32", [3], f32([0, 1, 2]))},
        {"format": "pt"}))
    put("safetensors", "mixed.safetensors", safetensors(
        {"i": ("I64", [2], struct.pack("<2q", 1, -1)), "h": ("F16", [1], b"\x00\x3c"),
         "b": ("BOOL", [3], b"\x01\x00\x01")}))
    put("idx", "images.idx", idx(0x08, [2, 3, 3], bytes(range(18))))
    put("idx", "labels.idx", idx(0x08, [4], bytes([1, 2, 3, 4])))
    put("idx", "floats.idx", idx(0x0D, [2, 2], struct.pack(">4f", 1, 2, 3, 4)))
    gz = zlib.compressobj(wbits=31)
    put("idx", "ints.idx.gz", gz.compress(idx(0x0C, [3], struct.pack(">3i", 1, -2, 3))) + gz.flush())
    put("csv", "typed.csv", "a,b,c\n1.5,2,3.25\n-1,,4\n0.5,7,1e3\n")
    put("csv", "quoted.csv", 'a,b,c\n"1",2,"3"\n1,"",2\n')
    put("image", "rgb.png", png(3, 2, list(range(18))))
    put("image", "rgb.bmp", bmp(3, 2))
    put("image", "two.gif", gif())
    bodies = {
        "row.json": {"instances": [[1, 2, 3], [4.5, 5, 6]]},
        "columnar.json": {"inputs": {"a": [[1, 2]], "b": [7], "c": [[True]]}},
        "named_rows.json": {"instances": [{"a": [1, 2], "b": 3, "c": [False]}]},
        "tokens.json": {"signature_name": "serving_default", "instances": [[1, 2, 3], [4, 5, 6]]},
        "classify.json": {"context": {"b": 1}, "examples": [{"a": [1, 2], "c": [True]}]},
        "regress.json": {"examples": [{"x": [1, 2, 3]}, {"x": [4, 5, 6]}]},
    }
    for name, body in bodies.items():
        put("serve_request", name, json.dumps(body))
    put("serve_request", "non_finite.json", '{"instances": [[NaN, Infinity, -Infinity]]}')
    put("model_config", "models.config", """model_config_list {
  config {
    name: 'digits'  # a comment
    base_path: "/models/digits"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: 'stable' value: 1 }
  }
  config { name: "half" base_path: "/models/half" model_version_policy { latest { num_versions: 2 } } }
}
""")
    put("model_config", "batching.config", """max_batch_size { value: 32 }
batch_timeout_micros { value: 1000 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 100 }
allowed_batch_sizes: 8
allowed_batch_sizes: 32
pad_variable_length_inputs: true
""")
    put("example", "all_kinds.pb", example({
        "f": ("float", [1.5, -2.0]), "i": ("int", [7]), "v": ("float", [1, 2, 3]),
        "b": ("bytes", [b"abc"])}))
    put("example", "missing.pb", example({"f": ("float", [1.0, 2.0])}))
    put("example", "wrong_kind.pb", example({"f": ("int", [1, 2]), "i": ("float", [1.0])}))


if __name__ == "__main__":
    main()
