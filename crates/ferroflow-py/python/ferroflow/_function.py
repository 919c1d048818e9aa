"""``ff.function``: traces a Python function into a ferroflow graph once per input
signature, optimises it and runs the compiled plan (``tf.function``)."""

import functools

import numpy as np

from . import _native

_TENSOR = object()


def _flatten(obj, out):
    """Flattens nested lists, tuples and dicts into ``out``; returns the structure."""
    if isinstance(obj, (list, tuple)):
        return (type(obj), [_flatten(o, out) for o in obj])
    if isinstance(obj, dict):
        keys = sorted(obj)
        return (dict, keys, [_flatten(obj[k], out) for k in keys])
    out.append(obj)
    return None


def _unflatten(struct, it):
    if struct is None:
        return next(it)
    if struct[0] is dict:
        return {k: _unflatten(s, it) for k, s in zip(struct[1], struct[2])}
    kind, parts = struct
    return kind(_unflatten(s, it) for s in parts)


def _is_tensor(x):
    return isinstance(x, (_native.Tensor, np.ndarray))


def _static_key(x):
    try:
        hash(x)
        return x
    except TypeError:
        return id(x)


class Function:
    """A function compiled on its first call for each input signature. Tensor arguments
    (ferroflow tensors and NumPy arrays) are the graph's inputs; other arguments (Python
    numbers, flags, models) are fixed per trace, as in TensorFlow."""

    def __init__(self, python_function, jit_compile=None, input_signature=None,
                 reduce_retracing=False, name=None):
        self.python_function = python_function
        self.jit_compile = jit_compile
        self.input_signature = input_signature
        self._name = name or getattr(python_function, "__name__", "function")
        self._traces = {}
        functools.update_wrapper(self, python_function)

    def __get__(self, instance, owner):
        if instance is None:
            return self
        bound = Function(self.python_function.__get__(instance, owner), self.jit_compile,
                         self.input_signature, name=self._name)
        # One trace cache per bound object.
        cache = instance.__dict__.setdefault("_ff_function_traces", {})
        bound._traces = cache.setdefault(self._name, {})
        return bound

    def __call__(self, *args, **kwargs):
        flat = []
        struct = _flatten((args, kwargs), flat)
        tensor_at = [i for i, x in enumerate(flat) if _is_tensor(x)]
        key = (repr(struct), tuple(_TENSOR if _is_tensor(x) else _static_key(x) for x in flat))
        entry = self._traces.get(key)
        if entry is None:
            out_struct = {}

            def traced(*tensors):
                vals = list(flat)
                for i, t in zip(tensor_at, tensors):
                    vals[i] = t
                a, kw = _unflatten(struct, iter(vals))
                result = self.python_function(*a, **kw)
                outs = []
                out_struct["s"] = _flatten(result, outs)
                out_struct["none"] = [o is None for o in outs]
                return [o for o in outs if o is not None]

            entry = (_native.TracedFunction(traced, self._name), out_struct)
            self._traces[key] = entry
        native, out_struct = entry
        tensors = [x if isinstance(x, _native.Tensor) else _native.convert_to_tensor(x)
                   for x in (flat[i] for i in tensor_at)]
        outs = iter(native(tensors))
        vals = [None if none else next(outs) for none in out_struct["none"]]
        return _unflatten(out_struct["s"], iter(vals))

    def experimental_get_tracing_count(self):
        return len(self._traces)


def function(func=None, input_signature=None, autograph=True, jit_compile=None,
             reduce_retracing=False, experimental_implements=None, experimental_autograph_options=None,
             experimental_attributes=None, experimental_relax_shapes=None, experimental_compile=None,
             experimental_follow_type_hints=None, name=None):
    """``@ff.function`` or ``@ff.function(jit_compile=True)``."""
    def wrap(f):
        return Function(f, jit_compile=jit_compile, input_signature=input_signature, name=name)
    return wrap if func is None else wrap(func)
