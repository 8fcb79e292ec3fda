"""Shared test helpers: an independent central-difference gradient and the relative error.

These are written here on purpose instead of importing :mod:`cs231n.gradient_check`, so that the layer
gradient checks do not depend only on the code under test. They are handed to tests as fixtures.

BLAS is limited to one thread for the test run (unless the caller chose otherwise): on a 2-core machine
multi-threaded OpenBLAS slows down many times over as soon as anything else runs, and the tests' matrices
are small. This has to happen before numpy is first imported, hence at the top of this file.
"""
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if "numpy" in sys.modules:  # pragma: no cover - only if a plugin imported numpy first
    print("conftest: numpy was imported before the BLAS thread limit could be set", file=sys.stderr)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run, so a CI failure can be reproduced and a pass
# means the same thing each time (set HYPOTHESIS_PROFILE=explore to search with fresh randomness).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def central_difference(f, x, df, h=1e-5):
    """Numerical gradient of ``sum(f(x) * df)`` with respect to ``x`` by central differences.

    Inputs:
    - f: function of one array returning an array (or a scalar); it must read ``x`` itself, which this
      helper perturbs in place, one entry at a time, and restores.
    - x: float array of any shape, perturbed and restored.
    - df: upstream gradient, of the shape of ``f(x)`` (1.0 for a scalar ``f``).
    - h: step size.

    Returns:
    - grad: float64 array of the shape of x.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + h
        pos = np.array(f(x), dtype=np.float64)  # a copy, in case f returns a view of a buffer it reuses
        x[idx] = old - h
        neg = np.array(f(x), dtype=np.float64)
        x[idx] = old
        grad[idx] = np.sum((pos - neg) * df) / (2.0 * h)
    return grad


def max_relative_error(a, b):
    """Largest elementwise ``|a - b| / max(1e-8, |a| + |b|)``; 0.0 for empty arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny shapes dataset (seed 1, with region files) that the command-line tests train on, made once
    per test session: tests only read it (those that damage files work on copies)."""
    from cs231n.data.shapes import make_shapes_dataset

    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "tiny", "tiny", seed=1)


@pytest.fixture
def num_grad():
    """The independent central-difference helper, ``num_grad(f, x, df, h=1e-5) -> grad``."""
    return central_difference


@pytest.fixture
def relerr():
    """The independent relative error, ``relerr(a, b) -> float``."""
    return max_relative_error


class Backend:
    """One array backend for parametrized tests: its name, its array module and a mover onto it.

    - ``numpy``: the host; ``put`` returns numpy arrays.
    - ``fake-gpu``: ``tests/fake_cupy.py`` installed as ``sys.modules["cupy"]``, so the package's GPU
      path runs on the CPU and any host array mixed with device arrays is a TypeError (as in CuPy).
    - ``gpu``: real CuPy on a CUDA device (skipped when CuPy cannot be imported or finds no GPU).
    """

    def __init__(self, name, xp):
        self.name = name
        self.xp = xp
        self.device = "cpu" if name == "numpy" else "gpu"

    def put(self, a):
        """``a`` (numpy or a tree of arrays) moved onto this backend."""
        from cs231n.backend import tree_to_device
        return tree_to_device(a, self.device)

    def get(self, a):
        """``a`` as a host numpy array, after checking it lives on this backend."""
        from cs231n.backend import to_numpy
        self.check(a)
        return to_numpy(a)

    def check(self, a):
        """Assert ``a`` is an array of this backend (not left on, or moved to, the other device)."""
        if self.name == "numpy":
            assert type(a) is np.ndarray, f"expected a numpy array, got {type(a)}"
        else:
            assert isinstance(a, self.xp.ndarray), f"expected a {self.name} array, got {type(a)}"

    def assert_close(self, got, want, rtol=1e-12, atol=1e-14):
        """Assert ``got`` lives on this backend and equals the numpy array ``want`` within rtol/atol."""
        np.testing.assert_allclose(self.get(got), want, rtol=rtol, atol=atol)

    def __repr__(self):
        return self.name


def seeds_on_backends(seeds, device_seeds):
    """``parametrize`` over ("seed", "backend"): every seed on numpy, ``device_seeds`` on the devices.

    The fake GPU costs as much as numpy, so the device backends get a few representative cases and the
    CPU suite keeps its run time; ``gpu`` cases are skipped without CuPy and a GPU, like ``backend``'s.
    """
    cases = [(s, "numpy") for s in seeds] + [(s, b) for b in ("fake-gpu", "gpu") for s in device_seeds]
    return pytest.mark.parametrize("seed, backend", cases, indirect=["backend"])


def _real_cupy_or_skip(what="no GPU backend"):
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as e:  # ImportError, CUDARuntimeError, driver errors
        pytest.skip(f"{what}: {type(e).__name__}: {e}")
    return cupy


@pytest.fixture
def real_cupy():
    """The real CuPy module with a GPU behind it; the test is skipped (saying why) otherwise."""
    return _real_cupy_or_skip("needs CuPy and a GPU")


@pytest.fixture(params=["numpy", "fake-gpu", "gpu"])
def backend(request, monkeypatch):
    """Each array backend in turn (see ``Backend``); ``gpu`` is skipped without CuPy and a GPU."""
    if request.param == "numpy":
        return Backend("numpy", np)
    return _device_backend(request.param, monkeypatch)


@pytest.fixture(params=["fake-gpu", "gpu"])
def device_backend(request, monkeypatch):
    """The device backends only (fake and, when present, real CuPy)."""
    return _device_backend(request.param, monkeypatch)


def _device_backend(name, monkeypatch):
    if name == "fake-gpu":
        from fake_cupy import FakeCupy
        fake = FakeCupy()
        monkeypatch.setitem(sys.modules, "cupy", fake)
        return Backend("fake-gpu", fake)
    return Backend("gpu", _real_cupy_or_skip())
