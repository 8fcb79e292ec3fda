"""Work buffers that a model reuses from one training step to the next.

A training step of a captioning model makes the same large temporaries every time: the gate
activations of every timestep (T, N, 4H), the scores over the vocabulary (N, T, V), the feed-forward
activations (N, T, F) of every Transformer layer, and their gradients. Allocated fresh, each block of
more than glibc's mmap threshold is mapped from the operating system and touched page by page (a page
fault per 4 KiB, 10-20 thousand per step and about an eighth of its time), then returned on free.
A :class:`Workspace` keeps those blocks instead, so the second step writes into memory that is
already mapped; nothing about the process (the allocator's settings) is changed.

The layer functions take an optional ``workspace`` argument; without it (the default, and the classic
calls) they allocate as before. With it, their large outputs and caches live in the workspace and stay
valid until the next call that uses the same workspace (and the same names): a workspace serves one
forward/backward at a time, which is how a model's ``loss`` uses its own. Arrays that a model returns
to its caller (gradients, scores) are never workspace buffers.

Buffers are kept by name. A name asked for with a shape of no more elements than its buffer holds gets
a view of the start of that buffer, so a varying number of rows (the last, smaller minibatch; the
positions of a batch whose targets are not ``<NULL>``) reuses the same memory instead of mapping new
pages each step; more elements, another dtype or another array module get a new buffer that replaces
the old one. Memory stays bounded by each name's largest use. Names are made unique per use with
:meth:`Workspace.scope` (``ws.scope("layer0")``): two arrays that must both stay valid need two names.
"""
import math

import numpy as np


class Workspace:
    """Named, reusable uninitialized arrays: ``ws.empty(xp, name, shape, dtype)``.

    Args:
    - (none) ``Workspace()`` starts empty; ``scope(prefix)`` gives a view whose names are prefixed
      and whose buffers live in the same store.
    """

    def __init__(self, _store=None, _prefix=""):
        self._store = {} if _store is None else _store
        self._prefix = _prefix

    def scope(self, prefix):
        """A workspace sharing this one's buffers, whose names are ``prefix + "/" + name``."""
        return Workspace(self._store, f"{self._prefix}{prefix}/")

    def empty(self, xp, name, shape, dtype):
        """An uninitialized array of module ``xp`` (numpy or CuPy), kept under ``name`` for reuse.

        The same name with the same shape, dtype and module returns the same array as last time
        (holding whatever was last written to it); a smaller shape returns a C-contiguous view of the
        start of the same memory; anything else replaces the buffer.
        """
        key = self._prefix + name
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        flat, last = self._store.get(key, (None, None))          # the buffer (1-D) and its last view
        if flat is None or flat.dtype != dtype or type(flat) is not xp.ndarray or flat.size < size:
            flat = xp.empty(size, dtype=dtype)
            last = None
        if last is None or last.shape != shape:
            last = flat[:size].reshape(shape)
            self._store[key] = (flat, last)
        return last

    def clear(self):
        """Drop every buffer (of every scope sharing this store)."""
        self._store.clear()

    def nbytes(self):
        """Bytes held by the buffers."""
        return sum(int(flat.nbytes) for flat, _ in self._store.values())


def empty(xp, workspace, name, shape, dtype):
    """``workspace.empty(xp, name, shape, dtype)``, or a fresh ``xp.empty`` when workspace is None."""
    if workspace is None:
        return xp.empty(shape, dtype=dtype)
    return workspace.empty(xp, name, shape, dtype)


def scope(workspace, prefix):
    """``workspace.scope(prefix)``, or None when workspace is None."""
    return None if workspace is None else workspace.scope(prefix)
