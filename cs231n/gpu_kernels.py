"""Fused GPU kernels for the per-timestep gate math of the LSTM and GRU and for the optimizers (CuPy only).

On a GPU, the numpy-style in-place code of one LSTM or GRU timestep (``_lstm_step_gates`` and friends in
``rnn_layers``) is a dozen small kernel launches over (N, H) arrays; a step's real work is one matrix
product, so launches dominate. Each function here does that elementwise work in ONE CuPy
``ElementwiseKernel`` with exactly the equations (and the buffers) of its numpy twin in ``rnn_layers``,
which stays the reference and the code path for numpy and for anything that is not real CuPy.

The kernels run over the (N, H) hidden units: thread ``i`` owns unit ``col = i % H`` of batch row
``row = i / H`` and reads and writes that unit's gate in every block of the row of the (N, 4H) or
(N, 3H) gate arrays, at ``row * gH + k * H + col`` for block k. ``T`` is the float type of the layer
(float32 or float64); ``U`` the type of an upstream gradient, which may differ.

``layernorm_forward``/``layernorm_backward`` normalize rows with reductions (``ReductionKernel``) and one
elementwise kernel each, with the arithmetic of ``transformer_layers``' numpy code; the forward also
norms a residual sum ``(x + r) + c`` without forming it. ``bias_relu_dropout``/``relu_dropout_backward``
are the feed-forward block's bias, ReLU and dropout, and ``add4`` a four-way gradient sum.

``nonfinite_code`` checks a gradient and its updated weight for NaN/inf in one ``ReductionKernel``.

The optimizers' kernels (``adam``, ``rmsprop``, ``sgd_momentum``, ``sgd``) update one parameter in one
launch: the new weights and state from the old ones and the gradient, with the arithmetic of the rules
in ``cs231n.optim`` (the hyperparameters rounded to the parameter's type ``T`` as numpy rounds a Python
float meeting a float32 array, the same order of operations), instead of about a dozen launches each.

Nothing here imports CuPy: the kernels are built on first use from the module of the arrays, which is
CuPy, so a CPU-only program never pays for the import. ``ENABLED = False`` switches them off (the
generic xp code then runs on the GPU too, e.g. to compare the two in tests/test_gpu_kernels.py).
"""
import sys

import numpy as np

ENABLED = True

# sigmoid as 0.5 * tanh(x / 2) + 0.5 (no overflow for any x); rnn_layers computes the same function on the
# host as 1 / (1 + exp(-x)), cheaper with numpy's exp.
_PREAMBLE = """
template <typename F> __device__ F cs231n_sigmoid(F x) {
  return tanh(x * (F)0.5) * (F)0.5 + (F)0.5;
}
"""

# name -> (in_params, out_params, operation)
_SOURCES = {
    "cs231n_lstm_step_forward": (
        "raw T ah, T c_prev, int64 H",
        "raw T a, T c, T tanh_c, T h",
        """
        const ptrdiff_t row = i / H, col = i % H;
        const ptrdiff_t gi_at = row * 4 * H + col;  // gates i, f, o, g of this unit: +0, +H, +2H, +3H
        const T gi = cs231n_sigmoid(a[gi_at] + ah[gi_at]);
        const T gf = cs231n_sigmoid(a[gi_at + H] + ah[gi_at + H]);
        const T go = cs231n_sigmoid(a[gi_at + 2 * H] + ah[gi_at + 2 * H]);
        const T gg = tanh(a[gi_at + 3 * H] + ah[gi_at + 3 * H]);
        a[gi_at] = gi;
        a[gi_at + H] = gf;
        a[gi_at + 2 * H] = go;
        a[gi_at + 3 * H] = gg;
        c = gf * c_prev + gi * gg;
        tanh_c = tanh(c);
        h = go * tanh_c;
        """,
    ),
    "cs231n_lstm_step_backward": (
        "raw T a, T tc, T c_prev, U dh_t, T dprev_h, int64 H",
        "T dc, raw T da",
        """
        const ptrdiff_t row = i / H, col = i % H;
        const ptrdiff_t gi_at = row * 4 * H + col;  // gates i, f, o, g of this unit: +0, +H, +2H, +3H
        const T gi = a[gi_at], gf = a[gi_at + H], go = a[gi_at + 2 * H], gg = a[gi_at + 3 * H];
        const T dht = (T)dh_t + dprev_h;              // this step's loss plus the later steps
        const T dcell = dc + dht * go * (1 - tc * tc);  // through h = o * tanh(c)
        da[gi_at] = dcell * gg * gi * (1 - gi);          // input gate
        da[gi_at + H] = dcell * c_prev * gf * (1 - gf);  // forget gate
        da[gi_at + 2 * H] = dht * tc * go * (1 - go);    // output gate
        da[gi_at + 3 * H] = dcell * gi * (1 - gg * gg);  // block input
        dc = dcell * gf;                                 // through f * c_prev
        """,
    ),
    "cs231n_gru_step_forward": (
        "raw T ah, raw T bh, T h_prev, int64 H",
        "raw T a, T hn, T h",
        """
        const ptrdiff_t row = i / H, col = i % H;
        const ptrdiff_t r_at = row * 3 * H + col;  // r, z, n of this unit: +0, +H, +2H
        const T h_r = ah[r_at] + bh[col];
        const T h_z = ah[r_at + H] + bh[col + H];
        const T h_n = ah[r_at + 2 * H] + bh[col + 2 * H];  // h_prev Wh_n + bh_n
        const T r = cs231n_sigmoid(a[r_at] + h_r);
        const T z = cs231n_sigmoid(a[r_at + H] + h_z);
        const T cand = tanh(a[r_at + 2 * H] + r * h_n);
        a[r_at] = r;
        a[r_at + H] = z;
        a[r_at + 2 * H] = cand;
        hn = h_n;
        h = cand + z * (h_prev - cand);
        """,
    ),
    "cs231n_gru_step_backward": (
        "raw T a, T hn, T h_prev, U dh_t, T dprev_h, int64 H",
        "raw T dax, raw T dah, T dh_z",
        """
        const ptrdiff_t row = i / H, col = i % H;
        const ptrdiff_t r_at = row * 3 * H + col;  // r, z, n of this unit: +0, +H, +2H
        const T r = a[r_at], z = a[r_at + H], cand = a[r_at + 2 * H];
        const T dht = (T)dh_t + dprev_h;
        const T dcand = dht * (1 - z) * (1 - cand * cand);  // candidate, through tanh
        const T dr = dcand * hn * r * (1 - r);               // reset gate, through r * hn
        const T dz = dht * (h_prev - cand) * z * (1 - z);    // update gate
        dax[r_at] = dr;
        dax[r_at + H] = dz;
        dax[r_at + 2 * H] = dcand;
        dah[r_at] = dr;
        dah[r_at + H] = dz;
        dah[r_at + 2 * H] = dcand * r;                       // the candidate sees h Wh_n through r
        dh_z = dht * z;                                      // through z * h_prev
        """,
    ),
    # Optimizers: one launch per parameter; inputs are never written (new arrays out, as in optim).
    "cs231n_sgd": (
        "T w, T dw, float64 lr",
        "T w_out",
        "w_out = w - (T)lr * dw;",
    ),
    "cs231n_sgd_momentum": (
        "T w, T dw, T v, float64 mu, float64 lr",
        "T w_out, T v_out",
        """
        const T v1 = (T)mu * v - (T)lr * dw;
        v_out = v1;
        w_out = w + v1;
        """,
    ),
    "cs231n_rmsprop": (
        "T w, T dw, T cache, float64 d, float64 lr, float64 eps",
        "T w_out, T cache_out",
        """
        const T c1 = (T)d * cache + (T)(1 - d) * dw * dw;
        cache_out = c1;
        w_out = w - (T)lr * dw / (sqrt(c1) + (T)eps);
        """,
    ),
    "cs231n_adam": (  # c1, c2: the bias corrections 1 - beta1**t and 1 - beta2**t (host doubles)
        "T w, T dw, T m, T v, float64 lr, float64 b1, float64 b2, float64 eps, float64 c1, float64 c2",
        "T w_out, T m_out, T v_out",
        """
        const T m1 = (T)b1 * m + (T)(1 - b1) * dw;
        const T v1 = (T)b2 * v + (T)(1 - b2) * (dw * dw);
        m_out = m1;
        v_out = v1;
        w_out = w - (T)lr * (m1 / (T)c1) / (sqrt(v1 / (T)c2) + (T)eps);
        """,
    ),
}

# name -> (in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, reduce_type)
_REDUCTIONS = {
    # The solver's finiteness check of one parameter in one launch: 1 when the gradient holds a NaN or
    # inf, 2 when the updated weight does, 3 when both do, 0 when all is finite (float64, so that it
    # is read back with the loss in the same array).
    "cs231n_nonfinite_code": ("T g, T w", "float64 code", "(isfinite(g) ? 0 : 1) | (isfinite(w) ? 0 : 2)",
                              "a | b", "code = a", "0", "int32"),
}

# Layer normalization over the last axis of an (L, D) array (transformer_layers.layernorm_*), with the
# numpy code's arithmetic: mean = sum / D, rstd = 1 / sqrt(sum((x - mean)^2) / D + eps).
# Layer norm of the sum x + r + c of up to three addends (a sub-layer's input, its output and a bias
# before the norm of a post-norm Transformer layer; 0-d zeros for the ones not given), summed in that
# order wherever it is read, so the sum is never written out.
_SOURCES["cs231n_layernorm_forward"] = (
    "T x, T r, T c, T s, T rstd, T gamma, T beta, int64 D",
    "T xhat, T out",
    """
    xhat = ((x + r + c) - s / (T)D) * rstd;
    out = xhat * gamma + beta;
    """,
)
# The feed-forward block's first bias, ReLU and dropout: pre = h + b (written back, the backward's ReLU
# mask), hidden = max(pre, 0) * keep; and its backward through both: dhidden * keep * (pre > 0).
_SOURCES["cs231n_bias_relu_dropout"] = (
    "T b, T keep",
    "T pre, T hidden",
    """
    pre = pre + b;
    hidden = (pre > (T)0 ? pre : (T)0) * keep;
    """,
)
_SOURCES["cs231n_relu_dropout_backward"] = (
    "T pre, T keep",
    "T dhidden",
    "dhidden = pre > (T)0 ? dhidden * keep : (T)0;",
)
# The gradient that meets at a layer's input from several branches (query, key, value, residual).
_SOURCES["cs231n_add4"] = ("T a, T b, T c, T d", "T y", "y = ((a + b) + c) + d;")
_SOURCES["cs231n_layernorm_backward"] = (  # sg = sum(g), sgx = sum(g * xhat) over the row, g = dout * gamma
    "T dout, T gamma, T xhat, T rstd, T sg, T sgx, int64 D",
    "T dx",
    "dx = (dout * gamma - sg / (T)D - xhat * (sgx / (T)D)) * rstd;",
)
# Dropout's multiplier from float32 uniforms u: 0 where u < p, else 1 / (1 - p) (the numpy-style code's
# (u >= p) * scale in one launch).
_SOURCES["cs231n_dropout_keep"] = (
    "float32 u, float32 p, float64 scale",
    "T keep",
    "keep = u >= p ? (T)scale : (T)0;",
)
# temporal_softmax_loss over (R, V) rows: per row, the masked log-probability of its target, and the
# gradient (m / N) * (softmax - onehot(y)) (the numpy code's order: exp(x - shift) * (w / norm), then
# minus w at the target).
_SOURCES["cs231n_softmax_loss_rows"] = (
    "raw T x, I y, T shift, T norm, M m, int64 V",
    "T term",
    "term = (T)m * ((x[i * V + y] - shift) - log(norm));",
)
_SOURCES["cs231n_softmax_loss_dx"] = (
    "T x, T shift, T norm, M m, I y, int64 V, int64 N",
    "T dx",
    """
    const T w = (T)m / (T)N;
    const T e = exp(x - shift) * (w / norm);
    dx = (i % V == y) ? e - w : e;
    """,
)
# Attention's softmax over the last axis of the scores s (N, h, S, T), scaled and biased by the mask's
# additive bias: x = s * scale + bias, probs = exp(x - max) / sum(exp(x - max)) (the numpy code's order),
# and with dropout the weights probs * keep in the same launch. Backward: ds = (dP keep - r) probs scale
# with r the row sums of dP keep probs.
_LOWEST = "-3.4028234663852886e+38"  # the row max's identity: below every finite float32 score
_SOURCES["cs231n_attention_probs"] = (
    "T s, T bias, T m, T z, float64 scale",
    "T probs",
    "probs = exp((s * (T)scale + bias) - m) / z;",
)
_SOURCES["cs231n_attention_probs_dropout"] = (
    "T s, T bias, T m, T z, T keep, float64 scale",
    "T probs, T weights",
    """
    probs = exp((s * (T)scale + bias) - m) / z;
    weights = probs * keep;
    """,
)
_SOURCES["cs231n_attention_dscores"] = (
    "T dp, T probs, T r, float64 scale",
    "T ds",
    "ds = (dp - r) * probs * (T)scale;",
)
_SOURCES["cs231n_attention_dscores_dropout"] = (
    "T dp, T keep, T probs, T r, float64 scale",
    "T ds",
    "ds = (dp * keep - r) * probs * (T)scale;",
)

_REDUCTIONS.update({
    "cs231n_attention_max": ("T s, T bias, float64 scale", "T y", "s * (T)scale + bias", "a > b ? a : b", "y = a",
                             _LOWEST, None),
    "cs231n_attention_sum_exp": ("T s, T bias, T m, float64 scale", "T y", "exp((s * (T)scale + bias) - m)",
                                 "a + b", "y = a", "0", None),
    # index_array's range check: True when every index is in [0, upper)
    "cs231n_in_range": ("I u, int64 upper", "bool y", "u >= 0 && u < upper", "a && b", "y = a",
                        "true", "bool"),
    "cs231n_sum_exp_shifted": ("T u, T shift", "T y", "exp(u - shift)", "a + b", "y = a", "0", None),
    "cs231n_neg_sum_over": ("T u, int64 N", "T y", "u", "a + b", "y = -a / (T)N", "0", None),
    "cs231n_sum": ("T u", "T y", "u", "a + b", "y = a", "0", None),
    "cs231n_sum_prod": ("T u, T v", "T y", "u * v", "a + b", "y = a", "0", None),
    "cs231n_sum_prod3": ("T u, T v, T w", "T y", "u * v * w", "a + b", "y = a", "0", None),
    "cs231n_sum3": ("T u, T v, T w", "T y", "(u + v) + w", "a + b", "y = a", "0", None),
    "cs231n_layernorm_rstd": ("T u, T v, T w, T s, int64 D, float64 eps", "T rstd",
                              "(((u + v) + w) - s / (T)D) * (((u + v) + w) - s / (T)D)", "a + b",
                              "rstd = (T)1 / sqrt(a / (T)D + (T)eps)", "0", None),
})

_kernels = {}


def fused(xp):
    """True when ``xp`` is real CuPy (it has ``ElementwiseKernel``) and the fused kernels are enabled."""
    return xp is not np and ENABLED and getattr(xp, "ElementwiseKernel", None) is not None


def _kernel(name):
    cupy = sys.modules["cupy"]  # imported by whoever made the arrays
    kernel = _kernels.get((id(cupy), name))
    if kernel is None:
        in_params, out_params, operation = _SOURCES[name]
        kernel = _kernels[(id(cupy), name)] = cupy.ElementwiseKernel(in_params, out_params, operation, name,
                                                         preamble=_PREAMBLE)
    return kernel


def _reduction(name):
    cupy = sys.modules["cupy"]
    kernel = _kernels.get((id(cupy), name))
    if kernel is None:
        in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, reduce_type = _REDUCTIONS[name]
        kernel = _kernels[(id(cupy), name)] = cupy.ReductionKernel(
            in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name,
            **({} if reduce_type is None else {"reduce_type": reduce_type}))
    return kernel


def lstm_step_forward(a, ah, c_prev, c, tanh_c, h):
    """``rnn_layers._lstm_step_gates`` in one kernel: a (N, 4H) += ah, activated; c, tanh_c, h (N, H)."""
    _kernel("cs231n_lstm_step_forward")(ah, c_prev, c.shape[1], a, c, tanh_c, h)


def lstm_step_backward(a, tc, c_prev, dh_t, dprev_h, dc, da):
    """``rnn_layers._lstm_step_gates_backward`` in one kernel: writes da (N, 4H), updates dc (N, H)."""
    _kernel("cs231n_lstm_step_backward")(a, tc, c_prev, dh_t, dprev_h, tc.shape[1], dc, da)


def gru_step_forward(a, ah, bh, h_prev, hn, h):
    """``rnn_layers._gru_step_gates`` in one kernel: a (N, 3H) activated; hn, h (N, H). ah is not written."""
    bh = bh.astype(a.dtype, copy=False)  # the layer's dtype (bh may be float32 in a float64 layer)
    _kernel("cs231n_gru_step_forward")(ah, bh, h_prev, h.shape[1], a, hn, h)


def gru_step_backward(a, hn, h_prev, dh_t, dprev_h, dax, dah, dh_z):
    """``rnn_layers._gru_step_gates_backward`` in one kernel: writes dax, dah (N, 3H) and dh_z (N, H)."""
    _kernel("cs231n_gru_step_backward")(a, hn, h_prev, dh_t, dprev_h, hn.shape[1], dax, dah, dh_z)


def optimizer_fusable(xp, *arrays):
    """True when the optimizer kernels can update these arrays: real CuPy, one float dtype for all."""
    return fused(xp) and arrays[0].dtype.kind == "f" and all(a.dtype == arrays[0].dtype for a in arrays)


def sgd(w, dw, lr):
    """``optim.sgd``'s new w in one kernel."""
    return _kernel("cs231n_sgd")(w, dw, float(lr))


def sgd_momentum(w, dw, v, momentum, lr):
    """``optim.sgd_momentum``'s (new w, new velocity) in one kernel."""
    return _kernel("cs231n_sgd_momentum")(w, dw, v, float(momentum), float(lr))


def rmsprop(w, dw, cache, decay_rate, lr, eps):
    """``optim.rmsprop``'s (new w, new cache) in one kernel."""
    return _kernel("cs231n_rmsprop")(w, dw, cache, float(decay_rate), float(lr), float(eps))


def adam(w, dw, m, v, lr, beta1, beta2, eps, t):
    """``optim.adam``'s (new w, new m, new v) at step ``t`` (already incremented) in one kernel."""
    return _kernel("cs231n_adam")(w, dw, m, v, float(lr), float(beta1), float(beta2), float(eps),
                                  1 - beta1 ** t, 1 - beta2 ** t)


def nonfinite_code(g, w):
    """0-d float64: 0 when ``g`` (a gradient) and ``w`` (its updated weight, same shape) are all finite,
    plus 1 when g is not, plus 2 when w is not; one launch instead of six (isfinite, all, astype each)."""
    return _reduction("cs231n_nonfinite_code")(g, w.astype(g.dtype, copy=False))


def same_float_dtype(*arrays):
    """True when every array has one floating dtype (the kernels bind one type T)."""
    return arrays[0].dtype.kind == "f" and all(a.dtype == arrays[0].dtype for a in arrays)


def layernorm_forward(x, gamma, beta, eps, r=None, c=None):
    """``transformer_layers.layernorm_forward``'s (out, cache) in 3 launches: the row sums, the rows'
    1/std, then xhat and out together (the numpy code takes about 15). With ``r`` (x's shape) and ``c``
    (broadcast to it, e.g. a bias (D,)), of the sum ``(x + r) + c`` (a residual connection's), which
    the three kernels add as they read it: no launch for the sum, and no array for it."""
    D = x.shape[-1]
    zero = _zero(x.dtype)
    x2 = x.reshape(-1, D)
    r2 = zero if r is None else r.reshape(-1, D)
    c2 = zero if c is None else c.reshape(-1, D) if c.ndim > 1 else c
    s = _reduction("cs231n_sum3")(x2, r2, c2, axis=1, keepdims=True)                  # (L, 1)
    rstd = _reduction("cs231n_layernorm_rstd")(x2, r2, c2, s, D, float(eps), axis=1, keepdims=True)
    xhat, out = _kernel("cs231n_layernorm_forward")(x2, r2, c2, s, rstd, gamma, beta, D)
    return out.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,)), gamma)


def bias_relu_dropout(pre, b, keep, hidden):
    """The feed-forward block's ``pre += b; hidden = max(pre, 0) * keep`` in one launch (numpy: 3);
    ``keep`` None: no dropout."""
    _kernel("cs231n_bias_relu_dropout")(b, _one(pre.dtype) if keep is None else keep, pre, hidden)


def relu_dropout_backward(dhidden, pre, keep):
    """``dhidden *= keep * (pre > 0)`` in place, in one launch (numpy: 3)."""
    _kernel("cs231n_relu_dropout_backward")(pre, _one(pre.dtype) if keep is None else keep, dhidden)


def add4(a, b, c, d):
    """``((a + b) + c) + d`` in one launch (numpy: 3)."""
    return _kernel("cs231n_add4")(a, b, c, d)


def layernorm_backward(dout, xhat, rstd, gamma):
    """``transformer_layers.layernorm_backward``'s (dx, dgamma, dbeta) in 5 launches (numpy's: about 13)."""
    D = xhat.shape[-1]
    dout2, xhat2 = dout.reshape(-1, D), xhat.reshape(-1, D)
    dbeta = _reduction("cs231n_sum")(dout2, axis=0)
    dgamma = _reduction("cs231n_sum_prod")(dout2, xhat2, axis=0)
    sg = _reduction("cs231n_sum_prod")(dout2, gamma, axis=1, keepdims=True)           # (L, 1)
    sgx = _reduction("cs231n_sum_prod3")(dout2, gamma, xhat2, axis=1, keepdims=True)  # (L, 1)
    dx = _kernel("cs231n_layernorm_backward")(dout2, gamma, xhat2, rstd.reshape(-1, 1), sg, sgx, D)
    return dx.reshape(xhat.shape), dgamma, dbeta


def dropout_keep(u, p, dtype):
    """Dropout's multiplier (0 or 1 / (1 - p), of ``dtype``) from float32 uniforms, in one launch."""
    keep = sys.modules["cupy"].empty(u.shape, dtype=dtype)  # (an allocation, no launch)
    _kernel("cs231n_dropout_keep")(u, np.float32(p), 1.0 / (1.0 - p), keep)
    return keep


def column_sums(a2):
    """Sums over the rows of a 2-D array (a bias gradient) in one reduction."""
    return _reduction("cs231n_sum")(a2, axis=0)


def in_range(a, upper):
    """0-d bool: True when every entry of an integer array is an index in [0, upper); one launch."""
    return _reduction("cs231n_in_range")(a, int(upper))


def temporal_softmax_loss(x2, y2, m, N):
    """``rnn_layers.temporal_softmax_loss`` on (R, V) scores in 5 launches: (loss as a 0-d array, dx)."""
    V = x2.shape[1]
    x2 = sys.modules["cupy"].ascontiguousarray(x2)  # the rows kernel indexes it flat (no copy if it is)
    shift = x2.max(axis=1)                                                     # (R,)
    norm = _reduction("cs231n_sum_exp_shifted")(x2, shift[:, None], axis=1)    # (R,)
    terms = _kernel("cs231n_softmax_loss_rows")(x2, y2, shift, norm, m, V)    # (R,)
    loss = _reduction("cs231n_neg_sum_over")(terms, N)
    dx = _kernel("cs231n_softmax_loss_dx")(x2, shift[:, None], norm[:, None], m[:, None], y2[:, None], V, N)
    return loss, dx


_zeros = {}


def _zero(dtype):
    """A 0-d zero of ``dtype`` on the device, made once (the bias of attention without a mask)."""
    cupy = sys.modules["cupy"]
    key = (id(cupy), np.dtype(dtype))
    if key not in _zeros:
        _zeros[key] = cupy.zeros((), dtype=dtype)
    return _zeros[key]


def _one(dtype):
    """A 0-d one of ``dtype`` on the device, made once (the multiplier of no dropout)."""
    cupy = sys.modules["cupy"]
    key = (id(cupy), np.dtype(dtype), 1)
    if key not in _zeros:
        _zeros[key] = cupy.ones((), dtype=dtype)
    return _zeros[key]


def attention_softmax(scores, scale, bias, keep):
    """``softmax(scores * scale + bias)`` over the last axis in 3 launches (the numpy code: 6), and the
    dropped-out weights ``probs * keep`` in the same last launch when ``keep`` is given.
    Returns (probs, weights) (weights is probs without dropout)."""
    bias = _zero(scores.dtype) if bias is None else bias
    m = _reduction("cs231n_attention_max")(scores, bias, float(scale), axis=-1, keepdims=True)
    z = _reduction("cs231n_attention_sum_exp")(scores, bias, m, float(scale), axis=-1, keepdims=True)
    if keep is None:
        probs = _kernel("cs231n_attention_probs")(scores, bias, m, z, float(scale))
        return probs, probs
    return _kernel("cs231n_attention_probs_dropout")(scores, bias, m, z, keep, float(scale))


def attention_dscores(dP, probs, keep, scale):
    """The gradient of the scores from that of the weights in 2 launches (the numpy code: 5)."""
    if keep is None:
        r = _reduction("cs231n_sum_prod")(dP, probs, axis=-1, keepdims=True)
        return _kernel("cs231n_attention_dscores")(dP, probs, r, float(scale))
    r = _reduction("cs231n_sum_prod3")(dP, keep, probs, axis=-1, keepdims=True)
    return _kernel("cs231n_attention_dscores_dropout")(dP, keep, probs, r, float(scale))
