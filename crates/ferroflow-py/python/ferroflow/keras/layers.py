"""``keras.layers``: every layer class of ferroflow's layer registry, built from its Keras
config. The classes are made from the registry's list (``_native.LAYER_CLASSES``), so a
layer added to the registry appears here; this file only knows Keras's positional
argument order."""

import inspect

from .. import _native

# Keras's positional parameters per class (the rest are keywords, passed through as config).
_POSITIONAL = {
    "Dense": ("units", "activation"),
    "Dropout": ("rate",),
    "Activation": ("activation",),
    "Embedding": ("input_dim", "output_dim"),
    "Conv1D": ("filters", "kernel_size", "strides", "padding"),
    "Conv2D": ("filters", "kernel_size", "strides", "padding"),
    "Conv2DTranspose": ("filters", "kernel_size", "strides", "padding"),
    "SeparableConv2D": ("filters", "kernel_size", "strides", "padding"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding"),
    "MaxPooling1D": ("pool_size", "strides", "padding"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "AveragePooling1D": ("pool_size", "strides", "padding"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "Reshape": ("target_shape",),
    "Permute": ("dims",),
    "RepeatVector": ("n",),
    "ZeroPadding2D": ("padding",),
    "UpSampling2D": ("size",),
    "Rescaling": ("scale", "offset"),
    "Normalization": ("axis", "mean", "variance"),
    "StringLookup": ("max_tokens", "num_oov_indices", "mask_token", "oov_token", "vocabulary"),
    "IntegerLookup": ("max_tokens", "num_oov_indices", "mask_token", "oov_token", "vocabulary"),
    "Hashing": ("num_bins",),
    "CategoryEncoding": ("num_tokens", "output_mode"),
    "Discretization": ("bin_boundaries",),
    "TextVectorization": ("max_tokens",),
    "SimpleRNN": ("units", "activation"),
    "LSTM": ("units", "activation"),
    "GRU": ("units", "activation"),
    "Bidirectional": ("layer", "merge_mode"),
    "TimeDistributed": ("layer",),
    "MultiHeadAttention": ("num_heads", "key_dim", "value_dim"),
    "Concatenate": ("axis",),
    "Dot": ("axes",),
    "LayerNormalization": ("axis", "epsilon"),
    "BatchNormalization": ("axis", "momentum", "epsilon"),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "BruteForce": ("k",),
}

# Keyword arguments Keras takes at construction that are not part of the config.
_BUILD_ONLY = ("input_shape", "input_dim", "batch_input_shape", "batch_size")


def _serialize(v):
    """A config value: Python values as they are, layers and Keras objects serialised."""
    if isinstance(v, Layer):
        return {"class_name": v._native.class_name, "config": v.get_config()}
    if isinstance(v, tuple):
        return [_serialize(x) for x in v]
    if isinstance(v, list):
        return [_serialize(x) for x in v]
    if isinstance(v, dict):
        return {k: _serialize(x) for k, x in v.items()}
    if callable(v) and hasattr(v, "__name__") and not hasattr(v, "get_config"):
        return v.__name__
    if hasattr(v, "get_config") and hasattr(v, "_keras_class"):
        return {"module": getattr(v, "_keras_module", "keras"), "class_name": v._keras_class,
                "config": _serialize(v.get_config()), "registered_name": None}
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


class _PythonCall:
    """What ferroflow calls on a Python subclass of ``Layer`` or ``Model``: its ``build``,
    ``call`` (with ``training`` when it takes it), config and inner layers."""

    def build(self, input_shape):
        pass

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define call()")

    def _ff_build(self, shapes):
        self.build(shapes[0] if len(shapes) == 1 else shapes)

    def _ff_call(self, inputs, training):
        x = inputs[0] if len(inputs) == 1 else inputs
        takes = getattr(type(self), "_ff_takes_training", None)
        if takes is None:
            params = inspect.signature(self.call).parameters
            takes = "training" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
            type(self)._ff_takes_training = takes
        out = self.call(x, training=training) if takes else self.call(x)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _ff_config(self):
        cfg = dict(self.get_config())
        for k in ("name", "trainable", "dtype"):
            cfg.pop(k, None)
        return cfg

    def _ff_sublayers(self):
        from .models import Model
        found = []

        def visit(v):
            if isinstance(v, (Layer, Model)) and v is not self:
                n = v._native
                if isinstance(n, _native.Layer):
                    found.append(n)
            elif isinstance(v, (list, tuple)):
                for i in v:
                    visit(i)
            elif isinstance(v, dict):
                for i in v.values():
                    visit(i)

        for k, v in vars(self).items():
            if k != "_native":
                visit(v)
        return found

    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **kwargs):
        if regularizer is not None or constraint is not None:
            raise NotImplementedError("add_weight: regularizers and constraints are not supported yet")
        self._ff_weights = getattr(self, "_ff_weights", 0) + 1
        return self._native.add_weight(name or f"weight_{self._ff_weights}", list(shape or ()),
                                       _serialize(initializer), bool(trainable))


class Layer(_PythonCall):
    """A Keras layer. Calling it on ``keras.Input`` tensors builds a functional graph;
    calling it on tensors computes. Subclass it and define ``call`` (and ``build`` with
    ``self.add_weight``) for a layer of your own."""

    _class_name = None

    def __init__(self, *args, **kwargs):
        cls = self._class_name
        if cls is None:
            if args:
                raise TypeError(f"{type(self).__name__}: Layer takes keyword arguments only")
            self._input_shape = tuple(kwargs["input_shape"]) if "input_shape" in kwargs else None
            self._native = _native.custom_layer(self, type(self).__name__, kwargs.get("name"))
            self._native.trainable = kwargs.get("trainable", True)
            return
        names = _POSITIONAL.get(cls, ())
        if len(args) > len(names):
            raise TypeError(f"{cls}() takes at most {len(names)} positional arguments, got {len(args)}")
        for n, a in zip(names, args):
            if n in kwargs:
                raise TypeError(f"{cls}() got multiple values for argument '{n}'")
            kwargs[n] = a
        self._input_shape = None
        if "input_shape" in kwargs:
            self._input_shape = tuple(kwargs.pop("input_shape"))
        if "input_dim" in kwargs and cls != "Embedding":
            self._input_shape = (kwargs.pop("input_dim"),)
        if "batch_input_shape" in kwargs:
            self._input_shape = tuple(kwargs.pop("batch_input_shape"))[1:]
        kwargs.pop("batch_size", None)
        config = {k: _serialize(v) for k, v in kwargs.items()}
        self._native = _native.layer_from_config(cls, config)

    @classmethod
    def _wrap(cls, native):
        layer = _LAYER_CLASSES.get(native.class_name, Layer).__new__(
            _LAYER_CLASSES.get(native.class_name, Layer))
        layer._native = native
        layer._input_shape = None
        return layer

    @classmethod
    def from_config(cls, config):
        return cls._wrap(_native.layer_from_config(cls._class_name, config))

    def __call__(self, *inputs, training=False, **kwargs):
        if kwargs.get("mask") is not None:
            raise NotImplementedError("explicit mask= arguments are not supported; masks propagate from Embedding(mask_zero=True)")
        inputs = tuple(_unwrap(i) for i in inputs)
        return self._native(*inputs, training=bool(training))

    name = property(lambda self: self._native.name)
    weights = property(lambda self: self._native.weights)
    variables = weights
    trainable_weights = property(lambda self: self._native.trainable_weights)
    trainable_variables = trainable_weights
    non_trainable_weights = property(lambda self: [w for w in self._native.weights if not w.trainable])

    @property
    def trainable(self):
        return self._native.trainable

    @trainable.setter
    def trainable(self, on):
        self._native.trainable = on

    def get_config(self):
        if self._class_name is None:
            return {"name": self.name, "trainable": self.trainable}
        return self._native.get_config()

    def get_weights(self):
        return self._native.get_weights()

    def set_weights(self, weights):
        self._native.set_weights(list(weights))

    def count_params(self):
        return self._native.count_params()

    def adapt(self, data, batch_size=None, steps=None):
        from ..data import Dataset
        self._native.adapt(data._native if isinstance(data, Dataset) else data)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _unwrap(x):
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i) for i in x)
    return x


_LAYER_CLASSES = {}
for _cls in _native.LAYER_CLASSES:
    if _cls in ("Sequential", "Functional"):
        continue
    _LAYER_CLASSES[_cls] = type(_cls, (Layer,), {"_class_name": _cls, "__module__": __name__,
                                                 "__doc__": f"keras.layers.{_cls}"})
globals().update(_LAYER_CLASSES)

# Keras's aliases.
_ALIASES = {"Conv1D": "Convolution1D", "Conv2D": "Convolution2D", "MaxPooling2D": "MaxPool2D",
            "MaxPooling1D": "MaxPool1D", "AveragePooling2D": "AvgPool2D",
            "AveragePooling1D": "AvgPool1D", "GlobalAveragePooling2D": "GlobalAvgPool2D",
            "GlobalAveragePooling1D": "GlobalAvgPool1D", "GlobalMaxPooling2D": "GlobalMaxPool2D",
            "GlobalMaxPooling1D": "GlobalMaxPool1D"}
for _cls, _alias in _ALIASES.items():
    if _cls in _LAYER_CLASSES:
        globals()[_alias] = _LAYER_CLASSES[_cls]


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None):
    """A symbolic input of a functional model (``keras.Input``)."""
    if batch_shape is not None:
        batch_size, shape = batch_shape[0], batch_shape[1:]
    return _native.input(list(shape or ()), batch_size, dtype, name)


def InputLayer(input_shape=None, batch_size=None, dtype=None, name=None, shape=None, batch_shape=None):
    return Input(shape=shape or input_shape, batch_size=batch_size, dtype=dtype, name=name,
                 batch_shape=batch_shape)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)  # noqa: F821


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)  # noqa: F821


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)  # noqa: F821


def Softmax(axis=-1, **kwargs):
    """``keras.layers.Softmax`` (over the last axis) as an Activation layer."""
    if axis != -1:
        raise NotImplementedError("Softmax over an axis other than the last is not supported yet")
    return Activation("softmax", **kwargs)  # noqa: F821
