"""``ferroflow.distribute``: ``MirroredStrategy`` over local replicas."""

import contextlib

from . import _native


class MirroredStrategy:
    """Synchronous data-parallel training on this machine's replicas
    (``tf.distribute.MirroredStrategy``): a model compiled inside ``scope()`` splits each
    batch across the replicas and applies one summed update."""

    def __init__(self, devices=None, cross_device_ops=None):
        self._native = _native.MirroredStrategy()

    @property
    def num_replicas_in_sync(self):
        return self._native.num_replicas_in_sync

    @contextlib.contextmanager
    def scope(self):
        self._native.enter()
        try:
            yield self
        finally:
            self._native.exit()


class _DefaultStrategy:
    num_replicas_in_sync = 1

    @contextlib.contextmanager
    def scope(self):
        yield self


def get_strategy():
    return _DefaultStrategy()
