"""Which array module computes: numpy on the CPU, or CuPy on an NVIDIA GPU.

Every layer in this package is written once, against the array module of its inputs:

    xp = get_array_module(x)      # numpy for numpy arrays, cupy for cupy arrays
    out = xp.empty((N, H), dtype=x.dtype)

so the same readable function runs on the CPU when it is given numpy arrays and on a GPU when it is
given CuPy arrays, and returns arrays of the kind it was given. numpy stays the only required
dependency: CuPy is imported only when a caller asks for the GPU (``to_device(..., "gpu")``,
``model.to("gpu")``, ``--device gpu``), and ``get_array_module`` only recognises CuPy arrays when CuPy
has already been imported by someone, so a CPU-only program never pays for the import.

Moving data between host and device is explicit and happens at the edges (a model's ``to``, a
solver's minibatch, a checkpoint's save): ``to_device`` and ``to_numpy`` are the only two ways across.
"""
import contextlib
import sys

import numpy as np

DEVICES = ("cpu", "gpu")


class BackendError(RuntimeError):
    """The GPU was asked for but cannot be used (CuPy missing, no CUDA device, a driver error)."""


def get_array_module(*arrays):
    """The array module (``numpy`` or ``cupy``) that computes on ``arrays``.

    CuPy is returned when any argument is a CuPy array; anything else (numpy arrays, Python numbers,
    lists, None) means numpy. This never imports CuPy: an array of it can only exist if it was imported.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def is_device_array(a):
    """True when ``a`` is a GPU (CuPy) array."""
    return get_array_module(a) is not np


def device_of(a):
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "gpu" if is_device_array(a) else "cpu"


def params_device(params):
    """Where a dict of arrays (a model's ``params``) lives: "gpu" when any is a CuPy array, else "cpu"."""
    return "gpu" if any(is_device_array(a) for a in params.values()) else "cpu"


def import_cupy():
    """Import CuPy and check that a CUDA device answers; BackendError says what is missing otherwise."""
    try:
        import cupy
    except ImportError as e:
        raise BackendError(
            "the GPU needs CuPy, which is not installed (" + str(e) + "); install the build that matches "
            "your CUDA, e.g. `pip install cupy-cuda12x`, or use the CPU (--device cpu)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError and driver errors have no common public base
        raise BackendError(f"CuPy is installed but no CUDA device can be used: {e}") from None
    if count < 1:
        raise BackendError("CuPy is installed but this machine has no CUDA device")
    return cupy


def check_device(fn, device):
    """Return ``device`` if it is "cpu" or "gpu", else raise ValueError naming the function."""
    if device not in DEVICES:
        raise ValueError(f"{fn}: device must be one of {DEVICES}, got {device!r}")
    return device


def xp_for(device):
    """The array module of ``device``: numpy for "cpu", CuPy (imported and checked) for "gpu"."""
    check_device("xp_for", device)
    return np if device == "cpu" else import_cupy()


def to_device(a, device):
    """``a`` as an array on ``device`` ("cpu" or "gpu"); an array already there is returned as it is.

    Anything array-like is accepted (numpy or CuPy arrays, lists, numbers); dtype and values are kept
    bit for bit in both directions.
    """
    check_device("to_device", device)
    if device == "cpu":
        return to_numpy(a)
    cupy = import_cupy()
    return a if isinstance(a, cupy.ndarray) else cupy.asarray(a)


def to_numpy(a):
    """``a`` as a host numpy array (a CuPy array is copied from the device; numpy passes through)."""
    xp = get_array_module(a)
    if xp is np:
        return np.asarray(a)
    return xp.asnumpy(a)


def tree_to_device(tree, device):
    """``to_device`` on every array in a dict/list/tuple tree; other leaves (str, int, None) are kept."""
    if isinstance(tree, dict):
        return {k: tree_to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_to_device(v, device) for v in tree)
    if isinstance(tree, np.ndarray) or is_device_array(tree):
        return to_device(tree, device)
    return tree


# ----------------------------------------------------------------------------------------------------
# Value checks of device arrays without a sync per check
# ----------------------------------------------------------------------------------------------------
# Checking values (an index range, a mask row with no allowed key) means reading a device value back,
# which waits for the GPU. A training step would wait once per check; inside ``deferred_checks()`` the
# checks are queued instead and read back together with what the caller reads anyway (the solver: the
# loss), so the step waits once. The error is the same, raised a little later (before the update is
# committed).
_pending = []  # one list per active deferred_checks(), innermost last


def check_on_device(ok, fail):
    """Raise through ``fail()`` unless ``ok`` (a 0-d boolean array, True when the values are fine).

    numpy values, and device values outside ``deferred_checks()``, are checked at once (one sync for a
    device value); inside it, a device check is queued for the caller to read back.
    ``fail`` must raise; it may read device arrays (it runs only once the check failed).
    """
    if _pending and is_device_array(ok):
        _pending[-1].append((ok, fail))
    elif not bool(ok):
        fail()
        raise AssertionError("check_on_device: fail() returned instead of raising")  # pragma: no cover


class deferred_checks:  # noqa: N801 - used like a function: `with deferred_checks() as checks:`
    """Queue the device value checks made inside the block (see ``check_on_device``).

    ``checks.flags`` are the queued 0-d boolean device arrays, to read back with the caller's own sync;
    ``checks.raise_failed(host_flags)`` then raises the first failed check's error. If the block raises
    (e.g. an index out of range met by an operation), the queued checks are read at once and a failed
    one's error replaces the exception, as if it had been checked before.
    """

    def __enter__(self):
        self._checks = []
        _pending.append(self._checks)
        return self

    def __exit__(self, exc_type, exc, tb):
        _pending.remove(self._checks)
        if exc_type is not None and self._checks:
            self.raise_failed([bool(ok) for ok in self.flags])
        return False

    @property
    def flags(self):
        return [ok for ok, _ in self._checks]

    def raise_failed(self, host_flags):
        for (_, fail), ok in zip(self._checks, host_flags):
            if not ok:
                fail()


# ----------------------------------------------------------------------------------------------------
# Precision of float32 matrix products on the GPU
# ----------------------------------------------------------------------------------------------------
PRECISIONS = ("float32", "tf32")


def check_precision(fn, precision):
    """Return ``precision`` if it is "float32" or "tf32", else raise ValueError naming the function."""
    if precision not in PRECISIONS:
        raise ValueError(f"{fn}: precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@contextlib.contextmanager
def matmul_precision(xp, precision):
    """Within the block, CuPy's float32 matrix products use ``precision``; restored afterwards.

    - "float32" (the default everywhere): IEEE float32 products, as numpy computes them.
    - "tf32": cuBLAS may use the tensor cores' TF32 mode (NVIDIA Ampere, compute capability 8.0, and
      newer): the inputs of each float32 matrix product are rounded to TF32's 10-bit mantissa (about 3
      significant digits; float32 has 23 bits) and the products accumulated in float32. Only matrix
      products (``@``, ``dot``, ``matmul``, ``einsum``, ``tensordot``) change; elementwise work,
      reductions, the optimizers and float64 arrays stay exact float32/float64. Expect results that
      differ from float32's in the third or fourth significant digit, and faster large products.
      Older GPUs ignore it (CuPy warns).

    With numpy (``xp`` is numpy) both precisions are numpy's float32: the CPU has no TF32.
    """
    check_precision("matmul_precision", precision)
    if precision == "float32" or xp is np:
        yield
        return
    linalg = xp._core._routines_linalg
    previous = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)
    try:
        yield
    finally:
        linalg.set_compute_type(np.float32, previous)
