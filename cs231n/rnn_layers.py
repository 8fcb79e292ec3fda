"""Recurrent-network layers as pure array functions: vanilla RNN, LSTM, GRU, embeddings and the loss.

This module owns the forward and backward passes of every layer a captioning or language model is
built from. Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns the
gradients of the forward's array arguments in the forward's order. There is no state, no I/O and no
global configuration; float32 inputs give float32 outputs, and inputs are never written to.

Every function computes with the array module of its inputs (``xp = get_array_module(x)``): numpy
arrays in, numpy arrays out; CuPy arrays in, CuPy arrays out, computed on the GPU. The numpy lines are
the reference; where the per-timestep elementwise work of the LSTM and GRU would be many small kernels
on a GPU, it lives in one small helper (``_lstm_step_gates`` ...) whose body is that numpy code, and
which on real CuPy calls the one fused kernel of ``cs231n.gpu_kernels`` that computes the same thing.

Letters used throughout: N minibatch, T timesteps, D input size, H hidden size, V vocabulary size,
M output size. Step functions (``rnn_step_forward`` ...) process one timestep and exist for teaching and
checking; the whole-sequence functions do not loop over them. They project the inputs of all T steps
with one matrix product, keep their caches time-major in preallocated (T, N, .) arrays so each step
reads and writes contiguous memory, and form the weight gradients with one product over all steps.

LSTM gates are ordered i, f, o, g along the 4H axis (cs231n's order; PyTorch uses i, f, g, o).
The GRU follows ``torch.nn.GRU``: gates r, z, n along the 3H axis, a second bias ``bh`` on the hidden
projection, and the reset gate applied to ``h Wh_n + bh_n``.

Attention over R image regions (``attention_forward``, the attention LSTM ``lstm_attention_*``) is the
last section: the LSTM above whose gates also read a context, a softmax-weighted sum of region vectors
scored against the previous hidden state.
"""
import numpy as np

from cs231n import gpu_kernels
from cs231n._validation import (check_recurrent_args, expect_shape, float_array, gate_hint, index_array,
                                same_device)
from cs231n.backend import get_array_module, to_numpy
from cs231n.layers import softmax_loss_rows
from cs231n.workspace import empty as _empty


def sigmoid(x):
    """Logistic sigmoid, numerically stable for any |x|.

    Computed as ``1 / (1 + exp(-x))``: where exp(-x) overflows (x below about -88 in float32, -709 in
    float64) it is inf and the result exactly 0, the right answer, so the overflow warning is silenced;
    no warning at x = +-1000, and NaN propagates.

    Inputs:
    - x: array of any shape, floating dtype (kept).

    Returns an array of the same shape and dtype with values in [0, 1].
    """
    xp = get_array_module(x)
    x = xp.asarray(x)
    out = xp.negative(x, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    return _sigmoid_inplace(xp, out, negated=True)


def _sigmoid_inplace(xp, a, negated=False):
    """Overwrite ``a`` (an array of module ``xp``) with sigmoid(a), or sigmoid(-a) when ``negated``."""
    # 1 / (1 + exp(-a)) in four in-place passes: numpy's float32 exp costs about half its tanh, so this
    # is cheaper than 0.5 + 0.5 tanh(a / 2) (the same function) and as accurate in the tails.
    if not negated:
        xp.negative(a, out=a)
    with np.errstate(over="ignore"):  # exp(-a) = inf far in the negative tail: 1 / inf is the exact 0
        xp.exp(a, out=a)
    a += 1
    xp.reciprocal(a, out=a)
    return a


def _result_dtype(*arrays):
    return np.result_type(*[a.dtype for a in arrays])


def _column_sums(a2):
    """Sum over the rows of a 2-D array (a bias gradient), of shape (a2.shape[1],).

    Computed as the product ``ones @ a2``: one BLAS pass over the rows, faster on numpy than
    ``a2.sum(axis=0)`` (and the same operation on every array module, so CuPy agrees with numpy).
    """
    xp = get_array_module(a2)
    if gpu_kernels.fused(xp):
        return gpu_kernels.column_sums(a2)  # real CuPy: one reduction, not ones + a product
    return xp.ones(a2.shape[0], dtype=a2.dtype) @ a2


def _time_major(xp, x, dtype, workspace):
    """x (N, T, D) copied time-major to (T, N, D) in ``dtype`` (a workspace buffer when given)."""
    N, T, D = x.shape
    xt = _empty(xp, workspace, "xt", (T, N, D), dtype)
    xt[...] = x.transpose(1, 0, 2)
    return xt


def _batch_major(xp, at, workspace, name):
    """at (T, N, .) copied batch-major to a contiguous (N, T, .) (a workspace buffer when given)."""
    T, N, C = at.shape
    out = _empty(xp, workspace, name, (N, T, C), at.dtype)
    out[...] = at.transpose(1, 0, 2)
    return out


# ----------------------------------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One timestep of a vanilla RNN with tanh: ``next_h = tanh(x Wx + prev_h Wh + b)``.

    The input has dimension D, the hidden state dimension H, and the minibatch size is N.

    Inputs:
    - x: input data for this timestep, of shape (N, D), floating.
    - prev_h: hidden state from the previous timestep, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, H).
    - Wh: hidden-to-hidden weights, of shape (H, H).
    - b: biases, of shape (H,).

    Returns a tuple of:
    - next_h: next hidden state, of shape (N, H), dtype of the inputs.
    - cache: (x, prev_h, Wx, Wh, next_h), for the backward pass.
    """
    x, prev_h, Wx, Wh, b = check_recurrent_args("rnn_step_forward", x, prev_h, Wx, Wh, b, 1, True)
    xp = get_array_module(x)
    next_h = xp.tanh(x @ Wx + prev_h @ Wh + b)  # (N, H)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Backward pass for one timestep of a vanilla RNN.

    Inputs:
    - dnext_h: gradient of the loss with respect to next_h, of shape (N, H).
    - cache: the cache from rnn_step_forward.

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D).
    - dprev_h: gradient of the previous hidden state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, H).
    - db: gradient of the biases, of shape (H,).
    """
    x, prev_h, Wx, Wh, next_h = cache
    dnext_h = _check_upstream("rnn_step_backward", "dnext_h", dnext_h, next_h.shape, like=next_h)
    da = dnext_h * (1 - next_h * next_h)  # through tanh, (N, H)
    dx = da @ Wx.T                          # through x Wx
    dprev_h = da @ Wh.T                     # through prev_h Wh
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b, workspace=None):
    """Run a vanilla RNN over a whole sequence of T timesteps.

    The input has dimension D, the hidden size is H, the minibatch size is N and the sequence length T.

    Inputs:
    - x: input data for the whole sequence, of shape (N, T, D), floating.
    - h0: initial hidden state, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, H).
    - Wh: hidden-to-hidden weights, of shape (H, H).
    - b: biases, of shape (H,).
    - workspace: None (fresh arrays), or a :class:`cs231n.workspace.Workspace` whose buffers hold h
      and the cache, valid until its next use (see that module).

    Returns a tuple of:
    - h: hidden states for the whole sequence, of shape (N, T, H).
    - cache: (xt, hs, Wx, Wh) with xt the time-major input (T, N, D) and hs the hidden states
      (T + 1, N, H) whose first row is h0.
    """
    x, h0, Wx, Wh, b = check_recurrent_args("rnn_forward", x, h0, Wx, Wh, b, 1, False)
    xp = get_array_module(x)
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = _result_dtype(x, h0, Wx, Wh, b)
    xt = _time_major(xp, x, dtype, workspace)                      # (T, N, D)
    hs = _empty(xp, workspace, "hs", (T + 1, N, H), dtype)         # hs[t + 1] is h at step t
    # Input projection of every timestep in one product, written straight into the state buffer
    # (the recurrence below adds each step's h_prev Wh to it in place).
    xp.matmul(xt.reshape(T * N, D), Wx, out=hs[1:].reshape(T * N, H))
    hs[1:] += b
    h = _rnn_recurrence(xp, hs[1:], h0, Wh, hs, workspace)
    return h, (xt, hs, Wx, Wh)


def _rnn_recurrence(xp, ax, h0, Wh, hs, workspace):
    """The recurrence of a vanilla RNN whose input projections ax (T, N, H) = x Wx + b are known.

    Writes hs (T + 1, N, H): h0, then ``tanh(ax[t] + h_prev Wh)`` of every step (ax may be hs[1:]
    itself, which is then overwritten); returns h (N, T, H).
    """
    T = ax.shape[0]
    hs[0] = h0
    ah = _empty(xp, workspace, "ah", h0.shape, hs.dtype)           # the step's h_prev Wh
    for t in range(T):
        xp.matmul(hs[t], Wh, out=ah)
        xp.add(ax[t], ah, out=hs[t + 1])
        xp.tanh(hs[t + 1], out=hs[t + 1])
    return _batch_major(xp, hs[1:], workspace, "h")                 # (N, T, H)


def rnn_backward(dh, cache, workspace=None):
    """Backward pass of a vanilla RNN over a whole sequence.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H).
    - cache: the cache from rnn_forward.
    - workspace: None, or a Workspace holding dx, dh0 and the work arrays (the weight gradients are
      always fresh arrays).

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D).
    - dh0: gradient of the initial hidden state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, H).
    - db: gradient of the biases, of shape (H,).
    """
    xt, hs, Wx, Wh = cache
    T, N, D = xt.shape
    H = hs.shape[2]
    dh = _check_upstream("rnn_backward", "dh", dh, (N, T, H), like=hs)
    xp = get_array_module(hs)
    da, dh0, dWh = _rnn_recurrence_backward(xp, dh, hs, Wh, workspace)
    da2 = da.reshape(T * N, H)
    dx = _input_gradient(xp, da2, Wx, (T, N, D), workspace)
    dWx = xt.reshape(T * N, D).T @ da2         # one product over all steps
    db = _column_sums(da2)
    return dx, dh0, dWx, dWh, db


def _rnn_recurrence_backward(xp, dh, hs, Wh, workspace):
    """Backward of :func:`_rnn_recurrence`: returns (da (T, N, H), the gradients of the tanh inputs
    (so of ax), dh0 (N, H), dWh (H, H))."""
    T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    da = _empty(xp, workspace, "da", (T, N, H), hs.dtype)  # gradients of the tanh inputs, all steps
    dprev_h = _empty(xp, workspace, "dprev_h", (N, H), hs.dtype)
    dprev_h[...] = 0
    tmp = _empty(xp, workspace, "tmp", (N, H), hs.dtype)
    for t in reversed(range(T)):
        h = hs[t + 1]
        xp.add(dh[:, t, :], dprev_h, out=da[t])   # the step's own loss plus the later steps
        xp.multiply(h, h, out=tmp)
        xp.subtract(1, tmp, out=tmp)
        da[t] *= tmp                               # through tanh
        xp.matmul(da[t], Wh.T, out=dprev_h)        # through prev_h Wh
    dWh = hs[:-1].reshape(T * N, H).T @ da.reshape(T * N, H)   # one product over all steps
    return da, dprev_h, dWh


def _input_gradient(xp, da2, Wx, tnd, workspace):
    """The inputs' gradient ``da2 Wx^T`` of all steps, da2 (T*N, gH), returned batch-major (N, T, D)."""
    dxt = _empty(xp, workspace, "dxt", tnd, da2.dtype)
    xp.matmul(da2, Wx.T, out=dxt.reshape(tnd[0] * tnd[1], tnd[2]))
    return _batch_major(xp, dxt, workspace, "dx")


# ----------------------------------------------------------------------------------------------------
# Word embedding
# ----------------------------------------------------------------------------------------------------

def word_embedding_forward(x, W, workspace=None):
    """Look up word vectors: row ``W[x[n, t]]`` for every index.

    The minibatch size is N, the sequence length T, the vocabulary size V and each word vector has
    dimension D.

    Inputs:
    - x: integer array of shape (N, T) with indices in [0, V).
    - W: word vectors, of shape (V, D).
    - workspace: None (a fresh array), or a Workspace whose buffer holds out until its next use.

    Returns a tuple of:
    - out: array of shape (N, T, D), dtype of W.
    - cache: (x, W.shape, W.dtype) for the backward pass.
    """
    W = float_array("word_embedding_forward", "W", W, 2)
    x = index_array("word_embedding_forward", "x", x, 2, W.shape[0])
    same_device("word_embedding_forward", (("W", W), ("x", x)))
    if workspace is None or get_array_module(W) is not np:
        out = W[x]  # (N, T, D); fancy indexing copies, W is untouched
    else:
        out = workspace.empty(np, "embed", x.shape + (W.shape[1],), W.dtype)
        np.take(W, x, axis=0, out=out, mode="clip")  # indices already checked; "clip" writes unbuffered
    return out, (x, W.shape, W.dtype)


def word_embedding_backward(dout, cache, workspace=None):
    """Backward pass for word embeddings: sum the upstream gradients of every use of each word.

    Inputs:
    - dout: upstream gradients, of shape (N, T, D).
    - cache: the cache from word_embedding_forward.
    - workspace: None, or a Workspace for the sorted rows (dW is always a fresh array).

    Returns:
    - dW: gradient of the word vectors, of shape (V, D); rows of unused words are zero and a word used
      several times receives the sum of its gradients.
    """
    x, (V, D), W_dtype = cache
    N, T = x.shape
    dout = _check_upstream("word_embedding_backward", "dout", dout, (N, T, D), like=x)
    xp = get_array_module(dout)
    idx = x.ravel()
    rows = dout.reshape(N * T, D)
    dW = xp.zeros((V, D), dtype=np.result_type(W_dtype, dout.dtype))
    if xp is not np:
        return _scatter_add_rows(xp, dW, idx, rows)
    # Exact and much faster than np.add.at: the rows of each word summed first (see _sum_rows_by_group).
    groups = _group_by_index(idx)
    dW[groups[0]] = _sum_rows_by_group(np, rows, groups, None, workspace, "embed_rows")
    return dW


def _scatter_add_rows(xp, dW, idx, rows):
    """``dW[idx[k]] += rows[k]`` for every k, repeated indices summed; returns dW (the device path).

    On a GPU an atomic scatter-add is one kernel, where numpy's sort + reduceat would be several (and
    ``reduceat`` is missing from older CuPy). Uses ``xp.add.at``, or ``cupyx.scatter_add`` on a CuPy
    without ``add.at``.
    """
    add_at = getattr(xp.add, "at", None)
    if add_at is not None:
        add_at(dW, idx, rows)
    else:
        import cupyx  # only reached with a CuPy array, so CuPy (and its cupyx) is installed
        cupyx.scatter_add(dW, idx, rows)
    return dW


# ----------------------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One timestep of an LSTM.

    The input has dimension D, the hidden state dimension H, and the minibatch size is N. The activation
    ``a = x Wx + prev_h Wh + b`` of shape (N, 4H) is split in the order i, f, o, g;
    ``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``next_c = f * prev_c + i * g``, ``next_h = o * tanh(next_c)``.

    Inputs:
    - x: input data, of shape (N, D), floating.
    - prev_h: previous hidden state, of shape (N, H).
    - prev_c: previous cell state, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, 4H).
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - b: biases, of shape (4H,).

    Returns a tuple of:
    - next_h: next hidden state, of shape (N, H).
    - next_c: next cell state, of shape (N, H).
    - cache: (x, prev_h, prev_c, Wx, Wh, gates, tanh_c) with gates the activated (N, 4H) i, f, o, g.
    """
    fn = "lstm_step_forward"
    x, prev_h, Wx, Wh, b = check_recurrent_args(fn, x, prev_h, Wx, Wh, b, 4, True)
    prev_c = float_array(fn, "prev_c", prev_c, 2)
    expect_shape(fn, "prev_c", prev_c, (("N", prev_h.shape[0]), ("H", prev_h.shape[1])))
    same_device(fn, (("x", x), ("prev_c", prev_c)))
    xp = get_array_module(x)
    H = prev_h.shape[1]
    gates = x @ Wx + prev_h @ Wh + b           # (N, 4H)
    _sigmoid_inplace(xp, gates[:, :3 * H])     # i, f, o
    xp.tanh(gates[:, 3 * H:], out=gates[:, 3 * H:])  # g
    i, f, o, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    next_c = f * prev_c + i * g
    tanh_c = xp.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass for one timestep of an LSTM.

    Inputs:
    - dnext_h: gradient of the next hidden state, of shape (N, H).
    - dnext_c: gradient of the next cell state, of shape (N, H).
    - cache: the cache from lstm_step_forward.

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D).
    - dprev_h: gradient of the previous hidden state, of shape (N, H).
    - dprev_c: gradient of the previous cell state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H).
    - db: gradient of the biases, of shape (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    N, H = prev_h.shape
    dnext_h = _check_upstream("lstm_step_backward", "dnext_h", dnext_h, (N, H), like=gates)
    dnext_c = _check_upstream("lstm_step_backward", "dnext_c", dnext_c, (N, H), like=gates)
    i, f, o, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)  # through next_h = o * tanh(next_c)
    da = get_array_module(gates).empty_like(gates)      # (N, 4H), gradients of the activations
    da[:, :H] = dc * g * i * (1 - i)                    # input gate, through sigmoid
    da[:, H:2 * H] = dc * prev_c * f * (1 - f)          # forget gate
    da[:, 2 * H:3 * H] = dnext_h * tanh_c * o * (1 - o)  # output gate
    da[:, 3 * H:] = dc * i * (1 - g * g)                # block input, through tanh
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f                                    # through f * prev_c
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b, workspace=None):
    """Run an LSTM over a whole sequence of T timesteps; the initial cell state is zero.

    The input has dimension D, the hidden size is H, the minibatch size is N and the sequence length T.
    Gates are ordered i, f, o, g along the 4H axis (see lstm_step_forward).

    Inputs:
    - x: input data, of shape (N, T, D), floating.
    - h0: initial hidden state, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, 4H).
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - b: biases, of shape (4H,).
    - workspace: None (fresh arrays), or a :class:`cs231n.workspace.Workspace` whose buffers hold h
      and the cache, valid until its next use (see that module).

    Returns a tuple of:
    - h: hidden states for the whole sequence, of shape (N, T, H).
    - cache: (xt, hs, cs, gates, tanh_c, Wx, Wh), all time-major: xt (T, N, D); hs and cs (T + 1, N, H)
      whose first rows are h0 and the zero initial cell; gates (T, N, 4H) activated i, f, o, g;
      tanh_c (T, N, H).
    """
    x, h0, Wx, Wh, b = check_recurrent_args("lstm_forward", x, h0, Wx, Wh, b, 4, False)
    xp = get_array_module(x)
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = _result_dtype(x, h0, Wx, Wh, b)
    xt = _time_major(xp, x, dtype, workspace)                      # (T, N, D)
    gates = _empty(xp, workspace, "gates", (T, N, 4 * H), dtype)
    # Input projection of all timesteps in one matrix product, into the gates buffer (activated in place).
    xp.matmul(xt.reshape(T * N, D), Wx, out=gates.reshape(T * N, 4 * H))
    gates += b
    h, (hs, cs, gates, tanh_c, Wh) = _lstm_recurrence(xp, gates, h0, Wh, gates, workspace)
    return h, (xt, hs, cs, gates, tanh_c, Wx, Wh)


def _lstm_recurrence(xp, ax, h0, Wh, gates, workspace):
    """The recurrence of an LSTM whose input projections ax (T, N, 4H) = x Wx + b are known.

    Writes the activated gates of every step into ``gates`` (T, N, 4H), which may be ax itself
    (then overwritten); returns h (N, T, H) and (hs, cs, gates, tanh_c, Wh) as lstm_forward caches them.
    """
    T, N = ax.shape[0], ax.shape[1]
    H = h0.shape[1]
    dtype = gates.dtype
    hs = _empty(xp, workspace, "hs", (T + 1, N, H), dtype)        # hs[t + 1] is h after step t
    cs = _empty(xp, workspace, "cs", (T + 1, N, H), dtype)
    tanh_c = _empty(xp, workspace, "tanh_c", (T, N, H), dtype)
    hs[0] = h0
    cs[0] = 0
    ah = _empty(xp, workspace, "ah", (N, 4 * H), dtype)           # the step's h_prev Wh
    ig = _empty(xp, workspace, "ig", (N, H), dtype)               # reused buffer for i * g
    for t in range(T):
        xp.matmul(hs[t], Wh, out=ah)
        _lstm_step_gates(xp, gates[t], ah, cs[t], cs[t + 1], tanh_c[t], hs[t + 1], ig,
                         ax=None if ax is gates else ax[t])
    h = _batch_major(xp, hs[1:], workspace, "h")                   # (N, T, H)
    return h, (hs, cs, gates, tanh_c, Wh)


def _lstm_step_gates(xp, a, ah, c_prev, c, tanh_c, h, ig, ax=None):
    """The elementwise work of one LSTM timestep, written into the given buffers.

    Inputs:
    - a: (N, 4H) holding x Wx + b (or, with ``ax``, only written); overwritten with the activated gates
      i, f, o, g.
    - ah: (N, 4H), the step's h_prev Wh.
    - c_prev: (N, H) previous cell state.
    - c, tanh_c, h: (N, H) outputs: c = f * c_prev + i * g, tanh(c) and h = o * tanh(c).
    - ig: (N, H) scratch.
    - ax: None, or (N, 4H) the step's x Wx + b, read instead of a's values.
    """
    if ax is None:
        ax = a
    if gpu_kernels.fused(xp):
        if ax is not a:
            a[...] = ax
        return gpu_kernels.lstm_step_forward(a, ah, c_prev, c, tanh_c, h)
    H = c.shape[1]
    xp.add(ax, ah, out=a)
    _sigmoid_inplace(xp, a[:, :3 * H])              # i, f, o in one pass
    xp.tanh(a[:, 3 * H:], out=a[:, 3 * H:])         # g
    xp.multiply(a[:, :H], a[:, 3 * H:], out=ig)
    xp.multiply(a[:, H:2 * H], c_prev, out=c)
    c += ig                                         # c = f * c_prev + i * g
    xp.tanh(c, out=tanh_c)
    xp.multiply(a[:, 2 * H:3 * H], tanh_c, out=h)   # h = o * tanh(c)


def lstm_backward(dh, cache, workspace=None):
    """Backward pass of an LSTM over a whole sequence.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H).
    - cache: the cache from lstm_forward.
    - workspace: None, or a Workspace holding dx, dh0 and the work arrays (the weight gradients are
      always fresh arrays).

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D).
    - dh0: gradient of the initial hidden state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H).
    - db: gradient of the biases, of shape (4H,).
    """
    xt, hs, cs, gates, tanh_c, Wx, Wh = cache
    T, N, D = xt.shape
    H = hs.shape[2]
    dh = _check_upstream("lstm_backward", "dh", dh, (N, T, H), like=hs)
    xp = get_array_module(hs)
    da, dh0, dWh = _lstm_recurrence_backward(xp, dh, (hs, cs, gates, tanh_c, Wh), workspace)
    da2 = da.reshape(T * N, 4 * H)
    dx = _input_gradient(xp, da2, Wx, (T, N, D), workspace)
    dWx = xt.reshape(T * N, D).T @ da2           # one product over all steps
    db = _column_sums(da2)
    return dx, dh0, dWx, dWh, db


def _lstm_recurrence_backward(xp, dh, cache, workspace):
    """Backward of :func:`_lstm_recurrence` from its cache (hs, cs, gates, tanh_c, Wh): returns
    (da (T, N, 4H), the gradients of the gate pre-activations (so of ax), dh0 (N, H), dWh (H, 4H))."""
    hs, cs, gates, tanh_c, Wh = cache
    T, N, H = tanh_c.shape
    dtype = hs.dtype
    da = _empty(xp, workspace, "da", (T, N, 4 * H), dtype)  # gradients of the gate activations, all steps
    dprev_h = _empty(xp, workspace, "dprev_h", (N, H), dtype)
    dc = _empty(xp, workspace, "dc", (N, H), dtype)          # gradient flowing into the cell state
    dprev_h[...] = 0
    dc[...] = 0
    dht = _empty(xp, workspace, "dht", (N, H), dtype)
    tmp = _empty(xp, workspace, "tmp", (N, H), dtype)
    for t in reversed(range(T)):
        _lstm_step_gates_backward(xp, gates[t], tanh_c[t], cs[t], dh[:, t, :], dprev_h, dc, da[t], dht, tmp)
        # Wh.T as it is: BLAS reads the transposed layout directly, cheaper than copying it once.
        xp.matmul(da[t], Wh.T, out=dprev_h)      # through h_prev Wh
    dWh = hs[:-1].reshape(T * N, H).T @ da.reshape(T * N, 4 * H)   # one product over all steps
    return da, dprev_h, dWh


def _lstm_step_gates_backward(xp, a, tc, c_prev, dh_t, dprev_h, dc, da, dht, tmp):
    """The elementwise work of one LSTM timestep backward, written into the given buffers.

    Inputs:
    - a: (N, 4H) activated gates i, f, o, g of the step; tc: (N, H) its tanh(c); c_prev: (N, H).
    - dh_t, dprev_h: (N, H) upstream gradient of the step's h and the gradient from the later steps.
    - dc: (N, H) gradient of the step's c from the later steps; updated to that of c_prev.
    - da: (N, 4H) output, gradients of the gate pre-activations.
    - dht, tmp: (N, H) scratch.
    """
    if gpu_kernels.fused(xp):
        return gpu_kernels.lstm_step_backward(a, tc, c_prev, dh_t, dprev_h, dc, da)
    H = tc.shape[1]
    i, f, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    di, df, do, dg = da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:]
    xp.add(dh_t, dprev_h, out=dht)           # this step's loss plus the later steps
    # through h = o * tanh(c): dc += dht * o * (1 - tanh_c^2)
    xp.multiply(tc, tc, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    tmp *= o
    tmp *= dht
    dc += tmp
    # output gate: do = dht * tanh_c * o * (1 - o)
    xp.multiply(dht, tc, out=do)
    xp.multiply(do, o, out=do)
    xp.subtract(1, o, out=tmp)
    do *= tmp
    # input gate: di = dc * g * i * (1 - i)
    xp.multiply(dc, g, out=di)
    xp.multiply(di, i, out=di)
    xp.subtract(1, i, out=tmp)
    di *= tmp
    # forget gate: df = dc * c_prev * f * (1 - f)
    xp.multiply(dc, c_prev, out=df)
    xp.multiply(df, f, out=df)
    xp.subtract(1, f, out=tmp)
    df *= tmp
    # block input: dg = dc * i * (1 - g^2)
    xp.multiply(dc, i, out=dg)
    xp.multiply(g, g, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    dg *= tmp
    dc *= f                                  # through f * c_prev


# ----------------------------------------------------------------------------------------------------
# GRU (torch.nn.GRU equations)
# ----------------------------------------------------------------------------------------------------

def _check_gru_bh(fn, bh, b):
    bh = float_array(fn, "bh", bh, 1)
    expect_shape(fn, "bh", bh, (("3H", b.shape[0]),))
    same_device(fn, (("b", b), ("bh", bh)))
    return bh


def gru_step_forward(x, prev_h, Wx, Wh, b, bh):
    """One timestep of a GRU with the equations of ``torch.nn.GRU``.

    The input has dimension D, the hidden state dimension H, and the minibatch size is N. Along the 3H
    axis the columns are the reset gate r, the update gate z and the candidate n:
    ``r = sigmoid(x Wx_r + b_r + h Wh_r + bh_r)``, ``z = sigmoid(x Wx_z + b_z + h Wh_z + bh_z)``,
    ``n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n))``, ``next_h = (1 - z) * n + z * h``.

    Inputs:
    - x: input data, of shape (N, D), floating.
    - prev_h: previous hidden state, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, 3H) (torch's weight_ih_l0 transposed).
    - Wh: hidden-to-hidden weights, of shape (H, 3H) (torch's weight_hh_l0 transposed).
    - b: input biases, of shape (3H,) (torch's bias_ih_l0).
    - bh: hidden biases, of shape (3H,) (torch's bias_hh_l0).

    Returns a tuple of:
    - next_h: next hidden state, of shape (N, H).
    - cache: (x, prev_h, Wx, Wh, rzn, hn) with rzn the activated (N, 3H) r, z, n and hn = h Wh_n + bh_n.
    """
    fn = "gru_step_forward"
    x, prev_h, Wx, Wh, b = check_recurrent_args(fn, x, prev_h, Wx, Wh, b, 3, True)
    bh = _check_gru_bh(fn, bh, b)
    xp = get_array_module(x)
    H = prev_h.shape[1]
    ax = x @ Wx + b                   # (N, 3H)
    ah = prev_h @ Wh + bh             # (N, 3H)
    rzn = xp.empty_like(ax)
    rzn[:, :2 * H] = sigmoid(ax[:, :2 * H] + ah[:, :2 * H])
    hn = ah[:, 2 * H:]
    rzn[:, 2 * H:] = xp.tanh(ax[:, 2 * H:] + rzn[:, :H] * hn)
    z, n = rzn[:, H:2 * H], rzn[:, 2 * H:]
    next_h = n + z * (prev_h - n)     # (1 - z) * n + z * h
    return next_h, (x, prev_h, Wx, Wh, rzn, hn)


def gru_step_backward(dnext_h, cache):
    """Backward pass for one timestep of a GRU.

    Inputs:
    - dnext_h: gradient of the next hidden state, of shape (N, H).
    - cache: the cache from gru_step_forward.

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D).
    - dprev_h: gradient of the previous hidden state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 3H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 3H).
    - db: gradient of the input biases, of shape (3H,).
    - dbh: gradient of the hidden biases, of shape (3H,).
    """
    x, prev_h, Wx, Wh, rzn, hn = cache
    N, H = prev_h.shape
    dnext_h = _check_upstream("gru_step_backward", "dnext_h", dnext_h, (N, H), like=rzn)
    r, z, n = rzn[:, :H], rzn[:, H:2 * H], rzn[:, 2 * H:]
    dax = get_array_module(rzn).empty_like(rzn)    # gradients of the input projections (N, 3H)
    dax[:, 2 * H:] = dnext_h * (1 - z) * (1 - n * n)  # candidate, through tanh
    dr = dax[:, 2 * H:] * hn                        # through r * hn
    dax[:, :H] = dr * r * (1 - r)                   # reset gate, through sigmoid
    dax[:, H:2 * H] = dnext_h * (prev_h - n) * z * (1 - z)  # update gate
    dah = dax.copy()                                # hidden projections: same except n's is * r
    dah[:, 2 * H:] *= r
    dx = dax @ Wx.T
    dprev_h = dnext_h * z + dah @ Wh.T
    dWx = x.T @ dax
    dWh = prev_h.T @ dah
    db = dax.sum(axis=0)
    dbh = dah.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db, dbh


def gru_forward(x, h0, Wx, Wh, b, bh, workspace=None):
    """Run a GRU (``torch.nn.GRU`` equations) over a whole sequence of T timesteps.

    The input has dimension D, the hidden size is H, the minibatch size is N and the sequence length T.
    Gates r, z, n along the 3H axis; see gru_step_forward for the equations.

    Inputs:
    - x: input data, of shape (N, T, D), floating.
    - h0: initial hidden state, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, 3H).
    - Wh: hidden-to-hidden weights, of shape (H, 3H).
    - b: input biases, of shape (3H,).
    - bh: hidden biases, of shape (3H,).
    - workspace: None (fresh arrays), or a :class:`cs231n.workspace.Workspace` whose buffers hold h
      and the cache, valid until its next use (see that module).

    Returns a tuple of:
    - h: hidden states for the whole sequence, of shape (N, T, H).
    - cache: (xt, hs, rzn, hn, Wx, Wh), time-major: xt (T, N, D); hs (T + 1, N, H) with h0 first;
      rzn (T, N, 3H) the activated r, z, n; hn (T, N, H) = h Wh_n + bh_n.
    """
    fn = "gru_forward"
    x, h0, Wx, Wh, b = check_recurrent_args(fn, x, h0, Wx, Wh, b, 3, False)
    bh = _check_gru_bh(fn, bh, b)
    xp = get_array_module(x)
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = _result_dtype(x, h0, Wx, Wh, b, bh)
    xt = _time_major(xp, x, dtype, workspace)                      # (T, N, D)
    rzn = _empty(xp, workspace, "rzn", (T, N, 3 * H), dtype)
    xp.matmul(xt.reshape(T * N, D), Wx, out=rzn.reshape(T * N, 3 * H))  # all input projections
    rzn += b
    h, (hs, rzn, hn, Wh) = _gru_recurrence(xp, rzn, h0, Wh, bh, rzn, workspace)
    return h, (xt, hs, rzn, hn, Wx, Wh)


def _gru_recurrence(xp, ax, h0, Wh, bh, rzn, workspace):
    """The recurrence of a GRU whose input projections ax (T, N, 3H) = x Wx + b are known.

    Writes the activated r, z, n of every step into ``rzn`` (T, N, 3H), which may be ax itself (then
    overwritten); returns h (N, T, H) and (hs, rzn, hn, Wh) as gru_forward caches them.
    """
    T, N = ax.shape[0], ax.shape[1]
    H = h0.shape[1]
    dtype = rzn.dtype
    hs = _empty(xp, workspace, "hs", (T + 1, N, H), dtype)
    hn = _empty(xp, workspace, "hn", (T, N, H), dtype)
    hs[0] = h0
    ah = _empty(xp, workspace, "ah", (N, 3 * H), dtype)           # the step's h_prev Wh
    tmp = _empty(xp, workspace, "tmp", (N, H), dtype)
    for t in range(T):
        xp.matmul(hs[t], Wh, out=ah)
        _gru_step_gates(xp, rzn[t], ah, bh, hs[t], hn[t], hs[t + 1], tmp, ax=None if ax is rzn else ax[t])
    h = _batch_major(xp, hs[1:], workspace, "h")                   # (N, T, H)
    return h, (hs, rzn, hn, Wh)


def _gru_step_gates(xp, a, ah, bh, h_prev, hn, h, tmp, ax=None):
    """The elementwise work of one GRU timestep, written into the given buffers.

    Inputs:
    - a: (N, 3H) holding x Wx + b (or, with ``ax``, only written); overwritten with the activated r, z, n.
    - ah: (N, 3H), the step's h_prev Wh (may be used as scratch); bh: (3H,) hidden bias.
    - h_prev: (N, H) previous hidden state.
    - hn, h: (N, H) outputs: hn = h_prev Wh_n + bh_n and h = n + z * (h_prev - n).
    - tmp: (N, H) scratch.
    - ax: None, or (N, 3H) the step's x Wx + b, read instead of a's values.
    """
    if ax is None:
        ax = a
    if gpu_kernels.fused(xp):
        if ax is not a:
            a[...] = ax
        return gpu_kernels.gru_step_forward(a, ah, bh, h_prev, hn, h)
    H = h.shape[1]
    ah += bh
    xp.add(ax[:, :2 * H], ah[:, :2 * H], out=a[:, :2 * H])
    _sigmoid_inplace(xp, a[:, :2 * H])            # r, z
    hn[...] = ah[:, 2 * H:]
    xp.multiply(a[:, :H], hn, out=tmp)
    xp.add(ax[:, 2 * H:], tmp, out=a[:, 2 * H:])
    xp.tanh(a[:, 2 * H:], out=a[:, 2 * H:])       # n
    # h = n + z * (h_prev - n)
    xp.subtract(h_prev, a[:, 2 * H:], out=tmp)
    tmp *= a[:, H:2 * H]
    xp.add(a[:, 2 * H:], tmp, out=h)


def gru_backward(dh, cache, workspace=None):
    """Backward pass of a GRU over a whole sequence.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H).
    - cache: the cache from gru_forward.
    - workspace: None, or a Workspace holding dx, dh0 and the work arrays (the weight gradients are
      always fresh arrays).

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D).
    - dh0: gradient of the initial hidden state, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 3H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 3H).
    - db: gradient of the input biases, of shape (3H,).
    - dbh: gradient of the hidden biases, of shape (3H,).
    """
    xt, hs, rzn, hn, Wx, Wh = cache
    T, N, D = xt.shape
    H = hs.shape[2]
    dh = _check_upstream("gru_backward", "dh", dh, (N, T, H), like=hs)
    xp = get_array_module(hs)
    dax, dh0, dWh, dbh = _gru_recurrence_backward(xp, dh, (hs, rzn, hn, Wh), workspace)
    dax2 = dax.reshape(T * N, 3 * H)
    dx = _input_gradient(xp, dax2, Wx, (T, N, D), workspace)
    dWx = xt.reshape(T * N, D).T @ dax2
    return dx, dh0, dWx, dWh, _column_sums(dax2), dbh


def _gru_recurrence_backward(xp, dh, cache, workspace):
    """Backward of :func:`_gru_recurrence` from its cache (hs, rzn, hn, Wh): returns (dax (T, N, 3H),
    the gradients of x Wx + b, dh0 (N, H), dWh (H, 3H), dbh (3H,))."""
    hs, rzn, hn, Wh = cache
    T, N, H = hn.shape
    dtype = hs.dtype
    dax = _empty(xp, workspace, "dax", (T, N, 3 * H), dtype)  # gradients of x Wx + b, all steps
    dah = _empty(xp, workspace, "dah", (T, N, 3 * H), dtype)  # gradients of h Wh + bh, all steps
    dprev_h = _empty(xp, workspace, "dprev_h", (N, H), dtype)
    dprev_h[...] = 0
    dht = _empty(xp, workspace, "dht", (N, H), dtype)
    dh_z = _empty(xp, workspace, "dh_z", (N, H), dtype)      # gradient of h_prev through z * h_prev
    tmp = _empty(xp, workspace, "tmp", (N, H), dtype)
    for t in reversed(range(T)):
        _gru_step_gates_backward(xp, rzn[t], hn[t], hs[t], dh[:, t, :], dprev_h, dax[t], dah[t], dh_z,
                                 dht, tmp)
        xp.matmul(dah[t], Wh.T, out=dprev_h)     # Wh.T as it is (see lstm_backward)
        dprev_h += dh_z
    dah2 = dah.reshape(T * N, 3 * H)
    dWh = hs[:-1].reshape(T * N, H).T @ dah2
    return dax, dprev_h, dWh, _column_sums(dah2)


def _gru_step_gates_backward(xp, a, hn, h_prev, dh_t, dprev_h, dax, dah, dh_z, dht, tmp):
    """The elementwise work of one GRU timestep backward, written into the given buffers.

    Inputs:
    - a: (N, 3H) activated r, z, n of the step; hn: (N, H) its h_prev Wh_n + bh_n; h_prev: (N, H).
    - dh_t, dprev_h: (N, H) upstream gradient of the step's h and the gradient from the later steps.
    - dax, dah: (N, 3H) outputs, gradients of x Wx + b and of h_prev Wh + bh.
    - dh_z: (N, H) output, the gradient of h_prev through z * h_prev.
    - dht, tmp: (N, H) scratch.
    """
    if gpu_kernels.fused(xp):
        return gpu_kernels.gru_step_backward(a, hn, h_prev, dh_t, dprev_h, dax, dah, dh_z)
    H = hn.shape[1]
    r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
    dar, daz, dan = dax[:, :H], dax[:, H:2 * H], dax[:, 2 * H:]
    xp.add(dh_t, dprev_h, out=dht)
    # candidate: dan = dht * (1 - z) * (1 - n^2)
    xp.subtract(1, z, out=dan)
    dan *= dht
    xp.multiply(n, n, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    dan *= tmp
    # reset gate: dar = dan * hn * r * (1 - r)
    xp.multiply(dan, hn, out=dar)
    dar *= r
    xp.subtract(1, r, out=tmp)
    dar *= tmp
    # update gate: daz = dht * (h_prev - n) * z * (1 - z)
    xp.subtract(h_prev, n, out=daz)
    daz *= dht
    daz *= z
    xp.subtract(1, z, out=tmp)
    daz *= tmp
    # the hidden projection sees the same gradients, except the candidate's passes through r
    dah[:, :2 * H] = dax[:, :2 * H]
    xp.multiply(dan, r, out=dah[:, 2 * H:])
    xp.multiply(dht, z, out=dh_z)            # through z * h_prev


# ----------------------------------------------------------------------------------------------------
# From known input projections: embedded words projected through the vocabulary
# ----------------------------------------------------------------------------------------------------
#
# rnn_forward, lstm_forward and gru_forward start by projecting the inputs of every step, x Wx + b, and
# then run the recurrence. When the inputs are embedded words, x = W_embed[words], that projection can
# be made through the vocabulary instead: ``W_embed[words] Wx == (W_embed Wx)[words]``, so each distinct
# word of the minibatch is projected once (K <= min(V, N T) rows instead of N T) and the rows are then
# gathered per position; the backward sums the gradient rows of each word first and makes both weight
# gradients from those K sums. A captioning minibatch (N T = 2,048 positions) holds a few hundred
# distinct words, so this halves or better the three products of x Wx. ``word_projection_*`` compute
# the projection that way, and the ``*_projected_*`` functions run the recurrence from it; the classic
# functions above are the same recurrence after a per-position projection.

def _check_projected_args(fn, ax, h0, Wh, gates):
    """Check (ax (T, N, gH), h0 (N, H), Wh (H, gH)) of a ``*_projected_forward``; return them as arrays."""
    ax = float_array(fn, "ax", ax, 3)
    h0 = float_array(fn, "h0", h0, 2)
    Wh = float_array(fn, "Wh", Wh, 2)
    T, N = ax.shape[0], ax.shape[1]
    H = h0.shape[1]
    g = "" if gates == 1 else str(gates)
    expect_shape(fn, "h0", h0, (("N", N), ("H", H)), " (N from ax, which is time-major (T, N, gH))")
    expect_shape(fn, "Wh", Wh, (("H", H), (f"{g}H", gates * H)), gate_hint(Wh, H, gates))
    expect_shape(fn, "ax", ax, (("T", T), ("N", N), (f"{g}H", gates * H)), gate_hint(ax, H, gates))
    same_device(fn, (("ax", ax), ("h0", h0), ("Wh", Wh)))
    return ax, h0, Wh


def rnn_projected_forward(ax, h0, Wh, workspace=None):
    """rnn_forward from the input projections of every step: ``h_t = tanh(ax[t] + h_{t-1} Wh)``.

    Inputs:
    - ax: ``x Wx + b`` of every step, time-major, of shape (T, N, H), floating (not modified).
    - h0: initial hidden state, of shape (N, H).
    - Wh: hidden-to-hidden weights, of shape (H, H).
    - workspace: None, or a Workspace for h and the cache (as in rnn_forward).

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: (hs, Wh) with hs (T + 1, N, H) whose first row is h0.
    """
    ax, h0, Wh = _check_projected_args("rnn_projected_forward", ax, h0, Wh, 1)
    xp = get_array_module(ax)
    T, N, H = ax.shape
    hs = _empty(xp, workspace, "hs", (T + 1, N, H), _result_dtype(ax, h0, Wh))
    h = _rnn_recurrence(xp, ax, h0, Wh, hs, workspace)
    return h, (hs, Wh)


def rnn_projected_backward(dh, cache, workspace=None):
    """Backward pass of rnn_projected_forward: returns (dax (T, N, H), dh0 (N, H), dWh (H, H)).

    dax, the gradient of ax, is time-major and, with a workspace, one of its buffers.
    """
    hs, Wh = cache
    T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dh = _check_upstream("rnn_projected_backward", "dh", dh, (N, T, H), like=hs)
    return _rnn_recurrence_backward(get_array_module(hs), dh, hs, Wh, workspace)


def lstm_projected_forward(ax, h0, Wh, workspace=None):
    """lstm_forward from the input projections of every step (gates i, f, o, g; initial cell zero).

    Inputs:
    - ax: ``x Wx + b`` of every step, time-major, of shape (T, N, 4H), floating (not modified).
    - h0: initial hidden state, of shape (N, H).
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - workspace: None, or a Workspace for h and the cache (as in lstm_forward).

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: (hs, cs, gates, tanh_c, Wh), time-major as in lstm_forward's cache.
    """
    ax, h0, Wh = _check_projected_args("lstm_projected_forward", ax, h0, Wh, 4)
    xp = get_array_module(ax)
    gates = _empty(xp, workspace, "gates", ax.shape, _result_dtype(ax, h0, Wh))
    return _lstm_recurrence(xp, ax, h0, Wh, gates, workspace)


def lstm_projected_backward(dh, cache, workspace=None):
    """Backward pass of lstm_projected_forward: returns (dax (T, N, 4H), dh0 (N, H), dWh (H, 4H)).

    dax, the gradient of ax, is time-major and, with a workspace, one of its buffers.
    """
    hs, cs, gates, tanh_c, Wh = cache
    T, N, H = tanh_c.shape
    dh = _check_upstream("lstm_projected_backward", "dh", dh, (N, T, H), like=hs)
    return _lstm_recurrence_backward(get_array_module(hs), dh, cache, workspace)


def gru_projected_forward(ax, h0, Wh, bh, workspace=None):
    """gru_forward from the input projections of every step (gates r, z, n, ``torch.nn.GRU`` equations).

    Inputs:
    - ax: ``x Wx + b`` of every step, time-major, of shape (T, N, 3H), floating (not modified).
    - h0: initial hidden state, of shape (N, H).
    - Wh: hidden-to-hidden weights, of shape (H, 3H).
    - bh: hidden biases, of shape (3H,).
    - workspace: None, or a Workspace for h and the cache (as in gru_forward).

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: (hs, rzn, hn, Wh), time-major as in gru_forward's cache.
    """
    fn = "gru_projected_forward"
    ax, h0, Wh = _check_projected_args(fn, ax, h0, Wh, 3)
    bh = float_array(fn, "bh", bh, 1)
    expect_shape(fn, "bh", bh, (("3H", ax.shape[2]),))
    same_device(fn, (("ax", ax), ("bh", bh)))
    xp = get_array_module(ax)
    rzn = _empty(xp, workspace, "rzn", ax.shape, _result_dtype(ax, h0, Wh, bh))
    return _gru_recurrence(xp, ax, h0, Wh, bh, rzn, workspace)


def gru_projected_backward(dh, cache, workspace=None):
    """Backward pass of gru_projected_forward: returns (dax (T, N, 3H), dh0 (N, H), dWh (H, 3H),
    dbh (3H,)). dax, the gradient of ax, is time-major and, with a workspace, one of its buffers."""
    hs, rzn, hn, Wh = cache
    T, N, H = hn.shape
    dh = _check_upstream("gru_projected_backward", "dh", dh, (N, T, H), like=hs)
    return _gru_recurrence_backward(get_array_module(hs), dh, cache, workspace)


def word_projection_forward(words, W_embed, Wx, b, workspace=None):
    """Input projections of embedded words, ``W_embed[words] Wx + b``, computed through the vocabulary.

    The same values as ``word_embedding_forward`` followed by ``x Wx + b`` at every position, made with
    one (K, W) by (W, M) product over the K distinct words of ``words`` instead of one row per
    position, then gathered per position (see the section's comment).

    Inputs:
    - words: integer array of shape (N, T) with indices in [0, V).
    - W_embed: word vectors, of shape (V, W), floating.
    - Wx: projection weights, of shape (W, M).
    - b: biases, of shape (M,).
    - workspace: None (fresh arrays), or a Workspace whose buffers hold ax and the cache until its next
      use.

    Returns a tuple of:
    - ax: the projections, time-major: ax[t, n] = W_embed[words[n, t]] Wx + b, of shape (T, N, M).
    - cache: for word_projection_backward.
    """
    fn = "word_projection_forward"
    W_embed = float_array(fn, "W_embed", W_embed, 2)
    words = index_array(fn, "words", words, 2, W_embed.shape[0])
    Wx = float_array(fn, "Wx", Wx, 2)
    b = float_array(fn, "b", b, 1)
    V, W = W_embed.shape
    M = Wx.shape[1]
    expect_shape(fn, "Wx", Wx, (("W", W), ("M", M)))
    expect_shape(fn, "b", b, (("M", M),))
    same_device(fn, (("W_embed", W_embed), ("words", words), ("Wx", Wx), ("b", b)))
    xp = get_array_module(W_embed)
    N, T = words.shape
    dtype = _result_dtype(W_embed, Wx, b)
    groups = _group_by_index(to_numpy(words).T.ravel())     # positions in time-major order
    keys, inverse = groups[0], groups[1]
    if xp is not np:
        keys, inverse = xp.asarray(keys), xp.asarray(inverse)
    K = keys.shape[0]
    E = _empty(xp, workspace, "words_embed", (K, W), W_embed.dtype)
    _take_rows(xp, W_embed, keys, E)                          # the distinct words' vectors
    P = _empty(xp, workspace, "words_proj", (K, M), dtype)
    xp.matmul(E, Wx, out=P)                                   # each distinct word projected once
    P += b
    ax = _empty(xp, workspace, "ax", (T, N, M), dtype)
    _take_rows(xp, P, inverse, ax.reshape(T * N, M))         # and gathered for every position
    return ax, (groups, keys, inverse, E, Wx, V, (T, N))


def word_projection_backward(dax, cache, workspace=None):
    """Backward pass of word_projection_forward.

    Inputs:
    - dax: upstream gradients of ax, time-major, of shape (T, N, M).
    - cache: the cache from word_projection_forward.
    - workspace: None, or the forward's Workspace, for the work arrays (the gradients are always fresh
      arrays); the forward's ax is overwritten (an output of the forward, valid until the next use of
      the workspace).

    Returns a tuple of:
    - dW_embed: gradient of the word vectors, of shape (V, W); rows of unused words are zero.
    - dWx: gradient of the projection weights, of shape (W, M).
    - db: gradient of the biases, of shape (M,).
    """
    groups, keys, inverse, E, Wx, V, tn = cache
    K, W = E.shape
    M = Wx.shape[1]
    L = tn[0] * tn[1]
    dax = _check_upstream("word_projection_backward", "dax", dax, tn + (M,), like=E)
    xp = get_array_module(dax)
    # (K, M), the rows of each word summed; the work buffer is the forward's "ax", no longer needed
    S = _sum_rows_by_group(xp, dax.reshape(L, M), groups, inverse, workspace, "ax")
    dtype = np.result_type(E.dtype, dax.dtype)
    dW_embed = xp.zeros((V, W), dtype=dtype)
    dW_embed[keys] = S @ Wx.T                 # through x Wx, then through the lookup of each word
    dWx = E.T @ S
    return dW_embed, dWx, _column_sums(S)


def _take_rows(xp, a, idx, out):
    """``out[...] = a[idx]`` for a (L,) index array of valid rows; returns out."""
    if xp is np:
        return np.take(a, idx, axis=0, out=out, mode="clip")  # "clip": indices are valid; writes unbuffered
    return xp.take(a, idx, axis=0, out=out)


def _group_by_index(idx):
    """Group the positions of a host integer array ``idx`` (L,) by value, to sum rows per value.

    Returns (keys, inverse, source, per_rank):
    - keys (K,): the distinct values, the most used first; ``keys[inverse] == idx``;
    - source (L,): the positions rank by rank: the first use of every key (in key order), then the
      second use of every key used at least twice, and so on;
    - per_rank: per_rank[r] keys (the first ones) have an r-th use (r = 0, 1, ...; non-increasing).
    """
    L = idx.shape[0]
    if L == 0:
        return idx[:0], np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), [0]
    order = np.argsort(idx, kind="stable")                  # positions grouped by value
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])  # (K,) each value's first
    counts = np.diff(np.r_[starts, L])
    by_count = np.argsort(-counts, kind="stable")           # values, the most used first
    K = starts.shape[0]
    slot = np.empty(K, dtype=np.intp)
    slot[by_count] = np.arange(K)                           # each value's place among the keys
    run = np.repeat(np.arange(K), counts)                   # each sorted position's value
    rank = np.arange(L) - starts[run]                       # r: the (r+1)-th use of its value
    per_rank = np.bincount(rank)
    offsets = np.r_[0, np.cumsum(per_rank)[:-1]]
    source = np.empty(L, dtype=np.intp)
    source[offsets[rank] + slot[run]] = order
    inverse = np.empty(L, dtype=np.intp)
    inverse[order] = slot[run]
    return sorted_idx[starts[by_count]], inverse, source, per_rank.tolist()


def _sum_rows_by_group(xp, rows, groups, inverse, workspace, name):
    """(K, C): row k the sum of the rows (L, C) of the positions of keys[k] (see _group_by_index).

    Exact and much faster than np.add.at or np.add.reduceat (whose axis-0 loop is strided): the rows
    are copied once rank by rank, so that the r-th uses of the keys that have one sit in a contiguous
    block, and each block is added to the first block's matching rows. The buffer is the workspace's;
    on a device, one scatter-add (``inverse``: the groups' positions as a device array).
    """
    keys, _, source, per_rank = groups
    K = len(keys)
    if xp is not np:
        return _scatter_add_rows(xp, xp.zeros((K, rows.shape[1]), dtype=rows.dtype), inverse, rows)
    ranked = _take_rows(np, rows, source, _empty(np, workspace, name, rows.shape, rows.dtype))  # permuted
    sums, offset = ranked[:K], K
    for count in per_rank[1:]:
        sums[:count] += ranked[offset:offset + count]        # the next use of the first `count` keys
        offset += count
    return sums


# ----------------------------------------------------------------------------------------------------
# Temporal affine layer and loss
# ----------------------------------------------------------------------------------------------------

def temporal_affine_forward(x, w, b, workspace=None):
    """Apply one affine map to the vector at every timestep: ``out[n, t] = x[n, t] w + b``.

    The minibatch size is N, the sequence length T, the input dimension D and the output dimension M.

    Inputs:
    - x: input data, of shape (N, T, D), floating.
    - w: weights, of shape (D, M).
    - b: biases, of shape (M,).
    - workspace: None (a fresh array), or a Workspace whose buffer holds out until its next use.

    Returns a tuple of:
    - out: output data, of shape (N, T, M).
    - cache: (x, w) for the backward pass.
    """
    fn = "temporal_affine_forward"
    x = float_array(fn, "x", x, 3)
    w = float_array(fn, "w", w, 2)
    b = float_array(fn, "b", b, 1)
    same_device(fn, (("x", x), ("w", w), ("b", b)))
    N, T, D = x.shape
    expect_shape(fn, "w", w, (("D", D), ("M", w.shape[1])))
    expect_shape(fn, "b", b, (("M", w.shape[1]),))
    xp = get_array_module(x)
    M = w.shape[1]
    out = _empty(xp, workspace, "affine_out", (N, T, M), np.result_type(x.dtype, w.dtype))
    xp.matmul(x.reshape(N * T, D), w, out=out.reshape(N * T, M))  # (N, T, M)
    out += b
    return out, (x, w)


def temporal_affine_backward(dout, cache, workspace=None):
    """Backward pass for the temporal affine layer.

    Inputs:
    - dout: upstream gradients, of shape (N, T, M).
    - cache: the cache from temporal_affine_forward.
    - workspace: None, or a Workspace whose buffer holds dx (dw and db are always fresh arrays).

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, T, D).
    - dw: gradient of the weights, of shape (D, M).
    - db: gradient of the biases, of shape (M,).
    """
    x, w = cache
    N, T, D = x.shape
    M = w.shape[1]
    dout = _check_upstream("temporal_affine_backward", "dout", dout, (N, T, M), like=x)
    xp = get_array_module(dout)
    dout2 = dout.reshape(N * T, M)
    dx = _empty(xp, workspace, "affine_dx", (N, T, D), np.result_type(dout.dtype, w.dtype))
    xp.matmul(dout2, w.T, out=dx.reshape(N * T, D))
    dw = x.reshape(N * T, D).T @ dout2
    db = _column_sums(dout2)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False, workspace=None):
    """Softmax cross-entropy summed over the unmasked timesteps and divided by the minibatch size N.

    Scores over a vocabulary of size V are given at every timestep of every sequence; ``mask`` says
    which timesteps count (captions of different lengths are padded with <NULL>, which is masked out).

    Inputs:
    - x: scores, of shape (N, T, V), floating.
    - y: integer targets in [0, V), of shape (N, T).
    - mask: booleans of shape (N, T); True where the loss at x[n, t] counts (0/1 numbers also accepted).
    - verbose: print the shape of dx (as the classic code does, for debugging).
    - workspace: None (a fresh dx), or a Workspace whose buffer holds dx until its next use.

    Returns a tuple of:
    - loss: a scalar of x's dtype, sum over unmasked steps of -log p(y) divided by N (on a GPU a 0-d
      device array, so that computing the loss does not wait for the device).
    - dx: gradient of the loss with respect to x, of shape (N, T, V).
    """
    fn = "temporal_softmax_loss"
    x = float_array(fn, "x", x, 3)
    xp = get_array_module(x)
    N, T, V = x.shape
    y = index_array(fn, "y", y, 2, V)
    if y.shape != (N, T):
        raise ValueError(f"{fn}: y should have shape (N, T) = {(N, T)} to match x {x.shape}, got {y.shape}")
    mask = get_array_module(mask).asarray(mask)
    if mask.shape != (N, T):
        raise ValueError(f"{fn}: mask should have shape (N, T) = {(N, T)} to match x {x.shape}, "
                         f"got {mask.shape}")
    same_device(fn, (("x", x), ("y", y), ("mask", mask)))
    x2 = x.reshape(N * T, V)
    y2 = y.reshape(N * T)
    if gpu_kernels.fused(xp):  # real CuPy: 5 launches
        loss, dx = gpu_kernels.temporal_softmax_loss(x2, y2, mask.reshape(N * T), N)
        return loss, dx.reshape(N, T, V)
    # Multiplying by the mask (instead of indexing) keeps NaN/inf visible even at masked steps.
    loss, probs = softmax_loss_rows(x2, y2, N, mask.reshape(N * T).astype(x.dtype), workspace)
    dx = probs.reshape(N, T, V)
    if verbose:
        print("dx_flat: ", probs.shape)
    return loss, dx


def _check_upstream(fn, name, d, shape, like=None):
    """Return the upstream gradient as an array after checking it matches the forward's output shape.

    The array keeps its kind (a device array stays on the device); with ``like`` (an array of the
    forward's cache) it must also be on the same device as that array.
    """
    d = get_array_module(d).asarray(d)
    if d.shape != tuple(shape):
        raise ValueError(f"{fn}: {name} should have the shape of the forward output {tuple(shape)}, "
                         f"got {d.shape}")
    if like is not None:
        same_device(fn, ((name, d), ("the forward's cache", like)))
    return d


# ----------------------------------------------------------------------------------------------------
# Attention over image regions (SPEC §10): soft attention of Xu et al. 2015, as EECS 498-007 poses it
# ----------------------------------------------------------------------------------------------------
#
# R is the number of image regions. A (N, R, H) holds the regions already projected to the hidden size.
# Attention scores each region against a hidden state h: s = A h / sqrt(H) (N, R), weights w =
# softmax(s) over R, context attn = sum_r w_r A_r (N, H). The attention LSTM is the LSTM above whose gate
# pre-activations also read the context through their own weights: a = x Wx + h Wh + attn Wattn + b, with
# attn recomputed from the previous h at every step and h0 = c0 = the mean of A over the regions.
#
# Backward through the softmax (one row of weights w, upstream dw): ds = w * (dw - sum(dw * w)).

def attention_forward(prev_h, A):
    """Scaled dot-product attention of one hidden state over R region vectors.

    The minibatch size is N, the number of regions R and the hidden size H. Each region is scored
    against the hidden state, ``scores = A prev_h / sqrt(H)``; the weights are the softmax of the scores
    over the R regions, and the context is the weighted sum of the regions.

    Inputs:
    - prev_h: hidden state, of shape (N, H), floating.
    - A: projected region features, of shape (N, R, H), R >= 1.

    Returns a tuple of:
    - attn: the context, of shape (N, H).
    - cache: (prev_h, A, weights) with weights (N, R), the attention weights (each row sums to 1).
    """
    fn = "attention_forward"
    prev_h = float_array(fn, "prev_h", prev_h, 2)
    A = _check_regions(fn, A, prev_h.shape[0], prev_h.shape[1])
    same_device(fn, (("prev_h", prev_h), ("A", A)))
    xp = get_array_module(A)
    N, R, H = A.shape
    dtype = _result_dtype(prev_h, A)
    weights = xp.empty((N, R), dtype=dtype)
    _attention_weights(xp, A, prev_h, weights)
    attn = (weights[:, None, :] @ A)[:, 0, :]       # (N, H), sum over regions of w_r A_r
    return attn.astype(dtype, copy=False), (prev_h, A, weights)


def attention_backward(dattn, cache):
    """Backward pass of attention_forward.

    Inputs:
    - dattn: gradient of the context, of shape (N, H).
    - cache: the cache from attention_forward.

    Returns a tuple of:
    - dprev_h: gradient of the hidden state, of shape (N, H).
    - dA: gradient of the projected region features, of shape (N, R, H).
    """
    prev_h, A, weights = cache
    N, R, H = A.shape
    dattn = _check_upstream("attention_backward", "dattn", dattn, (N, H), like=weights)
    dA = weights[:, :, None] * dattn[:, None, :]     # (N, R, H), through attn = sum_r w_r A_r
    dscores = (A @ dattn[:, :, None])[:, :, 0]       # (N, R), gradient of the weights
    _attention_weights_backward(weights, dscores, H)  # now of the products A prev_h
    dprev_h = (dscores[:, None, :] @ A)[:, 0, :]     # (N, H), through scores = A prev_h / sqrt(H)
    dA += dscores[:, :, None] * prev_h[:, None, :]
    return dprev_h, dA


def lstm_attention_step_forward(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b):
    """One timestep of an attention LSTM: the LSTM of lstm_step_forward whose gates also read a context.

    The input has dimension D, the hidden state dimension H, and the minibatch size is N. The activation
    ``a = x Wx + prev_h Wh + attn Wattn + b`` of shape (N, 4H) is split in the order i, f, o, g and used
    as in lstm_step_forward. ``attn`` is usually ``attention_forward(prev_h, A)``'s context.

    Inputs:
    - x: input data, of shape (N, D), floating.
    - prev_h: previous hidden state, of shape (N, H).
    - prev_c: previous cell state, of shape (N, H).
    - attn: the attention context, of shape (N, H).
    - Wx: input-to-hidden weights, of shape (D, 4H).
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - Wattn: context-to-hidden weights, of shape (H, 4H).
    - b: biases, of shape (4H,).

    Returns a tuple of:
    - next_h: next hidden state, of shape (N, H).
    - next_c: next cell state, of shape (N, H).
    - cache: (x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c) with gates the activated (N, 4H)
      i, f, o, g and tanh_c (N, H) = tanh(next_c).
    """
    fn = "lstm_attention_step_forward"
    x, prev_h, Wx, Wh, b = check_recurrent_args(fn, x, prev_h, Wx, Wh, b, 4, True)
    N, H = prev_h.shape
    prev_c = float_array(fn, "prev_c", prev_c, 2)
    expect_shape(fn, "prev_c", prev_c, (("N", N), ("H", H)))
    attn = float_array(fn, "attn", attn, 2)
    expect_shape(fn, "attn", attn, (("N", N), ("H", H)))
    Wattn = _check_wattn(fn, Wattn, H)
    same_device(fn, (("x", x), ("prev_c", prev_c), ("attn", attn), ("Wattn", Wattn)))
    xp = get_array_module(x)
    dtype = _result_dtype(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)
    gates = (x @ Wx + attn @ Wattn + b).astype(dtype, copy=False)   # (N, 4H)
    next_c, tanh_c, next_h, ig = (xp.empty((N, H), dtype=dtype) for _ in range(4))
    _lstm_step_gates(xp, gates, prev_h @ Wh, prev_c.astype(dtype, copy=False), next_c, tanh_c, next_h, ig)
    return next_h, next_c, (x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c)


def lstm_attention_step_backward(dnext_h, dnext_c, cache):
    """Backward pass for one timestep of an attention LSTM.

    Inputs:
    - dnext_h: gradient of the next hidden state, of shape (N, H).
    - dnext_c: gradient of the next cell state, of shape (N, H).
    - cache: the cache from lstm_attention_step_forward.

    Returns a tuple of:
    - dx: gradient of the input, of shape (N, D).
    - dprev_h: gradient of the previous hidden state, of shape (N, H).
    - dprev_c: gradient of the previous cell state, of shape (N, H).
    - dattn: gradient of the context, of shape (N, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H).
    - dWattn: gradient of the context-to-hidden weights, of shape (H, 4H).
    - db: gradient of the biases, of shape (4H,).
    """
    fn = "lstm_attention_step_backward"
    x, prev_h, prev_c, attn, Wx, Wh, Wattn, gates, tanh_c = cache
    N, H = tanh_c.shape
    dnext_h = _check_upstream(fn, "dnext_h", dnext_h, (N, H), like=gates)
    dnext_c = _check_upstream(fn, "dnext_c", dnext_c, (N, H), like=gates)
    xp = get_array_module(gates)
    dprev_c = dnext_c.astype(gates.dtype, copy=True)    # updated in place to the gradient of prev_c
    da = xp.empty_like(gates)                            # (N, 4H), gradients of the gate pre-activations
    dht, tmp = xp.empty((N, H), dtype=gates.dtype), xp.empty((N, H), dtype=gates.dtype)
    no_later_steps = xp.zeros((N, H), dtype=gates.dtype)
    _lstm_step_gates_backward(xp, gates, tanh_c, prev_c, dnext_h, no_later_steps, dprev_c, da, dht, tmp)
    dx = da @ Wx.T              # through x Wx
    dprev_h = da @ Wh.T         # through prev_h Wh
    dattn = da @ Wattn.T        # through attn Wattn
    dWx = x.T @ da
    dWh = prev_h.T @ da
    dWattn = attn.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dattn, dWx, dWh, dWattn, db


def lstm_attention_forward(x, A, Wx, Wh, Wattn, b, workspace=None):
    """Run an attention LSTM over a whole sequence of T timesteps.

    The input has dimension D, the hidden size is H, the minibatch size is N, the sequence length T and
    the number of regions R. The initial hidden and cell states are both the mean of A over the regions;
    at every step the context ``attention_forward(h_prev, A)`` enters the gates through Wattn (see
    lstm_attention_step_forward).

    The context's share of the gates, ``attn Wattn = sum_r w_r (A_r Wattn)``, is computed the cheaper way
    for the sizes given: when R < T the regions are multiplied by Wattn once, (N, R, 4H), and each step
    only weights them; otherwise each step multiplies its context by Wattn. Both give the same values.

    Inputs:
    - x: input data, of shape (N, T, D), floating.
    - A: projected region features, of shape (N, R, H), R >= 1.
    - Wx: input-to-hidden weights, of shape (D, 4H).
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - Wattn: context-to-hidden weights, of shape (H, 4H).
    - b: biases, of shape (4H,).
    - workspace: None (fresh arrays), or a :class:`cs231n.workspace.Workspace` whose buffers hold h
      and the cache, valid until its next use (see that module).

    Returns a tuple of:
    - h: hidden states for the whole sequence, of shape (N, T, H).
    - cache: a tuple of time-major arrays for the backward pass; its element ``weights`` (index 6) holds
      the attention weights of every step, of shape (T, N, R).
    """
    fn = "lstm_attention_forward"
    x = float_array(fn, "x", x, 3)
    N, T, D = x.shape
    A = _check_regions(fn, A, N)
    H = A.shape[2]
    Wx, Wh, b = float_array(fn, "Wx", Wx, 2), float_array(fn, "Wh", Wh, 2), float_array(fn, "b", b, 1)
    expect_shape(fn, "Wx", Wx, (("D", D), ("4H", 4 * H)), gate_hint(Wx, H, 4))
    expect_shape(fn, "Wh", Wh, (("H", H), ("4H", 4 * H)), gate_hint(Wh, H, 4))
    Wattn = _check_wattn(fn, Wattn, H)
    expect_shape(fn, "b", b, (("4H", 4 * H),), gate_hint(b, H, 4))
    same_device(fn, (("x", x), ("A", A), ("Wx", Wx), ("Wh", Wh), ("Wattn", Wattn), ("b", b)))
    xp = get_array_module(x)
    dtype = _result_dtype(x, A, Wx, Wh, Wattn, b)
    A = A.astype(dtype, copy=False)
    ws = workspace
    xt = _time_major(xp, x, dtype, ws)                             # (T, N, D)
    gates = _empty(xp, ws, "gates", (T, N, 4 * H), dtype)
    # Input projection of all timesteps in one matrix product, into the gates buffer (activated in place).
    xp.matmul(xt.reshape(T * N, D), Wx, out=gates.reshape(T * N, 4 * H))
    gates += b
    h, core = _lstm_attention_recurrence(xp, gates, A, Wh, Wattn, gates, ws)
    A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn = core
    return h, (xt, A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wx, Wh, Wattn)


def _lstm_attention_recurrence(xp, ax, A, Wh, Wattn, gates, ws):
    """The recurrence of an attention LSTM whose input projections ax (T, N, 4H) = x Wx + b are known.

    Writes the activated gates of every step into ``gates`` (T, N, 4H), which may be ax itself (then
    overwritten); returns h (N, T, H) and (A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh,
    Wattn), the part of lstm_attention_forward's cache that does not concern x.
    """
    T, N = ax.shape[0], ax.shape[1]
    R, H = A.shape[1], A.shape[2]
    dtype = gates.dtype
    hs = _empty(xp, ws, "hs", (T + 1, N, H), dtype)               # hs[t + 1] is h after step t
    cs = _empty(xp, ws, "cs", (T + 1, N, H), dtype)
    tanh_c = _empty(xp, ws, "tanh_c", (T, N, H), dtype)
    weights = _empty(xp, ws, "weights", (T, N, R), dtype)         # attention weights of every step
    hs[0] = A.mean(axis=1)
    cs[0] = hs[0]
    regions_first = R < T
    if regions_first:   # each region's share of the gates, (N, R, 4H)
        ctx_in = _empty(xp, ws, "AW", (N, R, 4 * H), dtype)
        xp.matmul(A.reshape(N * R, H), Wattn, out=ctx_in.reshape(N * R, 4 * H))
    else:               # the context of every step, (T, N, H)
        ctx_in = _empty(xp, ws, "attns", (T, N, H), dtype)
    ah = _empty(xp, ws, "ah", (N, 4 * H), dtype)                  # the step's h_prev Wh + attn Wattn
    ctx = _empty(xp, ws, "ctx", (N, 4 * H), dtype)
    ig = _empty(xp, ws, "ig", (N, H), dtype)
    for t in range(T):
        _attention_weights(xp, A, hs[t], weights[t])
        xp.matmul(hs[t], Wh, out=ah)
        if regions_first:
            xp.matmul(weights[t][:, None, :], ctx_in, out=ctx[:, None, :])       # sum_r w_r A_r Wattn
        else:
            xp.matmul(weights[t][:, None, :], A, out=ctx_in[t][:, None, :])      # attn = sum_r w_r A_r
            xp.matmul(ctx_in[t], Wattn, out=ctx)
        ah += ctx
        _lstm_step_gates(xp, gates[t], ah, cs[t], cs[t + 1], tanh_c[t], hs[t + 1], ig,
                         ax=None if ax is gates else ax[t])
    h = _batch_major(xp, hs[1:], ws, "h")                          # (N, T, H)
    return h, (A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn)


def lstm_attention_backward(dh, cache, workspace=None):
    """Backward pass of an attention LSTM over a whole sequence.

    Inputs:
    - dh: upstream gradients of every hidden state, of shape (N, T, H).
    - cache: the cache from lstm_attention_forward.
    - workspace: None, or a Workspace holding dx, dA and the work arrays (the weight gradients are
      always fresh arrays).

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D).
    - dA: gradient of the projected region features, of shape (N, R, H).
    - dWx: gradient of the input-to-hidden weights, of shape (D, 4H).
    - dWh: gradient of the hidden-to-hidden weights, of shape (H, 4H).
    - dWattn: gradient of the context-to-hidden weights, of shape (H, 4H).
    - db: gradient of the biases, of shape (4H,).
    """
    xt, A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wx, Wh, Wattn = cache
    T, N, D = xt.shape
    H = A.shape[2]
    dh = _check_upstream("lstm_attention_backward", "dh", dh, (N, T, H), like=hs)
    xp = get_array_module(hs)
    core = (A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn)
    da, dA, dWh, dWattn = _lstm_attention_recurrence_backward(xp, dh, core, workspace)
    da2 = da.reshape(T * N, 4 * H)
    dx = _input_gradient(xp, da2, Wx, (T, N, D), workspace)
    dWx = xt.reshape(T * N, D).T @ da2               # one product over all steps
    db = _column_sums(da2)
    return dx, dA, dWx, dWh, dWattn, db


def _lstm_attention_recurrence_backward(xp, dh, cache, ws):
    """Backward of :func:`_lstm_attention_recurrence` from its cache: returns (da (T, N, 4H), the
    gradients of the gate pre-activations (so of ax), dA (N, R, H), dWh (H, 4H), dWattn (H, 4H))."""
    A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn = cache
    T, N, H = tanh_c.shape
    R = A.shape[1]
    dtype = hs.dtype
    da = _empty(xp, ws, "da", (T, N, 4 * H), dtype)           # gradients of the gate pre-activations
    dscores = _empty(xp, ws, "dscores", (T, N, R), dtype)     # gradients of the attention scores
    dprev_h = _empty(xp, ws, "dprev_h", (N, H), dtype)
    dc = _empty(xp, ws, "dc", (N, H), dtype)                  # gradient flowing into the cell state
    dprev_h[...] = 0
    dc[...] = 0
    dht = _empty(xp, ws, "dht", (N, H), dtype)
    tmp = _empty(xp, ws, "tmp", (N, H), dtype)
    if not regions_first:
        dattns = _empty(xp, ws, "dattns", (T, N, H), dtype)   # gradients of the contexts, all steps
    for t in reversed(range(T)):
        _lstm_step_gates_backward(xp, gates[t], tanh_c[t], cs[t], dh[:, t, :], dprev_h, dc, da[t], dht, tmp)
        # gradient of the weights, through the context's share of the gates
        if regions_first:
            xp.matmul(ctx_in, da[t][:, :, None], out=dscores[t][:, :, None])      # AW da
        else:
            xp.matmul(da[t], Wattn.T, out=dattns[t])                               # through attn Wattn
            xp.matmul(A, dattns[t][:, :, None], out=dscores[t][:, :, None])       # through sum_r w_r A_r
        _attention_weights_backward(weights[t], dscores[t], H)
        xp.matmul(da[t], Wh.T, out=dprev_h)                   # through h_prev Wh
        xp.matmul(dscores[t][:, None, :], A, out=tmp[:, None, :])
        dprev_h += tmp                                        # through the scores A h_prev / sqrt(H)
    da2 = da.reshape(T * N, 4 * H)
    dWh = hs[:-1].reshape(T * N, H).T @ da2          # one product over all steps
    # dA, over all steps at once: through the scores, through the contexts, and through h0 = c0 = mean(A).
    dA = _empty(xp, ws, "dA", (N, R, H), dtype)
    xp.matmul(dscores.transpose(1, 2, 0), hs[:-1].transpose(1, 0, 2), out=dA)   # (N, R, T) (N, T, H)
    w_nrt = weights.transpose(1, 2, 0)                                      # (N, R, T)
    if regions_first:
        dAW = w_nrt @ da.transpose(1, 0, 2)                                 # (N, R, 4H)
        dA += (dAW.reshape(N * R, 4 * H) @ Wattn.T).reshape(N, R, H)
        dWattn = A.reshape(N * R, H).T @ dAW.reshape(N * R, 4 * H)
    else:
        dA += w_nrt @ dattns.transpose(1, 0, 2)
        dWattn = ctx_in.reshape(T * N, H).T @ da2
    dprev_h += dc
    dprev_h *= 1.0 / R
    dA += dprev_h[:, None, :]
    return da, dA, dWh, dWattn


def lstm_attention_projected_forward(ax, A, Wh, Wattn, workspace=None):
    """lstm_attention_forward from the input projections of every step (see "From known input
    projections" above).

    Inputs:
    - ax: ``x Wx + b`` of every step, time-major, of shape (T, N, 4H), floating (not modified).
    - A: projected region features, of shape (N, R, H), R >= 1.
    - Wh: hidden-to-hidden weights, of shape (H, 4H).
    - Wattn: context-to-hidden weights, of shape (H, 4H).
    - workspace: None, or a Workspace for h and the cache (as in lstm_attention_forward).

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: (A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn), time-major as in
      lstm_attention_forward's cache (weights (T, N, R): the attention weights of every step).
    """
    fn = "lstm_attention_projected_forward"
    ax = float_array(fn, "ax", ax, 3)
    T, N = ax.shape[0], ax.shape[1]
    A = _check_regions(fn, A, N)
    H = A.shape[2]
    Wh = float_array(fn, "Wh", Wh, 2)
    expect_shape(fn, "Wh", Wh, (("H", H), ("4H", 4 * H)), gate_hint(Wh, H, 4))
    Wattn = _check_wattn(fn, Wattn, H)
    expect_shape(fn, "ax", ax, (("T", T), ("N", N), ("4H", 4 * H)), gate_hint(ax, H, 4))
    same_device(fn, (("ax", ax), ("A", A), ("Wh", Wh), ("Wattn", Wattn)))
    xp = get_array_module(ax)
    dtype = _result_dtype(ax, A, Wh, Wattn)
    gates = _empty(xp, workspace, "gates", ax.shape, dtype)
    return _lstm_attention_recurrence(xp, ax, A.astype(dtype, copy=False), Wh, Wattn, gates, workspace)


def lstm_attention_projected_backward(dh, cache, workspace=None):
    """Backward pass of lstm_attention_projected_forward: returns (dax (T, N, 4H), dA (N, R, H),
    dWh (H, 4H), dWattn (H, 4H)). dax, the gradient of ax, is time-major and, with a workspace, one of
    its buffers."""
    A, hs, cs, gates, tanh_c, weights, ctx_in, regions_first, Wh, Wattn = cache
    T, N, H = tanh_c.shape
    dh = _check_upstream("lstm_attention_projected_backward", "dh", dh, (N, T, H), like=hs)
    return _lstm_attention_recurrence_backward(get_array_module(hs), dh, cache, workspace)


def _attention_weights(xp, A, h, out):
    """Write softmax over R of ``A h / sqrt(H)`` into ``out`` (N, R); A (N, R, H), h (N, H)."""
    xp.matmul(A, h[:, :, None], out=out[:, :, None])
    out *= 1.0 / np.sqrt(A.shape[2])
    out -= out.max(axis=1, keepdims=True)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


def _attention_weights_backward(weights, d, H):
    """Turn ``d`` (N, R), the gradient of the weights, into that of ``A h`` in place (softmax, 1/sqrt(H))."""
    d -= (d * weights).sum(axis=1, keepdims=True)
    d *= weights                                     # ds = w * (dw - sum(dw * w))
    d *= 1.0 / np.sqrt(H)


def _check_regions(fn, A, N, H=None):
    """Check region features A (N, R, H) with R >= 1; N (and H, when given) come from prev_h or x."""
    A = float_array(fn, "A", A, 3)
    H = A.shape[2] if H is None else H
    if A.shape[0] != N or A.shape[2] != H or A.shape[1] == 0:
        source = "x" if fn == "lstm_attention_forward" else "prev_h"
        raise ValueError(f"{fn}: A should have shape (N, R, H) = ({N}, R, {H}) with R >= 1 regions "
                         f"(N from {source}), got {A.shape}")
    return A


def _check_wattn(fn, Wattn, H):
    Wattn = float_array(fn, "Wattn", Wattn, 2)
    expect_shape(fn, "Wattn", Wattn, (("H", H), ("4H", 4 * H)), gate_hint(Wattn, H, 4))
    return Wattn
