#!/usr/bin/env python3
"""Exports PyTorch models to ONNX (random weights, fixed seed) with onnxruntime's outputs,
for ferroflow's ONNX import check (tools/check_onnx_import.py).

    python3 tools/make_onnx_import_fixtures.py DIR [--small]

The small ones are committed in crates/ferroflow-onnx/tests/fixtures/import (regenerate
with `--small` there); .ci/run generates the torchvision ones.

DIR gets, per model, NAME.onnx, NAME_x0.npy... (inputs in graph order) and NAME_y0.npy...
(onnxruntime's outputs, CPU, in graph order). The models: torchvision resnet18 and
mobilenet_v2 (dynamic batch), an nn.TransformerEncoderLayer, an LSTM and a GRU with
initial states as inputs and final states as outputs (bidirectional LSTM, batch_first
GRU), a scripted module with an `If` (run down each branch), a 1-D CNN with ConvTranspose,
Resize and padding; and two Keras models through tf2onnx (a CNN with batch norm and a
depthwise convolution; embedding, Conv1D, LSTM). `--small` skips the two torchvision models (~60 MB).
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision


class Lstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, num_layers=1, bidirectional=True)

    def forward(self, x, h0, c0):
        y, (h, c) = self.rnn(x, (h0, c0))
        return y, h, c


class Gru(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 12, batch_first=True)

    def forward(self, x, h0):
        y, h = self.rnn(x, h0)
        return y, h


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)

    def forward(self, x):
        return self.layer(x, src_mask=None, is_causal=False)


class Branchy(nn.Module):
    def forward(self, x):
        if bool(x.sum() > 0):
            return torch.relu(x) * 2.0
        return x - 1.0


class Looped(nn.Module):
    """A scripted loop (ONNX `Loop`) whose body reads a value of the outer graph."""

    def forward(self, x):
        w = torch.tanh(x)
        h = x
        for _ in range(x.shape[0]):
            h = h * 0.5 + w
        return h


class Signal(nn.Module):
    """1-D convolutions, a transposed one, upsampling, padding, pooling and a reduction."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, stride=2, padding=2)
        self.c2 = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = torch.nn.functional.hardswish(self.c1(x))  # [n, 8, 16]
        y = y.unsqueeze(2)  # [n, 8, 1, 16]
        y = self.bn(self.c2(y))  # [n, 4, 2, 32]
        y = torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = torch.nn.functional.pad(y, (1, 2, 0, 1))
        y = torch.nn.functional.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=False)
        return torch.nn.functional.leaky_relu(y.mean(dim=(2,)), 0.1)


def keras_models():
    """Two Keras models for tf2onnx: a CNN (NHWC, batch norm, pooling) and a text model
    (embedding, 1-D convolution, LSTM)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    cnn = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    tokens = keras.Input((12,), dtype="int32")
    y = keras.layers.Embedding(50, 8)(tokens)
    y = keras.layers.Conv1D(8, 3, padding="same", activation="tanh")(y)
    y = keras.layers.LSTM(16)(y)
    text = keras.Model(tokens, keras.layers.Dense(3)(y))
    rng = np.random.default_rng(1)
    return [("keras_cnn_tf2onnx", cnn, [rng.standard_normal((3, 16, 16, 3)).astype(np.float32)]),
            ("keras_text_tf2onnx", text, [rng.integers(0, 50, (3, 12)).astype(np.int32)])]


def export_keras(directory, name, model, inputs, opset):
    """Keras -> SavedModel -> tf2onnx, then onnxruntime's outputs."""
    import subprocess
    import tempfile
    saved = tempfile.mkdtemp()
    model.export(saved, verbose=False)
    path = os.path.join(directory, f"{name}.onnx")
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--output", path,
                    "--opset", str(opset)], check=True, capture_output=True)
    save_outputs(directory, name, path, inputs)


def save_outputs(directory, name, path, inputs):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    outs = sess.run(None, feeds)
    for i, x in enumerate(inputs):
        np.save(os.path.join(directory, f"{name}_x{i}.npy"), x)
    for i, y in enumerate(outs):
        np.save(os.path.join(directory, f"{name}_y{i}.npy"), y)
    print(f"wrote {name} ({len(inputs)} inputs, {len(outs)} outputs)")


def export(directory, name, module, inputs, opset, dynamic=None, script=False):
    module.eval()
    path = os.path.join(directory, f"{name}.onnx")
    names = [f"input_{i}" for i in range(len(inputs))]
    m = torch.jit.script(module) if script else module
    with torch.no_grad():
        torch.onnx.export(m, tuple(torch.from_numpy(x) for x in inputs), path, opset_version=opset,
                          input_names=names, dynamic_axes=dynamic, dynamo=False)
    save_outputs(directory, name, path, inputs)


def main():
    directory = sys.argv[1]
    small = "--small" in sys.argv
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(0)
    # The fused inference kernel of nn.TransformerEncoderLayer has no ONNX form.
    torch.backends.mha.set_fastpath_enabled(False)
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    batch = {"input_0": {0: "batch"}}
    if not small:
        export(directory, "resnet18", torchvision.models.resnet18(weights=None), [f32(2, 3, 224, 224)], 17, batch)
        export(directory, "mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), [f32(2, 3, 224, 224)], 13, batch)
    export(directory, "transformer_encoder", Encoder(), [f32(2, 10, 32)], 17)
    export(directory, "lstm_state", Lstm(), [f32(7, 3, 8), f32(2, 3, 16), f32(2, 3, 16)], 14)
    export(directory, "gru_state", Gru(), [f32(3, 7, 8), f32(1, 3, 12)], 11)
    # The same scripted `If` once down each branch.
    export(directory, "branchy_if_then", Branchy(), [np.abs(f32(2, 5))], 16, script=True)
    export(directory, "branchy_if_else", Branchy(), [-np.abs(f32(2, 5))], 16, script=True)
    export(directory, "looped", Looped(), [f32(3, 4)], 16, script=True)
    export(directory, "signal_cnn", Signal(), [f32(2, 3, 32)], 18)
    for (name, model, inputs), opset in zip(keras_models(), (13, 15)):
        export_keras(directory, name, model, inputs, opset)


if __name__ == "__main__":
    main()
