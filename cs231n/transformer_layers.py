"""Transformer layers as pure array functions: layer norm, attention, multi-head attention, dropout, FFN.

The same house style as :mod:`cs231n.rnn_layers`: each ``*_forward`` returns ``(out, cache)`` and each
``*_backward(dout, cache)`` returns the gradients of the forward's array arguments in the forward's
order. There is no state and no I/O; float32 inputs give float32 outputs and inputs are never written
to. Everything is vectorized over the batch and the heads: there is no Python loop over heads or
positions.

Every function computes with the array module of its inputs (:mod:`cs231n.backend`): numpy arrays
give numpy results, CuPy arrays give CuPy results on their GPU, with the same lines of code.

Letters used throughout: N minibatch, S query positions, T key/value positions, h heads, d per-head
query/key size, dv per-head value size, E model (embedding) size, M output size, F feed-forward size.

Conventions (those of cs231n's 2021+ Transformer assignment and of PyTorch):
- Attention masks: ``mask[i, j] == 0`` (or False) means query i may NOT attend to key j; nonzero means
  it may. A mask broadcasts against the (N, h, S, T) scores, so an (S, T) mask serves every example and
  head, and an (N, 1, 1, T) mask hides padded keys per example. A query with no key it may attend to
  is an error (softmax over nothing is undefined; we never return NaN).
- Dropout: ``p`` is the probability of DROPPING a unit (PyTorch's ``nn.Dropout(p)`` and cs231n's
  Transformer; cs231n assignment 2's ``dropout_forward`` used p for keeping). Kept units are scaled by
  1 / (1 - p) in training ("inverted dropout"), so nothing changes at test time.
- Layer norm uses the biased variance and ``eps`` inside the square root, default 1e-5, as
  ``torch.nn.LayerNorm``.
- Weights multiply from the right (``x @ W``, W of shape (in, out)): the transpose of PyTorch's
  ``nn.Linear.weight``.

Multi-head attention keeps the weights of all heads side by side: ``Wq`` is (E, h*d) and its columns
``[i*d:(i+1)*d]`` are head i's query projection. cs231n's ``MultiHeadAttention(E, h)`` is the case
d = dv = E / h with a square output projection; the CS7643 classifier's per-head ``dim_q``/``dim_k``/
``dim_v`` projections, concatenated and projected back, are the same function with d = dim_k and
dv = dim_v (e.g. Wq (128, 2*96), Wo (2*96, 128)).
"""
import math
from collections import namedtuple

import numpy as np

from cs231n import gpu_kernels
from cs231n._validation import expect_shape, float_array
from cs231n.backend import check_device, check_on_device, get_array_module, to_device, xp_for
from cs231n.rnn_layers import _check_upstream, _column_sums
from cs231n.workspace import empty as _empty

AttentionCache = namedtuple("AttentionCache", "q k v probs keep scale")
AttentionCache.__doc__ = """Cache of scaled_dot_product_attention_forward.

- q, k, v: the inputs, (N, h, S, d), (N, h, T, d), (N, h, T, dv).
- probs: the attention weights softmax(q k^T / sqrt(d)) after masking, (N, h, S, T), before dropout;
  each row sums to 1 over the keys it may attend. Useful for plotting attention maps.
- keep: None without dropout, else the (N, h, S, T) dropout multiplier (0 or 1 / (1 - p)).
- scale: the score scale 1 / sqrt(d).
"""

MultiheadCache = namedtuple("MultiheadCache", "query key value Wq Wk Wv Wo heads attn num_heads")
MultiheadCache.__doc__ = """Cache of multihead_attention_forward.

- query, key, value: the inputs (N, S, E), (N, T, Ek), (N, T, Ev).
- Wq, Wk, Wv, Wo: the projection weights.
- heads: the concatenated head outputs before the output projection, (N, S, h*dv); None with one key
  (T = 1), where each head's value is projected once per example instead.
- attn: the AttentionCache of the heads; ``attn.probs`` (N, h, S, T) are the attention weights.
- num_heads: h.
"""


# ----------------------------------------------------------------------------------------------------
# Layer normalization
# ----------------------------------------------------------------------------------------------------

def layernorm_forward(x, gamma, beta, ln_param=None, workspace=None):
    """Layer normalization over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    Each vector along the last axis (of size D) is normalized by its own mean and biased variance, for
    an input of any rank (N, D), (N, T, D), ... This is cs231n assignment 2's signature and the math of
    ``torch.nn.LayerNorm(D, eps)``.

    Inputs:
    - x: data, of shape (..., D), floating.
    - gamma: scale, of shape (D,).
    - beta: shift, of shape (D,).
    - ln_param: dict or None; key ``eps`` (default 1e-5, as PyTorch) is the constant added to the
      variance. Other keys are ignored (cs231n passes the batchnorm dict).
    - workspace: None (fresh arrays), or a :class:`cs231n.workspace.Workspace` whose buffers hold out
      and the cache until its next use.

    Returns a tuple of:
    - out: normalized data, of shape (..., D), dtype of x.
    - cache: (xhat, rstd, gamma) with xhat the normalized input (..., D) and rstd = 1 / sqrt(var + eps)
      of shape (..., 1).
    """
    fn = "layernorm_forward"
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have at least one dimension (the normalized one), got a scalar")
    x = float_array(fn, "x", x, x.ndim)
    D = x.shape[-1]
    gamma = float_array(fn, "gamma", gamma, 1)
    beta = float_array(fn, "beta", beta, 1)
    expect_shape(fn, "gamma", gamma, (("D", D),), f" (x has shape {x.shape})")
    expect_shape(fn, "beta", beta, (("D", D),), f" (x has shape {x.shape})")
    if ln_param is not None and not isinstance(ln_param, dict):
        raise TypeError(f"{fn}: ln_param must be a dict or None, got {type(ln_param).__name__}")
    eps = (ln_param or {}).get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps >= 0:
        raise ValueError(f"{fn}: ln_param['eps'] must be a number >= 0, got {eps!r}")
    if gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(x, gamma, beta):  # real CuPy: 3 launches
        return gpu_kernels.layernorm_forward(x, gamma, beta, eps)
    dtype = np.result_type(x.dtype, gamma.dtype, beta.dtype)
    x2 = x.reshape(-1, D)                                            # (L, D), L rows of any rank
    xhat = _empty(xp, workspace, "xhat", x.shape, dtype)             # (..., D)
    xhat2 = xhat.reshape(-1, D)
    # Row statistics as products (one pass each, no (L, D) temporaries): the mean as x @ ones / D and
    # the biased variance of the centred rows as their dot products with themselves / D.
    mean = _row_sums(x2, dtype) / dtype.type(D)                      # (L,)
    xp.subtract(x2, mean[:, None], out=xhat2)
    var = xp.einsum("ij,ij->i", xhat2, xhat2) / dtype.type(D)       # (L,)
    rstd = 1.0 / xp.sqrt(var + dtype.type(eps))                      # (L,), multiplied, not divided by
    xhat2 *= rstd[:, None]
    out = _empty(xp, workspace, "out", x.shape, dtype)
    xp.multiply(xhat, gamma, out=out)
    out += beta                                                      # (..., D)
    return out, (xhat, rstd.reshape(x.shape[:-1] + (1,)), gamma)


def _row_sums(a2, dtype):
    """Sums along the rows of a 2-D array, in ``dtype``: ``a2 @ ones`` (one BLAS pass on numpy)."""
    return a2 @ get_array_module(a2).ones(a2.shape[1], dtype=dtype)


def layernorm_backward(dout, cache, workspace=None):
    """Backward pass of layer normalization.

    With ``xhat = (x - mean) * rstd`` and ``g = dout * gamma`` (the gradient of xhat), the gradient of x
    is ``rstd * (g - mean(g) - xhat * mean(g * xhat))``: the two means remove the components of g along
    the directions that the mean subtraction and the variance division make invisible.

    Inputs:
    - dout: upstream gradient, of shape (..., D).
    - cache: the cache from layernorm_forward.
    - workspace: None, or a Workspace whose buffers hold dx (dgamma, dbeta are always fresh).

    Returns a tuple of:
    - dx: gradient of x, of shape (..., D).
    - dgamma: gradient of gamma, of shape (D,).
    - dbeta: gradient of beta, of shape (D,).
    """
    xhat, rstd, gamma = cache
    xp = get_array_module(xhat)
    dout = _check_upstream("layernorm_backward", "dout", dout, xhat.shape, like=xhat)
    if gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(dout, xhat, rstd, gamma):
        return gpu_kernels.layernorm_backward(dout, xhat, rstd, gamma)
    D = xhat.shape[-1]
    dout2 = dout.reshape(-1, D)
    xhat2 = xhat.reshape(-1, D)
    dbeta = _column_sums(dout2)                                 # through + beta
    dgamma = xp.einsum("ij,ij->j", dout2, xhat2)                # through * gamma
    dx = _empty(xp, workspace, "dx", xhat.shape, np.result_type(dout.dtype, gamma.dtype))
    g = dx.reshape(-1, D)
    xp.multiply(dout2, gamma, out=g)                            # gradient of xhat, (L, D)
    dt = g.dtype.type
    mean_g = _row_sums(g, g.dtype) / dt(D)                      # (L,)
    mean_gx = xp.einsum("ij,ij->i", g, xhat2) / dt(D)          # (L,)
    g -= mean_g[:, None]                                        # through the mean subtraction
    tmp = _empty(xp, workspace, "tmp", g.shape, g.dtype)
    xp.multiply(xhat2, mean_gx[:, None], out=tmp)
    g -= tmp                                                    # through the variance
    g *= rstd.reshape(-1, 1)
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------------

def dropout_forward(x, p=0.1, train=True, rng=None, workspace=None, rows_of=None):
    """Inverted dropout: in training zero each entry with probability ``p`` and scale the rest by 1/(1-p).

    ``p`` is the probability of DROPPING an entry, as in PyTorch's ``nn.Dropout(p)`` (cs231n assignment
    2's ``dropout_forward`` used p as the probability of keeping). At test time (``train=False``) or
    with ``p == 0`` the input passes through unchanged: ``out`` is ``x`` itself (not a copy).

    Inputs:
    - x: data, of any shape, floating.
    - p: drop probability, a number in [0, 1]; p = 1 drops everything (the output is zero).
    - train: True for training (random mask), False for testing (identity).
    - rng: np.random.Generator, an int seed, or None for a fresh unseeded generator. Only used when
      training with p > 0; pass the same Generator along a training run for reproducible masks. On
      numpy the mask comes from rng's raw 32-bit integers (an entry is dropped when its integer is
      below p * 2^32; versions before December 2026 drew float32 uniforms, so a seed gives other
      masks than it did then); on a GPU, rng gives one integer that seeds
      CuPy's generator, which draws the mask on the device (so a seed reproduces a run on either
      backend, but numpy and the GPU draw different masks).
    - workspace: None (fresh arrays), or a Workspace whose buffers hold out and the mask until its
      next use.
    - rows_of: None, or ``(rows, L)`` when x (K, D) holds the rows ``rows`` (K,) of an (L, D) array
      (a model that computes only some positions): the mask is drawn for all L rows, as it would be
      for the whole array, and the rows' part used, so an rng gives the same masks either way.

    Returns a tuple of:
    - out: data of the shape and dtype of x.
    - cache: the (x.shape) multiplier of 0s and 1/(1-p)s, or None when nothing was dropped.
    """
    fn = "dropout_forward"
    xp = get_array_module(x)
    x = xp.asarray(x)
    x = float_array(fn, "x", x, x.ndim)
    p = _check_prob(fn, "p", p)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{fn}: train must be True or False, got {train!r}")
    if not train or p == 0.0:
        return x, None
    keep = _dropout_multiplier(fn, xp, x.shape, x.dtype, p, rng, workspace, rows_of=rows_of)
    out = _empty(xp, workspace, "out", x.shape, x.dtype)
    xp.multiply(x, keep, out=out)
    return out, keep


def dropout_backward(dout, cache, workspace=None):
    """Backward pass of dropout.

    Inputs:
    - dout: upstream gradient, of the shape of the forward's x.
    - cache: the cache from dropout_forward.
    - workspace: None, or a Workspace whose buffer holds dx.

    Returns:
    - dx: gradient of x, of the shape of dout (``dout`` itself when nothing was dropped).
    """
    keep = cache
    if keep is None:
        return get_array_module(dout).asarray(dout)
    dout = _check_upstream("dropout_backward", "dout", dout, keep.shape, like=keep)
    xp = get_array_module(keep)
    dx = _empty(xp, workspace, "dx", keep.shape, np.result_type(dout.dtype, keep.dtype))
    xp.multiply(dout, keep, out=dx)
    return dx


def _check_prob(fn, name, p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{fn}: {name} must be a drop probability in [0, 1], got {p!r}")
    return float(p)


def _generator(fn, rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_))):
        return np.random.default_rng(rng)
    raise TypeError(f"{fn}: rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _dropout_multiplier(fn, xp, shape, dtype, p, rng, workspace=None, name="keep", rows_of=None):
    """An array of module ``xp`` and ``shape`` holding 0 (probability p) or 1 / (1 - p), of ``dtype``
    (a workspace buffer under ``name`` when a workspace is given). With ``rows_of = (rows, L)`` and
    ``shape = (K, D)``: rows ``rows`` (K,) of the mask drawn for (L, D) (see ``dropout_forward``)."""
    if p == 1.0:
        _generator(fn, rng)
        return xp.zeros(shape, dtype=dtype)
    scale = dtype.type(1.0 / (1.0 - p))
    if xp is np:
        keep = _empty(np, workspace, name, shape, dtype)
        np.multiply(_dropout_kept(fn, np, shape, p, rng, workspace, name + "_kept", rows_of), scale, out=keep)
        return keep
    u = _device_draw(fn, xp, shape, rng, rows_of)
    if gpu_kernels.fused(xp):
        return gpu_kernels.dropout_keep(u, p, dtype)
    keep = (u >= np.float32(p)).astype(dtype)
    keep *= scale
    return keep


def _dropout_kept(fn, xp, shape, p, rng, workspace=None, name="kept", rows_of=None):
    """Booleans of module ``xp`` and ``shape``, True for the units that dropout keeps (each with
    probability 1 - p; p < 1), drawn as ``_dropout_multiplier`` draws (a workspace buffer ``name``)."""
    kept = _empty(xp, workspace, name, shape, bool)
    if xp is not np:
        return xp.greater_equal(_device_draw(fn, xp, shape, rng, rows_of), np.float32(p), out=kept)
    # Raw 32-bit integers (two per 64-bit draw of the bit generator) against a threshold: about half the
    # cost of float32 uniforms, and a seed gives the same mask in float32 and float64.
    gen = _generator(fn, rng)
    draw = _draw_shape(fn, shape, rows_of)
    size = math.prod(draw)
    bits = gen.bit_generator.random_raw((size + 1) // 2).view(np.uint32)[:size].reshape(draw)
    threshold = np.uint32(min(round(p * 2.0 ** 32), 2 ** 32 - 1))      # P(bits < threshold) = p
    if rows_of is None:
        return np.greater_equal(bits, threshold, out=kept)
    # The mask of all L rows into a buffer of its own, then the rows' part: no (K, D) copy of the bits
    full = _empty(np, workspace, name + "_all_rows", draw, bool)        # (L, D)
    np.greater_equal(bits, threshold, out=full)
    return np.take(full, rows_of[0], axis=0, out=kept)                  # (K, D)


def _draw_shape(fn, shape, rows_of):
    """The shape a dropout mask is drawn in: ``shape``, or (L, D) for ``rows_of = (rows, L)``."""
    if rows_of is None:
        return tuple(shape)
    rows, L = rows_of
    if len(shape) != 2 or len(rows) != shape[0]:
        raise ValueError(f"{fn}: rows_of = (rows, L) needs x of shape (K, D) with K = len(rows) = "
                         f"{len(rows)}, got shape {tuple(shape)}")
    return (int(L), shape[1])


def _device_draw(fn, xp, shape, rng, rows_of):
    """float32 uniforms of ``shape`` on the device for a dropout mask (rows of them with rows_of)."""
    gen = _generator(fn, rng)
    u = _device_uniforms(xp, int(gen.integers(2 ** 63)), _draw_shape(fn, shape, rows_of))
    return u if rows_of is None else u[rows_of[0]]                     # (K, D) with rows_of


def _device_uniforms(xp, seed, shape):
    """float32 uniforms in [0, 1) of ``shape``, drawn on the GPU by a cuRAND generator set to ``seed``.

    One host integer crosses to the device instead of a whole mask. The counter-based Philox generator
    is used because (re)seeding it costs nothing, unlike the default XORWOW's state setup; the same
    seed gives the same numbers on the same GPU software.
    """
    # One generator, reseeded for each mask (the same numbers as a fresh one with this seed): creating
    # one per mask cost a cuRAND create and destroy each time (issue 23).
    module, rs = _device_generator
    if module is not xp:
        rs = xp.random.RandomState(np.uint64(seed), method=xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
        _device_generator[:] = [xp, rs]
    else:
        rs.seed(np.uint64(seed))
    return rs.random_sample(shape, dtype=np.float32)


_device_generator = [None, None]  # (array module, its RandomState)


# ----------------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------------

def scaled_dot_product_attention_forward(q, k, v, mask=None, dropout_p=0.0, rng=None):
    """Attention of S queries over T keys/values, for every example and head at once.

    ``out = dropout(softmax(q k^T / sqrt(d) + where(mask == 0, -inf, 0))) v``: each query's output is a
    weighted mean of the values, weighted by how well the query matches each key. Dropout (on the
    attention weights, as cs231n and ``torch.nn.functional.scaled_dot_product_attention``) is applied
    only when ``dropout_p > 0``; pass 0 at test time.

    Inputs:
    - q: queries, of shape (N, h, S, d), floating.
    - k: keys, of shape (N, h, T, d).
    - v: values, of shape (N, h, T, dv).
    - mask: None (attend everywhere) or an array broadcastable to (N, h, S, T), e.g. (S, T) or
      (N, 1, 1, T); ``mask[..., i, j] == 0`` (False) means query i may not attend key j. Every query
      must be allowed at least one key (ValueError otherwise). A numpy mask given with GPU arrays is
      copied to the GPU (once per call; keep it on the GPU to avoid that), and a GPU mask given with
      numpy arrays is copied to the host.
    - dropout_p: probability of dropping an attention weight, in [0, 1).
    - rng: np.random.Generator, int seed or None; used only when dropout_p > 0.

    Returns a tuple of:
    - out: attended values, of shape (N, h, S, dv).
    - cache: an AttentionCache (q, k, v, probs, keep, scale); ``cache.probs`` (N, h, S, T) are the
      attention weights.
    """
    fn = "scaled_dot_product_attention_forward"
    q = float_array(fn, "q", q, 4)
    k = float_array(fn, "k", k, 4)
    v = float_array(fn, "v", v, 4)
    N, h, S, d = q.shape
    T = k.shape[2]
    expect_shape(fn, "k", k, (("N", N), ("h", h), ("T", T), ("d", d)), f" (q has shape {q.shape})")
    expect_shape(fn, "v", v, (("N", N), ("h", h), ("T", T), ("dv", v.shape[3])),
                 f" (q {q.shape}, k {k.shape})")
    dropout_p = _check_prob(fn, "dropout_p", dropout_p)
    if dropout_p == 1.0:
        raise ValueError(f"{fn}: dropout_p must be < 1 (dropping every attention weight leaves nothing)")
    xp = get_array_module(q)
    bias = _mask_bias(fn, xp, mask, (N, h, S, T), np.result_type(q.dtype, k.dtype, v.dtype))
    scale = 1.0 / np.sqrt(d)
    scores = q @ k.swapaxes(-1, -2)                 # (N, h, S, T)
    if gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(scores, v, *([] if bias is None else [bias])):
        keep = None if dropout_p == 0.0 else _dropout_multiplier(fn, xp, scores.shape, scores.dtype, dropout_p, rng)
        probs, weights = gpu_kernels.attention_softmax(scores, scale, bias, keep)  # real CuPy: 3 launches
        return weights @ v, AttentionCache(q, k, v, probs, keep, scale)
    scores *= scores.dtype.type(scale)
    if bias is not None:
        scores += bias
    probs = _softmax_inplace(scores)                # (N, h, S, T)
    out, keep = _weighted_values(fn, xp, probs, v, dropout_p, rng)  # (N, h, S, dv)
    return out, AttentionCache(q, k, v, probs, keep, scale)


def _weighted_values(fn, xp, probs, v, dropout_p, rng):
    """``(probs * keep) @ v`` with the dropout multiplier ``keep`` drawn from ``rng`` (None when
    ``dropout_p`` is 0, then ``probs @ v``); returns (out (N, h, S, dv), keep)."""
    if dropout_p > 0.0:
        keep = _dropout_multiplier(fn, xp, probs.shape, probs.dtype, dropout_p, rng)
        return (probs * keep) @ v, keep
    return probs @ v, None


def scaled_dot_product_attention_backward(dout, cache):
    """Backward pass of scaled dot-product attention.

    The softmax is differentiated row by row in O(S*T): with P the weights and dP their gradient,
    ``dscores = P * (dP - sum(dP * P, axis=-1))`` (no (T, T) Jacobian is formed). Masked weights are 0,
    so they get no gradient.

    Inputs:
    - dout: upstream gradient, of shape (N, h, S, dv).
    - cache: the AttentionCache from scaled_dot_product_attention_forward.

    Returns a tuple of:
    - dq: gradient of q, of shape (N, h, S, d).
    - dk: gradient of k, of shape (N, h, T, d).
    - dv: gradient of v, of shape (N, h, T, dv).
    """
    q, k, v, probs, keep, scale = cache
    N, h, S, _ = q.shape
    dout = _check_upstream("scaled_dot_product_attention_backward", "dout", dout, (N, h, S, v.shape[3]),
                           like=q)
    weights = probs if keep is None else probs * keep   # what multiplied v, (N, h, S, T)
    dv = weights.swapaxes(-1, -2) @ dout                # through weights @ v, (N, h, T, dv)
    dP = dout @ v.swapaxes(-1, -2)                      # (N, h, S, T)
    if gpu_kernels.fused(get_array_module(dP)) and gpu_kernels.same_float_dtype(dP, probs):
        dP = gpu_kernels.attention_dscores(dP, probs, keep, scale)  # real CuPy: 2 launches
        return dP @ k, dP.swapaxes(-1, -2) @ q, dv
    if keep is not None:
        dP *= keep                                      # through the dropout
    # through the softmax: P * (dP - sum_j dP_j P_j), then through the scale
    dP -= (dP * probs).sum(axis=-1, keepdims=True)
    dP *= probs
    dP *= dP.dtype.type(scale)
    dq = dP @ k                                         # (N, h, S, d)
    dk = dP.swapaxes(-1, -2) @ q                        # (N, h, T, d)
    return dq, dk, dv


def _softmax_inplace(scores):
    """Softmax over the last axis, overwriting ``scores``; -inf entries become exactly 0."""
    scores -= scores.max(axis=-1, keepdims=True)
    get_array_module(scores).exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def _mask_bias(fn, xp, mask, shape, dtype):
    """Check an attention mask and return its additive bias (0 allowed, -inf forbidden), or None.

    The bias keeps the mask's own (broadcastable) shape, so an (S, T) mask costs S*T numbers. It is an
    array of module ``xp`` (the scores'): a mask on the other device is copied there, explicitly. The
    checks of the values read one boolean back from the GPU per check, not one per row.
    """
    if mask is None:
        return None
    m = mask if get_array_module(mask) is not np else np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: mask must hold booleans or numbers (0 = may not attend), got dtype {m.dtype}")
    if m.ndim < 2 or m.ndim > 4:
        raise ValueError(f"{fn}: mask must have 2 to 4 dimensions, broadcastable to (N, h, S, T) = "
                         f"{shape}, got shape {m.shape}")
    try:
        if np.broadcast_shapes(m.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"{fn}: mask of shape {m.shape} does not broadcast to the scores' shape "
                         f"(N, h, S, T) = {shape}; use (S, T), (N, 1, S, T) or (N, 1, 1, T)") from None
    m = to_device(m, "cpu" if xp is np else "gpu")

    def not_finite():
        raise ValueError(f"{fn}: mask holds NaN or inf; use 0 (may not attend) and 1 (may attend)")

    def row_without_key():
        allowed = to_device(m != 0, "cpu")  # only to name the rows in the message
        rows = np.argwhere(~np.broadcast_to(allowed.any(axis=-1), shape[:-1]))
        raise ValueError(f"{fn}: mask leaves query {tuple(int(i) for i in rows[0])} (index n, h, s) "
                         f"with no key it may attend to ({len(rows)} such (n, h, s) rows); every query "
                         f"needs at least one nonzero entry in its mask row")
    if m.dtype.kind == "f":
        check_on_device(xp.all(xp.isfinite(m)), not_finite)
    allowed = m != 0
    every_row = xp.broadcast_to(allowed.any(axis=-1, keepdims=True), shape[:-1] + (1,))
    check_on_device(xp.all(every_row), row_without_key)  # no sync inside backend.deferred_checks()
    return xp.where(allowed, dtype.type(0), dtype.type(-np.inf))  # (no boolean indexing: no sync)


# ----------------------------------------------------------------------------------------------------
# Multi-head attention
# ----------------------------------------------------------------------------------------------------

def multihead_attention_forward(query, key, value, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads,
                                mask=None, dropout_p=0.0, rng=None, workspace=None):
    """Multi-head attention with query/key/value projections and an output projection, biases included.

    ``Q = query Wq + bq``, ``K = key Wk + bk``, ``V = value Wv + bv`` are split into h heads along their
    last axis (head i owns columns [i*d:(i+1)*d]); every head attends with
    scaled_dot_product_attention_forward in one batched product; the head outputs are concatenated
    (N, S, h*dv) and projected: ``out = concat Wo + bo``. Self-attention passes the same array as
    query, key and value; cross-attention passes the memory as key and value.

    cs231n's ``MultiHeadAttention(E, h)`` is Wq, Wk, Wv, Wo all (E, E) with d = dv = E / h. The CS7643
    classifier's heads of sizes dim_q = dim_k = d and dim_v = dv are Wq (E, h*d), Wk (E, h*d),
    Wv (E, h*dv) and Wo (h*dv, E).

    Inputs:
    - query: queries, of shape (N, S, E), floating.
    - key: keys, of shape (N, T, Ek).
    - value: values, of shape (N, T, Ev).
    - Wq, bq: query projection, of shapes (E, h*d) and (h*d,).
    - Wk, bk: key projection, of shapes (Ek, h*d) and (h*d,).
    - Wv, bv: value projection, of shapes (Ev, h*dv) and (h*dv,).
    - Wo, bo: output projection, of shapes (h*dv, M) and (M,).
    - num_heads: h, a positive int dividing the projections' widths.
    - mask: None or an array broadcastable to (N, h, S, T); ``mask[..., i, j] == 0`` means query i may
      not attend key j (see scaled_dot_product_attention_forward). (S, T) for a causal mask,
      (N, 1, 1, T) to hide padded keys.
    - dropout_p: drop probability of the attention weights (0 at test time).
    - rng: np.random.Generator, int seed or None; used only when dropout_p > 0.
    - workspace: None (fresh arrays), or a Workspace whose buffers hold out and the cache until its
      next use.

    With one key (T = 1, e.g. cross-attention to one image token) every softmax row is [1]: the output
    is the value path alone, the query and key projections cannot change it and are not computed
    (their gradients are exactly 0), and the attention dropout still draws its mask from rng.

    Returns a tuple of:
    - out: output, of shape (N, S, M).
    - cache: a MultiheadCache; ``cache.attn.probs`` (N, h, S, T) are the attention weights.
    """
    fn = "multihead_attention_forward"
    query = float_array(fn, "query", query, 3)
    key = float_array(fn, "key", key, 3)
    value = float_array(fn, "value", value, 3)
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (float_array(fn, name, a, nd) for name, a, nd in (
        ("Wq", Wq, 2), ("bq", bq, 1), ("Wk", Wk, 2), ("bk", bk, 1), ("Wv", Wv, 2), ("bv", bv, 1),
        ("Wo", Wo, 2), ("bo", bo, 1)))
    if isinstance(num_heads, (bool, np.bool_)) or not isinstance(num_heads, (int, np.integer)) \
            or num_heads < 1:
        raise ValueError(f"{fn}: num_heads must be a positive integer, got {num_heads!r}")
    h = int(num_heads)
    N, S, E = query.shape
    T = key.shape[1]
    if key.shape[0] != N or value.shape[:2] != (N, T):
        raise ValueError(f"{fn}: key and value should have shapes (N, T, .) with N = {N} (from query) and "
                         f"the same T, got query {query.shape}, key {key.shape}, value {value.shape}")
    hd, hdv = Wq.shape[1], Wv.shape[1]
    if hd % h or hdv % h:
        raise ValueError(f"{fn}: num_heads = {h} must divide the projection widths h*d = {hd} (Wq) and "
                         f"h*dv = {hdv} (Wv)")
    expect_shape(fn, "Wq", Wq, (("E", E), ("h*d", hd)))
    expect_shape(fn, "bq", bq, (("h*d", hd),))
    expect_shape(fn, "Wk", Wk, (("Ek", key.shape[2]), ("h*d", hd)), f" (Wq has shape {Wq.shape})")
    expect_shape(fn, "bk", bk, (("h*d", hd),))
    expect_shape(fn, "Wv", Wv, (("Ev", value.shape[2]), ("h*dv", hdv)))
    expect_shape(fn, "bv", bv, (("h*dv", hdv),))
    expect_shape(fn, "Wo", Wo, (("h*dv", hdv), ("M", Wo.shape[1])), f" (Wv has shape {Wv.shape})")
    expect_shape(fn, "bo", bo, (("M", Wo.shape[1]),))

    v = split_heads(_linear(value, Wv, bv, workspace, "v"), h)       # (N, h, T, dv)
    if T == 1:
        dtype = np.result_type(query.dtype, Wq.dtype, key.dtype, Wk.dtype)  # that of q k^T
        weights, attn = _one_key_attention(fn, v, S, dtype, mask, dropout_p, rng)  # (N, h, S, 1)
        # Query s's output is sum_h weights[n, h, s] * v[n, h] Wo_h + bo, with Wo_h the rows of Wo that
        # head h's output meets: each head's one value is projected once per example (h products of
        # (N, dv) by (dv, M)) instead of once per query, and no (N, S, h*dv) heads are formed.
        xp, M = get_array_module(v), Wo.shape[1]
        vo = v[:, :, 0, :].swapaxes(0, 1) @ Wo.reshape(h, -1, M)    # (h, N, M)
        out = _empty(xp, workspace, "out", (N, S, M), np.result_type(weights.dtype, vo.dtype))
        xp.matmul(weights[..., 0].swapaxes(1, 2), vo.swapaxes(0, 1), out=out)  # (N, S, h) @ (N, h, M)
        out += bo
        return out, MultiheadCache(query, key, value, Wq, Wk, Wv, Wo, None, attn, h)
    q = split_heads(_linear(query, Wq, bq, workspace, "q"), h)       # (N, h, S, d)
    k = split_heads(_linear(key, Wk, bk, workspace, "k"), h)         # (N, h, T, d)
    a, attn = scaled_dot_product_attention_forward(q, k, v, mask, dropout_p, rng)  # (N, h, S, dv)
    heads = _merge_heads(a, workspace, "heads")                      # (N, S, h*dv)
    out = _linear(heads, Wo, bo, workspace, "out")                   # (N, S, M)
    return out, MultiheadCache(query, key, value, Wq, Wk, Wv, Wo, heads, attn, h)


def _one_key_attention(fn, v, S, dtype, mask, dropout_p, rng):
    """The attention weights of S queries over one key/value v (N, h, 1, dv), after dropout, and the
    AttentionCache of scaled_dot_product_attention_forward (whose q and k are None).

    Every weight is softmax([s]) = 1 whatever the score, so the queries and the key are not needed;
    the checks of the mask and dropout_p and the dropout mask drawn from rng are the general
    function's, so the results are the same. Returns (weights (N, h, S, 1), cache): the weights are
    the dropout multiplier (probs * keep with probs = 1), or the probs without dropout.
    """
    N, h, _, dv = v.shape
    xp = get_array_module(v)
    dropout_p = _check_prob(fn, "dropout_p", dropout_p)
    if dropout_p == 1.0:
        raise ValueError(f"{fn}: dropout_p must be < 1 (dropping every attention weight leaves nothing)")
    _mask_bias(fn, xp, mask, (N, h, S, 1), dtype)   # a mask must still let every query see the key
    probs = xp.ones((N, h, S, 1), dtype=dtype)      # (N, h, S, 1)
    keep = None if dropout_p == 0.0 else _dropout_multiplier(fn, xp, probs.shape, dtype, dropout_p, rng)
    return (probs if keep is None else keep), AttentionCache(None, None, v, probs, keep, None)


def multihead_attention_backward(dout, cache, workspace=None):
    """Backward pass of multi-head attention.

    When the same array was passed as query, key and value (self-attention), the caller adds
    ``dquery + dkey + dvalue`` to get its gradient.

    Inputs:
    - dout: upstream gradient, of shape (N, S, M).
    - cache: the MultiheadCache from multihead_attention_forward.
    - workspace: None, or a Workspace whose buffers hold dquery, dkey, dvalue and the work arrays
      (the weight gradients are always fresh arrays).

    Returns a tuple of:
    - dquery (N, S, E), dkey (N, T, Ek), dvalue (N, T, Ev): gradients of the inputs.
    - dWq (E, h*d), dbq (h*d,), dWk (Ek, h*d), dbk (h*d,), dWv (Ev, h*dv), dbv (h*dv,), dWo (h*dv, M),
      dbo (M,): gradients of the projections.
    """
    query, key, value, Wq, Wk, Wv, Wo, heads, attn, h = cache
    N, S, _ = query.shape
    dout = _check_upstream("multihead_attention_backward", "dout", dout, (N, S, Wo.shape[1]), like=query)
    xp = get_array_module(query)
    if attn.q is None:  # one key (see the forward): the queries and the key get exactly 0
        weights = attn.probs if attn.keep is None else attn.keep    # probs * keep, probs = 1: (N, h, S, 1)
        values = attn.v[:, :, 0, :]                                  # (N, h, dv), the one key's
        M, hdv = Wo.shape
        dbo = _column_sums(dout.reshape(-1, M))
        dvo = weights[..., 0] @ dout                                 # (N, h, M): each head's v Wo_h
        dWo = (values.transpose(1, 2, 0) @ dvo.swapaxes(0, 1)).reshape(hdv, M)  # (h, dv, M) stacked
        dv = dvo.swapaxes(0, 1) @ Wo.reshape(h, -1, M).swapaxes(1, 2)  # (h, N, dv): through v Wo_h
        dv = _merge_heads(dv.swapaxes(0, 1)[:, :, None, :], workspace, "dv")  # (N, 1, h*dv)
        dvalue, dWv, dbv = _linear_backward(dv, value, Wv, workspace, "dvalue")
        dtype = np.result_type(dout.dtype, Wo.dtype)                # that of the gradients above
        dquery = xp.zeros(query.shape, dtype=np.result_type(dtype, Wq.dtype))
        dkey = xp.zeros(key.shape, dtype=np.result_type(dtype, Wk.dtype))
        dWq = xp.zeros(Wq.shape, dtype=np.result_type(dtype, query.dtype))
        dWk = xp.zeros(Wk.shape, dtype=np.result_type(dtype, key.dtype))
        dbq = xp.zeros(Wq.shape[1], dtype=dtype)
        dbk = xp.zeros(Wk.shape[1], dtype=dtype)
        return dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo
    dheads, dWo, dbo = _linear_backward(dout, heads, Wo, workspace, "dheads")  # the output projection
    dq, dk, dv = scaled_dot_product_attention_backward(split_heads(dheads, h), attn)
    dq = _merge_heads(dq, workspace, "dq")                           # (N, S, h*d)
    dk = _merge_heads(dk, workspace, "dk")                           # (N, T, h*d)
    dv = _merge_heads(dv, workspace, "dv")                           # (N, T, h*dv)
    dquery, dWq, dbq = _linear_backward(dq, query, Wq, workspace, "dquery")
    dkey, dWk, dbk = _linear_backward(dk, key, Wk, workspace, "dkey")
    dvalue, dWv, dbv = _linear_backward(dv, value, Wv, workspace, "dvalue")
    return dquery, dkey, dvalue, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo


def split_heads(x, num_heads):
    """View (N, L, h*c) as (N, h, L, c): head i gets columns [i*c:(i+1)*c] of the last axis."""
    N, L, hc = x.shape
    return x.reshape(N, L, num_heads, hc // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """The inverse of split_heads: (N, h, L, c) -> (N, L, h*c), heads side by side (a contiguous copy)."""
    N, h, L, c = x.shape
    return x.transpose(0, 2, 1, 3).reshape(N, L, h * c)


def _merge_heads(x, workspace, name):
    """merge_heads written into a workspace buffer (a fresh array without a workspace)."""
    if workspace is None:
        return merge_heads(x)
    N, h, L, c = x.shape
    out = workspace.empty(get_array_module(x), name, (N, L, h * c), x.dtype)
    out.reshape(N, L, h, c)[...] = x.transpose(0, 2, 1, 3)
    return out


def _linear(x, W, b, workspace=None, name="linear"):
    """``x @ W + b`` over the last axis of x, for any leading shape: (..., I) -> (..., O)."""
    xp = get_array_module(x)
    out = _empty(xp, workspace, name, x.shape[:-1] + (W.shape[1],), np.result_type(x.dtype, W.dtype))
    xp.matmul(x.reshape(-1, x.shape[-1]), W, out=out.reshape(-1, W.shape[1]))  # (L, O)
    out += b
    return out


def _linear_backward(dout, x, W, workspace=None, name="dx"):
    """Gradients of ``x @ W + b`` for x (..., I): returns dx (..., I), dW (I, O), db (O,)."""
    xp = get_array_module(dout)
    dout2 = dout.reshape(-1, W.shape[1])
    dx = _empty(xp, workspace, name, x.shape, np.result_type(dout.dtype, W.dtype))
    xp.matmul(dout2, W.T, out=dx.reshape(-1, x.shape[-1]))
    dW = x.reshape(-1, x.shape[-1]).T @ dout2
    db = _column_sums(dout2)
    return dx, dW, db


# ----------------------------------------------------------------------------------------------------
# Positional encoding
# ----------------------------------------------------------------------------------------------------

def positional_encoding(T, D, dtype=np.float64, device="cpu"):
    """Sinusoidal position encodings, cs231n's (and "Attention is all you need") formula.

    ``P[t, 2i] = sin(t * 10000**(-2i / D))`` and ``P[t, 2i + 1] = cos(t * 10000**(-2i / D))`` for
    positions t = 0 .. T-1. The model adds ``P[:T]`` to the word vectors of a sequence of length T; the
    encoding has no parameters, so its backward is the identity.

    Inputs:
    - T: number of positions, int >= 1.
    - D: encoding size, int >= 1 (even in cs231n; an odd D drops the last cosine column).
    - dtype: floating dtype of the result.
    - device: "cpu" for a numpy array, "gpu" for a CuPy array computed on the GPU.

    Returns:
    - P: array of shape (T, D).
    """
    fn = "positional_encoding"
    for name, val in (("T", T), ("D", D)):
        if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{fn}: {name} must be a positive integer, got {val!r}")
    xp = xp_for(check_device(fn, device))
    t = xp.arange(T, dtype=np.float64)[:, None]                      # (T, 1)
    freq = 10000.0 ** (-xp.arange(0, D, 2, dtype=np.float64) / D)    # (ceil(D / 2),)
    angle = t * freq                                                 # (T, ceil(D / 2))
    P = xp.empty((T, D), dtype=np.float64)
    P[:, 0::2] = xp.sin(angle)
    P[:, 1::2] = xp.cos(angle[:, :D // 2])
    return P.astype(dtype)


# ----------------------------------------------------------------------------------------------------
# Feed-forward block
# ----------------------------------------------------------------------------------------------------

_GELU_C = np.sqrt(2.0 / np.pi)

FeedforwardCache = namedtuple("FeedforwardCache", "x W1 W2 pre hidden keep passed scale activation")
FeedforwardCache.__doc__ = """Cache of feedforward_forward.

- x, W1, W2: the input and the weights.
- pre: x W1 + b1 (..., F); None on the ReLU path without fused kernels, which overwrites it with hidden.
- hidden: the activations after dropout (..., F), without the factor 1 / (1 - p) of the kept units on
  the ReLU path without fused kernels (there it multiplies the (..., M) product with W2 instead).
- keep: the dropout multiplier of 0s and 1 / (1 - p)s, or None (always None where ``passed`` is set).
- passed: on the ReLU path without fused kernels, booleans (..., F), True where a unit is positive and
  not dropped (where the gradient passes); else None.
- scale: that path's 1 / (1 - p) (1 without dropout); None on the others.
- activation: 'relu' or 'gelu'.
"""


def feedforward_forward(x, W1, b1, W2, b2, activation="relu", dropout_p=0.0, rng=None, workspace=None,
                        rows_of=None):
    """Position-wise feed-forward block: ``dropout(act(x W1 + b1)) W2 + b2`` at every position.

    As in cs231n's and PyTorch's Transformer layers, dropout (if any) acts on the hidden activations.

    Inputs:
    - x: data, of shape (..., D), floating (any leading shape, e.g. (N, T, D)).
    - W1, b1: first layer, of shapes (D, F) and (F,).
    - W2, b2: second layer, of shapes (F, M) and (M,).
    - activation: 'relu' or 'gelu' (the tanh approximation,
      ``0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3)))``, which is
      ``torch.nn.GELU(approximate='tanh')``).
    - dropout_p: probability of dropping a hidden unit (0 at test time).
    - rng: np.random.Generator, int seed or None; used only when dropout_p > 0.
    - workspace: None (fresh arrays), or a Workspace whose buffers hold out and the cache until its
      next use.
    - rows_of: None, or ``(rows, L)`` when x (K, D) holds the rows ``rows`` of an (L, D) input: the
      dropout mask is then drawn as for all L rows and the rows' part used (see ``dropout_forward``).

    Returns a tuple of:
    - out: output, of shape (..., M).
    - cache: a FeedforwardCache.
    """
    fn = "feedforward_forward"
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have at least one dimension, got a scalar")
    x = float_array(fn, "x", x, x.ndim)
    W1, b1, W2, b2 = (float_array(fn, name, a, nd) for name, a, nd in (
        ("W1", W1, 2), ("b1", b1, 1), ("W2", W2, 2), ("b2", b2, 1)))
    D, F = x.shape[-1], W1.shape[1]
    expect_shape(fn, "W1", W1, (("D", D), ("F", F)), f" (x has shape {x.shape})")
    expect_shape(fn, "b1", b1, (("F", F),))
    expect_shape(fn, "W2", W2, (("F", F), ("M", W2.shape[1])), f" (W1 has shape {W1.shape})")
    expect_shape(fn, "b2", b2, (("M", W2.shape[1]),))
    if activation not in ("relu", "gelu"):
        raise ValueError(f"{fn}: activation must be 'relu' or 'gelu', got {activation!r}")
    dropout_p = _check_prob(fn, "dropout_p", dropout_p)
    if activation == "relu" and gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(x, W1, b1, W2, b2):
        pre = _empty(xp, workspace, "pre", x.shape[:-1] + (F,), x.dtype)  # real CuPy: bias, ReLU and
        xp.matmul(x.reshape(-1, D), W1, out=pre.reshape(-1, F))          # dropout in 1 launch (3)
        hidden = _empty(xp, workspace, "hidden", pre.shape, pre.dtype)
        keep = None if dropout_p == 0.0 else _dropout_multiplier(fn, xp, hidden.shape, hidden.dtype,
                                                                 dropout_p, rng, workspace, rows_of=rows_of)
        gpu_kernels.bias_relu_dropout(pre, b1, keep, hidden)
        out = _linear(hidden, W2, b2, workspace, "out")              # (..., M)
        return out, FeedforwardCache(x, W1, W2, pre, hidden, keep, None, None, activation)
    pre = _linear(x, W1, b1, workspace, "pre")                       # (..., F)
    if activation == "relu":
        # ReLU and dropout as one boolean mask: hidden = pre where pre > 0 and the unit is kept, else 0
        # (one multiply by booleans, in place; the backward multiplies by the same mask). The kept units'
        # factor 1 / (1 - p) multiplies the (..., M) product with W2 instead of the (..., F) hidden units.
        passed = xp.greater(pre, 0, out=_empty(xp, workspace, "passed", pre.shape, bool))
        scale = 1.0
        if dropout_p > 0.0:
            passed &= _dropout_kept(fn, xp, pre.shape, dropout_p, rng, workspace, "kept", rows_of)
            scale = 1.0 / (1.0 - dropout_p) if dropout_p < 1.0 else 1.0  # p = 1: every unit is dropped
        hidden = pre
        hidden *= passed                                             # (..., F)
        out = _empty(xp, workspace, "out", x.shape[:-1] + (W2.shape[1],), np.result_type(hidden, W2))
        xp.matmul(hidden.reshape(-1, F), W2, out=out.reshape(-1, W2.shape[1]))
        if scale != 1.0:
            out *= out.dtype.type(scale)
        out += b2                                                    # (..., M)
        return out, FeedforwardCache(x, W1, W2, None, hidden, None, passed, scale, activation)
    else:
        c = pre.dtype.type(_GELU_C)
        hidden = xp.tanh(c * (pre + pre.dtype.type(0.044715) * pre ** 3))
        hidden += 1
        hidden *= pre
        hidden *= pre.dtype.type(0.5)
    keep = None
    if dropout_p > 0.0:
        keep = _dropout_multiplier(fn, xp, hidden.shape, hidden.dtype, dropout_p, rng, workspace,
                                   rows_of=rows_of)
        hidden *= keep
    out = _linear(hidden, W2, b2, workspace, "out")                  # (..., M)
    return out, FeedforwardCache(x, W1, W2, pre, hidden, keep, None, None, activation)


def feedforward_backward(dout, cache, workspace=None):
    """Backward pass of the feed-forward block.

    Inputs:
    - dout: upstream gradient, of shape (..., M).
    - cache: the cache from feedforward_forward.
    - workspace: None, or a Workspace whose buffers hold dx and the work arrays (the weight gradients
      are always fresh arrays).

    Returns a tuple of:
    - dx: gradient of x, of shape (..., D).
    - dW1 (D, F), db1 (F,), dW2 (F, M), db2 (M,): gradients of the weights.
    """
    x, W1, W2, pre, hidden, keep, passed, scale, activation = cache
    dout = _check_upstream("feedforward_backward", "dout", dout, x.shape[:-1] + (W2.shape[1],), like=x)
    xp = get_array_module(hidden)
    if passed is not None:  # the ReLU path without fused kernels: out = scale * (hidden W2) + b2
        dscaled = dout
        if scale != 1.0:
            dscaled = _empty(xp, workspace, "dscaled", dout.shape, dout.dtype)
            xp.multiply(dout, dout.dtype.type(scale), out=dscaled)
        dhidden, dW2, _ = _linear_backward(dscaled, hidden, W2, workspace, "dhidden")
        db2 = _column_sums(dout.reshape(-1, W2.shape[1]))
        dhidden *= passed                                            # through the ReLU and the dropout
        dx, dW1, db1 = _linear_backward(dhidden, x, W1, workspace, "dx")  # through x W1 + b1
        return dx, dW1, db1, dW2, db2
    dhidden, dW2, db2 = _linear_backward(dout, hidden, W2, workspace, "dhidden")  # hidden W2 + b2
    if activation == "relu" and gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(dhidden, pre):
        gpu_kernels.relu_dropout_backward(dhidden, pre, keep)        # real CuPy: 1 launch (3)
        return (*_linear_backward(dhidden, x, W1, workspace, "dx"), dW2, db2)
    if keep is not None:
        dhidden *= keep                                              # through the dropout
    # GELU (the ReLU took one of the paths above): d/du [0.5 u (1 + tanh(g))] =
    # 0.5 (1 + tanh(g)) + 0.5 u (1 - tanh(g)^2) g', with g = c (u + 0.044715 u^3), g' = c (1 + 3 * 0.044715 u^2).
    dt = pre.dtype.type
    c = dt(_GELU_C)
    th = xp.tanh(c * (pre + dt(0.044715) * pre ** 3))
    grad = dt(0.5) * (1 + th) + dt(0.5) * pre * (1 - th * th) * c * (1 + dt(3 * 0.044715) * pre * pre)
    dhidden *= grad
    dx, dW1, db1 = _linear_backward(dhidden, x, W1, workspace, "dx")  # through x W1 + b1
    return dx, dW1, db1, dW2, db2
