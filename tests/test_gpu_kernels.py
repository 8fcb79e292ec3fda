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
# of a few roundings inside the kernel (a wrong offset or formula gives differences of order 1).
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
# N rows of H units, so that a slip between batch rows, units or gate blocks changes some output.
SHAPES = [(1, 1), (3, 5), (17, 33)]


@pytest.fixture
def cupy(real_cupy):
    """The fused kernels need real CuPy and a GPU (conftest's real_cupy skips the test otherwise)."""
    return real_cupy


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
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for k, (fused, generic) in enumerate(zip(*outs)):
        assert fused.dtype == generic.dtype
        np.testing.assert_allclose(fused, generic, err_msg=f"output {k}", **tol)


# ----------------------------------------------------------------------------------------------------
# Without a GPU: the kernel bodies compiled as C++ on the host
# ----------------------------------------------------------------------------------------------------
# The CUDA bodies are plain C++ over scalars and indexed arrays, so they can be compiled for the CPU and
# run through gpu_kernels' own wrappers by a stand-in for cupy.ElementwiseKernel (tests/host_kernels.py,
# which the fake CuPy also uses with kernels=True). That checks the gate offsets, the formulas, the
# argument order of each call and which buffers are written, against the numpy code, on any machine with
# a C++ compiler. (CuPy's compiler and launch rules are only checked on a GPU, above.)


@pytest.fixture
def host_kernels(monkeypatch):
    """``xp`` for the step helpers, whose ElementwiseKernel runs the CUDA bodies compiled for the host."""
    import sys
    import types

    import host_kernels as hk
    if not hk.available():
        pytest.skip("no g++ to compile the kernel bodies for the host")

    def elementwise_kernel(in_params, out_params, operation, name, preamble=""):
        assert (in_params, out_params, operation) == gpu_kernels._SOURCES[name]
        assert preamble == gpu_kernels._PREAMBLE
        return hk.HostElementwiseKernel(in_params, out_params, operation, name, preamble=preamble)

    xp = types.SimpleNamespace(ElementwiseKernel=elementwise_kernel)
    monkeypatch.setitem(sys.modules, "cupy", xp)
    monkeypatch.setattr(gpu_kernels, "_kernels", {})
    return xp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_bodies_on_the_host_equal_the_numpy_helpers(host_kernels, dtype):
    rng = np.random.default_rng(6)
    N, H = 3, 5
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-16)

    def randn(*shape):
        return rng.standard_normal(shape).astype(dtype)

    def both(helper, args, written):
        ours = {k: v.copy() for k, v in args.items()}
        helper(host_kernels, *ours.values())
        ref = {k: v.copy() for k, v in args.items()}
        helper(np, *ref.values())
        for name in written:
            np.testing.assert_allclose(ours[name], ref[name], err_msg=f"{helper.__name__}: {name}", **tol)
        # nothing else the kernel could touch was changed (scratch buffers of the numpy path excepted)
        for name in set(args) - set(written) - {"ig", "dht", "tmp", "ah"}:
            np.testing.assert_array_equal(ours[name], args[name], err_msg=f"{helper.__name__}: {name}")

    both(rnn_layers._lstm_step_gates,
         dict(a=randn(N, 4 * H), ah=randn(N, 4 * H), c_prev=randn(N, H), c=randn(N, H),
              tanh_c=randn(N, H), h=randn(N, H), ig=randn(N, H)), ["a", "c", "tanh_c", "h"])
    dh = randn(N, 4, H)
    both(rnn_layers._lstm_step_gates_backward,
         dict(a=rng.uniform(-0.9, 0.9, (N, 4 * H)).astype(dtype), tc=np.tanh(randn(N, H)),
              c_prev=randn(N, H), dh_t=dh[:, 2, :], dprev_h=randn(N, H), dc=randn(N, H),
              da=randn(N, 4 * H), dht=randn(N, H), tmp=randn(N, H)), ["dc", "da"])
    both(rnn_layers._gru_step_gates,
         dict(a=randn(N, 3 * H), ah=randn(N, 3 * H), bh=randn(3 * H), h_prev=randn(N, H),
              hn=randn(N, H), h=randn(N, H), tmp=randn(N, H)), ["a", "hn", "h"])
    both(rnn_layers._gru_step_gates_backward,
         dict(a=rng.uniform(-0.9, 0.9, (N, 3 * H)).astype(dtype), hn=randn(N, H), h_prev=randn(N, H),
              dh_t=dh[:, 1, :], dprev_h=randn(N, H), dax=randn(N, 3 * H), dah=randn(N, 3 * H),
              dh_z=randn(N, H), dht=randn(N, H), tmp=randn(N, H)), ["dax", "dah", "dh_z"])


@pytest.fixture(params=["fake-kernels", "gpu"])
def fake_with_kernels(request, monkeypatch):
    """An array module whose fused kernels run: the fake CuPy with the bodies compiled by g++ (the CPU
    suite), and real CuPy on a GPU (skipped without one), installed as ``cupy``."""
    import sys

    import host_kernels as hk
    from fake_cupy import FakeCupy
    if request.param == "gpu":
        from conftest import _real_cupy_or_skip
        return _real_cupy_or_skip("needs CuPy and a GPU")
    if not hk.available():
        pytest.skip("no g++ to compile the kernel bodies for the host")
    fake = FakeCupy(kernels=True)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(gpu_kernels, "_kernels", {})
    return fake


def _is_fake(xp):
    return type(xp).__name__ == "FakeCupy"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule, state", [("sgd", ()), ("sgd_momentum", ("velocity",)),
                                         ("rmsprop", ("cache",)), ("adam", ("m", "v"))])
def test_optimizer_kernels_equal_the_numpy_rules_in_one_launch(fake_with_kernels, rule, state, dtype):
    import fake_cupy
    from cs231n import optim
    from cs231n.backend import to_numpy
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 5)).astype(dtype)
    config = {"learning_rate": 0.05}
    device_config = {"learning_rate": 0.05}
    update = getattr(optim, rule)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    if not _is_fake(fake_with_kernels):  # a GPU's FMA contraction and libm
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    w_dev = fake_with_kernels.asarray(w)
    for step in range(3):  # the state written by one call is read by the next (and t counts)
        dw = rng.standard_normal((3, 5)).astype(dtype)
        dw_dev = fake_with_kernels.asarray(dw)
        w_before, dw_before = w_dev.copy(), dw_dev.copy()
        w, config = update(w, dw, config)
        before = fake_cupy.COUNTS.launches
        w_dev, device_config = update(w_dev, dw_dev, device_config)
        if step > 0 and _is_fake(fake_with_kernels):  # the first call also creates the zero state
            assert fake_cupy.COUNTS.launches - before == 1, f"{rule}: one fused kernel per update"
        assert isinstance(w_dev, fake_with_kernels.ndarray) and w_dev.dtype == dtype
        np.testing.assert_array_equal(to_numpy(w_before), to_numpy(w_before))
        np.testing.assert_allclose(to_numpy(w_dev), w, err_msg=rule, **tol)
        for key in state:
            assert device_config[key].dtype == dtype
            np.testing.assert_allclose(to_numpy(device_config[key]), config[key], err_msg=key, **tol)
        np.testing.assert_array_equal(to_numpy(dw_dev), to_numpy(dw_before))  # inputs never written
    assert device_config.get("t") == config.get("t")


@pytest.mark.parametrize("kind", ["lstm", "gru", "transformer", "cola"])
def test_a_training_step_with_the_kernels_matches_the_generic_one(fake_with_kernels, kind):
    """Whole training steps on the fake: with every fused kernel (gates, layer norms, Adam, the checks)
    the losses and weights equal the generic path's to float32 rounding."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import gpu_counts
    from cs231n.backend import to_numpy
    runs = []
    for enabled in (True, False):
        gpu_kernels.ENABLED = enabled
        try:
            # (not Adam: it turns the rounding noise of gradients that are zero in exact arithmetic,
            # such as an attention key bias's, into full-size steps)
            solver = gpu_counts.make_solver(kind, update_rule="sgd_momentum", optim_config={"learning_rate": 0.05})
            solver._start_rng()
            for _ in range(3):
                solver._step()
        finally:
            gpu_kernels.ENABLED = True
        runs.append(solver)
    np.testing.assert_allclose(runs[0].loss_history, runs[1].loss_history, rtol=1e-6)
    for name, w in runs[0].model.params.items():
        np.testing.assert_allclose(to_numpy(w), to_numpy(runs[1].model.params[name]), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


# The generic path computes with the infinite gradient / the 1e39 step before it checks (as the numpy
# path does), so numpy's inf/NaN warnings are expected here, not a finding.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                            "ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_fused_finiteness_check_stops_training_as_the_generic_one(fake_with_kernels, monkeypatch, enabled):
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import gpu_counts
    from cs231n.solver import TrainingDivergedError
    monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
    solver = gpu_counts.make_solver("lstm")
    loss = solver.model.loss

    def bad_gradient(*args):
        value, grads = loss(*args)
        grads["Wh"] = grads["Wh"] * np.float32(np.inf)
        return value, grads

    monkeypatch.setattr(solver.model, "loss", bad_gradient)
    with pytest.raises(TrainingDivergedError, match="the gradient of 'Wh' is not finite"):
        solver._step()
    monkeypatch.setattr(solver.model, "loss", loss)
    solver = gpu_counts.make_solver("lstm", update_rule="sgd", optim_config={"learning_rate": 1e39})
    with pytest.raises(TrainingDivergedError, match="the update made '.*' non-finite"):
        solver._step()
    assert solver.iteration == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 3, 7)])
def test_layernorm_kernels_equal_the_numpy_code(fake_with_kernels, monkeypatch, dtype, shape):
    from cs231n.backend import to_numpy
    from cs231n.transformer_layers import layernorm_backward, layernorm_forward
    rng = np.random.default_rng(8)
    x, dout = (rng.standard_normal(shape).astype(dtype) * 3 + 1 for _ in range(2))
    gamma, beta = (rng.standard_normal(shape[-1]).astype(dtype) for _ in range(2))
    args = [fake_with_kernels.asarray(a) for a in (x, gamma, beta)]
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        out, cache = layernorm_forward(*args, {"eps": 1e-3})
        grads = layernorm_backward(fake_with_kernels.asarray(dout), cache)
        results.append([to_numpy(a) for a in (out, cache[0], cache[1]) + tuple(grads)])
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for k, (fused, generic) in enumerate(zip(*results)):
        assert fused.dtype == generic.dtype and fused.shape == generic.shape, k
        np.testing.assert_allclose(fused, generic, err_msg=f"output {k}", **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_loss_dropout_and_bias_sum_kernels_equal_the_numpy_code(fake_with_kernels, monkeypatch, dtype):
    from cs231n.backend import to_numpy
    from cs231n.rnn_layers import _column_sums, temporal_softmax_loss
    from cs231n.transformer_layers import dropout_forward
    rng = np.random.default_rng(9)
    N, T, V = 3, 4, 7
    x = (rng.standard_normal((N, T, V)) * 4).astype(dtype)
    y = rng.integers(0, V, (N, T)).astype(np.int32)
    mask = rng.random((N, T)) < 0.7
    a2 = rng.standard_normal((5, 6)).astype(dtype)
    dev = [fake_with_kernels.asarray(a) for a in (x, y, mask, a2)]
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        loss, dx = temporal_softmax_loss(*dev[:3])
        dropped, keep = dropout_forward(dev[0], p=0.3, rng=5)
        results.append([to_numpy(a) for a in (loss, dx, dropped, keep, _column_sums(dev[3]))])
    tol = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    if not _is_fake(fake_with_kernels):  # a GPU's FMA contraction, libm and summation order
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    for k, (fused, generic) in enumerate(zip(*results)):
        assert fused.dtype == generic.dtype and fused.shape == generic.shape, k
        np.testing.assert_allclose(fused, generic, err_msg=f"output {k}", **tol)
    assert results[0][0].shape == ()  # the loss stays a 0-d device value (no sync)


def test_fused_index_check_still_names_the_bad_index(fake_with_kernels):
    from cs231n.rnn_layers import word_embedding_forward
    W = fake_with_kernels.asarray(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="x holds index 5, outside"):
        word_embedding_forward(fake_with_kernels.asarray(np.array([[0, 5]])), W)
    with pytest.raises(ValueError, match="x holds index -1, outside"):
        word_embedding_forward(fake_with_kernels.asarray(np.array([[-1, 4]])), W)
    out, _ = word_embedding_forward(fake_with_kernels.asarray(np.array([[0, 4]])), W)
    assert out.shape == (1, 2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked, dropout_p", [(False, 0.0), (True, 0.0), (True, 0.2), (False, 0.3)])
def test_attention_kernels_equal_the_numpy_code(fake_with_kernels, monkeypatch, dtype, masked, dropout_p):
    from cs231n.backend import to_numpy
    from cs231n.transformer_layers import (scaled_dot_product_attention_backward,
                                           scaled_dot_product_attention_forward)
    rng = np.random.default_rng(10)
    N, h, S, T, d = 2, 3, 4, 5, 6
    q, k, v, dout = (rng.standard_normal(s).astype(dtype) for s in ((N, h, S, d), (N, h, T, d), (N, h, T, d),
                                                                      (N, h, S, d)))
    mask = np.tril(np.ones((S, T), dtype=bool)) if masked else None
    dev = [fake_with_kernels.asarray(a) for a in (q, k, v, dout)]
    dmask = None if mask is None else fake_with_kernels.asarray(mask)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        out, cache = scaled_dot_product_attention_forward(*dev[:3], mask=dmask, dropout_p=dropout_p, rng=3)
        grads = scaled_dot_product_attention_backward(dev[3], cache)
        results.append([to_numpy(a) for a in (out, cache.probs) + tuple(grads)])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for i, (fused, generic) in enumerate(zip(*results)):
        assert fused.dtype == generic.dtype and fused.shape == generic.shape, i
        np.testing.assert_allclose(fused, generic, err_msg=f"output {i}", **tol)
    if masked:
        assert np.all(results[0][1][..., ~mask] == 0)  # masked weights are exactly 0


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_the_flat_update_of_all_parameters_equals_one_update_per_parameter(fake_with_kernels, monkeypatch, rule):
    """The solver's one-launch update of every parameter gives each exactly what its own update gives,
    step after step (reusing its flat buffers), with clipping too."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import gpu_counts
    from cs231n import optim
    from cs231n.backend import to_numpy
    runs = []
    for flat in (True, False):
        if not flat:
            monkeypatch.setattr(optim, "flat_update_applies", lambda *args: False)
        solver = gpu_counts.make_solver("lstm", update_rule=rule, optim_config={"learning_rate": 0.02},
                                        grad_clip=1.0)
        solver._start_rng()
        for _ in range(3):
            solver._step()
        runs.append(solver)
    if _is_fake(fake_with_kernels):
        assert runs[0]._reusable_flats() is not None  # the third step reused the second's buffers
    np.testing.assert_allclose(runs[0].loss_history, runs[1].loss_history, rtol=1e-6)
    for name, w in runs[0].model.params.items():
        np.testing.assert_allclose(to_numpy(w), to_numpy(runs[1].model.params[name]), rtol=1e-5, atol=1e-7,
                                   err_msg=name)
        for key, value in runs[1].optim_configs[name].items():
            got = runs[0].optim_configs[name][key]
            if hasattr(value, "shape"):
                np.testing.assert_allclose(to_numpy(got), to_numpy(value), rtol=1e-5, atol=1e-7, err_msg=key)
            else:
                assert got == value, key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_feedforward_residual_norm_and_gradient_sum_kernels_equal_the_numpy_code(fake_with_kernels, monkeypatch,
                                                                                  dtype, dropout_p):
    """The feed-forward block's bias + ReLU + dropout (forward, 1 launch) and its backward through them
    (1 launch), the layer norm of a residual sum (x + r) + c, and the four-way gradient sum, fused
    against the generic code on the same device (the same dropout mask: one seed)."""
    import fake_cupy
    from cs231n.backend import to_numpy
    from cs231n.transformer_layers import feedforward_backward, feedforward_forward, layernorm_forward
    rng = np.random.default_rng(10)
    N, T, D, F = 2, 3, 5, 7
    host = {"x": rng.standard_normal((N, T, D)), "W1": rng.standard_normal((D, F)) * 0.5,
            "b1": rng.standard_normal(F) * 0.5, "W2": rng.standard_normal((F, D)) * 0.5,
            "b2": rng.standard_normal(D), "dout": rng.standard_normal((N, T, D)),
            "r": rng.standard_normal((N, T, D)), "gamma": rng.standard_normal(D), "beta": rng.standard_normal(D)}
    dev = {k: fake_with_kernels.asarray(v.astype(dtype)) for k, v in host.items()}
    results, launches = [], []
    feedforward_backward(dev["dout"], feedforward_forward(dev["x"], dev["W1"], dev["b1"], dev["W2"], dev["b2"])[1])
    for enabled in (True, False):  # (the call above made the kernels' constants: not counted below)
        monkeypatch.setattr(gpu_kernels, "ENABLED", enabled)
        before = fake_cupy.COUNTS.launches
        out, cache = feedforward_forward(dev["x"], dev["W1"], dev["b1"], dev["W2"], dev["b2"], "relu",
                                         dropout_p, rng=3)
        grads = feedforward_backward(dev["dout"], cache)
        launches.append(fake_cupy.COUNTS.launches - before)
        if enabled:
            normed, (xhat, rstd, _) = gpu_kernels.layernorm_forward(dev["x"], dev["gamma"], dev["beta"], 1e-5,
                                                                    dev["r"], dev["b2"])
            total = gpu_kernels.add4(dev["x"], dev["r"], dev["dout"], dev["x"])
        else:
            normed, (xhat, rstd, _) = layernorm_forward((dev["x"] + dev["r"]) + dev["b2"], dev["gamma"],
                                                        dev["beta"], {"eps": 1e-5})
            total = ((dev["x"] + dev["r"]) + dev["dout"]) + dev["x"]
        # the activations after dropout (the generic ReLU path keeps them without the kept units' factor
        # 1 / (1 - p), which it applies after W2)
        hidden = cache.hidden if cache.scale is None else cache.hidden * cache.scale
        results.append([to_numpy(a) for a in (out, hidden, *grads, normed, xhat, rstd, total)])
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for k, (fused, generic) in enumerate(zip(*results)):
        assert fused.dtype == generic.dtype and fused.shape == generic.shape, k
        np.testing.assert_allclose(fused, generic, err_msg=f"output {k}", **tol)
    if _is_fake(fake_with_kernels):
        # forward: 2 products, the bias + ReLU (+ mask) kernel, the second bias (+ uniforms and mask);
        # backward: 2 x (product for dx, for dW, bias sum) and the ReLU (+ mask) kernel
        assert launches[0] == 4 + 7 + (2 if dropout_p else 0)
        assert launches[1] - launches[0] >= 3


@pytest.mark.parametrize("regions", [False, True])
def test_transformer_decoding_with_the_kernels_gives_numpys_captions(fake_with_kernels, regions):
    """Greedy and beam decoding on the device (key/value buffers, the fused norms of residual sums, the
    feed-forward kernel) give the captions and log-probabilities of the numpy model (float64)."""
    from cs231n.classifiers.transformer import CaptioningTransformer
    np.random.seed(11)
    words = ["<NULL>", "<START>", "<END>"] + ["w%d" % i for i in range(9)]
    model = CaptioningTransformer({w: i for i, w in enumerate(words)}, 5, 8, num_heads=2, num_layers=2,
                                  max_length=9, dim_feedforward=12, dtype=np.float64, regions=regions)
    model.training = False
    rng = np.random.RandomState(12)
    for name, value in model.params.items():
        model.params[name] = value + 0.3 * rng.randn(*value.shape)
    features = rng.randn(4, 3, 5) if regions else rng.randn(4, 5)
    cases = [dict(return_log_probs=True), dict(beam_size=3, n_best=2)]
    want = [model.sample(features, max_length=9, **kw) for kw in cases]
    assert (want[0][0] == 2).any() and not (want[0][0] == 2).all(), "some captions should end early"
    model.to("gpu")
    for kw, (captions, log_probs) in zip(cases, want):
        got_captions, got_log_probs = model.sample(features, max_length=9, **kw)
        np.testing.assert_array_equal(got_captions, captions)
        np.testing.assert_allclose(got_log_probs, log_probs, rtol=1e-10)
