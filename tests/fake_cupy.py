"""A strict stand-in for CuPy, so that the CPU test suite can check the GPU code path's plumbing.

CI has no GPU, but most of what can go wrong when a numpy library is handed CuPy arrays is not about
the GPU at all: an array created with ``np.zeros`` on the host and then mixed with device arrays, a
result returned as the wrong kind of array, a model or optimizer state left behind on the other device.
CuPy refuses to mix the two kinds (``TypeError: Unsupported type <class 'numpy.ndarray'>``); this module
refuses the same way in operations, in ``__setitem__`` and in its ``xp.*`` functions. Like CuPy, it
has no scalars: indexing one element (``x[i, j]``) gives a 0-d device array that is a view of that
element, so code that keeps ``x[i, j]`` as "the old value" and then writes ``x[i, j]`` sees its old
value change, on the fake as on a GPU (numpy would have copied the value out).

What it cannot catch: ``np.asarray(device_array)`` (and a device value written into a host array)
silently gives host data here, where real CuPy raises, because its arrays are numpy arrays underneath.
Such a copy usually shows up later, as a host array mixed with device ones; tests that must be sure
count the host -> device copies (``FakeCupy.transfers``).

``FakeCupy`` is a module-like object with CuPy's public surface as far as this package uses it:
``ndarray`` (a numpy subclass that stands for device memory), the numpy namespace with every result
turned into device arrays, ``asnumpy``, ``random`` (with a seeded ``RandomState``),
``cuda.runtime.getDeviceCount`` and ``cuda.curand``'s generator constant. Installed as
``sys.modules["cupy"]`` (the ``backend`` and ``device_backend`` fixtures in conftest.py do that), it
makes ``cs231n.backend`` treat its arrays exactly as it treats CuPy's. Arithmetic on its arrays is
numpy's, so results can be compared bit for bit with the numpy path. It has no
``fuse``/``ElementwiseKernel``, so code that uses CuPy's fused kernels when they exist takes its generic
path here; those kernels are checked on a real GPU by ``benchmarks/gpu_check.sh``.
"""
import types

import numpy as np


class HostDeviceMixError(TypeError):
    """A host (numpy) array met a device array in one operation: CuPy raises TypeError there too."""


class ndarray(np.ndarray):  # noqa: N801 - named like cupy.ndarray on purpose
    """A numpy array that stands for an array in GPU memory."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__,
                     inputs + (out or ()))
        args = [_host_view(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_host_view(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _to_device_view(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host(func.__name__, _leaves(args) + _leaves(kwargs))
        return _to_device_view(func(*_unwrap(args), **_unwrap(kwargs)))

    def __setitem__(self, key, value):
        _refuse_host("__setitem__", (value,))
        np.ndarray.__setitem__(self, _unwrap(key), _host_view(value))

    def __getitem__(self, key):
        key = _unwrap(key)
        result = np.ndarray.__getitem__(self, key)
        if isinstance(result, np.generic) and self.dtype != object:
            # CuPy has no scalars: x[i, j] is a 0-d device array that is a VIEW of the element, so it
            # changes when x[i, j] is written later (numpy would have copied the value out).
            result = np.ndarray.__getitem__(self, (key if isinstance(key, tuple) else (key,)) + (Ellipsis,))
        return result

    def get(self):
        """The array copied to the host, like ``cupy.ndarray.get``."""
        return np.array(_host_view(self), copy=True)


def _leaves(tree):
    if isinstance(tree, dict):
        return tuple(x for v in tree.values() for x in _leaves(v))
    if isinstance(tree, (list, tuple)):
        return tuple(x for v in tree for x in _leaves(v))
    return (tree,)


def _is_host_array(x):
    return isinstance(x, np.ndarray) and not isinstance(x, ndarray) and x.ndim > 0


def _refuse_host(what, values):
    for v in values:
        if _is_host_array(v):
            raise HostDeviceMixError(f"{what}: a host numpy array {v.shape} {v.dtype} was mixed with "
                                     "device arrays (CuPy raises TypeError: Unsupported type)")


def _host_view(x):
    return x.view(np.ndarray) if isinstance(x, ndarray) else x


def _unwrap(tree):
    if isinstance(tree, dict):
        return {k: _unwrap(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unwrap(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(_unwrap(v) for v in tree)
    return _host_view(tree)


def _to_device_view(result):
    if isinstance(result, tuple):
        return tuple(_to_device_view(r) for r in result)
    if isinstance(result, list):
        return [_to_device_view(r) for r in result]
    if isinstance(result, np.ndarray) and not isinstance(result, ndarray):
        return result.view(ndarray)
    if isinstance(result, np.generic):
        return np.asarray(result).view(ndarray)  # CuPy's reductions give 0-d device arrays, not scalars
    return result


# Functions that take host data on purpose (explicit host -> device transfers in CuPy).
_CREATION = {"asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray"}


class _Namespace(types.SimpleNamespace):
    """numpy's namespace (or numpy.random's) with device arrays in and out."""

    def __init__(self, base, creation=()):
        super().__init__()
        self._base = base
        self._creation = set(creation)

    def __getattr__(self, name):
        obj = getattr(self._base, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, constants (pi, inf, newaxis), classes
        if isinstance(obj, np.ufunc):
            return obj  # ufuncs dispatch to ndarray.__array_ufunc__ by themselves
        creation = name in self._creation

        def device_function(*args, **kwargs):
            if not creation:
                _refuse_host(name, _leaves(args) + _leaves(kwargs))
            return _to_device_view(obj(*_unwrap(args), **_unwrap(kwargs)))

        device_function.__name__ = name
        return device_function


class RandomState:
    """``cupy.random.RandomState(seed, method)`` as far as the package uses it: a seeded generator whose
    draws are device arrays (numpy's PCG64 stands in for cuRAND, so the numbers differ from a GPU's)."""

    def __init__(self, seed=None, method=None):
        self._gen = np.random.default_rng(None if seed is None else int(seed))

    def random_sample(self, size=None, dtype=float):
        return _to_device_view(self._gen.random(size, dtype=dtype))


class FakeCupy(_Namespace):
    """The module object installed as ``sys.modules["cupy"]`` by the ``backend`` fixtures."""

    ndarray = ndarray
    __name__ = "cupy"

    def __init__(self):
        super().__init__(np, creation=_CREATION)
        self.random = _Namespace(np.random)
        self.random.RandomState = RandomState
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                          curand=types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=161))
        self.transfers = 0  # host -> device copies made through asarray, for tests that count them

    def asarray(self, a, dtype=None):
        if isinstance(a, ndarray):
            return a if dtype is None else a.astype(dtype, copy=False)
        self.transfers += 1
        return np.array(a, dtype=dtype, copy=True).view(ndarray)

    def asnumpy(self, a):
        return np.array(_host_view(a), copy=True)

    def get_array_module(self, *arrays):
        return self if any(isinstance(a, ndarray) for a in arrays) else np
