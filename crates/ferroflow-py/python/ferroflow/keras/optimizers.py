"""``keras.optimizers``: ferroflow's optimisers with Keras's constructor arguments."""

from .. import _native

_CLASSES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Ftrl", "Adamax", "Nadam", "LazyAdam")


class Optimizer:
    """An optimiser; ``apply_gradients(zip(grads, model.trainable_variables))`` updates."""

    _keras_class = None

    def __init__(self, learning_rate=None, **kwargs):
        kwargs.pop("name", None)
        if learning_rate is not None:
            kwargs["learning_rate"] = _lr(learning_rate)
        self._config = kwargs
        self._native = _native.optimizer_from_config(self._keras_class, kwargs)

    def apply_gradients(self, grads_and_vars):
        self._native.apply_gradients(list(grads_and_vars))

    def apply(self, grads, trainable_variables):
        self._native.apply_gradients(list(zip(grads, trainable_variables)))

    def minimize(self, loss, var_list, tape=None):
        grads = tape.gradient(loss, var_list)
        self.apply_gradients(zip(grads, var_list))

    @property
    def learning_rate(self):
        return self._native.learning_rate

    @learning_rate.setter
    def learning_rate(self, lr):
        self._native.learning_rate = float(lr)

    lr = learning_rate

    @property
    def iterations(self):
        return self._native.iterations

    def get_config(self):
        return self._native.get_config()


def _lr(v):
    if hasattr(v, "get_config"):
        return {"module": "keras.optimizers.schedules", "class_name": type(v).__name__,
                "config": v.get_config(), "registered_name": None}
    return float(v)


for _c in _CLASSES:
    globals()[_c] = type(_c, (Optimizer,), {"_keras_class": _c, "__doc__": f"keras.optimizers.{_c}"})


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as an optimizer")


class schedules:
    """Learning-rate schedules (serialised into the optimiser's config)."""

    class ExponentialDecay:
        def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
            self._cfg = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                             decay_rate=decay_rate, staircase=staircase)

        def get_config(self):
            return dict(self._cfg)

    class PiecewiseConstantDecay:
        def __init__(self, boundaries, values, name=None):
            self._cfg = dict(boundaries=list(boundaries), values=list(values))

        def get_config(self):
            return dict(self._cfg)

    class CosineDecay:
        def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name=None,
                     warmup_target=None, warmup_steps=0):
            self._cfg = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                             alpha=alpha, warmup_target=warmup_target, warmup_steps=warmup_steps)

        def get_config(self):
            return dict(self._cfg)
