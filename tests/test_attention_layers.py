"""Tests of the attention layers (SPEC §10): attention over regions and the attention LSTM.

attention: scores s_r = A_r . h / sqrt(H), weights w = softmax(s) over the R regions, attn = sum_r w_r A_r.
Attention LSTM: a = x Wx + h Wh + attn Wattn + b split i, f, o, g as the LSTM; h0 = c0 = mean_r A_r; the
context of step t is computed from h_{t-1}.

Checked against: references written here from those equations (loops over regions and steps), float64
central differences (relative error < 1e-7 for every gradient; a fourth-order stencil for the sequence),
PyTorch autograd (to 1e-10; skipped without torch), the step functions chained by hand, and the device
backends (the strict fake GPU, CuPy on a GPU machine). The sequence computes the context's share of the gates two ways (regions times Wattn
once when R < T, the context times Wattn at every step otherwise): both are covered by the shapes below.
"""
import re

import numpy as np
import pytest
from conftest import seeds_on_backends
from test_gpu_kernels import fake_with_kernels  # noqa: F401  (the fixture, shared)

from cs231n.rnn_layers import (
    attention_backward,
    attention_forward,
    lstm_attention_backward,
    lstm_attention_forward,
    lstm_attention_step_backward,
    lstm_attention_step_forward,
)

TOL = 1e-7
SEEDS = [0, 1, 2]
# (N, T, D, H, R): R < T, R = T, R > T, one region, one step.
SHAPES = [(3, 4, 5, 3, 2), (2, 3, 4, 2, 3), (2, 2, 3, 4, 5), (3, 3, 2, 3, 1), (2, 1, 3, 2, 3)]


# ----------------------------------------------------------------------------------------------------
# Independent references and helpers
# ----------------------------------------------------------------------------------------------------
def logistic(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_attention(h, A):
    """Context and weights, one image and one region at a time."""
    N, R, H = A.shape
    attn, weights = np.zeros((N, H)), np.zeros((N, R))
    for n in range(N):
        scores = np.array([A[n, r] @ h[n] for r in range(R)]) / np.sqrt(H)
        e = np.exp(scores - scores.max())
        weights[n] = e / e.sum()
        for r in range(R):
            attn[n] += weights[n, r] * A[n, r]
    return attn, weights


def ref_step(x, h, c, attn, Wx, Wh, Wattn, b):
    H = h.shape[1]
    a = x @ Wx + h @ Wh + attn @ Wattn + b
    i, f, o = logistic(a[:, :H]), logistic(a[:, H:2 * H]), logistic(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def ref_sequence(x, A, Wx, Wh, Wattn, b):
    """Hidden states (N, T, H) and weights (T, N, R) of the attention LSTM, step by step."""
    N, T, _ = x.shape
    h = A.mean(axis=1)
    c = h.copy()
    hs, ws = [], []
    for t in range(T):
        attn, w = ref_attention(h, A)
        h, c = ref_step(x[:, t], h, c, attn, Wx, Wh, Wattn, b)
        hs.append(h)
        ws.append(w)
    return np.stack(hs, axis=1), np.stack(ws)


def sequence_args(rng, N, T, D, H, R, dtype=np.float64):
    """x (N, T, D), A (N, R, H), Wx (D, 4H), Wh (H, 4H), Wattn (H, 4H), b (4H,)."""
    arrays = (rng.randn(N, T, D), rng.randn(N, R, H), rng.randn(D, 4 * H) * 0.4, rng.randn(H, 4 * H) * 0.4,
              rng.randn(H, 4 * H) * 0.4, rng.randn(4 * H) * 0.4)
    return [a.astype(dtype) for a in arrays]


def step_args(rng, N, D, H):
    """x, prev_h, prev_c, attn, Wx, Wh, Wattn, b of one step."""
    return [rng.randn(N, D), rng.randn(N, H), rng.randn(N, H), rng.randn(N, H), rng.randn(D, 4 * H) * 0.4,
            rng.randn(H, 4 * H) * 0.4, rng.randn(H, 4 * H) * 0.4, rng.randn(4 * H) * 0.4]


def fourth_order_difference(f, x, df, h=1e-3):
    """Numerical gradient of ``sum(f(x) * df)`` by the five-point stencil (error O(h^4), not O(h^2)).

    A whole sequence has gradient entries as small as 1e-5, where the second-order difference's error
    (about 5e-11, from its truncation and roundoff) alone is a relative error of 1e-6; this one's is
    about 1e-13. ``x`` is perturbed in place, one entry at a time, and restored.
    """
    grad = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        vals = []
        for k in (-2, -1, 1, 2):
            x[idx] = old + k * h
            vals.append(np.sum(np.array(f(x), dtype=np.float64) * df))
        x[idx] = old
        grad[idx] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return grad


def numeric_grads(fwd, args, dout, num_grad):
    """Central differences of ``sum_k sum(fwd(*args)[k] * dout[k])`` for every argument."""
    def f_of(i):
        def f(a):
            call = list(args)
            call[i] = a
            outs = fwd(*call)[:len(dout)]
            return sum(np.sum(o * d) for o, d in zip(outs, dout))
        return f
    return [num_grad(f_of(i), args[i], 1.0) for i in range(len(args))]


def assert_grads(analytic, numeric, names, relerr):
    for name, a, n in zip(names, analytic, numeric):
        assert a.shape == n.shape, name
        err = relerr(a, n)
        assert err < TOL, f"{name}: relative error {err:.2e}"


# ----------------------------------------------------------------------------------------------------
# attention_forward / attention_backward
# ----------------------------------------------------------------------------------------------------
def test_attention_by_hand():
    # H = 4, so scores are A_r . h / 2. With h = (2 ln 3, 0, 0, 0) and regions e1 and 0, the scores are
    # ln 3 and 0: weights 3/4 and 1/4, context 3/4 e1.
    h = np.array([[2 * np.log(3.0), 0.0, 0.0, 0.0]])
    A = np.array([[[1.0, 0, 0, 0], [0, 0, 0, 0]]])
    attn, (_, _, weights) = attention_forward(h, A)
    np.testing.assert_allclose(weights, [[0.75, 0.25]], rtol=1e-14)
    np.testing.assert_allclose(attn, [[0.75, 0, 0, 0]], rtol=1e-14, atol=1e-16)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_attention_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(seed)
    N, R, H = (int(v) for v in rng.randint(1, 6, size=3))
    h, A = rng.randn(N, H), rng.randn(N, R, H) * 2
    attn, cache = attention_forward(*backend.put([h, A]))
    want_attn, want_w = ref_attention(h, A)
    backend.assert_close(attn, want_attn)
    backend.assert_close(cache[2], want_w)
    np.testing.assert_allclose(backend.get(cache[2]).sum(axis=1), 1.0, rtol=1e-14)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_attention_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(seed)
    N, R, H = (int(v) for v in rng.randint(1, 6, size=3))
    args = [rng.randn(N, H), rng.randn(N, R, H)]
    dattn = rng.randn(N, H)
    _, cache = attention_forward(*backend.put(args))
    analytic = [backend.get(g) for g in attention_backward(backend.put(dattn), cache)]

    def fwd(*a):
        return [backend.get(attention_forward(*backend.put(list(a)))[0])]
    assert_grads(analytic, numeric_grads(fwd, args, [dattn], num_grad), ["dprev_h", "dA"], relerr)


def test_attention_large_scores_stay_finite_and_float32():
    rng = np.random.RandomState(3)
    h = (rng.randn(2, 3) * 1000).astype(np.float32)
    A = (rng.randn(2, 4, 3) * 1000).astype(np.float32)
    before = (h.copy(), A.copy())
    attn, cache = attention_forward(h, A)
    assert attn.dtype == np.float32 and cache[2].dtype == np.float32
    assert np.isfinite(attn).all() and np.isfinite(cache[2]).all()
    dprev_h, dA = attention_backward(np.ones((2, 3), np.float32), cache)
    assert dprev_h.dtype == np.float32 and dA.dtype == np.float32
    np.testing.assert_array_equal(h, before[0])
    np.testing.assert_array_equal(A, before[1])


# ----------------------------------------------------------------------------------------------------
# lstm_attention_step_forward / backward
# ----------------------------------------------------------------------------------------------------
@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_attention_step_forward_matches_reference(seed, backend):
    rng = np.random.RandomState(seed)
    N, D, H = (int(v) for v in rng.randint(1, 5, size=3))
    args = step_args(rng, N, D, H)
    next_h, next_c, _ = lstm_attention_step_forward(*backend.put(args))
    want_h, want_c = ref_step(*args)
    backend.assert_close(next_h, want_h)
    backend.assert_close(next_c, want_c)


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_attention_step_backward_gradcheck(seed, backend, num_grad, relerr):
    rng = np.random.RandomState(seed)
    N, D, H = (int(v) for v in rng.randint(1, 5, size=3))
    args = step_args(rng, N, D, H)
    dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)
    _, _, cache = lstm_attention_step_forward(*backend.put(args))
    analytic = [backend.get(g) for g in lstm_attention_step_backward(*backend.put([dnext_h, dnext_c]), cache)]

    def fwd(*a):
        return [backend.get(o) for o in lstm_attention_step_forward(*backend.put(list(a)))[:2]]
    numeric = numeric_grads(fwd, args, [dnext_h, dnext_c], num_grad)
    # The backward returns dx, dprev_h, dprev_c, dattn, dWx, dWh, dWattn, db: the forward's order.
    assert_grads(analytic, numeric, ["dx", "dprev_h", "dprev_c", "dattn", "dWx", "dWh", "dWattn", "db"],
                 relerr)


# ----------------------------------------------------------------------------------------------------
# lstm_attention_forward / backward
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_attention_forward_matches_reference(shape):
    args = sequence_args(np.random.RandomState(sum(shape)), *shape)
    h, cache = lstm_attention_forward(*args)
    want_h, want_w = ref_sequence(*args)
    np.testing.assert_allclose(h, want_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache[6], want_w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_attention_backward_gradcheck(shape, relerr):
    rng = np.random.RandomState(10 + sum(shape))
    args = sequence_args(rng, *shape)
    h, cache = lstm_attention_forward(*args)
    dh = rng.randn(*h.shape)
    analytic = lstm_attention_backward(dh, cache)
    numeric = numeric_grads(lambda *a: lstm_attention_forward(*a)[:1], args, [dh], fourth_order_difference)
    assert_grads(analytic, numeric, ["dx", "dA", "dWx", "dWh", "dWattn", "db"], relerr)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_sequence_equals_the_steps_chained(shape):
    """Forward and backward of the sequence equal attention + step functions chained by hand."""
    rng = np.random.RandomState(20 + sum(shape))
    x, A, Wx, Wh, Wattn, b = sequence_args(rng, *shape)
    N, T, _ = x.shape
    h_seq, cache = lstm_attention_forward(x, A, Wx, Wh, Wattn, b)
    h, c = A.mean(axis=1), A.mean(axis=1)
    caches = []
    for t in range(T):
        attn, cache_a = attention_forward(h, A)
        h, c, cache_s = lstm_attention_step_forward(x[:, t], h, c, attn, Wx, Wh, Wattn, b)
        caches.append((cache_a, cache_s))
        np.testing.assert_allclose(h_seq[:, t], h, rtol=1e-12, atol=1e-14)
    dh = rng.randn(*h_seq.shape)
    dx, dA, dWx, dWh, dWattn, db = lstm_attention_backward(dh, cache)
    want = {"dA": np.zeros_like(A), "dWx": 0, "dWh": 0, "dWattn": 0, "db": 0}
    dnext_h, dnext_c = np.zeros_like(h), np.zeros_like(c)
    for t in reversed(range(T)):
        cache_a, cache_s = caches[t]
        dxt, dprev_h, dnext_c, dattn, gWx, gWh, gWattn, gb = \
            lstm_attention_step_backward(dh[:, t] + dnext_h, dnext_c, cache_s)
        np.testing.assert_allclose(dx[:, t], dxt, rtol=1e-10, atol=1e-12)
        dh_attn, dA_t = attention_backward(dattn, cache_a)
        dnext_h = dprev_h + dh_attn
        want["dA"] += dA_t
        for k, g in (("dWx", gWx), ("dWh", gWh), ("dWattn", gWattn), ("db", gb)):
            want[k] = want[k] + g
    want["dA"] += ((dnext_h + dnext_c) / A.shape[1])[:, None, :]   # h0 = c0 = mean over regions
    for k, got in (("dA", dA), ("dWx", dWx), ("dWh", dWh), ("dWattn", dWattn), ("db", db)):
        np.testing.assert_allclose(got, want[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("R", [2, 6])   # both ways of computing the context's share (T = 4)
def test_lstm_attention_on_device_backends(R, device_backend):
    rng = np.random.RandomState(R)
    args = sequence_args(rng, 2, 4, 3, 3, R)
    h, cache = lstm_attention_forward(*args)
    dh = rng.randn(*h.shape)
    grads = lstm_attention_backward(dh, cache)
    h_dev, cache_dev = lstm_attention_forward(*device_backend.put(args))
    device_backend.assert_close(h_dev, h)
    for got, want in zip(lstm_attention_backward(device_backend.put(dh), cache_dev), grads):
        device_backend.assert_close(got, want)


@pytest.mark.parametrize("R", [2, 6])
def test_lstm_attention_float32_and_inputs_untouched(R):
    rng = np.random.RandomState(R)
    args = sequence_args(rng, 2, 4, 3, 3, R, dtype=np.float32)
    before = [a.copy() for a in args]
    h, cache = lstm_attention_forward(*args)
    assert h.dtype == np.float32
    dh = rng.randn(*h.shape).astype(np.float32)
    dh_before = dh.copy()
    grads = lstm_attention_backward(dh, cache)
    assert all(g.dtype == np.float32 for g in grads)
    for a, b in zip(args + [dh], before + [dh_before]):
        np.testing.assert_array_equal(a, b)
    want = ref_sequence(*[a.astype(np.float64) for a in args])[0]
    np.testing.assert_allclose(h, want, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# PyTorch autograd reference (skipped without torch)
# ----------------------------------------------------------------------------------------------------
def torch_attention_lstm(torch, x, A, Wx, Wh, Wattn, b):
    """The attention LSTM in torch ops (float64), our i, f, o, g gate order."""
    H = A.shape[2]
    h = A.mean(dim=1)
    c = A.mean(dim=1)
    hs = []
    for t in range(x.shape[1]):
        w = torch.softmax(torch.einsum("nrh,nh->nr", A, h) / H ** 0.5, dim=1)
        attn = torch.einsum("nr,nrh->nh", w, A)
        a = x[:, t] @ Wx + h @ Wh + attn @ Wattn + b
        i, f, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.sigmoid(a[:, 2 * H:3 * H])
        g = torch.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs, dim=1)


@pytest.mark.parametrize("shape", SHAPES + [(4, 6, 5, 7, 9)])
def test_lstm_attention_matches_torch(shape):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rng = np.random.RandomState(30 + sum(shape))
    args = sequence_args(rng, *shape)
    h, cache = lstm_attention_forward(*args)
    dh = rng.randn(*h.shape)
    ours = lstm_attention_backward(dh, cache)
    t_args = [torch.tensor(a, requires_grad=True) for a in args]
    t_h = torch_attention_lstm(torch, *t_args)
    (t_h * torch.from_numpy(dh)).sum().backward()
    np.testing.assert_allclose(h, t_h.detach().numpy(), rtol=1e-10, atol=1e-10)
    for name, g, t in zip(["dx", "dA", "dWx", "dWh", "dWattn", "db"], ours, t_args):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=name)


def test_attention_and_step_match_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rng = np.random.RandomState(40)
    N, D, H, R = 3, 4, 5, 6
    h, A = rng.randn(N, H), rng.randn(N, R, H)
    dattn = rng.randn(N, H)
    attn, cache = attention_forward(h, A)
    dh_ours, dA_ours = attention_backward(dattn, cache)
    th, tA = torch.tensor(h, requires_grad=True), torch.tensor(A, requires_grad=True)
    w = torch.softmax((tA @ th[:, :, None])[:, :, 0] / H ** 0.5, dim=1)
    t_attn = (w[:, :, None] * tA).sum(dim=1)
    (t_attn * torch.from_numpy(dattn)).sum().backward()
    np.testing.assert_allclose(attn, t_attn.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dh_ours, th.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dA_ours, tA.grad.numpy(), rtol=1e-10, atol=1e-10)

    args = step_args(rng, N, D, H)
    dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)
    next_h, next_c, cache = lstm_attention_step_forward(*args)
    ours = lstm_attention_step_backward(dnext_h, dnext_c, cache)
    x, ph, pc, at, Wx, Wh, Wattn, b = [torch.tensor(a, requires_grad=True) for a in args]
    a = x @ Wx + ph @ Wh + at @ Wattn + b
    i, f, o, g = (torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.sigmoid(a[:, 2 * H:3 * H]),
                  torch.tanh(a[:, 3 * H:]))
    tc = f * pc + i * g
    th_next = o * torch.tanh(tc)
    ((th_next * torch.from_numpy(dnext_h)).sum() + (tc * torch.from_numpy(dnext_c)).sum()).backward()
    np.testing.assert_allclose(next_h, th_next.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(next_c, tc.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, t in zip(ours, [x, ph, pc, at, Wx, Wh, Wattn, b]):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------
# Errors at the boundary
# ----------------------------------------------------------------------------------------------------
def raises_naming(exc, pattern, fn, *args):
    with pytest.raises(exc) as info:
        fn(*args)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_errors_name_the_argument_and_sizes(backend):
    rng = np.random.RandomState(0)
    N, T, D, H, R = 3, 2, 7, 5, 6
    x, A, Wx, Wh, Wattn, b = backend.put(sequence_args(rng, N, T, D, H, R))
    h = backend.put(rng.randn(N, H))
    raises_naming(ValueError, r"attention_forward: A should have shape \(N, R, H\) = \(3, R, 5\)"
                  r".*\(3, 6, 4\)", attention_forward, h, A[:, :, :4])
    raises_naming(ValueError, r"attention_forward: A .*\(2, 6, 5\)", attention_forward, h, A[:2])
    raises_naming(ValueError, r"R >= 1.*\(3, 0, 5\)", attention_forward, h, A[:, :0])
    raises_naming(ValueError, r"prev_h must have 2 dimensions", attention_forward, A, A)
    raises_naming(ValueError, r"lstm_attention_forward: Wattn should have shape \(H, 4H\) = \(5, 20\), "
                  r"got \(5, 15\) \(that is 3H columns: GRU weights\?\)",
                  lstm_attention_forward, x, A, Wx, Wh, Wattn[:, :15], b)
    raises_naming(ValueError, r"lstm_attention_forward: Wx should have shape \(D, 4H\) = \(7, 20\)",
                  lstm_attention_forward, x, A, Wx[:6], Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_forward: A .*N from x.*\(2, 6, 5\)",
                  lstm_attention_forward, x, A[:2], Wx, Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_forward: x must have 3 dimensions",
                  lstm_attention_forward, x[:, 0], A, Wx, Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_forward: b should have shape \(4H\) = \(20,\)",
                  lstm_attention_forward, x, A, Wx, Wh, Wattn, b[:5])
    x1, ph, pc, at = x[:, 0], h, h, h
    raises_naming(ValueError, r"lstm_attention_step_forward: attn should have shape \(N, H\) = \(3, 5\)",
                  lstm_attention_step_forward, x1, ph, pc, at[:2], Wx, Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_step_forward: Wattn", lstm_attention_step_forward,
                  x1, ph, pc, at, Wx, Wh, Wattn[:4], b)
    out, cache = lstm_attention_forward(x, A, Wx, Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_backward: dh should have the shape .*\(3, 2, 5\)"
                  r".*\(3, 2, 4\)", lstm_attention_backward, out[:, :, :4], cache)
    _, cache_a = attention_forward(h, A)
    raises_naming(ValueError, r"attention_backward: dattn", attention_backward, h[:, :4], cache_a)
    _, _, cache_s = lstm_attention_step_forward(x1, ph, pc, at, Wx, Wh, Wattn, b)
    raises_naming(ValueError, r"lstm_attention_step_backward: dnext_c", lstm_attention_step_backward,
                  h, h[:1], cache_s)


def test_mixed_devices_are_named(device_backend):
    rng = np.random.RandomState(0)
    x, A, Wx, Wh, Wattn, b = sequence_args(rng, 2, 3, 4, 5, 2)
    raises_naming(TypeError, r"Wattn is on the cpu but x is on the gpu", lstm_attention_forward,
                  *device_backend.put([x, A, Wx, Wh]), Wattn, device_backend.put(b))
    raises_naming(TypeError, r"A is on the gpu but prev_h is on the cpu", attention_forward,
                  A[:, 0], device_backend.put(A))


@pytest.mark.parametrize("R", [2, 6])
def test_workspace_gives_the_same_results_and_is_reused(R):
    from cs231n.workspace import Workspace

    rng = np.random.RandomState(50 + R)
    args = sequence_args(rng, 2, 4, 3, 3, R, dtype=np.float32)
    dh = rng.randn(2, 4, 3).astype(np.float32)
    h, cache = lstm_attention_forward(*args)
    want = [h.copy()] + [g.copy() for g in lstm_attention_backward(dh, cache)]
    ws = Workspace()
    for _ in range(2):   # the second call writes into the first call's buffers
        h_ws, cache_ws = lstm_attention_forward(*args, workspace=ws)
        got = [h_ws.copy()] + list(lstm_attention_backward(dh, cache_ws, workspace=ws))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    nbytes = ws.nbytes()
    lstm_attention_forward(*args, workspace=ws)
    assert ws.nbytes() == nbytes > 0


@pytest.mark.parametrize("R", [2, 6])
def test_fused_gate_kernels_give_numpys_values(fake_with_kernels, R):
    """With the fake CuPy's fused kernels (the CUDA bodies compiled for the host), the attention LSTM's
    step and sequence take the fused LSTM gate path and agree with numpy."""
    rng = np.random.RandomState(60 + R)
    args = sequence_args(rng, 2, 4, 3, 3, R)
    h, cache = lstm_attention_forward(*args)
    dh = rng.randn(*h.shape)
    grads = lstm_attention_backward(dh, cache)
    dev = [fake_with_kernels.asarray(a) for a in args]
    h_dev, cache_dev = lstm_attention_forward(*dev)
    np.testing.assert_allclose(h_dev.get(), h, rtol=1e-12, atol=1e-14)
    for got, want in zip(lstm_attention_backward(fake_with_kernels.asarray(dh), cache_dev), grads):
        np.testing.assert_allclose(got.get(), want, rtol=1e-10, atol=1e-12)
    step = step_args(rng, 2, 3, 3)
    dnext = [rng.randn(2, 3), rng.randn(2, 3)]
    next_h, next_c, step_cache = lstm_attention_step_forward(*step)
    step_grads = lstm_attention_step_backward(*dnext, step_cache)
    d_h, d_c, d_cache = lstm_attention_step_forward(*[fake_with_kernels.asarray(a) for a in step])
    np.testing.assert_allclose(d_h.get(), next_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d_c.get(), next_c, rtol=1e-12, atol=1e-14)
    d_grads = lstm_attention_step_backward(*[fake_with_kernels.asarray(a) for a in dnext], d_cache)
    for got, want in zip(d_grads, step_grads):
        np.testing.assert_allclose(got.get(), want, rtol=1e-10, atol=1e-12)
