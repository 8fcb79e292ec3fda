"""cs231n.backend: the array-module convention, the explicit moves across, and the errors without a GPU."""
import subprocess
import sys

import numpy as np
import pytest

from cs231n import backend as B


def test_numpy_inputs_mean_numpy_and_nothing_imports_cupy():
    # A CPU-only program must never import CuPy: checked in a fresh interpreter.
    code = ("import sys, numpy as np; from cs231n import backend as B; import cs231n.rnn_layers, "
            "cs231n.transformer_layers, cs231n.classifiers.rnn; "
            "assert B.get_array_module(np.ones(2), 3.0, None, [1]) is np; "
            "assert 'cupy' not in sys.modules, 'cupy was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_round_trip_is_bit_exact(backend):
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        a = (rng.standard_normal((3, 4)) * 1e3).astype(dtype)
        d = B.to_device(a, backend.device)
        backend.check(d)
        assert B.device_of(d) == backend.device
        assert B.get_array_module(d) is backend.xp
        back = B.to_numpy(d)
        assert type(back) is np.ndarray and back.dtype == dtype
        np.testing.assert_array_equal(back, a)
        assert B.to_device(d, backend.device) is d or backend.name == "numpy"


def test_tree_to_device_moves_arrays_and_keeps_other_leaves(backend):
    tree = {"w": np.ones((2, 2)), "config": {"lr": 1e-3, "name": "adam", "m": np.zeros(3)},
            "list": [np.arange(3), None, 7]}
    moved = B.tree_to_device(tree, backend.device)
    backend.check(moved["w"])
    backend.check(moved["config"]["m"])
    backend.check(moved["list"][0])
    assert moved["config"]["lr"] == 1e-3 and moved["config"]["name"] == "adam"
    assert moved["list"][1] is None and moved["list"][2] == 7
    host = B.tree_to_device(moved, "cpu")
    assert type(host["config"]["m"]) is np.ndarray


def test_bad_device_names_the_argument():
    with pytest.raises(ValueError, match=r"to_device: device must be one of \('cpu', 'gpu'\), got 'cuda'"):
        B.to_device(np.ones(2), "cuda")


def test_gpu_without_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(B.BackendError, match="needs CuPy, which is not installed.*--device cpu"):
        B.to_device(np.ones(2), "gpu")
    assert B.get_array_module(np.ones(2)) is np


def test_cupy_without_a_device_is_a_clear_error(monkeypatch):
    from fake_cupy import FakeCupy
    fake = FakeCupy()

    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake.cuda.runtime.getDeviceCount = no_device
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(B.BackendError, match="no CUDA device can be used: cudaErrorNoDevice"):
        B.xp_for("gpu")


def test_fake_gpu_refuses_host_arrays_like_cupy(device_backend):
    # The fake backend is only useful if it is as strict as CuPy about mixing: check that it is.
    xp = device_backend.xp
    d = xp.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError):
        d + np.ones((2, 3))
    with pytest.raises(TypeError):
        xp.concatenate([d, np.ones((2, 3))])
    with pytest.raises(TypeError):
        d[0] = np.ones(3)
    device_backend.check(d * 2.0 + 1)
    device_backend.check(d.sum())
