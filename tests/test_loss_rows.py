"""The loss over gathered rows (cs231n/layers.py) and the workspace buffers that serve a varying row count.

A captioning loss counts only positions whose target is not <NULL>; computing scores for those rows
alone must give the loss and gradients of the full masked loss exactly (zeros at the other rows).
"""
import numpy as np
import pytest

from cs231n.layers import mask_rows, put_rows, softmax_loss_rows, take_rows
from cs231n.rnn_layers import temporal_softmax_loss
from cs231n.workspace import Workspace


def loop_loss(x2, y, n):
    """Sum over rows of -log softmax(x2[r])[y[r]], divided by n, by a loop (an independent reference)."""
    total = 0.0
    for r in range(x2.shape[0]):
        s = x2[r] - np.max(x2[r])
        total += np.log(np.sum(np.exp(s))) - s[y[r]]
    return total / n


def test_softmax_loss_rows_matches_a_loop_and_its_numerical_gradient(num_grad, relerr):
    rng = np.random.default_rng(0)
    R, V, n = 7, 6, 3
    x = rng.standard_normal((R, V)) * 2
    y = rng.integers(0, V, size=R)
    loss, dx = softmax_loss_rows(x, y, n)
    assert loss == pytest.approx(loop_loss(x, y, n), rel=1e-12)
    dx_num = num_grad(lambda x_: softmax_loss_rows(x_, y, n)[0], x, 1.0)
    assert relerr(dx, dx_num) < 1e-7
    mask = (rng.random(R) < 0.5).astype(np.float64)
    loss_m, dx_m = softmax_loss_rows(x, y, n, mask)
    assert loss_m == pytest.approx(loop_loss(x[mask == 1], y[mask == 1], n), rel=1e-12)
    np.testing.assert_array_equal(dx_m[mask == 0], 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gathered_rows_give_the_masked_temporal_loss_and_gradient(dtype):
    rng = np.random.default_rng(1)
    N, T, V = 4, 5, 7
    x = rng.standard_normal((N, T, V)).astype(dtype)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.6
    loss, dx = temporal_softmax_loss(x, y, mask)
    rows = mask_rows(mask)
    assert rows.tolist() == [i for i, m in enumerate(mask.reshape(-1)) if m]
    xk = take_rows(x, rows)
    np.testing.assert_array_equal(xk, x.reshape(-1, V)[mask.reshape(-1)])
    loss_k, dxk = softmax_loss_rows(xk, y.reshape(-1)[rows], N)
    assert loss_k.dtype == dtype and dxk.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert loss_k == pytest.approx(loss, rel=tol)
    np.testing.assert_allclose(put_rows(dxk, rows, x.shape), dx, rtol=tol, atol=tol * 1e-2)


def test_take_and_put_rows_reuse_their_buffers_whatever_the_row_count():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    ws = Workspace()
    for k in (12, 5, 9, 0):
        rows = np.sort(rng.choice(12, size=k, replace=False))
        xk = take_rows(x, rows, ws, "rows")
        np.testing.assert_array_equal(xk, x.reshape(12, 5)[rows])
        back = put_rows(xk, rows, x.shape, ws, "back")
        want = np.zeros_like(x)
        want.reshape(12, 5)[rows] = x.reshape(12, 5)[rows]
        np.testing.assert_array_equal(back, want)
        assert ws.nbytes() == 2 * x.nbytes      # the first (largest) buffers, reused


def test_workspace_serves_a_smaller_shape_from_the_same_memory():
    ws = Workspace()
    a = ws.empty(np, "x", (4, 6), np.float32)
    b = ws.empty(np, "x", (3, 6), np.float32)
    assert b.flags.c_contiguous and np.shares_memory(a, b) and ws.nbytes() == a.nbytes
    assert ws.empty(np, "x", (3, 6), np.float32) is b            # the same shape again: the same array
    c = ws.empty(np, "x", (2, 5, 2), np.float32)                 # any shape of no more elements
    assert c.shape == (2, 5, 2) and np.shares_memory(a, c)
    d = ws.empty(np, "x", (5, 6), np.float32)                    # more elements: a new buffer
    assert not np.shares_memory(a, d) and ws.nbytes() == d.nbytes
    e = ws.empty(np, "x", (2, 6), np.float64)                    # another dtype: a new buffer
    assert e.dtype == np.float64 and ws.nbytes() == e.nbytes
