"""Tests of the input projection through the vocabulary and of the recurrences that start from it.

``word_projection_forward/backward`` compute ``W_embed[words] Wx + b`` (time-major) from the distinct
words only; ``rnn/lstm/gru_projected_forward/backward`` run a recurrence from known projections. The
forwards are compared with loops written here, every backward with central differences in float64,
and the two together with the classic whole-sequence functions; the row sums per word (the backward's
core) with ``np.add.at`` on batches with heavily repeated words (padding, ``<START>``).
"""
import numpy as np
import pytest

from cs231n import rnn_layers
from cs231n.classifiers.recurrent import embedded_recurrent_backward, embedded_recurrent_forward
from cs231n.workspace import Workspace

SEQ_TOL = 5e-6  # relative error allowed for a whole sequence, float64
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def ref_projection(words, W_embed, Wx, b):
    """ax (T, N, M) with ax[t, n] = W_embed[words[n, t]] Wx + b, one position at a time."""
    N, T = words.shape
    ax = np.zeros((T, N, Wx.shape[1]))
    for n in range(N):
        for t in range(T):
            ax[t, n] = W_embed[words[n, t]] @ Wx + b
    return ax


def projection_args(rng, N=3, T=4, V=7, W=5, M=6):
    words = rng.randint(V, size=(N, T))
    words[:, 0] = 1  # a word used at every position of a step, as <START> is
    words[0, -2:] = 0
    return words, rng.randn(V, W), rng.randn(W, M) * 0.5, rng.randn(M) * 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_word_projection_matches_loop_and_gradcheck(seed, num_grad, relerr):
    rng = np.random.RandomState(700 + seed)
    words, W_embed, Wx, b = projection_args(rng)
    args = [W_embed, Wx, b]
    ax, cache = rnn_layers.word_projection_forward(words, *args)
    np.testing.assert_allclose(ax, ref_projection(words, *args), rtol=1e-12, atol=1e-12)
    dax = rng.randn(*ax.shape)
    grads = rnn_layers.word_projection_backward(dax, cache)
    for i, (name, grad) in enumerate(zip(("W_embed", "Wx", "b"), grads)):
        def f(a, i=i):
            call = list(args)
            call[i] = a
            return rnn_layers.word_projection_forward(words, *call)[0]
        assert relerr(grad, num_grad(f, args[i], dax)) < SEQ_TOL, name
    unused = np.setdiff1d(np.arange(W_embed.shape[0]), words)
    assert not grads[0][unused].any()


def test_word_projection_float32_workspace_and_inputs_untouched():
    rng = np.random.RandomState(710)
    words, W_embed, Wx, b = projection_args(rng, N=5, T=6, V=4)
    args32 = [a.astype(np.float32) for a in (W_embed, Wx, b)]
    copies = [words.copy()] + [a.copy() for a in args32]
    ws = Workspace()
    for _ in range(2):  # the second call reuses the workspace's buffers
        ax, cache = rnn_layers.word_projection_forward(words, *args32, workspace=ws)
        assert ax.dtype == np.float32
        np.testing.assert_allclose(ax, ref_projection(words, W_embed, Wx, b), rtol=1e-5, atol=1e-5)
        grads = rnn_layers.word_projection_backward(np.ones_like(ax), cache, workspace=ws)
        assert all(g.dtype == np.float32 for g in grads)
    for before, after in zip(copies, [words] + args32):
        np.testing.assert_array_equal(before, after)
    # the backward reuses the forward's ax buffer as scratch: an upstream gradient held there still works
    ax, cache = rnn_layers.word_projection_forward(words, *args32, workspace=ws)
    dax = rng.randn(*ax.shape).astype(np.float32)
    want = rnn_layers.word_projection_backward(dax, rnn_layers.word_projection_forward(words, *args32)[1])
    ax[...] = dax
    for got, expected in zip(rnn_layers.word_projection_backward(ax, cache, workspace=ws), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("idx", [
    np.array([3, 0, 3, 3, 1, 0]),
    np.array([5]),
    np.array([2, 2, 2, 2, 2]),
    np.r_[np.zeros(40, int), np.arange(1, 30), np.arange(1, 10), [7] * 12],  # one word used 40 times
])
def test_row_sums_per_index_equal_add_at(idx):
    rng = np.random.RandomState(int(idx.sum()))
    rng.shuffle(idx)
    rows = rng.randn(idx.size, 3)
    keys, inverse, _, _ = groups = rnn_layers._group_by_index(idx)
    np.testing.assert_array_equal(keys[inverse], idx)
    assert sorted(keys) == sorted(set(idx.tolist()))
    sums = rnn_layers._sum_rows_by_group(np, rows, groups, inverse, None, "rows")
    want = np.zeros((idx.max() + 1, 3))
    np.add.at(want, idx, rows)
    np.testing.assert_allclose(sums, want[keys], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rows, rows.copy())


def test_row_sums_of_no_rows():
    groups = rnn_layers._group_by_index(np.zeros(0, dtype=int))
    assert rnn_layers._sum_rows_by_group(np, np.zeros((0, 2)), groups, groups[1], None, "rows").shape == (0, 2)


def recurrent_args(rng, cell, N=3, T=4, H=3, R=2):
    """ax, h0 (A (N, R, H) for the attention LSTM), Wh and the GRU's bh or the attention's Wattn."""
    g = GATES.get(cell, 4)
    ax = rng.randn(T, N, g * H)
    h0 = rng.randn(N, R, H) if cell.startswith("lstm_attention") else rng.randn(N, H)
    Wh = rng.randn(H, g * H) * 0.4
    extra = {"gru": [rng.randn(g * H) * 0.3]}.get(cell, [])
    if cell.startswith("lstm_attention"):
        extra = [rng.randn(H, 4 * H) * 0.4]
    return [ax, h0, Wh] + extra


# The attention LSTM twice: R < T (regions multiplied by Wattn once) and R >= T (each step's context).
PROJECTED = ["rnn", "lstm", "gru", "lstm_attention", "lstm_attention_R5"]


def layer_name(cell):
    return "lstm_attention" if cell.startswith("lstm_attention") else cell


@pytest.mark.parametrize("cell", PROJECTED)
def test_projected_recurrence_gradcheck(cell, num_grad, relerr):
    rng = np.random.RandomState(720)
    args = recurrent_args(rng, cell, R=5 if cell.endswith("R5") else 2)
    forward = getattr(rnn_layers, f"{layer_name(cell)}_projected_forward")
    backward = getattr(rnn_layers, f"{layer_name(cell)}_projected_backward")
    copies = [a.copy() for a in args]
    h, cache = forward(*args)
    for before, after in zip(copies, args):
        np.testing.assert_array_equal(before, after)  # ax is read, never overwritten
    dh = rng.randn(*h.shape)
    grads = backward(dh, cache)
    for i, grad in enumerate(grads):
        def f(a, i=i):
            call = list(args)
            call[i] = a
            return forward(*call)[0]
        assert relerr(grad, num_grad(f, args[i], dh)) < SEQ_TOL, (cell, i)


@pytest.mark.parametrize("cell", PROJECTED)
def test_projected_recurrence_equals_the_classic_layer(cell):
    """From ax = x Wx + b (time-major) the projected layer gives the classic layer's h and gradients."""
    rng = np.random.RandomState(730)
    N, T, D, H = 3, 5, 4, 2
    ax_, h0, Wh, *extra = recurrent_args(rng, cell, N, T, H, R=6 if cell.endswith("R5") else 2)
    g = Wh.shape[1] // H
    x, Wx, b = rng.randn(N, T, D), rng.randn(D, g * H) * 0.4, rng.randn(g * H) * 0.3
    name = layer_name(cell)
    if name == "lstm_attention":  # lstm_attention_forward(x, A, Wx, Wh, Wattn, b) returns dx, dA, dWx, dWh, dWattn, db
        h, cache = rnn_layers.lstm_attention_forward(x, h0, Wx, Wh, *extra, b)
        dh = rng.randn(*h.shape)
        dx, dh0, dWx, dWh, *dbh, db = rnn_layers.lstm_attention_backward(dh, cache)
    else:
        h, cache = getattr(rnn_layers, f"{name}_forward")(x, h0, Wx, Wh, b, *extra)
        dh = rng.randn(*h.shape)
        dx, dh0, dWx, dWh, db, *dbh = getattr(rnn_layers, f"{name}_backward")(dh, cache)
    ax = (x @ Wx + b).transpose(1, 0, 2)
    h2, cache2 = getattr(rnn_layers, f"{name}_projected_forward")(ax, h0, Wh, *extra)
    dax, dh0_2, dWh2, *dbh2 = getattr(rnn_layers, f"{name}_projected_backward")(dh, cache2)
    np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-12)
    for got, want in [(dh0_2, dh0), (dWh2, dWh), (dax.transpose(1, 0, 2) @ Wx.T, dx), (dax.sum((0, 1)), db)]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(dbh2, dbh):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_projected_forward_checks_shapes():
    rng = np.random.RandomState(740)
    ax, h0, Wh = recurrent_args(rng, "lstm")
    with pytest.raises(ValueError, match="lstm_projected_forward: Wh"):
        rnn_layers.lstm_projected_forward(ax, h0, Wh[:, :6])
    with pytest.raises(ValueError, match="lstm_projected_forward: h0"):
        rnn_layers.lstm_projected_forward(ax, h0[:2], Wh)
    with pytest.raises(ValueError, match="word_projection_forward: words holds index 9"):
        rnn_layers.word_projection_forward(np.array([[9]]), np.zeros((4, 2)), np.zeros((2, 3)), np.zeros(3))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "attention"])
def test_embedded_recurrence_on_the_cpu_equals_embedding_then_layer(cell):
    """The model's path (through the vocabulary on numpy) against embedding + the classic layer."""
    from cs231n.classifiers.recurrent import init_recurrent_params, recurrent_backward, recurrent_forward
    rng = np.random.RandomState(750)
    N, T, V, W, H = 4, 6, 9, 5, 3
    words = rng.randint(V, size=(N, T))
    W_embed, h0 = rng.randn(V, W), rng.randn(N, H)
    params = init_recurrent_params(np.random.default_rng(1), W, H, "lstm" if cell == "attention" else cell)
    params["b"] = rng.randn(*params["b"].shape) * 0.3
    if cell == "attention":
        h0 = rng.randn(N, 2, H)  # the regions A
        params["Wattn"] = rng.randn(H, 4 * H) * 0.4
    x, cache_embed = rnn_layers.word_embedding_forward(words, W_embed)
    h, cache = recurrent_forward(cell, x, h0, params)
    dh = rng.randn(*h.shape)
    dx, dh0, grads = recurrent_backward(cell, dh, cache)
    dW_embed = rnn_layers.word_embedding_backward(dx, cache_embed)
    for ws in (None, Workspace()):
        h2, cache2 = embedded_recurrent_forward(cell, words, W_embed, h0, params, ws)
        assert cache2[0]  # took the projection through the vocabulary
        dW_embed2, dh0_2, grads2 = embedded_recurrent_backward(cell, dh, cache2, ws)
        np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dW_embed2, dW_embed, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dh0_2, dh0, rtol=1e-10, atol=1e-12)
        assert grads2.keys() == grads.keys()
        for k in grads:
            np.testing.assert_allclose(grads2[k], grads[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_word_projection_on_the_device_equals_numpy(device_backend):
    rng = np.random.RandomState(760)
    words, W_embed, Wx, b = projection_args(rng)
    ax, cache = rnn_layers.word_projection_forward(words, W_embed, Wx, b)
    dax = rng.randn(*ax.shape)
    grads = rnn_layers.word_projection_backward(dax, cache)
    ax_d, cache_d = rnn_layers.word_projection_forward(*device_backend.put([words, W_embed, Wx, b]))
    device_backend.check(ax_d)
    grads_d = rnn_layers.word_projection_backward(device_backend.put(dax), cache_d)
    device_backend.assert_close(ax_d, ax, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads_d, grads):
        device_backend.check(got)
        device_backend.assert_close(got, want, rtol=1e-10, atol=1e-12)
