"""The 8x8 handwritten digits shipped with ferroflow (1,797 images, 64 pixels of 0-16)."""

from ... import _native


def load_data(test_split=0.2, seed=42):
    """``(x_train, y_train), (x_test, y_test)`` as NumPy arrays, split as ``ferroflow demo``
    splits them (float32 pixels of shape (n, 64), int labels)."""
    return _native.digits_load_data(test_split, seed)
