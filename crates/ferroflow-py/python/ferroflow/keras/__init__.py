"""``ferroflow.keras``: Keras 3's API on ferroflow (``from ferroflow import keras``)."""

from . import callbacks, datasets, layers, losses, metrics, optimizers, utils  # noqa: F401
from . import models  # noqa: F401
from .layers import Input, Layer  # noqa: F401
from .models import Model, Sequential  # noqa: F401

backend_name = "ferroflow"


def backend():
    return "ferroflow"
