"""Tests of the vanilla RNN, word embedding, temporal affine, temporal softmax loss, sigmoid and affine layers.

Every forward is compared with a small case worked out by hand and with a straightforward loop written
here; every backward is checked against central differences in float64 (relative error < 1e-7 for
functions of one step or position, < 5e-6 for whole sequences), over several seeds with random shapes.
Further: step-vs-sequence agreement, float32 runs, inputs left untouched, and property-based tests over
shapes that include N = 1, T = 1, H = 1. Representative cases also run on the device backends (the
strict fake GPU here, CuPy on a GPU machine): values equal numpy's, outputs stay on the device, and the
float64 gradient checks differentiate the device forward numerically (on the host).
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from conftest import seeds_on_backends
from hypothesis import strategies as st

from cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from cs231n.layers import affine_backward, affine_forward, sigmoid_cross_entropy_loss
from cs231n.rnn_layers import (
    _scatter_add_rows,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

STEP_TOL = 1e-7  # relative error allowed for one step / one position, float64
SEQ_TOL = 5e-6  # relative error allowed for a whole sequence, float64
SEEDS = [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------------
# Independent reference implementations (plain loops) and helpers.
# ----------------------------------------------------------------------------------------------------
def ref_rnn(x, h0, Wx, Wh, b):
    """Vanilla RNN over a sequence, one sample and one step at a time: h (N, T, H)."""
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    for n in range(N):
        prev = h0[n]
        for t in range(T):
            prev = np.tanh(x[n, t] @ Wx + prev @ Wh + b)  # (H,)
            h[n, t] = prev
    return h


def ref_softmax_loss(x, y, mask):
    """Masked cross-entropy summed over N and T, divided by N, by a loop with a shifted log-sum-exp."""
    N, T, V = x.shape
    total = 0.0
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                s = x[n, t] - np.max(x[n, t])
                total += np.log(np.sum(np.exp(s))) - s[y[n, t]]
    return total / N


def numeric_grads(fwd, args, df, num_grad, pick=lambda out: out[0]):
    """Central-difference gradients of ``sum(pick(fwd(*args)) * df)`` with respect to every arg."""
    grads = []
    for i in range(len(args)):
        def f(a, i=i):
            call = list(args)
            call[i] = a  # the perturbed array, bound explicitly
            return pick(fwd(*call))
        grads.append(num_grad(f, args[i], df))
    return grads


def on_backend(backend, fwd):
    """``fwd`` run on ``backend`` from numpy arguments; returns its array outputs (not the cache) as numpy."""
    def run(*args):
        out = fwd(*backend.put(list(args)))
        return tuple(backend.get(o) for o in out[:-1])
    return run


def loss_value(backend, loss):
    """A loss as a float, after checking that on a device it stayed there (a 0-d device array)."""
    if backend.name != "numpy":
        backend.check(loss)
    return float(loss)


def random_shapes(rng):
    """N, T, D, H drawn in [1, 4] so that singleton dimensions come up."""
    return [int(v) for v in rng.randint(1, 5, size=4)]


def rnn_args(rng, N, T, D, H, dtype=np.float64):
    x = rng.randn(N, T, D)
    h0 = rng.randn(N, H)
    Wx = rng.randn(D, H) * 0.3
    Wh = rng.randn(H, H) * 0.3
    b = rng.randn(H) * 0.3
    return [a.astype(dtype) for a in (x, h0, Wx, Wh, b)]


# ----------------------------------------------------------------------------------------------------
# Vanilla RNN: step
# ----------------------------------------------------------------------------------------------------
def test_rnn_step_forward_by_hand():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    prev_h = np.array([[0.5, -1.0], [2.0, 0.0]])
    Wx = np.array([[0.1, 0.0], [0.2, -0.5]])
    Wh = np.array([[-1.0, 0.25], [0.0, 1.0]])
    b = np.array([0.3, 0.1])
    next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
    # Row 0: a = [0.1 + 0.4 - 0.5 + 0.3, -1.0 + 0.125 - 1.0 + 0.1]; row 1: [-0.2 - 2.0 + 0.3, 0.5 + 0.5 + 0.1].
    expected = np.tanh(np.array([[0.3, -1.775], [-1.9, 1.1]]))
    np.testing.assert_allclose(next_h, expected, rtol=1e-12, atol=1e-12)


def test_rnn_step_backward_by_hand():
    # With a = atanh(0.5), next_h = 0.5 and d tanh = 1 - 0.25 = 0.75, so every gradient is 0.75 times
    # the other factor of its product.
    x = np.array([[1.0]])
    prev_h = np.array([[2.0]])
    Wx = np.array([[np.arctanh(0.5) + 2.0]])
    Wh = np.array([[-1.0]])
    b = np.array([0.0])
    next_h, cache = rnn_step_forward(x, prev_h, Wx, Wh, b)
    np.testing.assert_allclose(next_h, [[0.5]], atol=1e-12)
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(np.array([[2.0]]), cache)
    np.testing.assert_allclose(dx, [[1.5 * Wx[0, 0]]], atol=1e-12)
    np.testing.assert_allclose(dprev_h, [[1.5 * -1.0]], atol=1e-12)
    np.testing.assert_allclose(dWx, [[1.5 * 1.0]], atol=1e-12)
    np.testing.assert_allclose(dWh, [[1.5 * 2.0]], atol=1e-12)
    np.testing.assert_allclose(db, [1.5], atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_rnn_step_forward_matches_loop(seed):
    rng = np.random.RandomState(seed)
    N, _, D, H = random_shapes(rng)
    x, h0, Wx, Wh, b = rnn_args(rng, N, 1, D, H)
    next_h, _ = rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    np.testing.assert_allclose(next_h, ref_rnn(x, h0, Wx, Wh, b)[:, 0], rtol=1e-12, atol=1e-12)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_rnn_step_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(100 + seed)
    N, _, D, H = random_shapes(rng)
    x, h0, Wx, Wh, b = rnn_args(rng, N, 1, D, H)
    args = [x[:, 0].copy(), h0, Wx, Wh, b]
    dnext_h = rng.randn(N, H)
    _, cache = rnn_step_forward(*backend.put(args))
    analytic = [backend.get(g) for g in rnn_step_backward(backend.put(dnext_h), cache)]
    numeric = numeric_grads(on_backend(backend, rnn_step_forward), args, dnext_h, num_grad)
    assert len(analytic) == 5
    for name, a, n in zip(["dx", "dprev_h", "dWx", "dWh", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < STEP_TOL, (name, relerr(a, n))


def test_rnn_step_backward_with_library_gradient_check():
    """The notebook's check, with the library's own numerical gradient helper."""
    rng = np.random.RandomState(231)
    N, D, H = 4, 5, 6
    x, h, Wx, Wh = rng.randn(N, D), rng.randn(N, H), rng.randn(D, H) * 0.3, rng.randn(H, H) * 0.3
    b = rng.randn(H) * 0.3
    dnext_h = rng.randn(N, H)
    _, cache = rnn_step_forward(x, h, Wx, Wh, b)
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
    checks = [
        (dx, lambda x_: rnn_step_forward(x_, h, Wx, Wh, b)[0], x),
        (dprev_h, lambda h_: rnn_step_forward(x, h_, Wx, Wh, b)[0], h),
        (dWx, lambda Wx_: rnn_step_forward(x, h, Wx_, Wh, b)[0], Wx),
        (dWh, lambda Wh_: rnn_step_forward(x, h, Wx, Wh_, b)[0], Wh),
        (db, lambda b_: rnn_step_forward(x, h, Wx, Wh, b_)[0], b),
    ]
    for analytic, f, arg in checks:
        assert rel_error(analytic, eval_numerical_gradient_array(f, arg, dnext_h)) < STEP_TOL


# ----------------------------------------------------------------------------------------------------
# Vanilla RNN: sequence
# ----------------------------------------------------------------------------------------------------
def test_rnn_forward_by_hand():
    x = np.array([[[1.0], [0.5]]])  # (N, T, D) = (1, 2, 1)
    h0 = np.array([[0.0]])
    Wx, Wh, b = np.array([[0.5]]), np.array([[2.0]]), np.array([0.0])
    h, _ = rnn_forward(x, h0, Wx, Wh, b)
    h1 = np.tanh(0.5)
    h2 = np.tanh(0.25 + 2.0 * h1)
    np.testing.assert_allclose(h, [[[h1], [h2]]], rtol=1e-12)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_rnn_forward_matches_loop(seed, backend):
    rng = np.random.RandomState(200 + seed)
    N, T, D, H = random_shapes(rng)
    args = rnn_args(rng, N, T, D, H)
    h, _ = rnn_forward(*backend.put(args))
    assert h.shape == (N, T, H)
    backend.assert_close(h, ref_rnn(*args), rtol=1e-12, atol=1e-12)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_rnn_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(300 + seed)
    N, T, D, H = random_shapes(rng)
    args = rnn_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)
    _, cache = rnn_forward(*backend.put(args))
    analytic = [backend.get(g) for g in rnn_backward(backend.put(dh), cache)]
    numeric = numeric_grads(on_backend(backend, rnn_forward), args, dh, num_grad)
    assert len(analytic) == 5
    for name, a, n in zip(["dx", "dh0", "dWx", "dWh", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < SEQ_TOL, (name, relerr(a, n))


def test_rnn_backward_upstream_at_last_step_only(num_grad, relerr):
    """Gradient flows back through every step even when only the last hidden state is used."""
    rng = np.random.RandomState(7)
    N, T, D, H = 3, 6, 4, 5
    args = rnn_args(rng, N, T, D, H)
    dh = np.zeros((N, T, H))
    dh[:, -1] = rng.randn(N, H)
    _, cache = rnn_forward(*args)
    analytic = rnn_backward(dh, cache)
    numeric = numeric_grads(rnn_forward, args, dh, num_grad)
    for name, a, n in zip(["dx", "dh0", "dWx", "dWh", "db"], analytic, numeric):
        assert relerr(a, n) < SEQ_TOL, (name, relerr(a, n))
    assert np.all(np.abs(analytic[0][:, 0]) > 0)  # the first input still gets a gradient


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_rnn_sequence_agrees_with_steps(seed):
    """rnn_forward/backward equal a loop of rnn_step_forward/backward (backprop through time by hand)."""
    rng = np.random.RandomState(400 + seed)
    N, T, D, H = random_shapes(rng)
    x, h0, Wx, Wh, b = rnn_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)

    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)

    caches, prev = [], h0
    for t in range(T):
        prev, c = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        np.testing.assert_allclose(h[:, t], prev, rtol=1e-12, atol=1e-12)
        caches.append(c)
    sdx = np.zeros_like(x)
    sdWx, sdWh, sdb = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        sdx[:, t], dprev, gWx, gWh, gb = rnn_step_backward(dh[:, t] + dprev, caches[t])
        sdWx += gWx
        sdWh += gWh
        sdb += gb
    for got, want in [(dx, sdx), (dh0, dprev), (dWx, sdWx), (dWh, sdWh), (db, sdb)]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_rnn_float32_preserved_and_close_to_float64():
    rng = np.random.RandomState(11)
    args64 = rnn_args(rng, 3, 4, 5, 6)
    args32 = [a.astype(np.float32) for a in args64]
    dh64 = rng.randn(3, 4, 6)
    dh32 = dh64.astype(np.float32)

    h32, cache32 = rnn_forward(*args32)
    h64, cache64 = rnn_forward(*args64)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(rnn_backward(dh32, cache32), rnn_backward(dh64, cache64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)

    next_h, step_cache = rnn_step_forward(args32[0][:, 0], *args32[1:])
    assert next_h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in rnn_step_backward(dh32[:, 0], step_cache))


def test_rnn_inputs_not_modified_and_backward_repeatable():
    rng = np.random.RandomState(12)
    args = rnn_args(rng, 2, 3, 4, 5)
    copies = [a.copy() for a in args]
    dh = rng.randn(2, 3, 5)
    dh_copy = dh.copy()
    _, cache = rnn_forward(*args)
    first = rnn_backward(dh, cache)
    second = rnn_backward(dh, cache)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dh, dh_copy)
    for g1, g2 in zip(first, second):
        np.testing.assert_array_equal(g1, g2)

    step_args = [args[0][:, 0].copy(), *args[1:]]
    step_copies = [a.copy() for a in step_args]
    dnext = rng.randn(2, 5)
    dnext_copy = dnext.copy()
    _, c = rnn_step_forward(*step_args)
    rnn_step_backward(dnext, c)
    for a, cp in zip(step_args, step_copies):
        np.testing.assert_array_equal(a, cp)
    np.testing.assert_array_equal(dnext, dnext_copy)


shape = st.integers(min_value=1, max_value=4)


@settings(max_examples=25, deadline=None)
@given(N=shape, T=shape, D=shape, H=shape, seed=st.integers(0, 2**31 - 1))
@example(N=1, T=1, D=1, H=1, seed=0)
def test_rnn_property_sequence_equals_step_loop(N, T, D, H, seed):
    rng = np.random.RandomState(seed)
    x, h0, Wx, Wh, b = rnn_args(rng, N, T, D, H)
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    assert h.shape == (N, T, H)
    prev = h0
    for t in range(T):
        prev, _ = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        np.testing.assert_allclose(h[:, t], prev, rtol=1e-12, atol=1e-12)
    grads = rnn_backward(rng.randn(N, T, H), cache)
    assert [g.shape for g in grads] == [a.shape for a in (x, h0, Wx, Wh, b)]


@settings(max_examples=25, deadline=None)
@given(N=shape, T=shape, D=shape, H=shape, seed=st.integers(0, 2**31 - 1))
@example(N=1, T=1, D=1, H=1, seed=0)
def test_rnn_property_float32_preserved(N, T, D, H, seed):
    rng = np.random.RandomState(seed)
    args = rnn_args(rng, N, T, D, H, dtype=np.float32)
    h, cache = rnn_forward(*args)
    assert h.dtype == np.float32 and h.shape == (N, T, H)
    grads = rnn_backward(rng.randn(N, T, H).astype(np.float32), cache)
    for g, a in zip(grads, args):
        assert g.dtype == np.float32 and g.shape == a.shape


# ----------------------------------------------------------------------------------------------------
# Word embedding
# ----------------------------------------------------------------------------------------------------
def test_word_embedding_by_hand():
    W = np.arange(6, dtype=np.float64).reshape(3, 2)  # V = 3, D = 2
    x = np.array([[2, 0], [1, 2]])
    out, cache = word_embedding_forward(x, W)
    np.testing.assert_array_equal(out, [[[4, 5], [0, 1]], [[2, 3], [4, 5]]])
    dout = np.arange(8, dtype=np.float64).reshape(2, 2, 2) + 1.0  # [[1,2],[3,4]], [[5,6],[7,8]]
    dW = word_embedding_backward(dout, cache)
    # Index 2 appears twice (at (0,0) and (1,1)): its gradients add up.
    np.testing.assert_array_equal(dW, [[3, 4], [5, 6], [1 + 7, 2 + 8]])


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.uint8])
@seeds_on_backends(SEEDS[:3], SEEDS[:1])
def test_word_embedding_matches_loop(seed, backend, index_dtype):
    rng = np.random.RandomState(500 + seed)
    N, T, D, V = random_shapes(rng)
    V += 2
    x = rng.randint(V, size=(N, T)).astype(index_dtype)
    W = rng.randn(V, D)
    out, cache = word_embedding_forward(*backend.put([x, W]))
    assert out.shape == (N, T, D)
    dout = rng.randn(N, T, D)
    dW = backend.get(word_embedding_backward(backend.put(dout), cache))
    out = backend.get(out)
    want_out = np.zeros((N, T, D))
    want_dW = np.zeros((V, D))
    for n in range(N):
        for t in range(T):
            want_out[n, t] = W[x[n, t]]
            want_dW[x[n, t]] += dout[n, t]
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_allclose(dW, want_dW, rtol=1e-12, atol=1e-12)


@seeds_on_backends(SEEDS[:3], SEEDS[:1])
def test_word_embedding_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(600 + seed)
    N, T, V, D = 2, 3, 5, 3
    x = rng.randint(V, size=(N, T))
    W = rng.randn(V, D)
    dout = rng.randn(N, T, D)
    _, cache = word_embedding_forward(*backend.put([x, W]))
    dW = backend.get(word_embedding_backward(backend.put(dout), cache))
    dW_num = num_grad(lambda W_: on_backend(backend, word_embedding_forward)(x, W_)[0], W, dout)
    assert relerr(dW, dW_num) < STEP_TOL


def scatter_add_cases():
    rng = np.random.RandomState(61)
    idx = np.array([3, 0, 3, 3, 1, 0])  # repeated and unused (2, 4) words
    rows = rng.randn(6, 2)
    want = np.zeros((5, 2))
    for k, v in enumerate(idx):
        want[v] += rows[k]
    return idx, rows, want


def test_scatter_add_rows_sums_repeated_indices(backend):
    """The device path of word_embedding_backward (xp.add.at), on numpy as well as on the devices."""
    idx, rows, want = scatter_add_cases()
    xp = backend.xp
    dW = _scatter_add_rows(xp, xp.zeros((5, 2)), *backend.put([idx, rows]))
    backend.assert_close(dW, want, rtol=1e-12, atol=1e-15)  # a GPU's atomic adds come in any order


def test_scatter_add_rows_without_add_at_uses_cupyx(monkeypatch):
    """A CuPy without ufunc.at falls back to cupyx.scatter_add (stood in for by numpy here)."""
    import sys
    import types
    idx, rows, want = scatter_add_cases()
    calls = []

    def scatter_add(a, indices, values):
        calls.append(indices.shape)
        np.add.at(a, indices, values)

    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(scatter_add=scatter_add))
    no_add_at = types.SimpleNamespace(add=types.SimpleNamespace())  # xp.add without .at
    dW = _scatter_add_rows(no_add_at, np.zeros((5, 2)), idx, rows)
    assert calls == [(6,)]
    np.testing.assert_allclose(dW, want, rtol=1e-15, atol=0)


def test_word_embedding_float32_and_inputs_untouched():
    rng = np.random.RandomState(13)
    x = rng.randint(4, size=(2, 3))
    W = rng.randn(4, 5).astype(np.float32)
    x_copy, W_copy = x.copy(), W.copy()
    out, cache = word_embedding_forward(x, W)
    assert out.dtype == np.float32
    dW = word_embedding_backward(rng.randn(2, 3, 5).astype(np.float32), cache)
    assert dW.dtype == np.float32 and dW.shape == (4, 5)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(W, W_copy)
    out[...] = 0.0  # the output must not be a view into W
    np.testing.assert_array_equal(W, W_copy)


# ----------------------------------------------------------------------------------------------------
# Temporal affine
# ----------------------------------------------------------------------------------------------------
@seeds_on_backends(SEEDS[:3], SEEDS[:1])
def test_temporal_affine_matches_loop_and_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(700 + seed)
    N, T, D, M = random_shapes(rng)
    x, w, b = rng.randn(N, T, D), rng.randn(D, M), rng.randn(M)
    out, cache = temporal_affine_forward(*backend.put([x, w, b]))
    want = np.zeros((N, T, M))
    for n in range(N):
        for t in range(T):
            want[n, t] = x[n, t] @ w + b
    backend.assert_close(out, want, rtol=1e-12, atol=1e-12)

    dout = rng.randn(N, T, M)
    analytic = [backend.get(g) for g in temporal_affine_backward(backend.put(dout), cache)]
    numeric = numeric_grads(on_backend(backend, temporal_affine_forward), [x, w, b], dout, num_grad)
    for name, a, n in zip(["dx", "dw", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < STEP_TOL, (name, relerr(a, n))


def test_temporal_affine_float32_and_inputs_untouched():
    rng = np.random.RandomState(14)
    args = [rng.randn(2, 3, 4), rng.randn(4, 5), rng.randn(5)]
    args = [a.astype(np.float32) for a in args]
    copies = [a.copy() for a in args]
    out, cache = temporal_affine_forward(*args)
    assert out.dtype == np.float32 and out.shape == (2, 3, 5)
    grads = temporal_affine_backward(rng.randn(2, 3, 5).astype(np.float32), cache)
    for g, a in zip(grads, args):
        assert g.dtype == np.float32 and g.shape == a.shape
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


# ----------------------------------------------------------------------------------------------------
# Temporal softmax loss
# ----------------------------------------------------------------------------------------------------
def test_temporal_softmax_loss_by_hand_divides_by_batch_size():
    # Two equal scores: the cross-entropy is log 2 and the softmax is (1/2, 1/2). The second sample is
    # masked out, and the loss is still divided by N = 2 (not by the one unmasked token).
    x = np.zeros((2, 1, 2))
    y = np.array([[1], [0]])
    mask = np.array([[True], [False]])
    loss, dx = temporal_softmax_loss(x, y, mask)
    assert loss == pytest.approx(np.log(2.0) / 2.0, rel=1e-12)
    np.testing.assert_allclose(dx, [[[0.25, -0.25]], [[0.0, 0.0]]], atol=1e-15)


@pytest.mark.parametrize("N, T, p, want", [(100, 1, 1.0, 2.3), (100, 10, 1.0, 23.0), (5000, 10, 0.1, 2.3)])
def test_temporal_softmax_loss_notebook_sanity(N, T, p, want):
    """With near-uniform scores each unmasked step costs about log(V) (the notebook's sanity check)."""
    rng = np.random.RandomState(231)
    V = 10
    x = 0.001 * rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = rng.rand(N, T) <= p
    loss, _ = temporal_softmax_loss(x, y, mask)
    assert loss == pytest.approx(mask.sum() / N * np.log(V), rel=1e-3)
    assert loss == pytest.approx(want, rel=0.05)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_temporal_softmax_loss_matches_loop_and_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(800 + seed)
    N, T, V, _ = random_shapes(rng)
    V += 1
    x = rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = rng.rand(N, T) < 0.7
    loss, dx = temporal_softmax_loss(*backend.put([x, y, mask]))
    assert np.ndim(loss) == 0
    assert loss_value(backend, loss) == pytest.approx(ref_softmax_loss(x, y, mask), rel=1e-12, abs=1e-14)
    dx_num = num_grad(lambda x_: loss_value(backend, temporal_softmax_loss(*backend.put([x_, y, mask]))[0]),
                      x, 1.0)
    assert dx.shape == x.shape
    assert relerr(backend.get(dx), dx_num) < STEP_TOL


def test_temporal_softmax_loss_with_library_gradient_check():
    """The notebook's check, with the library's eval_numerical_gradient on the scalar loss."""
    rng = np.random.RandomState(231)
    N, T, V = 7, 8, 9
    x = 0.001 * rng.randn(N, T, V) + rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = rng.rand(N, T) > 0.5
    _, dx = temporal_softmax_loss(x, y, mask, verbose=False)
    dx_num = eval_numerical_gradient(lambda x_: temporal_softmax_loss(x_, y, mask)[0], x, verbose=False)
    assert rel_error(dx, dx_num) < STEP_TOL


def test_temporal_softmax_loss_all_masked_and_large_scores():
    rng = np.random.RandomState(15)
    x = rng.randn(3, 4, 5)
    y = rng.randint(5, size=(3, 4))
    loss, dx = temporal_softmax_loss(x, y, np.zeros((3, 4), dtype=bool))
    assert loss == 0.0
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    # Huge scores must not overflow: shifting by the maximum keeps everything finite and exact.
    big = np.array([[[1000.0, 0.0, -1000.0]]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss, dx = temporal_softmax_loss(big, np.array([[1]]), np.array([[True]]))
    assert loss == pytest.approx(1000.0, rel=1e-12)
    np.testing.assert_allclose(dx, [[[1.0, -1.0, 0.0]]], atol=1e-12)


def test_temporal_softmax_loss_verbose_prints_and_agrees(capsys):
    rng = np.random.RandomState(16)
    x, y, mask = rng.randn(2, 3, 4), rng.randint(4, size=(2, 3)), rng.rand(2, 3) < 0.5
    quiet = temporal_softmax_loss(x, y, mask)
    assert capsys.readouterr().out == ""
    loud = temporal_softmax_loss(x, y, mask, verbose=True)
    assert capsys.readouterr().out != ""
    assert quiet[0] == loud[0]
    np.testing.assert_array_equal(quiet[1], loud[1])


def test_temporal_softmax_loss_float32_and_inputs_untouched():
    rng = np.random.RandomState(17)
    x = rng.randn(2, 3, 4).astype(np.float32)
    y = rng.randint(4, size=(2, 3))
    mask = rng.rand(2, 3) < 0.5
    copies = [x.copy(), y.copy(), mask.copy()]
    loss, dx = temporal_softmax_loss(x, y, mask)
    assert dx.dtype == np.float32
    assert loss == pytest.approx(ref_softmax_loss(x.astype(np.float64), y, mask), rel=1e-5, abs=1e-6)
    for a, c in zip([x, y, mask], copies):
        np.testing.assert_array_equal(a, c)


def test_temporal_softmax_loss_accepts_integer_mask():
    """A 0/1 integer mask (as some scripts build it) means the same as the boolean one."""
    rng = np.random.RandomState(18)
    x, y = rng.randn(2, 3, 4), rng.randint(4, size=(2, 3))
    mask = rng.rand(2, 3) < 0.5
    loss_b, dx_b = temporal_softmax_loss(x, y, mask)
    loss_i, dx_i = temporal_softmax_loss(x, y, mask.astype(np.int64))
    assert loss_b == pytest.approx(loss_i, rel=1e-12)
    np.testing.assert_allclose(dx_b, dx_i, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------
# sigmoid
# ----------------------------------------------------------------------------------------------------
def test_sigmoid_values_and_stability():
    x = np.array([-1000.0, -50.0, -3.0, 0.0, 2.0, 40.0, 1000.0])
    # Overflow, invalid operations and division by zero raise; underflow to 0 is the right answer.
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        s = sigmoid(x)
    assert s[3] == 0.5
    assert np.all(np.isfinite(s))
    assert s[0] == pytest.approx(0.0, abs=1e-300) and s[-1] == 1.0
    moderate = np.array([-50.0, -3.0, 2.0, 40.0])
    # Absolute accuracy is what the gates need (the tanh form of sigmoid loses relative accuracy in the
    # far negative tail, which is fine).
    np.testing.assert_allclose(s[[1, 2, 4, 5]], 1.0 / (1.0 + np.exp(-moderate)), rtol=1e-13, atol=1e-15)
    assert np.all(np.diff(s) >= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_sigmoid_on_device_equals_numpy(device_backend, dtype):
    x = np.array([[-1000.0, -3.0, 0.0], [0.5, 40.0, 1000.0]]).astype(dtype)
    s = sigmoid(device_backend.put(x))
    assert s.dtype == (np.float64 if dtype == np.int64 else dtype)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-16)  # GPU libm
    device_backend.assert_close(s, sigmoid(x), **tol)


def test_sigmoid_cross_entropy_loss_on_device_equals_numpy(device_backend):
    rng = np.random.RandomState(62)
    z, y, w = rng.randn(6) * 3, rng.randint(2, size=6), rng.rand(6) * 2
    for weights in (None, w):
        loss, dz = sigmoid_cross_entropy_loss(z, y, weights)
        on_dev = [z, y] + ([] if weights is None else [weights])
        loss_dev, dz_dev = sigmoid_cross_entropy_loss(*device_backend.put(on_dev))
        device_backend.check(loss_dev)  # a 0-d device array: reading it is the caller's one sync
        assert loss_dev.shape == () and float(loss_dev) == pytest.approx(loss, rel=1e-12)
        device_backend.assert_close(dz_dev, dz, rtol=1e-12, atol=1e-15)


def test_sigmoid_no_warnings_float32_and_nan():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s32 = sigmoid(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32))
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, [0.0, 0.5, 1.0], atol=1e-30)
    with np.errstate(invalid="ignore"):
        s = sigmoid(np.array([np.nan, 1.0, -np.inf, np.inf]))
    assert np.isnan(s[0])
    assert s[1] == pytest.approx(1.0 / (1.0 + np.exp(-1.0)), rel=1e-15)
    assert s[2] == 0.0 and s[3] == 1.0
    x = np.array([[1.0, -2.0], [3.0, -4.0]])
    x_copy = x.copy()
    assert sigmoid(x).shape == (2, 2)
    np.testing.assert_array_equal(x, x_copy)


# ----------------------------------------------------------------------------------------------------
# affine (cs231n.layers)
# ----------------------------------------------------------------------------------------------------
@seeds_on_backends(SEEDS[:3], SEEDS[:1])
def test_affine_matches_loop_and_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(900 + seed)
    N, d1, d2, M = random_shapes(rng)
    x, w, b = rng.randn(N, d1, d2), rng.randn(d1 * d2, M), rng.randn(M)
    out, cache = affine_forward(*backend.put([x, w, b]))
    want = np.zeros((N, M))
    for n in range(N):
        for m in range(M):
            want[n, m] = sum(x[n, i, j] * w[i * d2 + j, m] for i in range(d1) for j in range(d2)) + b[m]
    backend.assert_close(out, want, rtol=1e-12, atol=1e-12)
    dout = rng.randn(N, M)
    analytic = [backend.get(g) for g in affine_backward(backend.put(dout), cache)]
    numeric = numeric_grads(on_backend(backend, affine_forward), [x, w, b], dout, num_grad)
    for name, a, n in zip(["dx", "dw", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < STEP_TOL, (name, relerr(a, n))


def test_affine_by_hand_and_float32():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    b = np.array([0.0, 1.0, 2.0])
    out, cache = affine_forward(x, w, b)
    np.testing.assert_allclose(out, [[2.0, 5.0, 1.0], [5.0, 9.0, -1.0]])
    dx, dw, db = affine_backward(np.ones((2, 3)), cache)
    np.testing.assert_allclose(dx, [[0.0, 2.5], [0.0, 2.5]])
    np.testing.assert_allclose(dw, [[4.0, 4.0, 4.0], [6.0, 6.0, 6.0]])
    np.testing.assert_allclose(db, [2.0, 2.0, 2.0])

    out32, cache32 = affine_forward(*(a.astype(np.float32) for a in (x, w, b)))
    assert out32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in affine_backward(np.ones((2, 3), np.float32), cache32))
