"""TensorFlow's dtype objects: each is a ``str`` holding TensorFlow's name, so
``x.dtype == ff.float32``, ``x.dtype == "float32"`` and ``np.zeros(3, ff.float32)`` all work."""

import numpy as np


class DType(str):
    """An element type (``tf.DType``)."""

    @property
    def name(self):
        return str(self)

    @property
    def as_numpy_dtype(self):
        return object if self == "string" else np.dtype("float32" if self == "bfloat16" else str(self)).type

    @property
    def is_floating(self):
        return str(self) in ("float16", "bfloat16", "float32", "float64")

    @property
    def is_integer(self):
        return str(self) in ("int8", "uint8", "int32", "int64")

    def __repr__(self):
        return f"tf.{self}"

    def __eq__(self, other):
        if isinstance(other, str):
            return str.__eq__(self, other)
        try:
            return str.__eq__(self, np.dtype(other).name)
        except TypeError:
            return NotImplemented

    __hash__ = str.__hash__


_NAMES = ("float16", "bfloat16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool", "string")
_BY_NAME = {n: DType(n) for n in _NAMES}


def as_dtype(name):
    """The DType for a name, a NumPy dtype or a DType."""
    if isinstance(name, DType):
        return name
    if isinstance(name, str) and name in _BY_NAME:
        return _BY_NAME[name]
    n = np.dtype(name).name
    if n not in _BY_NAME:
        raise TypeError(f"ferroflow has no dtype '{n}' (it has {', '.join(_NAMES)})")
    return _BY_NAME[n]


globals().update(_BY_NAME)
float16, bfloat16, float32, float64 = (_BY_NAME[n] for n in ("float16", "bfloat16", "float32", "float64"))
int8, uint8, int32, int64 = (_BY_NAME[n] for n in ("int8", "uint8", "int32", "int64"))
bool_, string = _BY_NAME["bool"], _BY_NAME["string"]
half, double = float16, float64
