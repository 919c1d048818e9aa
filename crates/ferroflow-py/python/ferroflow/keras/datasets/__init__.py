"""``keras.datasets``: the datasets shipped with ferroflow."""

from . import digits  # noqa: F401
