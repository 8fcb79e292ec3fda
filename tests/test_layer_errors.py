"""Bad input gets a clear error at the API boundary, and NaN/inf are never silently made finite.

Each error must be a ValueError (TypeError for indices that are not integers) whose message names the
offending argument and shows at least one of the sizes seen. The sizes are chosen distinct (N=3, T=2,
D=7, H=5, V=13, wrong sizes 11, 4H=20, ...) so that a number in the message can only come from the shapes.
The representative checks run on every array backend: device (CuPy) arguments get the same messages,
raised before any computation, and host and device arrays mixed in one call are a TypeError naming both.
"""
import re

import numpy as np
import pytest

from cs231n.layers import affine_backward, affine_forward, sigmoid_cross_entropy_loss
from cs231n.rnn_layers import (
    gru_backward,
    gru_forward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

N, T, D, H, V = 3, 2, 7, 5, 13


def weights(rng, g):
    """Wx (D, gH), Wh (H, gH), b (gH,) for g gates (1 RNN, 3 GRU, 4 LSTM)."""
    return rng.randn(D, g * H) * 0.3, rng.randn(H, g * H) * 0.3, rng.randn(g * H) * 0.3


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture
def X(rng):
    """Inputs x of shape (N, T, D)."""
    return rng.randn(N, T, D)


@pytest.fixture
def H0(rng):
    """Initial hidden states of shape (N, H)."""
    return rng.randn(N, H)


def on(backend):
    """``put(*arrays)``: the arrays moved onto ``backend``, as a list to splat into a call."""
    return lambda *arrays: backend.put(list(arrays))


def assert_error_names(exc, names, sizes, fn, *args, **kwargs):
    """Call fn and check it raises ``exc`` whose message names one of ``names`` and one of ``sizes``."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    names = [names] if isinstance(names, str) else names
    assert any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names), \
        f"message does not name any of {names}: {msg!r}"
    if sizes:
        assert any(re.search(rf"(?<![0-9.]){s}(?![0-9.])", msg) for s in map(str, sizes)), \
            f"message shows none of the sizes {sizes}: {msg!r}"
    return msg


# ----------------------------------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------------------------------
def test_rnn_step_forward_shape_errors(rng, X, H0):
    x = X[:, 0]
    Wx, Wh, b = weights(rng, 1)
    assert_error_names(ValueError, "Wx", [11], rnn_step_forward, x, H0, rng.randn(11, H), Wh, b)
    assert_error_names(ValueError, "prev_h", [4], rnn_step_forward, x, rng.randn(4, H), Wx, Wh, b)
    assert_error_names(ValueError, "Wh", [6], rnn_step_forward, x, H0, Wx, rng.randn(6, H), b)
    assert_error_names(ValueError, "b", [9], rnn_step_forward, x, H0, Wx, Wh, rng.randn(9))
    assert_error_names(ValueError, "x", [D], rnn_step_forward, X, H0, Wx, Wh, b)  # 3-D x for a step


def test_rnn_forward_shape_errors(rng, X, H0, backend):
    put = on(backend)
    Wx, Wh, b = weights(rng, 1)
    assert_error_names(ValueError, "Wx", [11], rnn_forward, *put(X, H0, rng.randn(11, H), Wh, b))
    assert_error_names(ValueError, "h0", [4], rnn_forward, *put(X, rng.randn(4, H), Wx, Wh, b))
    assert_error_names(ValueError, ["h0", "Wh"], [6], rnn_forward, *put(X, rng.randn(N, 6), Wx, Wh, b))
    assert_error_names(ValueError, "x", [D], rnn_forward, *put(X[:, 0], H0, Wx, Wh, b))  # 2-D x


def test_lstm_weights_passed_to_rnn_forward(rng, X, H0):
    Wx4, Wh4, b4 = weights(rng, 4)
    assert_error_names(ValueError, ["Wx", "Wh"], [4 * H], rnn_forward, X, H0, Wx4, Wh4, b4)
    assert_error_names(ValueError, ["Wx", "Wh"], [4 * H], rnn_step_forward, X[:, 0], H0, Wx4, Wh4, b4)


def test_rnn_weights_passed_to_lstm_forward(rng, X, H0):
    Wx1, Wh1, b1 = weights(rng, 1)
    assert_error_names(ValueError, ["Wx", "Wh"], [H], lstm_forward, X, H0, Wx1, Wh1, b1)
    assert_error_names(ValueError, ["Wx", "Wh"], [H], lstm_step_forward, X[:, 0], H0, H0, Wx1, Wh1, b1)


def test_rnn_backward_upstream_shape_errors(rng, X, H0, backend):
    put = on(backend)
    _, cache = rnn_forward(*put(X, H0, *weights(rng, 1)))
    assert_error_names(ValueError, "dh", [4], rnn_backward, *put(rng.randn(N, T, 4)), cache)
    _, step_cache = rnn_step_forward(*put(X[:, 0], H0, *weights(rng, 1)))
    assert_error_names(ValueError, "dnext_h", [4], rnn_step_backward, *put(rng.randn(N, 4)), step_cache)


# ----------------------------------------------------------------------------------------------------
# LSTM and GRU
# ----------------------------------------------------------------------------------------------------
def test_lstm_shape_errors(rng, X, H0, backend):
    put = on(backend)
    Wx, Wh, b = weights(rng, 4)
    assert_error_names(ValueError, "Wx", [11], lstm_forward, *put(X, H0, rng.randn(11, 4 * H), Wh, b))
    assert_error_names(ValueError, "h0", [4], lstm_forward, *put(X, rng.randn(4, H), Wx, Wh, b))
    assert_error_names(ValueError, "b", [9], lstm_forward, *put(X, H0, Wx, Wh, rng.randn(9)))
    assert_error_names(ValueError, "prev_c", [4], lstm_step_forward,
                       *put(X[:, 0], H0, rng.randn(N, 4), Wx, Wh, b))
    assert_error_names(ValueError, "prev_h", [4], lstm_step_forward,
                       *put(X[:, 0], rng.randn(4, H), H0, Wx, Wh, b))


def test_lstm_backward_upstream_shape_errors(rng, X, H0, backend):
    put = on(backend)
    Wx, Wh, b = weights(rng, 4)
    _, cache = lstm_forward(*put(X, H0, Wx, Wh, b))
    assert_error_names(ValueError, "dh", [4], lstm_backward, *put(rng.randn(N, 4, H)), cache)
    _, _, step_cache = lstm_step_forward(*put(X[:, 0], H0, H0, Wx, Wh, b))
    assert_error_names(ValueError, "dnext_c", [4], lstm_step_backward, *put(H0, rng.randn(N, 4)), step_cache)


def test_gru_shape_errors(rng, X, H0, backend):
    put = on(backend)
    Wx, Wh, b = weights(rng, 3)
    bh = rng.randn(3 * H)
    assert_error_names(ValueError, "Wx", [11], gru_forward, *put(X, H0, rng.randn(11, 3 * H), Wh, b, bh))
    assert_error_names(ValueError, "h0", [4], gru_forward, *put(X, rng.randn(4, H), Wx, Wh, b, bh))
    assert_error_names(ValueError, "bh", [9], gru_forward, *put(X, H0, Wx, Wh, b, rng.randn(9)))
    assert_error_names(ValueError, "bh", [9], gru_step_forward, *put(X[:, 0], H0, Wx, Wh, b, rng.randn(9)))
    Wx4, Wh4, b4 = weights(rng, 4)
    assert_error_names(ValueError, ["Wx", "Wh"], [4 * H], gru_forward,
                       *put(X, H0, Wx4, Wh4, b4, rng.randn(4 * H)))
    _, cache = gru_forward(*put(X, H0, Wx, Wh, b, bh))
    assert_error_names(ValueError, "dh", [4], gru_backward, *put(rng.randn(N, T, 4)), cache)


# ----------------------------------------------------------------------------------------------------
# Word embedding
# ----------------------------------------------------------------------------------------------------
def test_word_embedding_index_errors(rng, backend):
    put = on(backend)
    W = rng.randn(V, D)
    idx = np.array([[0, 1], [2, 3], [4, 5]])
    assert_error_names(TypeError, "x", [], word_embedding_forward, *put(idx.astype(np.float64), W))
    assert_error_names(ValueError, "x", [-1], word_embedding_forward, *put(np.array([[0, -1]]), W))
    assert_error_names(ValueError, "x", [V], word_embedding_forward, *put(np.array([[0, V]]), W))
    assert_error_names(ValueError, "x", [V + 7], word_embedding_forward, *put(np.array([[V + 7, 1]]), W))
    assert_error_names(ValueError, "x", [3], word_embedding_forward, *put(np.arange(3), W))  # 1-D x
    assert_error_names(ValueError, "W", [V * D], word_embedding_forward, *put(idx, rng.randn(V * D)))  # 1-D W


def test_word_embedding_backward_upstream_shape_error(rng, backend):
    put = on(backend)
    _, cache = word_embedding_forward(*put(np.array([[0, 1], [2, 3], [4, 5]]), rng.randn(V, D)))
    assert_error_names(ValueError, "dout", [4], word_embedding_backward, *put(rng.randn(N, T, 4)), cache)


# ----------------------------------------------------------------------------------------------------
# Temporal affine, affine, softmax loss
# ----------------------------------------------------------------------------------------------------
def test_temporal_affine_and_affine_shape_errors(rng, X, backend):
    put = on(backend)
    assert_error_names(ValueError, "w", [11], temporal_affine_forward,
                       *put(X, rng.randn(11, V), rng.randn(V)))
    assert_error_names(ValueError, "b", [9], temporal_affine_forward, *put(X, rng.randn(D, V), rng.randn(9)))
    _, cache = temporal_affine_forward(*put(X, rng.randn(D, V), rng.randn(V)))
    assert_error_names(ValueError, "dout", [4], temporal_affine_backward, *put(rng.randn(N, T, 4)), cache)
    # affine flattens x (N, 2, 7) to (N, 14); a w with 11 rows cannot match.
    assert_error_names(ValueError, "w", [11, 14], affine_forward,
                       *put(rng.randn(N, 2, D), rng.randn(11, 4), rng.randn(4)))


def test_temporal_softmax_loss_errors(rng, backend):
    put = on(backend)
    x = rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = np.ones((N, T), dtype=bool)
    loss = temporal_softmax_loss
    assert_error_names(ValueError, "mask", [4], loss, *put(x, y, np.ones((N, 4), dtype=bool)))
    assert_error_names(ValueError, "mask", [N * T], loss, *put(x, y, np.ones(N * T, dtype=bool)))
    assert_error_names(ValueError, "y", [4], loss, *put(x, rng.randint(V, size=(N, 4)), mask))
    assert_error_names(ValueError, "x", [D], temporal_softmax_loss, *put(rng.randn(N, D), y, mask))
    bad = y.copy()
    bad[1, 1] = V
    assert_error_names(ValueError, "y", [V], temporal_softmax_loss, *put(x, bad, mask))
    bad[1, 1] = -2
    assert_error_names(ValueError, "y", [-2], temporal_softmax_loss, *put(x, bad, mask))
    assert_error_names((TypeError, ValueError), "y", [], temporal_softmax_loss, *put(x, y + 0.5, mask))


def test_host_and_device_arrays_mixed_name_both(rng, X, H0, device_backend):
    """A host array among device arrays (or the reverse) is a TypeError naming the two arguments."""
    put = on(device_backend)
    Wx, Wh, b = weights(rng, 4)
    assert_error_names(TypeError, "h0", [], lstm_forward, *put(X), H0, *put(Wx, Wh, b))
    assert_error_names(TypeError, "Wx", [], lstm_forward, X, H0, *put(Wx), Wh, b)
    assert_error_names(TypeError, "bh", [], gru_forward, *put(X, H0, *weights(rng, 3)), rng.randn(3 * H))
    assert_error_names(TypeError, "prev_c", [], lstm_step_forward, *put(X[:, 0], H0), H0, *put(Wx, Wh, b))
    _, cache = lstm_forward(*put(X, H0, Wx, Wh, b))
    assert_error_names(TypeError, "dh", [], lstm_backward, rng.randn(N, T, H), cache)
    W = rng.randn(V, D)
    idx = np.array([[0, 1], [2, 3], [4, 5]])
    assert_error_names(TypeError, "x", [], word_embedding_forward, idx, *put(W))
    assert_error_names(TypeError, "mask", [], temporal_softmax_loss,
                       *put(rng.randn(N, T, V), rng.randint(V, size=(N, T))), np.ones((N, T), dtype=bool))
    assert_error_names(TypeError, "w", [], affine_forward, *put(X), rng.randn(T * D, 4), *put(rng.randn(4)))
    _, cache = affine_forward(*put(X, rng.randn(T * D, 4), rng.randn(4)))
    assert_error_names(TypeError, "dout", [], affine_backward, rng.randn(N, 4), cache)
    assert_error_names(TypeError, "y", [], sigmoid_cross_entropy_loss, *put(rng.randn(N)), np.array([0, 1, 1]))


# ----------------------------------------------------------------------------------------------------
# NaN and inf are never silently turned into finite numbers
# ----------------------------------------------------------------------------------------------------
def nan_at(a, index):
    a = a.copy()
    a[index] = np.nan
    return a


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_nan_input_propagates_through_sequence_forward(cell, rng, X, H0):
    forward, g = {"rnn": (rnn_forward, 1), "lstm": (lstm_forward, 4), "gru": (gru_forward, 3)}[cell]
    Wx, Wh, b = weights(rng, g)
    extra = [rng.randn(3 * H) * 0.3] if cell == "gru" else []
    with np.errstate(invalid="ignore"):
        h, _ = forward(nan_at(X, (0, 0, 0)), H0, Wx, Wh, b, *extra)
        assert np.isnan(h[0, 0]).all() and np.isnan(h[0, -1]).all()  # carried to later steps
        assert np.isfinite(h[1:]).all()  # other samples are untouched
        h, _ = forward(X, nan_at(H0, (1, 2)), Wx, Wh, b, *extra)
        assert np.isnan(h[1]).any() and np.isfinite(h[[0, 2]]).all()
        h, _ = forward(X, H0, Wx, nan_at(Wh, (0, 0)), b, *extra)
        assert np.isnan(h).any()


def test_nan_propagates_through_step_forwards_and_backward(rng, X, H0):
    x = X[:, 0]
    Wx, Wh, b = weights(rng, 1)
    with np.errstate(invalid="ignore"):
        next_h, cache = rnn_step_forward(nan_at(x, (2, 3)), H0, Wx, Wh, b)
        assert np.isnan(next_h[2]).all() and np.isfinite(next_h[:2]).all()
        dWx = rnn_step_backward(np.ones((N, H)), cache)[2]
        assert np.isnan(dWx).any()

        Wx, Wh, b = weights(rng, 4)
        next_h, next_c, _ = lstm_step_forward(x, H0, nan_at(H0, (0, 1)), Wx, Wh, b)
        assert np.isnan(next_c[0, 1]) and np.isnan(next_h[0, 1])

        _, cache = lstm_forward(X, H0, Wx, Wh, b)
        grads = lstm_backward(nan_at(np.ones((N, T, H)), (0, 1, 0)), cache)
        assert all(np.isnan(g).any() for g in grads[2:])  # dWx, dWh, db

        Wx, Wh, b = weights(rng, 3)
        next_h, _ = gru_step_forward(x, H0, Wx, Wh, b, nan_at(rng.randn(3 * H), 0))
        assert np.isnan(next_h[:, 0]).all()  # bh_r of unit 0 reaches unit 0 of every sample


def test_nan_and_inf_scores_are_not_hidden_by_softmax_loss(rng):
    x = rng.randn(N, T, V)
    y = rng.randint(V, size=(N, T))
    mask = np.ones((N, T), dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        loss, dx = temporal_softmax_loss(nan_at(x, (1, 0, 4)), y, mask)
        assert np.isnan(loss)
        assert np.isnan(dx[1, 0]).any()
        x_inf = x.copy()
        x_inf[2, 1, 0] = np.inf
        loss, _ = temporal_softmax_loss(x_inf, y, mask)
        assert not np.isfinite(loss)
        x_inf[2, 1, 0] = -np.inf
        y_inf = y.copy()
        y_inf[2, 1] = 0  # the target's score is -inf: the true loss is +inf
        loss, _ = temporal_softmax_loss(x_inf, y_inf, mask)
        assert not np.isfinite(loss)


def test_nan_propagates_through_embedding_and_affine(rng, X):
    W = nan_at(rng.randn(V, D), (3, 2))
    out, _ = word_embedding_forward(np.array([[3, 1]]), W)
    assert np.isnan(out[0, 0, 2]) and np.isfinite(out[0, 1]).all()
    out, _ = temporal_affine_forward(nan_at(X, (0, 1, 1)), rng.randn(D, V), rng.randn(V))
    assert np.isnan(out[0, 1]).all() and np.isfinite(out[1:]).all()
