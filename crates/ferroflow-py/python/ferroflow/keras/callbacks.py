"""``keras.callbacks``: the ``Callback`` base class (its hooks are called from ferroflow's
training loop), the progress bar, ``History`` and ``EarlyStopping``."""

import sys
import time

import numpy as np


def _fmt(v):
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.4e}"
    return f"{v:.4f}"


def format_logs(logs):
    """``accuracy: 0.9612 - loss: 0.1341``, sorted by name as Keras prints them."""
    return " - ".join(f"{k}: {_fmt(float(logs[k]))}" for k in sorted(logs))


class Callback:
    """Base class of callbacks; override the hooks you need. ``self.model`` is the model
    being trained; set ``self.model.stop_training = True`` to stop after this epoch."""

    # Whether this class overrides on_train_batch_end (else the loop never calls it), and
    # at most how often, in seconds, it wants it.
    _ff_batch_interval = 0.0

    def __init__(self):
        self.model = None
        self.params = {}

    @property
    def _ff_wants_batches(self):
        return type(self).on_train_batch_end is not Callback.on_train_batch_end or \
            type(self).on_batch_end is not Callback.on_batch_end

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_end(self, batch, logs=None):
        pass


def _interactive(stream):
    if "ipykernel" in sys.modules:
        return True
    try:
        return stream.isatty()
    except Exception:
        return False


class ProgbarLogger(Callback):
    """Keras's progress bar: ``Epoch 3/10`` then
    ``422/422 ━━━━━━━━━━━━━━━━━━━━ 1s 2ms/step - accuracy: 0.9612 - loss: 0.1341``, redrawn in
    place in a terminal or a Jupyter cell, one line per epoch elsewhere (or with verbose=2)."""

    _ff_batch_interval = 0.05

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self._stream = stream
        self._start = 0.0

    @property
    def stream(self):
        return self._stream or sys.stdout

    @property
    def _ff_wants_batches(self):
        return self.verbose == 1 and _interactive(self.stream)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}\n")
        self.stream.flush()

    @staticmethod
    def _per_step(seconds, steps):
        us = seconds * 1e6 / max(steps, 1)
        if us >= 1e6:
            return f"{round(us / 1e6)}s/step"
        if us >= 1e3:
            return f"{round(us / 1e3)}ms/step"
        return f"{round(us)}us/step"

    @staticmethod
    def _elapsed(seconds):
        return f"{round(seconds)}s" if seconds >= 1 else f"{round(seconds * 1000)}ms"

    def _line(self, step, steps, logs, bar=True):
        el = time.perf_counter() - self._start
        total = steps or step
        if bar:
            filled = int(20 * step / max(total, 1))
            return (f"{step}/{total} " + "━" * filled + " " * (20 - filled) +
                    f" {self._elapsed(el)} {self._per_step(el, step)} - {format_logs(logs)}")
        return f"{total}/{total} - {self._elapsed(el)} - {self._per_step(el, total)} - {format_logs(logs)}"

    def on_train_batch_end(self, batch, logs=None):
        self.stream.write("\r" + self._line(batch + 1, self.params.get("steps"), logs or {}))
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps") or 1
        if self.verbose == 1:
            line = self._line(steps, steps, logs or {})
            prefix = "\r" if self._ff_wants_batches else ""
            self.stream.write(prefix + line + "\n")
        else:
            self.stream.write(self._line(steps, steps, logs or {}, bar=False) + "\n")
        self.stream.flush()


class History(Callback):
    """What ``fit`` returns: ``history.history["val_accuracy"]`` per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class EarlyStopping(Callback):
    """Stops training when ``monitor`` stops improving (``keras.callbacks.EarlyStopping``)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline, self.restore_best_weights = verbose, baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        if mode == "auto":
            m = monitor.replace("val_", "")
            mode = "max" if ("acc" in m or m.startswith("auc") or m in ("precision", "recall")) else "min"
        self.mode = mode
        self.stopped_epoch = 0

    def _better(self, a, b):
        return a - self.min_delta > b if self.mode == "max" else a + self.min_delta < b

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = -np.inf if self.mode == "max" else np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class LambdaCallback(Callback):
    """Hooks given as functions."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None, **kwargs):
        super().__init__()
        for name, f in dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                            on_train_begin=on_train_begin, on_train_end=on_train_end).items():
            if f is not None:
                setattr(self, name, f)
        if on_batch_end is not None:
            self.on_train_batch_end = on_batch_end
            self._lambda_batches = True

    @property
    def _ff_wants_batches(self):
        return getattr(self, "_lambda_batches", False)
