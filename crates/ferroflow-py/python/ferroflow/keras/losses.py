"""``keras.losses``: loss classes (``SparseCategoricalCrossentropy(from_logits=True)``) and
functions, computed by ferroflow's losses."""

from .. import _native

_CLASSES = ("SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
            "MeanSquaredError", "MeanAbsoluteError", "Huber", "KLDivergence", "CosineSimilarity",
            "Hinge")


def _class(name):
    def make(*args, **kwargs):
        if args:
            raise TypeError(f"{name}() takes keyword arguments only")
        kwargs.pop("name", None)
        return _native.loss_from_config(name, kwargs)
    make.__name__ = name
    make.__doc__ = f"keras.losses.{name}"
    return make


globals().update({c: _class(c) for c in _CLASSES})


def _function(name):
    def f(y_true, y_pred, **kwargs):
        return _native.loss_from_config(name, dict(kwargs, reduction="none"))(y_true, y_pred)
    f.__name__ = name
    return f


for _n in ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
           "mean_squared_error", "mean_absolute_error", "huber", "kl_divergence", "hinge"):
    globals()[_n] = _function(_n)
mse, mae = mean_squared_error, mean_absolute_error  # noqa: F821


def get(identifier):
    """A loss from a name, a loss object or a loss function of this module."""
    if isinstance(identifier, _native.Loss):
        return identifier
    if isinstance(identifier, str):
        return _native.loss_from_config(identifier, {})
    name = getattr(identifier, "__name__", None)
    if name:
        return _native.loss_from_config(name, {})
    raise ValueError(f"cannot interpret {identifier!r} as a loss")
