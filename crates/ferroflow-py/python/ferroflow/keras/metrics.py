"""``keras.metrics``: metric objects. ``compile(metrics=[...])`` takes them (or their Keras
names); in a custom loop ``update_state`` / ``result`` / ``reset_state`` keep their state in
variables updated by tensor ops, so they also update inside ``ff.function``."""

from .. import _native
from .._ops import top as _ops


class Metric:
    """A streaming mean of a per-sample value, kept in two variables."""

    _keras_name = None

    def __init__(self, name=None, dtype=None, **kwargs):
        self.name = name or self._keras_name
        self._total = _native.Variable(0.0, trainable=False, name=f"{self.name}/total")
        self._count = _native.Variable(0.0, trainable=False, name=f"{self.name}/count")

    def _values(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} is usable in compile() only")

    def update_state(self, y_true, y_pred, sample_weight=None):
        v = _native.cast(self._values(_native.convert_to_tensor(y_true),
                                      _native.convert_to_tensor(y_pred)), "float32")
        if sample_weight is not None:
            w = _native.reshape(_native.convert_to_tensor(sample_weight, "float32"), [-1])
            v = _native.reshape(v, [-1])
            self._total.assign_add(_ops["reduce_sum"](v * w))
            self._count.assign_add(_ops["reduce_sum"](w))
        else:
            self._total.assign_add(_ops["reduce_sum"](v))
            self._count.assign_add(_native.constant(float(max(v.size, 1)) if v.ndim else 1.0))

    def result(self):
        return self._total.value() / _native.binary("maximum", self._count.value(), 1e-12)

    def reset_state(self):
        self._total.assign(0.0)
        self._count.assign(0.0)

    reset_states = reset_state

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


def _as_float(x):
    return _native.cast(x, "float32")


class SparseCategoricalAccuracy(Metric):
    _keras_name = "sparse_categorical_accuracy"

    def _values(self, y_true, y_pred):
        pred = _as_float(_native.argmax(y_pred, -1, False))
        true = _native.reshape(_as_float(y_true), list(pred.shape))
        return pred == true


class CategoricalAccuracy(Metric):
    _keras_name = "categorical_accuracy"

    def _values(self, y_true, y_pred):
        return _native.argmax(y_pred, -1, False) == _native.argmax(y_true, -1, False)


class BinaryAccuracy(Metric):
    _keras_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype)
        self.threshold = threshold

    def _values(self, y_true, y_pred):
        return _as_float(_as_float(y_pred) > self.threshold) == _as_float(y_true)


class Accuracy(Metric):
    _keras_name = "accuracy"

    def _values(self, y_true, y_pred):
        return _as_float(y_true) == _as_float(y_pred)


class MeanSquaredError(Metric):
    _keras_name = "mean_squared_error"

    def _values(self, y_true, y_pred):
        return _ops["reduce_mean"](_native.binary("squared_difference", _as_float(y_pred), _as_float(y_true)), -1)


class MeanAbsoluteError(Metric):
    _keras_name = "mean_absolute_error"

    def _values(self, y_true, y_pred):
        return _ops["reduce_mean"](_native.unary("abs", _as_float(y_pred) - _as_float(y_true)), -1)


class Mean(Metric):
    """The running mean of the values given (``keras.metrics.Mean``)."""

    _keras_name = "mean"

    def update_state(self, values, sample_weight=None):
        super().update_state(values, values, sample_weight)

    def _values(self, y_true, y_pred):
        return y_true

    def __call__(self, values, sample_weight=None):
        self.update_state(values, sample_weight)
        return self.result()


def _compile_only(cls_name, keras_name):
    return type(cls_name, (Metric,), {"_keras_name": keras_name})


TopKCategoricalAccuracy = _compile_only("TopKCategoricalAccuracy", "top_k_categorical_accuracy")
SparseTopKCategoricalAccuracy = _compile_only("SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy")
Precision = _compile_only("Precision", "precision")
Recall = _compile_only("Recall", "recall")
AUC = _compile_only("AUC", "auc")


def names(metrics, loss=None):
    """Keras names of the metrics given to ``compile`` (a list, or a dict per output)."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        metrics = [m for ms in metrics.values() for m in (ms if isinstance(ms, (list, tuple)) else [ms])]
    out = []
    for m in metrics:
        if isinstance(m, str):
            out.append(m)
        elif isinstance(m, Metric):
            out.append(m._keras_name)
        elif hasattr(m, "__name__"):
            out.append(m.__name__)
        else:
            raise ValueError(f"cannot interpret {m!r} as a metric")
    return out
