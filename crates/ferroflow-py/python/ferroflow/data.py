"""``ferroflow.data``: input pipelines (``tf.data``) run by ferroflow's threads."""

import numpy as np

from . import _native

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


class _Experimental:
    AUTOTUNE = AUTOTUNE
    INFINITE_CARDINALITY = INFINITE_CARDINALITY
    UNKNOWN_CARDINALITY = UNKNOWN_CARDINALITY


experimental = _Experimental()


def _to_numpy(x):
    if isinstance(x, tuple):
        return tuple(_to_numpy(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    return x.numpy()


def _slices_input(x):
    """Lists of arrays become tuples of components only when TensorFlow would: a tuple is a
    structure, a list is one tensor."""
    if isinstance(x, list):
        return np.asarray(x)
    if isinstance(x, tuple):
        return tuple(_slices_input(v) for v in x)
    if isinstance(x, dict):
        return {k: _slices_input(v) for k, v in x.items()}
    return x


class Dataset:
    """A sequence of elements (tensors, or tuples/dicts of them), as ``tf.data.Dataset``."""

    def __init__(self, native):
        self._native = native

    @staticmethod
    def from_tensor_slices(tensors, name=None):
        return Dataset(_native.Dataset.from_tensor_slices(_slices_input(tensors)))

    @staticmethod
    def from_tensors(tensors, name=None):
        return Dataset(_native.Dataset.from_tensors(_slices_input(tensors)))

    @staticmethod
    def range(*args, output_type=None, name=None):
        start, stop, step = 0, None, 1
        if len(args) == 1:
            stop = args[0]
        elif len(args) == 2:
            start, stop = args
        else:
            start, stop, step = args
        return Dataset(_native.Dataset.range(start, stop, step))

    @staticmethod
    def zip(*datasets, name=None):
        if len(datasets) == 1 and isinstance(datasets[0], (tuple, list)):
            datasets = datasets[0]
        return Dataset(_native.Dataset.zip([d._native for d in datasets]))

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        return Dataset(self._native.map(map_func, num_parallel_calls, deterministic))

    def filter(self, predicate, name=None):
        return Dataset(self._native.filter(predicate))

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        return Dataset(self._native.shuffle(int(buffer_size), seed, reshuffle_each_iteration))

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        return Dataset(self._native.batch(int(batch_size), drop_remainder))

    def unbatch(self, name=None):
        return Dataset(self._native.unbatch())

    def prefetch(self, buffer_size, name=None):
        return Dataset(self._native.prefetch(int(buffer_size)))

    def repeat(self, count=None, name=None):
        return Dataset(self._native.repeat(count))

    def take(self, count, name=None):
        return Dataset(self._native.take(int(count)))

    def skip(self, count, name=None):
        return Dataset(self._native.skip(int(count)))

    def cache(self, filename="", name=None):
        return Dataset(self._native.cache(filename))

    def concatenate(self, dataset, name=None):
        return Dataset(self._native.concatenate(dataset._native))

    def shard(self, num_shards, index, name=None):
        return Dataset(self._native.shard(num_shards, index))

    def enumerate(self, start=0, name=None):
        return Dataset(self._native.enumerate(start))

    def cardinality(self):
        return _native.constant(self._native.cardinality(), "int64")

    def __len__(self):
        n = self._native.cardinality()
        if n < 0:
            raise TypeError("The dataset is infinite." if n == -1 else "The dataset length is unknown.")
        return n

    def __iter__(self):
        return iter(self._native)

    def as_numpy_iterator(self):
        return (_to_numpy(e) for e in self._native)

    def take_while(self, predicate, name=None):
        raise NotImplementedError("take_while is not supported yet")


def TextLineDataset(filenames, compression_type=None, buffer_size=None, num_parallel_reads=None, name=None):
    """Lines of text files, as scalar string tensors."""
    return Dataset(_native.Dataset.text_lines([filenames] if isinstance(filenames, str) else list(filenames)))


def TFRecordDataset(filenames, compression_type=None, buffer_size=None, num_parallel_reads=None, name=None):
    """Records of TFRecord files."""
    return Dataset(_native.Dataset.tfrecords([filenames] if isinstance(filenames, str) else list(filenames)))
