"""``keras.Model`` (functional), ``keras.Sequential`` and ``keras.models.load_model``."""

import math

import numpy as np

from .. import _native
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from .layers import Layer, _PythonCall, _unwrap


def _is_symbolic(x):
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and all(_is_symbolic(i) for i in x)
    if isinstance(x, dict):
        return all(_is_symbolic(i) for i in x.values())
    return isinstance(x, _native.KerasTensor)


def _num_samples(x):
    if isinstance(x, dict):
        x = next(iter(x.values()))
    if isinstance(x, (list, tuple)):
        x = x[0]
    return len(x)


class Model(_PythonCall):
    """A functional model: ``keras.Model(inputs, outputs)`` with symbolic tensors from
    ``keras.Input`` and layer calls (several inputs and outputs, shared layers)."""

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        if inputs is None and outputs is None and type(self) not in (Model, Sequential):
            # A subclass with its own `call`.
            self._init_native(_native.custom_model(self, type(self).__name__, name))
            self._list_inputs = False
            self._list_outputs = False
            return
        if inputs is None or outputs is None:
            raise ValueError("keras.Model(inputs, outputs): both are needed (or subclass it and define call)")
        if isinstance(inputs, dict):
            inputs = list(inputs.values())
        self._list_inputs = isinstance(inputs, (list, tuple))
        self._list_outputs = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._list_inputs else [inputs]
        outs = list(outputs) if self._list_outputs else [outputs]
        self._init_native(_native.Model.functional(ins, outs, name))

    def _init_native(self, native):
        self._native = native
        self.optimizer = None
        self.history = None
        self._compiled_loss = None

    @classmethod
    def _from_native(cls, native):
        m = cls.__new__(Sequential if native.class_name == "Sequential" else Model)
        m._init_native(native)
        m._list_inputs = len(native.input_names) > 1
        m._list_outputs = len(native.output_names) > 1
        return m

    # --- structure -------------------------------------------------------------------
    name = property(lambda self: self._native.name)
    layers = property(lambda self: [Layer._wrap(n) for n in self._native.layers])
    weights = property(lambda self: self._native.weights)
    variables = weights
    trainable_variables = property(lambda self: self._native.trainable_variables)
    trainable_weights = trainable_variables
    non_trainable_variables = property(lambda self: self._native.non_trainable_variables)
    non_trainable_weights = non_trainable_variables
    input_names = property(lambda self: self._native.input_names)
    output_names = property(lambda self: self._native.output_names)

    @property
    def stop_training(self):
        return self._native.stop_training

    @stop_training.setter
    def stop_training(self, on):
        self._native.stop_training = bool(on)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        return Layer._wrap(self._native.get_layer(name))

    def count_params(self):
        return self._native.count_params()

    def get_weights(self):
        return self._native.get_weights()

    def set_weights(self, weights):
        self._native.set_weights(list(weights))

    def build(self, input_shape):
        self._native.build(list(input_shape))

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        text = self._native.summary_text().rstrip("\n")
        (print_fn or print)(text)

    def to_json(self, **kwargs):
        return self._native.to_json()

    # --- calling ---------------------------------------------------------------------
    def __call__(self, inputs, training=False, mask=None):
        if _is_symbolic(inputs):
            ins = list(inputs.values()) if isinstance(inputs, dict) else (
                list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
            outs = self._native.call_symbolic(ins)
            return outs if self._list_outputs else outs[0]
        outs = self._native.call(_unwrap(inputs), bool(training))
        return outs if self._list_outputs or len(outs) > 1 else outs[0]

    def _ff_build(self, shapes):
        # `Model.build` builds the native model; only a subclass's own build runs here.
        if type(self).build is not Model.build:
            self.build(shapes[0] if len(shapes) == 1 else shapes)

    def call(self, inputs, training=False, mask=None):
        if type(self) not in (Model, Sequential):
            raise NotImplementedError(f"{type(self).__name__} must define call()")
        return self(inputs, training=training)

    def get_config(self):
        return {"name": self.name, "trainable": True}

    # --- training --------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        if loss is None:
            raise ValueError("compile() needs a loss")
        outputs = self._native.output_names
        if isinstance(loss, dict):
            loss = [loss[n] for n in outputs]
        losses = [losses_module.get(l) for l in (loss if isinstance(loss, (list, tuple)) else [loss])]
        if isinstance(loss_weights, dict):
            loss_weights = [loss_weights[n] for n in outputs]
        names = metrics_module.names(metrics, loss)
        from . import optimizers
        opt = optimizers.get(optimizer)
        self._native.compile(opt._native if hasattr(opt, "_native") else opt, losses, names,
                             None if loss_weights is None else [float(w) for w in loss_weights],
                             bool(run_eagerly))
        self.optimizer = opt
        self._compiled_loss = losses

    def _steps(self, x, batch_size, validation_split):
        from ..data import Dataset
        if isinstance(x, Dataset):
            n = x._native.cardinality()
            return n if n >= 0 else None
        n = _num_samples(x)
        # The split `fit` makes (ferroflow's split_tail): the last floor(n * split) rows.
        n_train = n - int(n * validation_split)
        return max(1, math.ceil(n_train / (batch_size or 32)))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        from ..data import Dataset
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = list(callbacks or [])
        history = callbacks_module.History()
        params = {"epochs": epochs, "verbose": verbose,
                  "steps": steps_per_epoch or self._steps(x, batch_size, validation_split)}
        if verbose:
            cbs.insert(0, callbacks_module.ProgbarLogger(verbose=verbose))
        cbs.append(history)
        for cb in cbs:
            cb.set_params(params)
            cb.set_model(self)
        if isinstance(validation_data, Dataset):
            validation_data = validation_data._native
        elif isinstance(validation_data, (list, tuple)) and len(validation_data) == 3:
            validation_data = validation_data[:2]
        xs = x._native if isinstance(x, Dataset) else x
        logs, epochs_run = self._native.fit(
            xs, y, batch_size, epochs, 0, cbs, float(validation_split), validation_data,
            bool(shuffle), class_weight, sample_weight, initial_epoch, steps_per_epoch)
        history.history = {k: list(v) for k, v in logs.items()}
        history.epoch = list(epochs_run)
        history.model = self
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        from ..data import Dataset
        logs = self._native.evaluate(x._native if isinstance(x, Dataset) else x, y, batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        if verbose:
            print(callbacks_module.format_logs(logs))
        if return_dict:
            return dict(logs)
        keys = ["loss"] + sorted(k for k in logs if k != "loss")
        vals = [logs[k] for k in keys if k in logs]
        return vals[0] if len(vals) == 1 else vals

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        from ..data import Dataset
        outs = self._native.predict(x._native if isinstance(x, Dataset) else x, batch_size)
        outs = [np.asarray(o) for o in outs]
        return outs if self._list_outputs else outs[0]

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=_num_samples(x), verbose=0)

    # --- saving ----------------------------------------------------------------------
    def save(self, filepath, overwrite=True, **kwargs):
        self._native.save(str(filepath))

    def save_weights(self, filepath, overwrite=True):
        self._native.save_weights(str(filepath))

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        self._native.load_weights(str(filepath))

    def export(self, filepath, format="tf_saved_model", **kwargs):
        self._native.save(str(filepath))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class Sequential(Model):
    """A stack of layers (``keras.Sequential([...])``)."""

    def __init__(self, layers=None, name=None, trainable=True):
        self._init_native(_native.Model.sequential(name))
        self._list_inputs = False
        self._list_outputs = False
        self._count = 0
        for layer in layers or []:
            self.add(layer)

    def add(self, layer, rebuild=True):
        if getattr(self, "_count", 0) == 0 and isinstance(layer, Layer) and layer._input_shape is not None:
            self._native.add(_native.input(list(layer._input_shape)))
        self._native.add(layer._native if isinstance(layer, (Layer, Model)) else layer)
        self._count = getattr(self, "_count", 0) + 1

    def pop(self):
        raise NotImplementedError("Sequential.pop is not supported yet")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a ``.keras`` archive, a legacy ``.h5`` file or a ferroflow model directory."""
    return Model._from_native(_native.Model.load(str(filepath)))
