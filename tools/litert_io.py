"""Feeding and reading LiteRT tensors as `ferroflow predict` does for .tflite files: float
inputs are quantised with an int8 input's own scale and zero point (an int8 array is fed
as it is), int8 outputs are dequantised. `detail` is an entry of an interpreter's
get_input_details() / get_output_details() (LiteRT or tf.lite)."""
import numpy as np


def to_input(x, detail):
    """`x` in the input tensor's type. Quantised as TFLite's QUANTIZE kernel does: the
    quotient rounds half away from zero (`np.round` would round half to even, and so
    differ from LiteRT and ferroflow wherever x / scale lands on a half)."""
    if detail["dtype"] == np.int8 and x.dtype != np.int8:
        scale, zero_point = detail["quantization"]
        v = x.astype(np.float32) / np.float32(scale)
        t = np.trunc(v)
        x = np.clip(t + np.sign(v) * (np.abs(v - t) >= 0.5) + zero_point, -128, 127)
    return x.astype(detail["dtype"])


def from_output(y, detail):
    """The output as float32 (dequantised when it is int8)."""
    if detail["dtype"] == np.int8:
        scale, zero_point = detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale
    return y
