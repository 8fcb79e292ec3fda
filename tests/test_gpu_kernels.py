"""The fused LSTM/GRU gate kernels of cs231n.gpu_kernels against the generic xp code they replace.

Each kernel must compute exactly what its numpy-style twin in rnn_layers computes (the same buffers
written, the same values): both run here on real CuPy from the same inputs, the twin with the kernels
switched off (``gpu_kernels.ENABLED = False``). Needs CuPy and a GPU; skipped otherwise, with the
reason. ``benchmarks/gpu_check.sh`` runs these on a GPU machine. On the CPU, only the dispatch is
checked: numpy and the strict fake CuPy take the generic path.
"""
import numpy as np
import pytest

from cs231n import gpu_kernels, rnn_layers

# Tolerances of fused vs unfused on one device: the same formulas, up to FMA contraction and the order
# of a few roundings inside the kernel.
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}
# N rows of H units, so that a slip between batch rows, units or gate blocks changes some output.
SHAPES = [(1, 1), (3, 5), (17, 33)]


@pytest.fixture
def cupy():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as e:  # ImportError, CUDARuntimeError, driver errors
        pytest.skip(f"fused kernels need CuPy and a GPU: {type(e).__name__}: {e}")
    return cupy


def test_numpy_and_the_fake_take_the_generic_path():
    from fake_cupy import FakeCupy
    assert not gpu_kernels.fused(np)
    assert not gpu_kernels.fused(FakeCupy())


def run_both(cupy, monkeypatch, helper, make_args, out_names):
    """Call ``helper(cupy, *args)`` fused and unfused on copies of the same arguments.

    ``make_args()`` returns a dict name -> device array (in helper order); returns the two dicts after
    the calls, so that every buffer the helper may write (inputs updated in place included) is compared.
    """
    assert gpu_kernels.fused(cupy)
    fresh = make_args()
    results = []
    for enabled in (True, False):
        args = {k: v.copy() for k, v in fresh.items()}
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        helper(cupy, *args.values())
        results.append(args)
    return [{k: cupy.asnumpy(r[k]) for k in out_names} for r in results]


def assert_same(fused, generic, dtype):
    for name in fused:
        assert fused[name].dtype == dtype, name
        np.testing.assert_allclose(fused[name], generic[name], err_msg=name, **TOL[dtype])


def device_randn(cupy, rng, dtype):
    return lambda *shape: cupy.asarray(rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, H", SHAPES)
def test_lstm_step_forward_kernel(cupy, monkeypatch, N, H, dtype):
    randn = device_randn(cupy, np.random.default_rng(1), dtype)

    def make():
        return dict(a=randn(N, 4 * H), ah=randn(N, 4 * H), c_prev=randn(N, H), c=randn(N, H),
                    tanh_c=randn(N, H), h=randn(N, H), ig=randn(N, H))
    fused, generic = run_both(cupy, monkeypatch, rnn_layers._lstm_step_gates, make, ["a", "c", "tanh_c", "h"])
    assert_same(fused, generic, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, H", SHAPES)
def test_lstm_step_backward_kernel(cupy, monkeypatch, N, H, dtype):
    rng = np.random.default_rng(2)
    randn = device_randn(cupy, rng, dtype)

    def make():
        gates = cupy.asarray(rng.uniform(-0.9, 0.9, (N, 4 * H)).astype(dtype))  # activated gates
        dh = randn(N, 3, H)
        return dict(a=gates, tc=cupy.tanh(randn(N, H)), c_prev=randn(N, H), dh_t=dh[:, 1, :],
                    dprev_h=randn(N, H), dc=randn(N, H), da=randn(N, 4 * H), dht=randn(N, H), tmp=randn(N, H))
    fused, generic = run_both(cupy, monkeypatch, rnn_layers._lstm_step_gates_backward, make, ["dc", "da"])
    assert_same(fused, generic, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, H", SHAPES)
def test_gru_step_forward_kernel(cupy, monkeypatch, N, H, dtype):
    randn = device_randn(cupy, np.random.default_rng(3), dtype)

    def make():
        return dict(a=randn(N, 3 * H), ah=randn(N, 3 * H), bh=randn(3 * H), h_prev=randn(N, H),
                    hn=randn(N, H), h=randn(N, H), tmp=randn(N, H))
    fused, generic = run_both(cupy, monkeypatch, rnn_layers._gru_step_gates, make, ["a", "hn", "h"])
    assert_same(fused, generic, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, H", SHAPES)
def test_gru_step_backward_kernel(cupy, monkeypatch, N, H, dtype):
    rng = np.random.default_rng(4)
    randn = device_randn(cupy, rng, dtype)

    def make():
        rzn = cupy.asarray(rng.uniform(-0.9, 0.9, (N, 3 * H)).astype(dtype))
        dh = randn(N, 3, H)
        return dict(a=rzn, hn=randn(N, H), h_prev=randn(N, H), dh_t=dh[:, 2, :], dprev_h=randn(N, H),
                    dax=randn(N, 3 * H), dah=randn(N, 3 * H), dh_z=randn(N, H), dht=randn(N, H),
                    tmp=randn(N, H))
    fused, generic = run_both(cupy, monkeypatch, rnn_layers._gru_step_gates_backward, make,
                              ["dax", "dah", "dh_z"])
    assert_same(fused, generic, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_whole_sequence_fused_equals_generic(cupy, monkeypatch, cell, dtype):
    """lstm/gru forward and backward over a sequence, mixed dtypes of dh and bh included."""
    rng = np.random.default_rng(5)
    N, T, D, H = 6, 5, 4, 9
    g = 4 if cell == "lstm" else 3
    host = [rng.standard_normal(s) * 0.5 for s in ((N, T, D), (N, H), (D, g * H), (H, g * H), (g * H,))]
    if cell == "gru":
        host.append((rng.standard_normal(3 * H) * 0.5).astype(np.float32))  # bh: float32 even for float64
    args = [cupy.asarray(a.astype(dtype) if a.dtype != np.float32 else a) for a in host]
    dh = cupy.asarray(rng.standard_normal((N, T, H)))  # float64 upstream even for a float32 layer
    fwd, bwd = getattr(rnn_layers, cell + "_forward"), getattr(rnn_layers, cell + "_backward")
    outs = []
    for enabled in (True, False):
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        h, cache = fwd(*args)
        outs.append([cupy.asnumpy(v) for v in (h,) + tuple(bwd(dh, cache))])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for k, (fused, generic) in enumerate(zip(*outs)):
        assert fused.dtype == generic.dtype
        np.testing.assert_allclose(fused, generic, err_msg=f"output {k}", **tol)
