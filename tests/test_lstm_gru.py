"""Tests of the LSTM and GRU layers: hand-worked cases, reference loops, gradient checks, steps vs sequence.

LSTM: a = x Wx + h Wh + b split as i, f, o, g; c' = f*c + i*g; h' = o*tanh(c'); c0 = 0.
GRU (torch.nn.GRU equations, columns r, z, n): r = sig(x Wx_r + b_r + h Wh_r + bh_r),
z = sig(x Wx_z + b_z + h Wh_z + bh_z), n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)), h' = (1 - z)*n + z*h.
Gradient checks are float64 central differences: relative error < 1e-7 for steps, < 5e-6 for sequences.
Representative cases also run on the device backends (the strict fake GPU here, CuPy on a GPU machine):
values equal numpy's, outputs stay on the device, and the float64 gradient checks differentiate the
device forward numerically (on the host) against the device backward.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from conftest import seeds_on_backends
from hypothesis import strategies as st

from cs231n.gradient_check import eval_numerical_gradient_array, rel_error
from cs231n.rnn_layers import (
    gru_backward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
)

STEP_TOL = 1e-7
SEQ_TOL = 5e-6
SEEDS = [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------------
# Independent references and helpers
# ----------------------------------------------------------------------------------------------------
def logistic(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_lstm_step(x, h, c, Wx, Wh, b):
    """One LSTM step written from the equations; returns (next_h, next_c)."""
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b  # (N, 4H)
    i = logistic(a[:, :H])
    f = logistic(a[:, H:2 * H])
    o = logistic(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * c + i * g
    return o * np.tanh(next_c), next_c


def ref_gru_step(x, h, Wx, Wh, b, bh):
    """One GRU step as torch.nn.GRU defines it; returns next_h."""
    H = h.shape[1]
    ax = x @ Wx + b  # (N, 3H)
    ah = h @ Wh + bh  # (N, 3H)
    r = logistic(ax[:, :H] + ah[:, :H])
    z = logistic(ax[:, H:2 * H] + ah[:, H:2 * H])
    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    return (1.0 - z) * n + z * h


def ref_lstm(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h, c = h0, np.zeros_like(h0)
    out = np.zeros((N, T, h0.shape[1]))
    for t in range(T):
        h, c = ref_lstm_step(x[:, t], h, c, Wx, Wh, b)
        out[:, t] = h
    return out


def ref_gru(x, h0, Wx, Wh, b, bh):
    N, T, _ = x.shape
    h = h0
    out = np.zeros((N, T, h0.shape[1]))
    for t in range(T):
        h = ref_gru_step(x[:, t], h, Wx, Wh, b, bh)
        out[:, t] = h
    return out


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


def random_shapes(rng):
    return [int(v) for v in rng.randint(1, 5, size=4)]


def lstm_args(rng, N, T, D, H, dtype=np.float64):
    """x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,), weights scaled to avoid saturation."""
    arrays = (rng.randn(N, T, D), rng.randn(N, H), rng.randn(D, 4 * H) * 0.3,
              rng.randn(H, 4 * H) * 0.3, rng.randn(4 * H) * 0.3)
    return [a.astype(dtype) for a in arrays]


def gru_args(rng, N, T, D, H, dtype=np.float64):
    """x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,), bh (3H,)."""
    arrays = (rng.randn(N, T, D), rng.randn(N, H), rng.randn(D, 3 * H) * 0.3,
              rng.randn(H, 3 * H) * 0.3, rng.randn(3 * H) * 0.3, rng.randn(3 * H) * 0.3)
    return [a.astype(dtype) for a in arrays]


# ----------------------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------------------
def test_lstm_step_forward_by_hand_gate_order():
    # D = H = N = 1, x = 1, prev_h = 0, prev_c = 2. Columns i, f, o, g of Wx get pre-activations
    # 0, ln 3, -ln 3, atanh(1/2), so i = 1/2, f = 3/4, o = 1/4, g = 1/2 (all different: a swapped gate
    # order gives other numbers). c' = 3/4 * 2 + 1/2 * 1/2 = 7/4, h' = 1/4 * tanh(7/4).
    x = np.array([[1.0]])
    prev_h = np.array([[0.0]])
    prev_c = np.array([[2.0]])
    Wx = np.array([[0.0, np.log(3.0), -np.log(3.0), np.arctanh(0.5)]])
    Wh = np.array([[5.0, -7.0, 11.0, 13.0]])  # multiplied by prev_h = 0
    b = np.zeros(4)
    next_h, next_c, _ = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    np.testing.assert_allclose(next_c, [[1.75]], rtol=1e-14)
    np.testing.assert_allclose(next_h, [[0.25 * np.tanh(1.75)]], rtol=1e-14)


def test_lstm_step_backward_by_hand():
    # Same gates as above with dnext_h = 0 and dnext_c = 1: dprev_c = f = 3/4, and for the gate
    # pre-activations da_i = g * i(1-i) = 1/8, da_f = c * f(1-f) = 3/8, da_o = 0, da_g = i (1 - g^2) = 3/8.
    # Since x = 1 and prev_h = 0: dWx = db = da, dWh = 0, dx = da . Wx, dprev_h = da . Wh.
    x, prev_h, prev_c = np.array([[1.0]]), np.array([[0.0]]), np.array([[2.0]])
    Wx = np.array([[0.0, np.log(3.0), -np.log(3.0), np.arctanh(0.5)]])
    Wh = np.array([[5.0, -7.0, 11.0, 13.0]])
    b = np.zeros(4)
    _, _, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(np.zeros((1, 1)), np.ones((1, 1)), cache)
    da = np.array([0.125, 0.375, 0.0, 0.375])
    np.testing.assert_allclose(dprev_c, [[0.75]], rtol=1e-14)
    np.testing.assert_allclose(dWx, [da], rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(db, da, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(dWh, np.zeros((1, 4)), atol=1e-16)
    np.testing.assert_allclose(dx, [[da @ Wx[0]]], rtol=1e-14)
    np.testing.assert_allclose(dprev_h, [[da @ Wh[0]]], rtol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_step_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(seed)
    N, _, D, H = random_shapes(rng)
    x, h, Wx, Wh, b = lstm_args(rng, N, 1, D, H)
    c = rng.randn(N, H)
    next_h, next_c, _ = lstm_step_forward(*backend.put([x[:, 0], h, c, Wx, Wh, b]))
    want_h, want_c = ref_lstm_step(x[:, 0], h, c, Wx, Wh, b)
    backend.assert_close(next_h, want_h, rtol=1e-12, atol=1e-14)
    backend.assert_close(next_c, want_c, rtol=1e-12, atol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_step_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(100 + seed)
    N, _, D, H = random_shapes(rng)
    x, h, Wx, Wh, b = lstm_args(rng, N, 1, D, H)
    args = [x[:, 0].copy(), h, rng.randn(N, H), Wx, Wh, b]
    dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)
    _, _, cache = lstm_step_forward(*backend.put(args))
    analytic = [backend.get(g) for g in lstm_step_backward(*backend.put([dnext_h, dnext_c]), cache)]
    # Differentiate sum(next_h * dnext_h + next_c * dnext_c): stack both outputs side by side.
    df = np.concatenate([dnext_h, dnext_c], axis=1)
    numeric = numeric_grads(on_backend(backend, lstm_step_forward), args, df, num_grad,
                            pick=lambda out: np.concatenate([out[0], out[1]], axis=1))
    assert len(analytic) == 6
    for name, a, n in zip(["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < STEP_TOL, (name, relerr(a, n))


def test_lstm_step_backward_with_library_gradient_check():
    rng = np.random.RandomState(231)
    N, D, H = 4, 5, 6
    x, h, c = rng.randn(N, D), rng.randn(N, H), rng.randn(N, H)
    Wx, Wh, b = rng.randn(D, 4 * H) * 0.3, rng.randn(H, 4 * H) * 0.3, rng.randn(4 * H) * 0.3
    dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)
    _, _, cache = lstm_step_forward(x, h, c, Wx, Wh, b)
    dx, dh, dc, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)

    def both(x_, h_, c_, Wx_, Wh_, b_):
        next_h, next_c, _ = lstm_step_forward(x_, h_, c_, Wx_, Wh_, b_)
        return next_h, next_c

    checks = [
        (dx, lambda x_: both(x_, h, c, Wx, Wh, b), x),
        (dh, lambda h_: both(x, h_, c, Wx, Wh, b), h),
        (dc, lambda c_: both(x, h, c_, Wx, Wh, b), c),
        (dWx, lambda Wx_: both(x, h, c, Wx_, Wh, b), Wx),
        (dWh, lambda Wh_: both(x, h, c, Wx, Wh_, b), Wh),
        (db, lambda b_: both(x, h, c, Wx, Wh, b_), b),
    ]
    for analytic, f, arg in checks:
        num = (eval_numerical_gradient_array(lambda a: f(a)[0], arg, dnext_h)
               + eval_numerical_gradient_array(lambda a: f(a)[1], arg, dnext_c))
        assert rel_error(analytic, num) < STEP_TOL


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(200 + seed)
    N, T, D, H = random_shapes(rng)
    args = lstm_args(rng, N, T, D, H)
    h, _ = lstm_forward(*backend.put(args))
    assert h.shape == (N, T, H)
    backend.assert_close(h, ref_lstm(*args), rtol=1e-12, atol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(300 + seed)
    N, T, D, H = random_shapes(rng)
    args = lstm_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)
    _, cache = lstm_forward(*backend.put(args))
    analytic = [backend.get(g) for g in lstm_backward(backend.put(dh), cache)]
    numeric = numeric_grads(on_backend(backend, lstm_forward), args, dh, num_grad)
    assert len(analytic) == 5
    for name, a, n in zip(["dx", "dh0", "dWx", "dWh", "db"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < SEQ_TOL, (name, relerr(a, n))


def test_lstm_backward_longer_sequence(num_grad, relerr):
    """A longer sequence with upstream gradient only at the last step (the cell path carries it back)."""
    rng = np.random.RandomState(8)
    N, T, D, H = 2, 8, 3, 4
    args = lstm_args(rng, N, T, D, H)
    dh = np.zeros((N, T, H))
    dh[:, -1] = rng.randn(N, H)
    _, cache = lstm_forward(*args)
    analytic = lstm_backward(dh, cache)
    numeric = numeric_grads(lstm_forward, args, dh, num_grad)
    for name, a, n in zip(["dx", "dh0", "dWx", "dWh", "db"], analytic, numeric):
        assert relerr(a, n) < SEQ_TOL, (name, relerr(a, n))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_lstm_sequence_agrees_with_steps(seed):
    """lstm_forward/backward equal a loop of the step functions started from c0 = 0."""
    rng = np.random.RandomState(400 + seed)
    N, T, D, H = random_shapes(rng)
    x, h0, Wx, Wh, b = lstm_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = lstm_backward(dh, cache)

    prev_h, prev_c, caches = h0, np.zeros((N, H)), []
    for t in range(T):
        prev_h, prev_c, c = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        np.testing.assert_allclose(h[:, t], prev_h, rtol=1e-12, atol=1e-14)
        caches.append(c)
    sdx = np.zeros_like(x)
    sdWx, sdWh, sdb = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dnext_h, dnext_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        sdx[:, t], dnext_h, dnext_c, gWx, gWh, gb = lstm_step_backward(dh[:, t] + dnext_h, dnext_c, caches[t])
        sdWx += gWx
        sdWh += gWh
        sdb += gb
    for got, want in [(dx, sdx), (dh0, dnext_h), (dWx, sdWx), (dWh, sdWh), (db, sdb)]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_lstm_float32_preserved_and_close_to_float64():
    rng = np.random.RandomState(11)
    args64 = lstm_args(rng, 3, 4, 5, 6)
    args32 = [a.astype(np.float32) for a in args64]
    dh64 = rng.randn(3, 4, 6)
    h32, cache32 = lstm_forward(*args32)
    h64, cache64 = lstm_forward(*args64)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(lstm_backward(dh64.astype(np.float32), cache32), lstm_backward(dh64, cache64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)

    x, h0, Wx, Wh, b = args32
    c = np.zeros_like(h0)
    next_h, next_c, step_cache = lstm_step_forward(x[:, 0], h0, c, Wx, Wh, b)
    assert next_h.dtype == np.float32 and next_c.dtype == np.float32
    grads = lstm_step_backward(dh64[:, 0].astype(np.float32), np.zeros_like(h0), step_cache)
    assert all(g.dtype == np.float32 for g in grads)


def test_lstm_inputs_not_modified_and_backward_repeatable():
    rng = np.random.RandomState(12)
    args = lstm_args(rng, 2, 3, 4, 5)
    copies = [a.copy() for a in args]
    dh = rng.randn(2, 3, 5)
    dh_copy = dh.copy()
    _, cache = lstm_forward(*args)
    first = lstm_backward(dh, cache)
    second = lstm_backward(dh, cache)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dh, dh_copy)
    for g1, g2 in zip(first, second):
        np.testing.assert_array_equal(g1, g2)

    x, h0, Wx, Wh, b = args
    step_args = [x[:, 0].copy(), h0, rng.randn(2, 5), Wx, Wh, b]
    step_copies = [a.copy() for a in step_args]
    dnext_h, dnext_c = rng.randn(2, 5), rng.randn(2, 5)
    up_copies = [dnext_h.copy(), dnext_c.copy()]
    _, _, c = lstm_step_forward(*step_args)
    lstm_step_backward(dnext_h, dnext_c, c)
    for a, cp in zip(step_args + [dnext_h, dnext_c], step_copies + up_copies):
        np.testing.assert_array_equal(a, cp)


# ----------------------------------------------------------------------------------------------------
# GRU
# ----------------------------------------------------------------------------------------------------
def test_gru_step_forward_by_hand():
    # N = D = H = 1, x = 1, h = 2. r has pre-activation (ln 3)/2 + (ln 3)/2 = ln 3 (half from b, half
    # from bh), so r = 3/4; z has 0, so z = 1/2. The candidate's hidden part h Wh_n + bh_n = 2 * 0.5 + 1 = 2
    # is scaled by r: n = tanh(0.25 + 3/4 * 2) = tanh(1.75). h' = 1/2 tanh(1.75) + 1/2 * 2.
    # (Adding bh_n outside the reset gate would give tanh(0.25 + 1 + 1) instead.)
    x, h = np.array([[1.0]]), np.array([[2.0]])
    Wx = np.array([[0.0, 0.0, 0.25]])
    Wh = np.array([[0.0, 0.0, 0.5]])
    b = np.array([0.5 * np.log(3.0), 0.0, 0.0])
    bh = np.array([0.5 * np.log(3.0), 0.0, 1.0])
    next_h, _ = gru_step_forward(x, h, Wx, Wh, b, bh)
    np.testing.assert_allclose(next_h, [[0.5 * np.tanh(1.75) + 1.0]], rtol=1e-14)
    # Swapping r and z columns must change the answer (z = 3/4, r = 1/2): the test sees the order.
    swapped = gru_step_forward(x, h, Wx, Wh, b[[1, 0, 2]], bh[[1, 0, 2]])[0]
    np.testing.assert_allclose(swapped, [[0.25 * np.tanh(1.25) + 1.5]], rtol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_gru_step_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(500 + seed)
    N, _, D, H = random_shapes(rng)
    x, h, Wx, Wh, b, bh = gru_args(rng, N, 1, D, H)
    next_h, _ = gru_step_forward(*backend.put([x[:, 0], h, Wx, Wh, b, bh]))
    backend.assert_close(next_h, ref_gru_step(x[:, 0], h, Wx, Wh, b, bh), rtol=1e-12, atol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_gru_step_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(600 + seed)
    N, _, D, H = random_shapes(rng)
    x, h, Wx, Wh, b, bh = gru_args(rng, N, 1, D, H)
    args = [x[:, 0].copy(), h, Wx, Wh, b, bh]
    dnext_h = rng.randn(N, H)
    _, cache = gru_step_forward(*backend.put(args))
    analytic = [backend.get(g) for g in gru_step_backward(backend.put(dnext_h), cache)]
    numeric = numeric_grads(on_backend(backend, gru_step_forward), args, dnext_h, num_grad)
    assert len(analytic) == 6
    for name, a, n in zip(["dx", "dprev_h", "dWx", "dWh", "db", "dbh"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < STEP_TOL, (name, relerr(a, n))


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_gru_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(700 + seed)
    N, T, D, H = random_shapes(rng)
    args = gru_args(rng, N, T, D, H)
    h, _ = gru_forward(*backend.put(args))
    assert h.shape == (N, T, H)
    backend.assert_close(h, ref_gru(*args), rtol=1e-12, atol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_gru_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(800 + seed)
    N, T, D, H = random_shapes(rng)
    args = gru_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)
    _, cache = gru_forward(*backend.put(args))
    analytic = [backend.get(g) for g in gru_backward(backend.put(dh), cache)]
    numeric = numeric_grads(on_backend(backend, gru_forward), args, dh, num_grad)
    assert len(analytic) == 6
    for name, a, n in zip(["dx", "dh0", "dWx", "dWh", "db", "dbh"], analytic, numeric):
        assert a.shape == n.shape, name
        assert relerr(a, n) < SEQ_TOL, (name, relerr(a, n))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_gru_sequence_agrees_with_steps(seed):
    rng = np.random.RandomState(900 + seed)
    N, T, D, H = random_shapes(rng)
    x, h0, Wx, Wh, b, bh = gru_args(rng, N, T, D, H)
    dh = rng.randn(N, T, H)
    h, cache = gru_forward(x, h0, Wx, Wh, b, bh)
    dx, dh0, dWx, dWh, db, dbh = gru_backward(dh, cache)

    prev, caches = h0, []
    for t in range(T):
        prev, c = gru_step_forward(x[:, t], prev, Wx, Wh, b, bh)
        np.testing.assert_allclose(h[:, t], prev, rtol=1e-12, atol=1e-14)
        caches.append(c)
    sdx = np.zeros_like(x)
    sums = [np.zeros_like(a) for a in (Wx, Wh, b, bh)]
    dprev = np.zeros((N, H))
    for t in reversed(range(T)):
        sdx[:, t], dprev, *gs = gru_step_backward(dh[:, t] + dprev, caches[t])
        for s, g in zip(sums, gs):
            s += g
    for got, want in zip([dx, dh0, dWx, dWh, db, dbh], [sdx, dprev] + sums):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_gru_float32_and_inputs_untouched():
    rng = np.random.RandomState(13)
    args64 = gru_args(rng, 3, 4, 5, 6)
    args32 = [a.astype(np.float32) for a in args64]
    copies = [a.copy() for a in args32]
    dh = rng.randn(3, 4, 6).astype(np.float32)
    dh_copy = dh.copy()
    h32, cache = gru_forward(*args32)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, ref_gru(*args64), rtol=1e-4, atol=1e-5)
    grads = gru_backward(dh, cache)
    for g, a in zip(grads, args32):
        assert g.dtype == np.float32 and g.shape == a.shape
    for a, c in zip(args32, copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dh, dh_copy)
    for g1, g2 in zip(grads, gru_backward(dh, cache)):
        np.testing.assert_array_equal(g1, g2)
    x, h0, Wx, Wh, b, bh = args32
    next_h, step_cache = gru_step_forward(x[:, 0], h0, Wx, Wh, b, bh)
    assert next_h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in gru_step_backward(dh[:, 0], step_cache))


# ----------------------------------------------------------------------------------------------------
# Property-based tests over shapes, N = T = D = H = 1 included
# ----------------------------------------------------------------------------------------------------
shape = st.integers(min_value=1, max_value=4)


@settings(max_examples=25, deadline=None)
@given(N=shape, T=shape, D=shape, H=shape, seed=st.integers(0, 2**31 - 1))
@example(N=1, T=1, D=1, H=1, seed=0)
def test_lstm_property_forward_backward_shapes(N, T, D, H, seed):
    rng = np.random.RandomState(seed)
    x, h0, Wx, Wh, b = lstm_args(rng, N, T, D, H)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    assert h.shape == (N, T, H)
    prev_h, prev_c = h0, np.zeros((N, H))
    for t in range(T):
        prev_h, prev_c, _ = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        np.testing.assert_allclose(h[:, t], prev_h, rtol=1e-12, atol=1e-14)
    grads = lstm_backward(rng.randn(N, T, H), cache)
    assert [g.shape for g in grads] == [a.shape for a in (x, h0, Wx, Wh, b)]
    h32, cache32 = lstm_forward(*(a.astype(np.float32) for a in (x, h0, Wx, Wh, b)))
    assert h32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in lstm_backward(np.ones((N, T, H), np.float32), cache32))


@settings(max_examples=25, deadline=None)
@given(N=shape, T=shape, D=shape, H=shape, seed=st.integers(0, 2**31 - 1))
@example(N=1, T=1, D=1, H=1, seed=0)
def test_gru_property_forward_backward_shapes(N, T, D, H, seed):
    rng = np.random.RandomState(seed)
    x, h0, Wx, Wh, b, bh = gru_args(rng, N, T, D, H)
    h, cache = gru_forward(x, h0, Wx, Wh, b, bh)
    assert h.shape == (N, T, H)
    prev = h0
    for t in range(T):
        prev, _ = gru_step_forward(x[:, t], prev, Wx, Wh, b, bh)
        np.testing.assert_allclose(h[:, t], prev, rtol=1e-12, atol=1e-14)
    grads = gru_backward(rng.randn(N, T, H), cache)
    assert [g.shape for g in grads] == [a.shape for a in (x, h0, Wx, Wh, b, bh)]
    h32, cache32 = gru_forward(*(a.astype(np.float32) for a in (x, h0, Wx, Wh, b, bh)))
    assert h32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in gru_backward(np.ones((N, T, H), np.float32), cache32))


@settings(max_examples=15, deadline=None)
@given(N=shape, T=st.integers(1, 3), D=shape, H=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
@example(N=1, T=1, D=1, H=1, seed=0)
def test_lstm_gru_property_gradcheck_small_shapes(N, T, D, H, seed):
    """Gradient checks over arbitrary small shapes (the library's helper; a looser bound since shapes
    and seeds are not hand-picked and a gradient entry can be tiny)."""
    rng = np.random.RandomState(seed)
    for fwd, bwd, args in [(lstm_forward, lstm_backward, lstm_args(rng, N, T, D, H)),
                           (gru_forward, gru_backward, gru_args(rng, N, T, D, H))]:
        dh = rng.randn(N, T, H)
        _, cache = fwd(*args)
        analytic = bwd(dh, cache)
        for i, a in enumerate(analytic):
            def f(p, i=i, args=args):
                call = list(args)
                call[i] = p
                return fwd(*call)[0]
            num = eval_numerical_gradient_array(f, args[i], dh)
            np.testing.assert_allclose(a, num, rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------------------------------
# Device backends: the same numbers as numpy, on the device, in both float dtypes
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lstm_gru_on_device_equal_numpy(cell, dtype, device_backend):
    """Forward and backward of a whole sequence on the device equal numpy's, dtype and device kept.

    The shapes are big enough for every gate block to hold several units and batch rows, so that an
    index slip in a fused GPU kernel (gate offsets within a row of 4H or 3H) cannot go unseen.
    """
    rng = np.random.RandomState(31)
    N, T, D, H = 5, 4, 3, 7
    args = (lstm_args if cell == "lstm" else gru_args)(rng, N, T, D, H, dtype)
    dh = rng.randn(N, T, H).astype(dtype)
    fwd, bwd = (lstm_forward, lstm_backward) if cell == "lstm" else (gru_forward, gru_backward)
    h, cache = fwd(*args)
    grads = bwd(dh, cache)
    h_dev, cache_dev = fwd(*device_backend.put(list(args)))
    grads_dev = bwd(device_backend.put(dh), cache_dev)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for want, got in zip((h,) + grads, (h_dev,) + grads_dev):
        assert got.dtype == dtype
        device_backend.assert_close(got, want, **tol)
