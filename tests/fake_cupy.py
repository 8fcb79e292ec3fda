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

It also counts what a GPU would have been asked to do: kernel launches, host synchronisations (reads
of device values) and host -> device copies, in ``COUNTS`` (see ``Counts`` for the rules);
``benchmarks/gpu_counts.py`` prints them per training step of every model.

``FakeCupy`` is a module-like object with CuPy's public surface as far as this package uses it:
``ndarray`` (a numpy subclass that stands for device memory), the numpy namespace with every result
turned into device arrays, ``asnumpy``, ``random`` (with a seeded ``RandomState``),
``cuda.runtime.getDeviceCount`` and ``cuda.curand``'s generator constant. Installed as
``sys.modules["cupy"]`` (the ``backend`` and ``device_backend`` fixtures in conftest.py do that), it
makes ``cs231n.backend`` treat its arrays exactly as it treats CuPy's. Arithmetic on its arrays is
numpy's, so results can be compared bit for bit with the numpy path. It has no
``fuse``/``ElementwiseKernel`` unless made with ``kernels=True`` (see ``FakeCupy``), so code that uses
CuPy's fused kernels when they exist takes its generic path here; the kernels' CUDA bodies run on the CPU
with ``kernels=True``, and CuPy's compilation of them is checked on a GPU by ``benchmarks/gpu_check.sh``.
"""
import operator
import types

import numpy as np


class HostDeviceMixError(TypeError):
    """A host (numpy) array met a device array in one operation: CuPy raises TypeError there too."""


class Counts:
    """What the GPU would have been asked to do: kernel launches and host synchronisations.

    - ``launches``: every operation that makes the device compute: a ufunc (``a + b``, ``xp.exp``,
      ``a.sum()``; one per call, in place or not), an ``xp.*`` function or array method whose result is
      freshly written memory (``xp.zeros``, ``xp.concatenate``, ``a.astype``, fancy indexing), each
      ``__setitem__``, each random draw, and each call of a fused kernel object (ElementwiseKernel,
      ReductionKernel). Views (slicing, ``reshape`` of a contiguous array, ``.T``, ``astype`` to the same
      dtype without copy) and allocations (``xp.empty``) are not launches, as on a GPU.
    - ``syncs``: every read of a device value by the host, which waits for the GPU: ``float``, ``int``,
      ``bool`` (an ``if`` on a device array), ``operator.index``, ``.item()``, ``.tolist()``, ``.get()``,
      ``xp.asnumpy``, printing.
    - ``transfers``: host -> device copies through ``xp.asarray``/``xp.array`` of host data.
    - ``generators``: random generators created (``xp.random.RandomState``): each is a cuRAND
      generator created and, later, destroyed, several host calls into the CUDA libraries.

    One numpy operation is counted as one launch: CuPy launches one kernel for almost every one of
    them (a reduction such as ``mean`` or ``sum`` is one kernel there too, so the fake counts them as
    one although numpy's ``mean`` is a sum and a division); a few CuPy functions take more (``var``,
    ``einsum`` with a transpose, a non-contiguous matmul operand copied first), so the counts are a
    close lower bound of a real GPU's, good for comparing two versions of the code, not a profile.
    """

    def __init__(self):
        self.launches = self.syncs = self.transfers = self.generators = 0

    def snapshot(self):
        return {"launches": self.launches, "syncs": self.syncs, "transfers": self.transfers,
                "generators": self.generators}


COUNTS = Counts()  # one tally for the process (the fake's arrays share it, whichever FakeCupy made them)


def _launch(n=1):
    COUNTS.launches += n


def _sync():
    COUNTS.syncs += 1


def _fresh(result, inputs):
    """True when ``result`` holds memory that none of the array ``inputs`` holds (a kernel wrote it)."""
    results = result if isinstance(result, (tuple, list)) else (result,)
    if any(isinstance(r, np.generic) for r in results):
        return True  # a reduction to a scalar: a 0-d device array in CuPy
    arrays = [_host_view(r) for r in results if isinstance(r, np.ndarray)]
    inputs = [_host_view(x) for x in inputs if isinstance(x, np.ndarray)]
    return any(not any(np.may_share_memory(a, x) for x in inputs) for a in arrays)


class ndarray(np.ndarray):  # noqa: N801 - named like cupy.ndarray on purpose
    """A numpy array that stands for an array in GPU memory."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__,
                     inputs + (out or ()))
        _launch()
        args = [_host_view(x) for x in inputs]
        if ufunc is np.matmul and _LINALG.compute_types[np.dtype(np.float32)] == _LINALG.COMPUTE_TYPE_TF32:
            args = [_tf32(a) for a in args]
        if out is not None:
            kwargs["out"] = tuple(_host_view(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _to_device_view(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host(func.__name__, _leaves(args) + _leaves(kwargs))
        inputs = _unwrap(_leaves(args) + _leaves(kwargs))
        result = func(*_unwrap(args), **_unwrap(kwargs))
        if func.__name__ not in _ALLOCATIONS and _fresh(result, inputs):
            _launch()
        return _to_device_view(result)

    def __setitem__(self, key, value):
        _refuse_host("__setitem__", (value,))
        _launch()
        np.ndarray.__setitem__(self, _unwrap(key), _host_view(value))

    def __getitem__(self, key):
        key = _unwrap(key)
        result = np.ndarray.__getitem__(self, key)
        if isinstance(result, np.generic) and self.dtype != object:
            # CuPy has no scalars: x[i, j] is a 0-d device array that is a VIEW of the element, so it
            # changes when x[i, j] is written later (numpy would have copied the value out).
            result = np.ndarray.__getitem__(self, (key if isinstance(key, tuple) else (key,)) + (Ellipsis,))
        elif _fresh(result, (self,)):
            _launch()  # advanced (integer or boolean array) indexing gathers in a kernel
        return result

    def get(self):
        """The array copied to the host, like ``cupy.ndarray.get`` (a sync)."""
        _sync()
        return np.array(_host_view(self), copy=True)

    # Reading a value on the host waits for the device.
    def __float__(self):
        _sync()
        return float(_host_view(self))

    def __int__(self):
        _sync()
        return int(_host_view(self))

    def __index__(self):
        _sync()
        return operator.index(_host_view(self))

    def __bool__(self):
        _sync()
        return bool(_host_view(self))

    def __complex__(self):
        _sync()
        return complex(_host_view(self))

    def item(self, *args):
        _sync()
        return _host_view(self).item(*args)

    def tolist(self):
        _sync()
        return _host_view(self).tolist()

    def __repr__(self):
        _sync()
        return repr(_host_view(self)).replace("array(", "fake_cupy.array(", 1)

    def __str__(self):
        _sync()
        return str(_host_view(self))

    def __format__(self, spec):
        _sync()
        return format(_host_view(self)[()] if self.ndim == 0 else _host_view(self), spec)


def _method(name):
    """A method of ndarray run on the host view: one launch when it writes fresh memory, none for a view."""
    host_method = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        _refuse_host(name, _leaves(args) + _leaves(kwargs))
        result = host_method(_host_view(self), *_unwrap(args), **_unwrap(kwargs))
        if name == "fill" or _fresh(result, (self,) + _unwrap(_leaves(args) + _leaves(kwargs))):
            _launch()
        return _to_device_view(result)

    method.__name__ = name
    return method


# Methods whose numpy implementation is not a single ufunc on the subclass (C code, or several ufuncs
# where CuPy runs one kernel): run on the host view and counted once by ``_method``.
for _name in ("astype", "copy", "fill", "reshape", "ravel", "flatten", "transpose", "swapaxes", "squeeze",
              "mean", "var", "std", "sum", "prod", "max", "min", "any", "all", "argmax", "argmin",
              "cumsum", "clip", "dot", "take", "repeat", "round", "sort", "argsort", "nonzero"):
    setattr(ndarray, _name, _method(_name))
del _name

# xp.* functions that only allocate (no kernel runs on a GPU).
_ALLOCATIONS = {"empty", "empty_like"}


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
            inputs = _unwrap(_leaves(args) + _leaves(kwargs))
            result = obj(*_unwrap(args), **_unwrap(kwargs))
            if name not in _ALLOCATIONS and _fresh(result, inputs):
                if creation and not any(isinstance(x, ndarray) for x in _leaves(args)):
                    COUNTS.transfers += 1  # xp.array(host data): a copy across, not a kernel
                else:
                    _launch()
            return _to_device_view(result)

        device_function.__name__ = name
        return device_function


class RandomState:
    """``cupy.random.RandomState(seed, method)`` as far as the package uses it: a seeded generator whose
    draws are device arrays (numpy's PCG64 stands in for cuRAND, so the numbers differ from a GPU's)."""

    def __init__(self, seed=None, method=None):
        COUNTS.generators += 1
        self.seed(seed)

    def seed(self, seed=None):
        """Restart the stream from ``seed``, as CuPy's ``RandomState.seed`` does (a host call, no launch)."""
        self._gen = np.random.default_rng(None if seed is None else int(seed))

    def random_sample(self, size=None, dtype=float):
        _launch()
        return _to_device_view(self._gen.random(size, dtype=dtype))


class _RoutinesLinalg:
    """``cupy._core._routines_linalg``'s compute types, which decide how cuBLAS multiplies: with
    ``COMPUTE_TYPE_TF32`` for float32, the fake's matrix products (``@``/``matmul``) round their float32
    inputs to TF32 (10-bit mantissa, to nearest) as the GPU's tensor cores do, so the effect of TF32
    shows on the CPU too (products accumulate in float32 here; the rounding of a GPU may differ)."""

    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_TF32 = 1, 7

    def __init__(self):
        self.compute_types = {np.dtype(np.float32): self.COMPUTE_TYPE_DEFAULT,
                              np.dtype(np.float64): self.COMPUTE_TYPE_DEFAULT}

    def get_compute_type(self, dtype):
        return self.compute_types[np.dtype(dtype)]

    def set_compute_type(self, dtype, compute_type):
        if compute_type not in (self.COMPUTE_TYPE_DEFAULT, self.COMPUTE_TYPE_TF32):
            raise ValueError(f"Unknown compute type: {compute_type}")
        self.compute_types[np.dtype(dtype)] = compute_type


_LINALG = _RoutinesLinalg()  # process-wide, like CuPy's


def _tf32(a):
    """float32 ``a`` rounded to TF32's 10 mantissa bits (to nearest even); anything else unchanged."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32:
        return a
    bits = np.ascontiguousarray(a).view(np.uint32)
    rounded = (bits + np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
    return np.where(np.isfinite(a), rounded.view(np.float32), a)


class _FusedKernel:
    """A fused kernel object of the fake: the CUDA body compiled for the host (``host_kernels``), run on
    the device arrays' memory and counted as ONE launch, as CuPy launches it once."""

    def __init__(self, host_kernel):
        self._host = host_kernel

    def __call__(self, *args, **kwargs):
        _refuse_host(self._host.name, args + tuple(kwargs.values()))
        _launch()
        if kwargs.get("out") is not None:
            kwargs["out"] = _host_view(kwargs["out"])
        return _to_device_view(self._host(*[_host_view(a) for a in args], **kwargs))


class FakeCupy(_Namespace):
    """The module object installed as ``sys.modules["cupy"]`` by the ``backend`` fixtures.

    ``FakeCupy(kernels=True)`` also has ``ElementwiseKernel`` and ``ReductionKernel``, so the package takes its fused-kernel
    path (``cs231n.gpu_kernels``) as on real CuPy: each kernel's CUDA body is compiled by g++ for the
    CPU and run over the arrays (``tests/host_kernels.py``), one call counting one launch. Results then
    equal numpy's up to float rounding, not bit for bit. The default fake has no fused kernels, so the
    package's generic array code runs on it and can be compared with numpy bit for bit.
    """

    ndarray = ndarray
    __name__ = "cupy"

    def __init__(self, kernels=False):
        super().__init__(np, creation=_CREATION)
        if kernels:
            from host_kernels import HostElementwiseKernel, HostReductionKernel
            self.ElementwiseKernel = lambda *args, **kwargs: _FusedKernel(HostElementwiseKernel(*args, **kwargs))
            self.ReductionKernel = lambda *args, **kwargs: _FusedKernel(HostReductionKernel(*args, **kwargs))
        self.random = _Namespace(np.random)
        self.random.RandomState = RandomState
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                          curand=types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=161))
        self.counts = COUNTS
        self._core = types.SimpleNamespace(_routines_linalg=_LINALG)

    @property
    def transfers(self):
        """Host -> device copies made through asarray/array (process-wide, see ``Counts``)."""
        return COUNTS.transfers

    @transfers.setter
    def transfers(self, value):
        COUNTS.transfers = value

    def asarray(self, a, dtype=None):
        if isinstance(a, ndarray):
            return a if dtype is None else a.astype(dtype, copy=False)
        COUNTS.transfers += 1
        return np.array(a, dtype=dtype, copy=True).view(ndarray)

    def asnumpy(self, a):
        if isinstance(a, ndarray):
            _sync()
        return np.array(_host_view(a), copy=True)

    def get_array_module(self, *arrays):
        return self if any(isinstance(a, ndarray) for a in arrays) else np
