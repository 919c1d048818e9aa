"""``ferroflow.lite``: ``TFLiteConverter`` (float, dynamic-range and full-integer int8
export) and ``Interpreter`` with LiteRT's method names."""

import numpy as np

from . import _native
from ._dtypes import as_dtype, float32


class Optimize:
    DEFAULT = "DEFAULT"
    OPTIMIZE_FOR_SIZE = "OPTIMIZE_FOR_SIZE"
    OPTIMIZE_FOR_LATENCY = "OPTIMIZE_FOR_LATENCY"
    EXPERIMENTAL_SPARSITY = "EXPERIMENTAL_SPARSITY"


class OpsSet:
    TFLITE_BUILTINS = "TFLITE_BUILTINS"
    TFLITE_BUILTINS_INT8 = "TFLITE_BUILTINS_INT8"
    SELECT_TF_OPS = "SELECT_TF_OPS"


class TargetSpec:
    def __init__(self):
        self.supported_ops = {OpsSet.TFLITE_BUILTINS}
        self.supported_types = []


class TFLiteConverter:
    """Converts a Keras model to a ``.tflite`` flatbuffer (``tf.lite.TFLiteConverter``)."""

    def __init__(self, model):
        self._model = model
        self.optimizations = []
        self.representative_dataset = None
        self.target_spec = TargetSpec()
        self.inference_input_type = float32
        self.inference_output_type = float32
        self.allow_custom_ops = False
        self.experimental_new_converter = True

    @classmethod
    def from_keras_model(cls, model):
        return cls(model)

    @classmethod
    def from_saved_model(cls, saved_model_dir, signature_keys=None, tags=None):
        from .keras.models import load_model
        return cls(load_model(saved_model_dir))

    def _samples(self):
        data = self.representative_dataset
        if hasattr(data, "input_gen"):
            gen = data.input_gen()
        else:
            gen = data() if callable(data) else data
        samples = []
        names = self._model._native.input_names
        for item in gen:
            if isinstance(item, dict):
                item = [item[n] for n in names]
            elif not isinstance(item, (list, tuple)):
                item = [item]
            samples.append([np.asarray(v, dtype=np.float32) for v in item])
        if not samples:
            raise ValueError("representative_dataset yielded no samples")
        return samples

    def convert(self):
        opts = set(str(o) for o in (self.optimizations or []))
        if not opts:
            quantize, samples = None, None
        elif self.representative_dataset is None:
            quantize, samples = "dynamic", None
        else:
            quantize, samples = "int8", self._samples()
        int8_io = as_dtype(self.inference_input_type) in ("int8", "uint8") or \
            as_dtype(self.inference_output_type) in ("int8", "uint8")
        return _native.convert(self._model._native, quantize, samples, int8_io)


class Interpreter:
    """Runs ``.tflite`` models with LiteRT's interface (``tf.lite.Interpreter``)."""

    def __init__(self, model_path=None, model_content=None, experimental_delegates=None,
                 num_threads=None, experimental_op_resolver_type=None,
                 experimental_preserve_all_tensors=False):
        if model_content is not None:
            model_content = bytes(model_content)
        self._native = _native.LiteInterpreter(model_path, model_content, num_threads)
        self._resized = {}

    def allocate_tensors(self):
        pass

    def _details(self, raw):
        out = []
        for name, index, shape, sig, dtype, scales, zps, axis in raw:
            shape = self._resized.get(index, shape)
            out.append({
                "name": name,
                "index": index,
                "shape": np.array(shape, dtype=np.int32),
                "shape_signature": np.array(sig, dtype=np.int32),
                "dtype": as_dtype(dtype).as_numpy_dtype,
                "quantization": (float(scales[0]), int(zps[0])) if scales else (0.0, 0),
                "quantization_parameters": {
                    "scales": np.array(scales, dtype=np.float32),
                    "zero_points": np.array(zps, dtype=np.int32),
                    "quantized_dimension": axis,
                },
                "sparsity_parameters": {},
            })
        return out

    def get_input_details(self):
        return self._details(self._native.input_details())

    def get_output_details(self):
        return self._details(self._native.output_details())

    def resize_tensor_input(self, input_index, tensor_size, strict=False):
        self._resized[input_index] = list(tensor_size)

    def set_tensor(self, tensor_index, value):
        self._native.set_tensor(tensor_index, np.ascontiguousarray(value))

    def invoke(self):
        self._native.invoke()

    def get_tensor(self, tensor_index, subgraph_index=0):
        return self._native.get_tensor(tensor_index).numpy()

    def tensor(self, tensor_index):
        return lambda: self.get_tensor(tensor_index)

    def get_signature_list(self):
        return {"serving_default": {
            "inputs": [d["name"] for d in self.get_input_details()],
            "outputs": [d["name"] for d in self.get_output_details()],
        }}

    def get_signature_runner(self, signature_key=None):
        def run(**kwargs):
            ins = self.get_input_details()
            for d in ins:
                if d["name"] not in kwargs:
                    raise ValueError(f"missing input '{d['name']}' (inputs: {[i['name'] for i in ins]})")
                self.set_tensor(d["index"], kwargs[d["name"]])
            self.invoke()
            return {d["name"]: self.get_tensor(d["index"]) for d in self.get_output_details()}
        return run
