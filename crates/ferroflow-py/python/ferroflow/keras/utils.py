"""``keras.utils``."""

import numpy as np

from .. import _native


def set_random_seed(seed):
    """Seeds ferroflow's random streams (weights, dropout, shuffling)."""
    _native.set_seed(int(seed))


def to_categorical(x, num_classes=None):
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    n = num_classes or int(x.max()) + 1
    out = np.zeros((x.size, n), dtype=np.float32)
    out[np.arange(x.size), x] = 1.0
    return out
