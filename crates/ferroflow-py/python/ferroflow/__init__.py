"""ferroflow: a TensorFlow-class deep-learning framework in Rust.

TensorFlow code runs with its import changed::

    import ferroflow as tf
    from ferroflow import keras
"""

from . import _native
from ._dtypes import (DType, as_dtype, bfloat16, bool_, double, float16, float32,  # noqa: F401
                      float64, half, int8, int32, int64, string, uint8)
from ._function import function  # noqa: F401
from ._ops import math, nn, random, top as _top  # noqa: F401
from ._native import GradientTape, IndexedSlices, Tensor, Variable  # noqa: F401

globals().update(_top)
bool = bool_  # noqa: A001  (tf.bool)
newaxis = None

from . import data, distribute, keras, lite  # noqa: E402,F401


class errors:
    """``tf.errors``."""

    InvalidArgumentError = _native.InvalidArgumentError
    OpError = _native.InvalidArgumentError


class config:
    """``tf.config``: ferroflow runs on the CPU."""

    @staticmethod
    def list_physical_devices(device_type=None):
        return [] if device_type not in (None, "CPU") else ["/physical_device:CPU:0"]

    class threading:
        @staticmethod
        def set_intra_op_parallelism_threads(n):
            pass

        @staticmethod
        def set_inter_op_parallelism_threads(n):
            pass


TensorSpec = None


def is_tensor(x):
    return isinstance(x, (Tensor, Variable))


def executing_eagerly():
    return True


__version__ = "0.1.0"
