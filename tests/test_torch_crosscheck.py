"""Independent cross-check of the RNN, LSTM and GRU layers against PyTorch (skipped without torch).

Forward values and every gradient (by autograd) are compared in float64 with ``torch.nn.RNN``,
``torch.nn.LSTM``, ``torch.nn.GRU`` and the ``LSTMCell`` / ``GRUCell`` step versions.

Weight layout: torch keeps ``weight_ih`` as (gH, D) and ``weight_hh`` as (gH, H), i.e. our Wx.T and Wh.T.
Its LSTM gate blocks are ordered i, f, g, o while ours are i, f, o, g, so columns are permuted both ways;
its LSTM has two biases, which we feed as bias_ih = b (permuted), bias_hh = 0. Its GRU gate blocks are
r, z, n as ours, with bias_ih = b and bias_hh = bh.

The LSTM and GRU checks also run on the device backends: our layers compute there, torch's results are
moved onto the same backend, and the comparison itself runs on that backend.
"""
import numpy as np
import pytest
from conftest import seeds_on_backends

torch = pytest.importorskip("torch", reason="torch is not installed: PyTorch cross-checks skipped")

from cs231n.rnn_layers import (  # noqa: E402  (after the importorskip on purpose)
    gru_backward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
)

SEEDS = [0, 1, 2]


def lstm_torch_columns(H):
    """Column indices that turn our (i, f, o, g) blocks into torch's (i, f, g, o) order."""
    return np.concatenate([np.arange(k * H, (k + 1) * H) for k in (0, 1, 3, 2)])


def tensor(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def shapes(seed):
    rng = np.random.RandomState(seed)
    N, T, D, H = (int(v) for v in rng.randint(1, 6, size=4))
    return rng, N, T, D, H


def close(ours, theirs, rtol=1e-9, atol=1e-11):
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def close_on(backend, ours, theirs, rtol=1e-9, atol=1e-11):
    """``ours`` (an array of ``backend``) equals torch's numpy result, compared on ``backend``."""
    backend.check(ours)
    xp, theirs_there = backend.xp, backend.put(theirs)
    assert ours.shape == theirs_there.shape
    ok = xp.abs(ours - theirs_there) <= atol + rtol * xp.abs(theirs_there)
    if not bool(xp.all(ok)):
        np.testing.assert_allclose(backend.get(ours), theirs, rtol=rtol, atol=atol)  # says where


@pytest.mark.parametrize("seed", SEEDS)
def test_rnn_matches_torch(seed):
    rng, N, T, D, H = shapes(seed)
    x, h0 = rng.randn(N, T, D), rng.randn(N, H)
    Wx, Wh, b = rng.randn(D, H) * 0.5, rng.randn(H, H) * 0.5, rng.randn(H) * 0.5
    dh = rng.randn(N, T, H)

    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)

    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(Wx.T))
        rnn.weight_hh_l0.copy_(torch.tensor(Wh.T))
        rnn.bias_ih_l0.copy_(torch.tensor(b))
        rnn.bias_hh_l0.zero_()
    xt, h0t = tensor(x), tensor(h0[None])
    out, _ = rnn(xt, h0t)
    out.backward(torch.tensor(dh))

    close(h, out.detach().numpy())
    close(dx, xt.grad.numpy())
    close(dh0, h0t.grad.numpy()[0])
    close(dWx, rnn.weight_ih_l0.grad.numpy().T)
    close(dWh, rnn.weight_hh_l0.grad.numpy().T)
    close(db, rnn.bias_ih_l0.grad.numpy())


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_lstm_matches_torch(seed, backend):
    rng, N, T, D, H = shapes(10 + seed)
    x, h0 = rng.randn(N, T, D), rng.randn(N, H)
    Wx, Wh, b = rng.randn(D, 4 * H) * 0.5, rng.randn(H, 4 * H) * 0.5, rng.randn(4 * H) * 0.5
    dh = rng.randn(N, T, H)

    h, cache = lstm_forward(*backend.put([x, h0, Wx, Wh, b]))
    dx, dh0, dWx, dWh, db = lstm_backward(backend.put(dh), cache)

    cols = lstm_torch_columns(H)
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(Wx[:, cols].T))
        lstm.weight_hh_l0.copy_(torch.tensor(Wh[:, cols].T))
        lstm.bias_ih_l0.copy_(torch.tensor(b[cols]))
        lstm.bias_hh_l0.zero_()
    xt, h0t = tensor(x), tensor(h0[None])
    c0t = torch.zeros(1, N, H, dtype=torch.float64)
    out, _ = lstm(xt, (h0t, c0t))
    out.backward(torch.tensor(dh))

    # Undo the column permutation on torch's gradients: ours[:, cols] = theirs.T
    def ours_from_torch(g):
        back = np.empty_like(g.T)
        back[..., cols] = g.T
        return back

    close_on(backend, h, out.detach().numpy())
    close_on(backend, dx, xt.grad.numpy())
    close_on(backend, dh0, h0t.grad.numpy()[0])
    close_on(backend, dWx, ours_from_torch(lstm.weight_ih_l0.grad.numpy()))
    close_on(backend, dWh, ours_from_torch(lstm.weight_hh_l0.grad.numpy()))
    close_on(backend, db, ours_from_torch(lstm.bias_ih_l0.grad.numpy()))


@seeds_on_backends(SEEDS, SEEDS[:1])
def test_gru_matches_torch(seed, backend):
    rng, N, T, D, H = shapes(20 + seed)
    x, h0 = rng.randn(N, T, D), rng.randn(N, H)
    Wx, Wh = rng.randn(D, 3 * H) * 0.5, rng.randn(H, 3 * H) * 0.5
    b, bh = rng.randn(3 * H) * 0.5, rng.randn(3 * H) * 0.5
    dh = rng.randn(N, T, H)

    h, cache = gru_forward(*backend.put([x, h0, Wx, Wh, b, bh]))
    dx, dh0, dWx, dWh, db, dbh = gru_backward(backend.put(dh), cache)

    gru = torch.nn.GRU(D, H, batch_first=True).double()
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.tensor(Wx.T))
        gru.weight_hh_l0.copy_(torch.tensor(Wh.T))
        gru.bias_ih_l0.copy_(torch.tensor(b))
        gru.bias_hh_l0.copy_(torch.tensor(bh))
    xt, h0t = tensor(x), tensor(h0[None])
    out, _ = gru(xt, h0t)
    out.backward(torch.tensor(dh))

    close_on(backend, h, out.detach().numpy())
    close_on(backend, dx, xt.grad.numpy())
    close_on(backend, dh0, h0t.grad.numpy()[0])
    close_on(backend, dWx, gru.weight_ih_l0.grad.numpy().T)
    close_on(backend, dWh, gru.weight_hh_l0.grad.numpy().T)
    close_on(backend, db, gru.bias_ih_l0.grad.numpy())
    close_on(backend, dbh, gru.bias_hh_l0.grad.numpy())


@pytest.mark.parametrize("seed", SEEDS)
def test_lstm_step_matches_torch_cell(seed):
    """The step functions, with a nonzero previous cell state and upstream gradients on both h and c."""
    rng, N, _, D, H = shapes(30 + seed)
    x, h, c = rng.randn(N, D), rng.randn(N, H), rng.randn(N, H)
    Wx, Wh, b = rng.randn(D, 4 * H) * 0.5, rng.randn(H, 4 * H) * 0.5, rng.randn(4 * H) * 0.5
    dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)

    next_h, next_c, cache = lstm_step_forward(x, h, c, Wx, Wh, b)
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)

    cols = lstm_torch_columns(H)
    cell = torch.nn.LSTMCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(Wx[:, cols].T))
        cell.weight_hh.copy_(torch.tensor(Wh[:, cols].T))
        cell.bias_ih.copy_(torch.tensor(b[cols]))
        cell.bias_hh.zero_()
    xt, ht, ct = tensor(x), tensor(h), tensor(c)
    th, tc = cell(xt, (ht, ct))
    torch.autograd.backward([th, tc], [torch.tensor(dnext_h), torch.tensor(dnext_c)])

    inverse = np.argsort(cols)  # theirs[:, inverse] is in our column order
    close(next_h, th.detach().numpy())
    close(next_c, tc.detach().numpy())
    close(dx, xt.grad.numpy())
    close(dprev_h, ht.grad.numpy())
    close(dprev_c, ct.grad.numpy())
    close(dWx, cell.weight_ih.grad.numpy().T[:, inverse])
    close(dWh, cell.weight_hh.grad.numpy().T[:, inverse])
    close(db, cell.bias_ih.grad.numpy()[inverse])


@pytest.mark.parametrize("seed", SEEDS)
def test_gru_step_matches_torch_cell(seed):
    rng, N, _, D, H = shapes(40 + seed)
    x, h = rng.randn(N, D), rng.randn(N, H)
    Wx, Wh = rng.randn(D, 3 * H) * 0.5, rng.randn(H, 3 * H) * 0.5
    b, bh = rng.randn(3 * H) * 0.5, rng.randn(3 * H) * 0.5
    dnext_h = rng.randn(N, H)

    next_h, cache = gru_step_forward(x, h, Wx, Wh, b, bh)
    dx, dprev_h, dWx, dWh, db, dbh = gru_step_backward(dnext_h, cache)

    cell = torch.nn.GRUCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(Wx.T))
        cell.weight_hh.copy_(torch.tensor(Wh.T))
        cell.bias_ih.copy_(torch.tensor(b))
        cell.bias_hh.copy_(torch.tensor(bh))
    xt, ht = tensor(x), tensor(h)
    out = cell(xt, ht)
    out.backward(torch.tensor(dnext_h))

    close(next_h, out.detach().numpy())
    close(dx, xt.grad.numpy())
    close(dprev_h, ht.grad.numpy())
    close(dWx, cell.weight_ih.grad.numpy().T)
    close(dWh, cell.weight_hh.grad.numpy().T)
    close(db, cell.bias_ih.grad.numpy())
    close(dbh, cell.bias_hh.grad.numpy())


def test_lstm_and_gru_float32_match_torch_float32():
    """float32 runs agree with torch's float32 to float32 accuracy."""
    rng = np.random.RandomState(50)
    N, T, D, H = 4, 6, 5, 3
    x, h0 = rng.randn(N, T, D).astype(np.float32), rng.randn(N, H).astype(np.float32)

    Wx = (rng.randn(D, 4 * H) * 0.5).astype(np.float32)
    Wh = (rng.randn(H, 4 * H) * 0.5).astype(np.float32)
    b = (rng.randn(4 * H) * 0.5).astype(np.float32)
    h, _ = lstm_forward(x, h0, Wx, Wh, b)
    cols = lstm_torch_columns(H)
    lstm = torch.nn.LSTM(D, H, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(Wx[:, cols].T))
        lstm.weight_hh_l0.copy_(torch.tensor(Wh[:, cols].T))
        lstm.bias_ih_l0.copy_(torch.tensor(b[cols]))
        lstm.bias_hh_l0.zero_()
        out, _ = lstm(torch.tensor(x), (torch.tensor(h0[None]), torch.zeros(1, N, H)))
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, out.numpy(), rtol=1e-5, atol=1e-6)

    Wx = (rng.randn(D, 3 * H) * 0.5).astype(np.float32)
    Wh = (rng.randn(H, 3 * H) * 0.5).astype(np.float32)
    b, bh = (rng.randn(2, 3 * H) * 0.5).astype(np.float32)
    h, _ = gru_forward(x, h0, Wx, Wh, b, bh)
    gru = torch.nn.GRU(D, H, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.tensor(Wx.T))
        gru.weight_hh_l0.copy_(torch.tensor(Wh.T))
        gru.bias_ih_l0.copy_(torch.tensor(b))
        gru.bias_hh_l0.copy_(torch.tensor(bh))
        out, _ = gru(torch.tensor(x), torch.tensor(h0[None]))
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, out.numpy(), rtol=1e-5, atol=1e-6)
