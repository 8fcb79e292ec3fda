"""Tests of the Transformer layers: layer norm, dropout, attention, multi-head attention, positions, FFN.

Every backward is checked against independent central differences in float64 (relative error < 1e-7),
including with dropout on (a fixed int seed draws the same mask on every call). Forward values are
compared with plain loops written here; masks are checked to block exactly what they say; float32 stays
float32; inputs are never written to; bad arguments raise errors that name them. The PyTorch
cross-checks live in tests/test_transformer_torch.py.
"""
import numpy as np
import pytest

from cs231n.transformer_layers import (
    dropout_backward,
    dropout_forward,
    feedforward_backward,
    feedforward_forward,
    layernorm_backward,
    layernorm_forward,
    merge_heads,
    multihead_attention_backward,
    multihead_attention_forward,
    positional_encoding,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
    split_heads,
)

TOL = 1e-7  # relative error allowed for a layer's gradient, float64
SEEDS = [0, 1, 2]


def numeric_grads(fwd, args, df, num_grad):
    """Central-difference gradients of ``sum(fwd(*args)[0] * df)`` with respect to every arg."""
    grads = []
    for i in range(len(args)):
        def f(a, i=i):
            call = list(args)
            call[i] = a  # the perturbed array, bound explicitly
            return fwd(*call)[0]
        grads.append(num_grad(f, args[i], df))
    return grads


def check_grads(analytic, numeric, relerr, names, tol=TOL):
    for name, a, n in zip(names, analytic, numeric):
        assert a.shape == n.shape, f"{name}: shape {a.shape} vs {n.shape}"
        err = relerr(a, n)
        assert err < tol, f"{name}: relative error {err:.2e} >= {tol:.0e}"


def ref_softmax(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def ref_attention(q, k, v, allowed):
    """Attention one (example, head, query) at a time, with a boolean (N, h, S, T) mask of allowed keys."""
    N, h, S, d = q.shape
    out = np.zeros((N, h, S, v.shape[3]))
    for n in range(N):
        for i in range(h):
            for s in range(S):
                keys = np.flatnonzero(allowed[n, i, s])
                scores = np.array([q[n, i, s] @ k[n, i, t] / np.sqrt(d) for t in keys])
                w = ref_softmax(scores)
                out[n, i, s] = sum(wt * v[n, i, t] for wt, t in zip(w, keys))
    return out


def mha_args(rng, N, S, T, E, h, d, dv, M, Ek=None, Ev=None):
    Ek = E if Ek is None else Ek
    Ev = E if Ev is None else Ev
    return [rng.randn(N, S, E), rng.randn(N, T, Ek), rng.randn(N, T, Ev),
            rng.randn(E, h * d) * 0.4, rng.randn(h * d) * 0.1,
            rng.randn(Ek, h * d) * 0.4, rng.randn(h * d) * 0.1,
            rng.randn(Ev, h * dv) * 0.4, rng.randn(h * dv) * 0.1,
            rng.randn(h * dv, M) * 0.4, rng.randn(M) * 0.1]


# ----------------------------------------------------------------------------------------------------
# Layer norm
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 6), (2, 1, 2, 3), (7,)])
def test_layernorm_forward_normalizes_last_axis(shape):
    rng = np.random.RandomState(0)
    x = rng.randn(*shape) * 3 + 2
    D = shape[-1]
    gamma, beta = rng.randn(D), rng.randn(D)
    out, _ = layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    # reference: one vector at a time
    flat = x.reshape(-1, D)
    ref = np.array([(row - row.mean()) / np.sqrt(row.var() + 1e-5) * gamma + beta for row in flat])
    np.testing.assert_allclose(out.reshape(-1, D), ref, rtol=1e-12, atol=1e-12)


def test_layernorm_eps_default_and_given():
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    g, b = np.ones(4), np.zeros(4)
    out_default, _ = layernorm_forward(x, g, b, {})
    out_none, _ = layernorm_forward(x, g, b)
    out_big, _ = layernorm_forward(x, g, b, {"eps": 1.0})
    var = 1.25  # biased variance of 1, 2, 3, 4
    np.testing.assert_allclose(out_default[0], (x[0] - 2.5) / np.sqrt(var + 1e-5), rtol=1e-14)
    np.testing.assert_array_equal(out_default, out_none)
    np.testing.assert_allclose(out_big[0], (x[0] - 2.5) / np.sqrt(var + 1.0), rtol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_layernorm_gradients(seed, num_grad, relerr):
    rng = np.random.RandomState(seed)
    shape = [(3, 5), (2, 3, 4), (2, 2, 2, 3)][seed]
    x = rng.randn(*shape) * 2 + 1
    D = shape[-1]
    gamma, beta = rng.randn(D), rng.randn(D)
    dout = rng.randn(*shape)
    out, cache = layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    analytic = layernorm_backward(dout, cache)
    numeric = numeric_grads(lambda x_, g_, b_: layernorm_forward(x_, g_, b_, {"eps": 1e-5}),
                            [x, gamma, beta], dout, num_grad)
    check_grads(analytic, numeric, relerr, ["dx", "dgamma", "dbeta"])


# ----------------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------------

def test_dropout_p_is_the_drop_probability():
    x = np.ones((200, 500))
    out, keep = dropout_forward(x, p=0.3, train=True, rng=0)
    dropped = np.mean(out == 0)
    assert abs(dropped - 0.3) < 0.01, dropped
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-12)  # kept entries scaled by 1 / (1 - p)
    assert abs(out.mean() - 1.0) < 0.01                             # expectation preserved


def test_dropout_test_mode_and_zero_p_are_identity():
    x = np.random.RandomState(0).randn(3, 4)
    out, cache = dropout_forward(x, p=0.5, train=False, rng=0)
    assert out is x and cache is None
    out, cache = dropout_forward(x, p=0.0, train=True, rng=0)
    assert out is x and cache is None
    np.testing.assert_array_equal(dropout_backward(np.ones((3, 4)), cache), np.ones((3, 4)))


def test_dropout_p_one_drops_everything():
    out, keep = dropout_forward(np.ones((2, 3)), p=1.0, train=True, rng=0)
    np.testing.assert_array_equal(out, 0)
    np.testing.assert_array_equal(dropout_backward(np.ones((2, 3)), keep), 0)


def test_dropout_seeded_generator_reproducible():
    x = np.ones((4, 50))
    a, _ = dropout_forward(x, 0.5, True, rng=np.random.default_rng(7))
    b, _ = dropout_forward(x, 0.5, True, rng=np.random.default_rng(7))
    c, _ = dropout_forward(x, 0.5, True, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gen = np.random.default_rng(7)  # one generator along a run: successive masks differ
    d1, _ = dropout_forward(x, 0.5, True, rng=gen)
    d2, _ = dropout_forward(x, 0.5, True, rng=gen)
    assert not np.array_equal(d1, d2)


def test_dropout_and_feedforward_masks_of_gathered_rows_are_the_full_masks_rows(backend):
    """With rows_of = (rows, L) the mask is drawn as for all L rows and the given rows' part is used,
    so computing only some positions draws the same masks from a seed (and leaves the generator where
    the full computation leaves it)."""
    rng = np.random.RandomState(3)
    L, D, F = 9, 4, 6
    x = rng.randn(L, D)
    rows = np.array([0, 2, 3, 7])
    W1, b1, W2, b2 = rng.randn(D, F), rng.randn(F), rng.randn(F, D), rng.randn(D)
    put = backend.put
    full, _ = dropout_forward(put(x), 0.4, True, rng=np.random.default_rng(5))
    gen = np.random.default_rng(5)
    part, keep = dropout_forward(put(x[rows]), 0.4, True, rng=gen, rows_of=(put(rows), L))
    np.testing.assert_array_equal(backend.get(part), backend.get(full)[rows])
    assert backend.get(keep).shape == (4, D)
    full_gen = np.random.default_rng(5)
    dropout_forward(put(x), 0.4, True, rng=full_gen)
    assert gen.bit_generator.state == full_gen.bit_generator.state
    ffn_full, _ = feedforward_forward(*put([x, W1, b1, W2, b2]), dropout_p=0.5, rng=6)
    ffn_part, _ = feedforward_forward(*put([x[rows], W1, b1, W2, b2]), dropout_p=0.5, rng=6,
                                      rows_of=(put(rows), L))
    np.testing.assert_allclose(backend.get(ffn_part), backend.get(ffn_full)[rows], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="rows_of"):
        dropout_forward(put(x), 0.4, True, rng=1, rows_of=(put(rows), L))


def test_dropout_gradient(num_grad, relerr):
    rng = np.random.RandomState(0)
    x, dout = rng.randn(3, 7), rng.randn(3, 7)
    out, cache = dropout_forward(x, 0.4, True, rng=5)
    dx = dropout_backward(dout, cache)
    numeric = num_grad(lambda a: dropout_forward(a, 0.4, True, rng=5)[0], x, dout)
    check_grads([dx], [numeric], relerr, ["dx"])
    # the backward uses the forward's mask: zero where the output was dropped
    np.testing.assert_array_equal(dx == 0, out == 0)


# ----------------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------------

def attention_inputs(rng, N=2, h=3, S=4, T=5, d=3, dv=2):
    return rng.randn(N, h, S, d), rng.randn(N, h, T, d), rng.randn(N, h, T, dv)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "per_example", "random4d"])
def test_attention_forward_matches_loop(mask_kind):
    rng = np.random.RandomState(1)
    N, h, S, T = 2, 3, 4, 5
    q, k, v = attention_inputs(rng, N, h, S, T)
    if mask_kind == "none":
        mask, allowed = None, np.ones((N, h, S, T), dtype=bool)
    elif mask_kind == "causal":
        mask = np.tril(np.ones((S, T)), k=1)            # (S, T) floats 0/1, broadcast over N and h
        allowed = np.broadcast_to(mask != 0, (N, h, S, T))
    elif mask_kind == "per_example":
        mask = np.ones((N, 1, 1, T), dtype=bool)        # key padding: example 1 has 3 real keys
        mask[1, ..., 3:] = False
        allowed = np.broadcast_to(mask, (N, h, S, T))
    else:
        mask = rng.rand(N, h, S, T) < 0.6
        mask[..., 0] = True                             # every query keeps one key
        allowed = mask
    out, cache = scaled_dot_product_attention_forward(q, k, v, mask)
    np.testing.assert_allclose(out, ref_attention(q, k, v, allowed), rtol=1e-12, atol=1e-12)
    assert np.all(cache.probs[~allowed] == 0)           # masked weights are exactly zero
    np.testing.assert_allclose(cache.probs.sum(-1), 1.0, rtol=1e-12)


def test_causal_mask_blocks_the_future():
    rng = np.random.RandomState(2)
    S = 6
    q, k, v = attention_inputs(rng, S=S, T=S)
    causal = np.tril(np.ones((S, S), dtype=bool))
    out, _ = scaled_dot_product_attention_forward(q, k, v, causal)
    for t in range(S - 1):
        k2, v2 = k.copy(), v.copy()
        k2[:, :, t + 1:] = rng.randn(*k2[:, :, t + 1:].shape)  # change every key and value after t
        v2[:, :, t + 1:] = rng.randn(*v2[:, :, t + 1:].shape)
        out2, _ = scaled_dot_product_attention_forward(q, k2, v2, causal)
        np.testing.assert_array_equal(out2[:, :, :t + 1], out[:, :, :t + 1])
        assert not np.allclose(out2[:, :, t + 1:], out[:, :, t + 1:])


def test_attention_large_scores_stay_finite():
    q = np.full((1, 1, 2, 4), 300.0)
    k = np.full((1, 1, 3, 4), 300.0)
    k[0, 0, 1] = -300.0
    v = np.arange(6.0).reshape(1, 1, 3, 2)
    out, cache = scaled_dot_product_attention_forward(q, k, v)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(cache.probs[0, 0, 0], [0.5, 0.0, 0.5], atol=1e-300)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("masked", [False, True])
def test_attention_gradients(seed, masked, num_grad, relerr):
    rng = np.random.RandomState(seed)
    N, h, S, T = 2, 2, 3, 4
    q, k, v = attention_inputs(rng, N, h, S, T, d=3, dv=2)
    mask = np.tril(np.ones((S, T)), k=1) if masked else None
    dout = rng.randn(N, h, S, 2)
    _, cache = scaled_dot_product_attention_forward(q, k, v, mask)
    analytic = scaled_dot_product_attention_backward(dout, cache)
    numeric = numeric_grads(lambda q_, k_, v_: scaled_dot_product_attention_forward(q_, k_, v_, mask),
                            [q, k, v], dout, num_grad)
    check_grads(analytic, numeric, relerr, ["dq", "dk", "dv"])


def test_attention_gradients_with_dropout(num_grad, relerr):
    rng = np.random.RandomState(3)
    q, k, v = attention_inputs(rng, 2, 2, 3, 4)
    dout = rng.randn(2, 2, 3, 2)
    fwd = lambda q_, k_, v_: scaled_dot_product_attention_forward(q_, k_, v_, None, 0.3, rng=11)  # noqa: E731
    out, cache = fwd(q, k, v)
    assert cache.keep is not None and np.any(cache.keep == 0)
    np.testing.assert_allclose(out, (cache.probs * cache.keep) @ v, rtol=1e-12)
    analytic = scaled_dot_product_attention_backward(dout, cache)
    numeric = numeric_grads(fwd, [q, k, v], dout, num_grad)
    check_grads(analytic, numeric, relerr, ["dq", "dk", "dv"])


# ----------------------------------------------------------------------------------------------------
# Multi-head attention
# ----------------------------------------------------------------------------------------------------

def ref_multihead(query, key, value, Wq, bq, Wk, bk, Wv, bv, Wo, bo, h, allowed):
    """Per-head loop as the CS7643 classifier writes it: each head its own q/k/v, concat, project."""
    d, dv = Wq.shape[1] // h, Wv.shape[1] // h
    heads = []
    for i in range(h):
        cq, ck = slice(i * d, (i + 1) * d), slice(i * dv, (i + 1) * dv)
        qi = query @ Wq[:, cq] + bq[cq]                       # (N, S, d)
        ki = key @ Wk[:, cq] + bk[cq]                         # (N, T, d)
        vi = value @ Wv[:, ck] + bv[ck]                       # (N, T, dv)
        heads.append(ref_attention(qi[:, None], ki[:, None], vi[:, None], allowed[:, :1])[:, 0])
    return np.concatenate(heads, axis=-1) @ Wo + bo


@pytest.mark.parametrize("layout", ["cs231n", "cs7643", "cross"])
def test_multihead_forward_matches_per_head_loop(layout):
    rng = np.random.RandomState(4)
    N, S, T = 2, 4, 4
    if layout == "cs231n":      # E = 6, 2 heads of 3, square projections
        args = mha_args(rng, N, S, T, E=6, h=2, d=3, dv=3, M=6)
        h = 2
    elif layout == "cs7643":    # per-head dim_q = dim_k = 5, dim_v = 4, 3 heads: concat 12 -> E = 6
        args = mha_args(rng, N, S, T, E=6, h=3, d=5, dv=4, M=6)
        h = 3
    else:                       # cross-attention to a memory of another size, 1 key
        T = 1
        args = mha_args(rng, N, S, T, E=6, h=2, d=3, dv=3, M=6, Ek=5, Ev=5)
        args[2] = args[1]       # the memory is both key and value
        h = 2
    mask = np.tril(np.ones((S, T))) if layout != "cross" else None
    allowed = np.broadcast_to(np.ones((S, T), bool) if mask is None else mask != 0, (N, h, S, T))
    out, cache = multihead_attention_forward(*args, h, mask=mask)
    np.testing.assert_allclose(out, ref_multihead(*args, h, allowed), rtol=1e-11, atol=1e-12)
    assert cache.attn.probs.shape == (N, h, S, T)


@pytest.mark.parametrize("seed", SEEDS)
def test_multihead_gradients(seed, num_grad, relerr):
    rng = np.random.RandomState(seed)
    N, S, T, h = 2, 3, 4, 2
    d, dv = (2, 3) if seed == 1 else (3, 3)
    args = mha_args(rng, N, S, T, E=4, h=h, d=d, dv=dv, M=5, Ek=3, Ev=4)
    mask = np.tril(np.ones((S, T)), k=1) if seed != 2 else None
    dropout_p = 0.2 if seed == 2 else 0.0
    dout = rng.randn(N, S, 5)

    def fwd(*a):
        return multihead_attention_forward(*a, h, mask=mask, dropout_p=dropout_p, rng=3)

    _, cache = fwd(*args)
    analytic = multihead_attention_backward(dout, cache)
    numeric = numeric_grads(fwd, args, dout, num_grad)
    names = ["dquery", "dkey", "dvalue", "dWq", "dbq", "dWk", "dWv", "dbv", "dWo", "dbo"]
    check_grads(analytic[:6] + analytic[7:], numeric[:6] + numeric[7:], relerr, names)
    # The key bias adds q . bk to a whole row of scores, which the softmax ignores: its gradient is 0
    # (a relative error of two round-off values would mean nothing).
    assert np.max(np.abs(analytic[6])) < 1e-12 and np.max(np.abs(numeric[6])) < 1e-9


def test_multihead_self_attention_gradient_is_the_sum(num_grad, relerr):
    rng = np.random.RandomState(5)
    N, S, h = 2, 4, 2
    args = mha_args(rng, N, S, S, E=4, h=h, d=2, dv=2, M=4)
    x = args[0]
    mask = np.tril(np.ones((S, S)))
    dout = rng.randn(N, S, 4)
    _, cache = multihead_attention_forward(x, x, x, *args[3:], h, mask=mask)
    dq, dk, dv = multihead_attention_backward(dout, cache)[:3]
    numeric = num_grad(lambda a: multihead_attention_forward(a, a, a, *args[3:], h, mask=mask)[0], x, dout)
    check_grads([dq + dk + dv], [numeric], relerr, ["dx"])


def test_split_and_merge_heads_are_inverse():
    x = np.arange(2 * 3 * 12.0).reshape(2, 3, 12)
    s = split_heads(x, 4)
    assert s.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(s[1, 2, 0], x[1, 0, 6:9])   # head 2 owns columns 6..8
    np.testing.assert_array_equal(merge_heads(s), x)


# ----------------------------------------------------------------------------------------------------
# Positional encoding
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("D", [6, 7, 1])
def test_positional_encoding_formula(D):
    T = 5
    P = positional_encoding(T, D)
    assert P.shape == (T, D) and P.dtype == np.float64
    for t in range(T):
        for j in range(D):
            i2 = j - j % 2                                       # the 2i of the pair j belongs to
            angle = t * 10000.0 ** (-i2 / D)
            assert P[t, j] == pytest.approx(np.sin(angle) if j % 2 == 0 else np.cos(angle), abs=1e-15)
    assert positional_encoding(3, 4, np.float32).dtype == np.float32


# ----------------------------------------------------------------------------------------------------
# Feed-forward block
# ----------------------------------------------------------------------------------------------------

def ffn_args(rng, shape=(2, 3, 4), F=6, M=5):
    D = shape[-1]
    return [rng.randn(*shape), rng.randn(D, F) * 0.5, rng.randn(F) * 0.3, rng.randn(F, M) * 0.5,
            rng.randn(M) * 0.3]


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feedforward_forward_matches_formula(activation):
    rng = np.random.RandomState(6)
    x, W1, b1, W2, b2 = ffn_args(rng)
    out, _ = feedforward_forward(x, W1, b1, W2, b2, activation)
    u = x @ W1 + b1
    if activation == "relu":
        a = np.where(u > 0, u, 0.0)
    else:
        a = np.array([0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))) for z in u.ravel()])
        a = a.reshape(u.shape)
    np.testing.assert_allclose(out, a @ W2 + b2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.25])
def test_feedforward_gradients(activation, dropout_p, num_grad, relerr):
    rng = np.random.RandomState(7)
    args = ffn_args(rng)
    pre = args[0] @ args[1] + args[2]
    assert np.min(np.abs(pre)) > 1e-3  # no ReLU kink within the difference step
    dout = rng.randn(2, 3, 5)

    def fwd(*a):
        return feedforward_forward(*a, activation=activation, dropout_p=dropout_p, rng=9)

    _, cache = fwd(*args)
    analytic = feedforward_backward(dout, cache)
    numeric = numeric_grads(fwd, args, dout, num_grad)
    check_grads(analytic, numeric, relerr, ["dx", "dW1", "db1", "dW2", "db2"])


# ----------------------------------------------------------------------------------------------------
# dtype kept, inputs untouched
# ----------------------------------------------------------------------------------------------------

def all_layer_calls(rng, dtype):
    """(name, forward, args, backward, upstream shape) for every layer, with inputs of ``dtype``."""
    c = lambda a: a.astype(dtype)  # noqa: E731
    q, k, v = (c(a) for a in attention_inputs(rng, 2, 2, 3, 4))
    mha = [c(a) for a in mha_args(rng, 2, 3, 4, E=4, h=2, d=2, dv=3, M=4)]
    ffn = [c(a) for a in ffn_args(rng)]
    x = c(rng.randn(2, 3, 4))
    return [
        ("layernorm", lambda *a: layernorm_forward(*a, {"eps": 1e-5}), [x, c(rng.randn(4)), c(rng.randn(4))],
         layernorm_backward, (2, 3, 4)),
        ("dropout", lambda a: dropout_forward(a, 0.5, True, rng=0), [x], dropout_backward, (2, 3, 4)),
        ("attention", lambda *a: scaled_dot_product_attention_forward(*a, np.tril(np.ones((3, 4))), 0.1, 0),
         [q, k, v], scaled_dot_product_attention_backward, (2, 2, 3, 2)),
        ("multihead", lambda *a: multihead_attention_forward(*a, 2, mask=np.tril(np.ones((3, 4)))), mha,
         multihead_attention_backward, (2, 3, 4)),
        ("ffn_relu", lambda *a: feedforward_forward(*a, "relu", 0.1, 0), ffn, feedforward_backward, (2, 3, 5)),
        ("ffn_gelu", lambda *a: feedforward_forward(*a, "gelu"), ffn, feedforward_backward, (2, 3, 5)),
    ]


def test_float32_in_float32_out():
    rng = np.random.RandomState(8)
    for name, fwd, args, bwd, dshape in all_layer_calls(rng, np.float32):
        out, cache = fwd(*args)
        assert out.dtype == np.float32, name
        grads = bwd(rng.randn(*dshape).astype(np.float32), cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        for g in grads:
            assert g.dtype == np.float32, f"{name}: gradient dtype {g.dtype}"
        # float32 agrees with float64 to float32 precision
        out64, _ = fwd(*[a.astype(np.float64) for a in args])
        np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5, err_msg=name)


def test_inputs_are_not_modified():
    rng = np.random.RandomState(9)
    for name, fwd, args, bwd, dshape in all_layer_calls(rng, np.float64):
        before = [a.copy() for a in args]
        out, cache = fwd(*args)
        dout = rng.randn(*dshape)
        dout_before = dout.copy()
        bwd(dout, cache)
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_array_equal(dout, dout_before, err_msg=name)


# ----------------------------------------------------------------------------------------------------
# Error paths
# ----------------------------------------------------------------------------------------------------

def test_fully_masked_query_is_an_error():
    rng = np.random.RandomState(10)
    q, k, v = attention_inputs(rng, 1, 1, 3, 3)
    mask = np.tril(np.ones((3, 3)))
    mask[2] = 0
    with pytest.raises(ValueError, match=r"mask leaves query \(0, 0, 2\).*no key"):
        scaled_dot_product_attention_forward(q, k, v, mask)
    pad = np.ones((2, 1, 1, 3), dtype=bool)
    pad[1] = False  # example 1 has no key at all
    q, k, v = attention_inputs(rng, 2, 2, 3, 3)
    with pytest.raises(ValueError, match=r"query \(1, 0, 0\)"):
        scaled_dot_product_attention_forward(q, k, v, pad)


@pytest.mark.parametrize("mask, match", [
    (np.ones((3, 5)), "does not broadcast"),
    (np.ones(4), "2 to 4 dimensions"),
    (np.ones((1, 1, 1, 1, 4)), "2 to 4 dimensions"),
    (np.array([["a"] * 4] * 3), "booleans or numbers"),
    (np.full((3, 4), np.nan), "NaN or inf"),
])
def test_bad_masks(mask, match):
    q, k, v = attention_inputs(np.random.RandomState(0), 2, 2, 3, 4)
    with pytest.raises((ValueError, TypeError), match=match):
        scaled_dot_product_attention_forward(q, k, v, mask)


def test_attention_shape_errors():
    rng = np.random.RandomState(0)
    q, k, v = attention_inputs(rng, 2, 2, 3, 4, d=3)
    with pytest.raises(ValueError, match=r"k should have shape \(N, h, T, d\) = \(2, 2, 4, 3\)"):
        scaled_dot_product_attention_forward(q, k[..., :2], v)
    with pytest.raises(ValueError, match=r"v should have shape"):
        scaled_dot_product_attention_forward(q, k, v[:, :, :3])
    with pytest.raises(ValueError, match="q must have 4 dimensions"):
        scaled_dot_product_attention_forward(q[0], k, v)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention_forward(q, k, v, dropout_p=1.0)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention_forward(q, k, v, dropout_p=-0.1)
    _, cache = scaled_dot_product_attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dout should have the shape"):
        scaled_dot_product_attention_backward(np.zeros((2, 2, 3, 3)), cache)


def test_multihead_errors():
    rng = np.random.RandomState(0)
    args = mha_args(rng, 2, 3, 4, E=4, h=2, d=2, dv=2, M=4)
    with pytest.raises(ValueError, match="num_heads = 3 must divide"):
        multihead_attention_forward(*args, 3)
    for bad in (0, 1.5, True, None):
        with pytest.raises(ValueError, match="num_heads must be a positive integer"):
            multihead_attention_forward(*args, bad)
    bad = list(args)
    bad[5] = bad[5][:3]  # Wk with 3 rows for keys of size 4
    with pytest.raises(ValueError, match=r"Wk should have shape \(Ek, h\*d\) = \(4, 4\), got \(3, 4\)"):
        multihead_attention_forward(*bad, 2)
    bad = list(args)
    bad[1] = bad[1][:1]  # key with another batch size
    with pytest.raises(ValueError, match="key and value should have shapes"):
        multihead_attention_forward(*bad, 2)
    bad = list(args)
    bad[9] = bad[9][:3]
    with pytest.raises(ValueError, match="Wo should have shape"):
        multihead_attention_forward(*bad, 2)


def test_layernorm_errors():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"gamma should have shape \(D\) = \(3,\), got \(4,\)"):
        layernorm_forward(x, np.ones(4), np.zeros(3), {})
    with pytest.raises(ValueError, match="beta must have 1 dimensions"):
        layernorm_forward(x, np.ones(3), np.zeros((1, 3)), {})
    with pytest.raises(ValueError, match="eps"):
        layernorm_forward(x, np.ones(3), np.zeros(3), {"eps": -1})
    with pytest.raises(TypeError, match="ln_param must be a dict"):
        layernorm_forward(x, np.ones(3), np.zeros(3), 1e-5)
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        layernorm_forward(np.array([["a"]]), np.ones(1), np.zeros(1), {})
    _, cache = layernorm_forward(x, np.ones(3), np.zeros(3), {})
    with pytest.raises(ValueError, match="dout should have the shape"):
        layernorm_backward(np.zeros((3, 2)), cache)


def test_dropout_and_ffn_errors():
    x = np.zeros((2, 3))
    for p in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="p must be a drop probability"):
            dropout_forward(x, p)
    with pytest.raises(TypeError, match="train must be True or False"):
        dropout_forward(x, 0.5, train="yes")
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        dropout_forward(x, 0.5, True, rng=np.random.RandomState(0))
    args = ffn_args(np.random.RandomState(0))
    with pytest.raises(ValueError, match="activation must be 'relu' or 'gelu'"):
        feedforward_forward(*args, activation="tanh")
    bad = list(args)
    bad[3] = bad[3][:5]
    with pytest.raises(ValueError, match=r"W2 should have shape \(F, M\) = \(6, 5\), got \(5, 5\)"):
        feedforward_forward(*bad)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        positional_encoding(0, 4)
    with pytest.raises(ValueError, match="D must be a positive integer"):
        positional_encoding(3, 2.0)


# ----------------------------------------------------------------------------------------------------
# Array backends: the same functions on device arrays (the fake CuPy in CI, a real GPU when present)
# ----------------------------------------------------------------------------------------------------

def assert_same(backend, got, want, err_msg=""):
    """``got`` lives on ``backend`` and equals ``want`` (bit for bit on numpy and the fake CuPy; to
    float64 round-off on a real GPU, whose kernels sum in another order)."""
    got = backend.get(got)
    if backend.name == "gpu":
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=err_msg)
    else:
        np.testing.assert_array_equal(got, want, err_msg=err_msg)


def deterministic_layer_calls(rng):
    """(name, forward, args, backward, upstream shape) for every layer without dropout, float64."""
    q, k, v = attention_inputs(rng, 2, 2, 3, 4)
    mha = mha_args(rng, 2, 3, 4, E=4, h=2, d=2, dv=3, M=4)
    ffn = ffn_args(rng)
    causal = np.tril(np.ones((3, 4), dtype=bool))
    pad = np.ones((2, 1, 1, 4))
    pad[1, ..., 2:] = 0
    return [
        ("layernorm", lambda *a: layernorm_forward(*a, {"eps": 1e-5}), [rng.randn(2, 3, 4), rng.randn(4),
                                                                        rng.randn(4)], layernorm_backward, (2, 3, 4)),
        ("dropout_off", lambda a: dropout_forward(a, 0.5, False), [rng.randn(2, 3)], dropout_backward, (2, 3)),
        ("attention", lambda *a: scaled_dot_product_attention_forward(*a, causal), [q, k, v],
         scaled_dot_product_attention_backward, (2, 2, 3, 2)),
        ("attention_pad", lambda *a: scaled_dot_product_attention_forward(*a, pad), [q, k, v],
         scaled_dot_product_attention_backward, (2, 2, 3, 2)),
        ("multihead", lambda *a: multihead_attention_forward(*a, 2, mask=causal), mha,
         multihead_attention_backward, (2, 3, 4)),
        ("ffn_relu", lambda *a: feedforward_forward(*a, "relu"), ffn, feedforward_backward, (2, 3, 5)),
        ("ffn_gelu", lambda *a: feedforward_forward(*a, "gelu"), ffn, feedforward_backward, (2, 3, 5)),
    ]


def test_layers_on_backend_match_numpy(backend):
    rng = np.random.RandomState(12)
    for name, fwd, args, bwd, dshape in deterministic_layer_calls(rng):
        dout = rng.randn(*dshape)
        out, cache = fwd(*args)
        grads = bwd(dout, cache)
        out_b, cache_b = fwd(*backend.put(args))
        grads_b = bwd(backend.put(dout), cache_b)
        assert_same(backend, out_b, out, name)
        grads, grads_b = (g if isinstance(g, tuple) else (g,) for g in (grads, grads_b))
        for i, (g_b, g) in enumerate(zip(grads_b, grads)):
            assert_same(backend, g_b, g, f"{name} gradient {i}")


def test_attention_mask_on_either_device(device_backend):
    """A host mask with device inputs is copied to the device once; a device mask is used in place;
    both give the numpy result. The weights (cache.probs) stay on the device."""
    rng = np.random.RandomState(13)
    q, k, v = attention_inputs(rng, 2, 2, 3, 4)
    mask = np.tril(np.ones((3, 4)), k=1)
    want, _ = scaled_dot_product_attention_forward(q, k, v, mask)
    qd, kd, vd, maskd = device_backend.put([q, k, v, mask])
    xp = device_backend.xp
    for m, copies in ((mask, 1), (maskd, 0), (mask.tolist(), 1)):
        before = getattr(xp, "transfers", None)
        out, cache = scaled_dot_product_attention_forward(qd, kd, vd, m)
        if before is not None:  # the fake counts host -> device copies
            assert xp.transfers - before == copies
        assert_same(device_backend, out, want)
        device_backend.check(cache.probs)
    # and a device mask given with host inputs is brought to the host
    out, _ = scaled_dot_product_attention_forward(q, k, v, maskd)
    np.testing.assert_array_equal(out, want)


def test_gradients_on_device(device_backend, num_grad, relerr):
    """float64 gradients computed on the device agree with central differences (taken on the host, with
    every perturbed input sent to the device), including with dropout: a seed reproduces the mask."""
    rng = np.random.RandomState(14)
    put, get = device_backend.put, device_backend.get
    q, k, v = attention_inputs(rng, 2, 2, 3, 4)
    mha = mha_args(rng, 2, 3, 4, E=4, h=2, d=2, dv=2, M=3)
    ffn = ffn_args(rng)
    causal = np.tril(np.ones((3, 4)), k=1)
    cases = [
        ("layernorm", lambda *a: layernorm_forward(*a, {"eps": 1e-5}), [rng.randn(2, 3), rng.randn(3), rng.randn(3)],
         layernorm_backward, (2, 3), ["dx", "dgamma", "dbeta"]),
        ("attention", lambda *a: scaled_dot_product_attention_forward(*a, causal, 0.3, 5), [q, k, v],
         scaled_dot_product_attention_backward, (2, 2, 3, 2), ["dq", "dk", "dv"]),
        ("multihead", lambda *a: multihead_attention_forward(*a, 2, mask=causal), mha, multihead_attention_backward,
         (2, 3, 3), ["dquery", "dkey", "dvalue", "dWq", "dbq", "dWk", "dbk", "dWv", "dbv", "dWo", "dbo"]),
        ("ffn_gelu", lambda *a: feedforward_forward(*a, "gelu", 0.25, 9), ffn, feedforward_backward, (2, 3, 5),
         ["dx", "dW1", "db1", "dW2", "db2"]),
    ]
    for name, fwd, args, bwd, dshape, names in cases:
        dout = rng.randn(*dshape)
        _, cache = fwd(*put(args))
        analytic = [get(g) for g in bwd(put(dout), cache)]
        numeric = numeric_grads(lambda *a: [get(fwd(*put(list(a)))[0])], args, dout, num_grad)
        if name == "multihead":  # the key bias's gradient is exactly 0 (see test_multihead_gradients)
            assert np.max(np.abs(analytic[6])) < 1e-12
            del analytic[6], numeric[6], names[6]
        check_grads(analytic, numeric, relerr, [f"{name} {n}" for n in names])


def test_dropout_on_device_is_seeded_and_drops_p(device_backend):
    """On a device the mask is drawn there, from one integer of the host generator: the same seed gives
    the same mask, p is the dropped share, and no mask is copied from the host."""
    x = device_backend.put(np.ones((200, 500), dtype=np.float32))
    xp = device_backend.xp
    before = getattr(xp, "transfers", None)
    gen = np.random.default_rng(7)
    a, keep = dropout_forward(x, 0.3, True, rng=gen)
    a2, _ = dropout_forward(x, 0.3, True, rng=gen)                       # the generator moved on
    b, _ = dropout_forward(x, 0.3, True, rng=np.random.default_rng(7))
    c, _ = dropout_forward(x, 0.3, True, rng=8)
    if before is not None:
        assert xp.transfers == before
    a, a2, b, c, keep = (device_backend.get(t) for t in (a, a2, b, c, keep))
    assert a.dtype == np.float32 and keep.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, a2) and not np.array_equal(a, c)
    assert abs(np.mean(a == 0) - 0.3) < 0.01
    np.testing.assert_allclose(a[a != 0], np.float32(1 / 0.7), rtol=1e-6)
    # one host draw per mask: the host generator is where a run's randomness (and its checkpoint) lives
    gen2 = np.random.default_rng(7)
    gen2.integers(2 ** 63)
    gen2.integers(2 ** 63)
    assert gen2.bit_generator.state == gen.bit_generator.state
    # a dropout inside attention and the FFN is drawn on the device too
    q, k, v = device_backend.put(list(attention_inputs(np.random.RandomState(0), 2, 2, 3, 4)))
    _, cache = scaled_dot_product_attention_forward(q, k, v, None, 0.5, rng=1)
    device_backend.check(cache.keep)
    _, cache2 = scaled_dot_product_attention_forward(q, k, v, None, 0.5, rng=1)
    np.testing.assert_array_equal(device_backend.get(cache.keep), device_backend.get(cache2.keep))


def test_positional_encoding_on_device(device_backend):
    P = positional_encoding(7, 6, np.float32, device="gpu")
    assert_same(device_backend, P, positional_encoding(7, 6, np.float32))
    with pytest.raises(ValueError, match="positional_encoding: device must be one of"):
        positional_encoding(7, 6, device="cuda")


def test_errors_unchanged_on_device(device_backend):
    put = device_backend.put
    rng = np.random.RandomState(10)
    q, k, v = put(list(attention_inputs(rng, 2, 2, 3, 3)))
    pad = np.ones((2, 1, 1, 3), dtype=bool)
    pad[1] = False
    for m in (pad, put(pad)):
        with pytest.raises(ValueError, match=r"mask leaves query \(1, 0, 0\) .* \(6 such \(n, h, s\) rows\)"):
            scaled_dot_product_attention_forward(q, k, v, m)
    q, k, v = put(list(attention_inputs(rng, 2, 2, 3, 4)))
    for mask, match in [(np.ones((3, 5)), "does not broadcast"), (np.ones(4), "2 to 4 dimensions"),
                        (np.array([["a"] * 4] * 3), "booleans or numbers"),
                        (np.full((3, 4), np.nan), "NaN or inf"), (put(np.full((3, 4), np.inf)), "NaN or inf")]:
        with pytest.raises((ValueError, TypeError), match=match):
            scaled_dot_product_attention_forward(q, k, v, mask)
    with pytest.raises(ValueError, match=r"k should have shape \(N, h, T, d\) = \(2, 2, 4, 3\)"):
        scaled_dot_product_attention_forward(q, k[..., :2], v)
    x = put(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"gamma should have shape \(D\) = \(3,\), got \(4,\)"):
        layernorm_forward(x, put(np.ones(4)), put(np.zeros(3)), {})
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        dropout_forward(x, 0.5, True, rng=np.random.RandomState(0))
    _, cache = layernorm_forward(x, put(np.ones(3)), put(np.zeros(3)), {})
    with pytest.raises(ValueError, match="dout should have the shape"):
        layernorm_backward(put(np.zeros((3, 2))), cache)
    # an upstream gradient left on the host is named, not a CuPy "Unsupported type" deep inside
    with pytest.raises(TypeError, match="layernorm_backward: the forward's cache is on the gpu but dout is on the cpu"):
        layernorm_backward(np.zeros((2, 3)), cache)
    _, cache = scaled_dot_product_attention_forward(q, k, v)
    with pytest.raises(TypeError, match="but dout is on the cpu"):
        scaled_dot_product_attention_backward(np.zeros((2, 2, 3, 2)), cache)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_multihead_attention_with_one_key_matches_the_general_computation(dropout_p):
    """With one key the layer skips the query and key projections (every softmax row is [1]); its
    output and gradients equal the general formula: the projections, then attention over one key."""
    from cs231n.transformer_layers import scaled_dot_product_attention_backward, split_heads
    rng = np.random.default_rng(3)
    N, S, E, h = 2, 5, 8, 2
    query, memory = rng.standard_normal((N, S, E)), rng.standard_normal((N, 1, E))
    W = [rng.standard_normal(s) for s in ((E, E), (E,)) * 4]
    dout = rng.standard_normal((N, S, E))
    out, cache = multihead_attention_forward(query, memory, memory, *W, h, dropout_p=dropout_p, rng=7)
    grads = multihead_attention_backward(dout, cache)
    # The general path, written out: q, k, v projections and attention over the one key.
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = W
    q, k, v = (split_heads(a @ Wp + bp, h) for a, Wp, bp in ((query, Wq, bq), (memory, Wk, bk), (memory, Wv, bv)))
    a, attn = scaled_dot_product_attention_forward(q, k, v, dropout_p=dropout_p, rng=7)
    heads = a.transpose(0, 2, 1, 3).reshape(N, S, E)
    np.testing.assert_allclose(out, heads @ Wo + bo, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cache.attn.probs, attn.probs)
    dheads = split_heads(dout @ Wo.T, h)
    dq, dk, dv = scaled_dot_product_attention_backward(dheads, attn)
    merge = lambda x: x.transpose(0, 2, 1, 3).reshape(N, -1, E)  # noqa: E731
    dv2 = merge(dv)
    want = {"dquery": merge(dq) @ Wq.T, "dkey": merge(dk) @ Wk.T, "dvalue": dv2 @ Wv.T,
            "dWq": np.zeros((E, E)), "dWv": memory.reshape(-1, E).T @ dv2.reshape(-1, E),
            "dbv": dv2.reshape(-1, E).sum(axis=0), "dWo": heads.reshape(-1, E).T @ dout.reshape(-1, E)}
    got = dict(zip(("dquery", "dkey", "dvalue", "dWq", "dbq", "dWk", "dbk", "dWv", "dbv", "dWo", "dbo"), grads))
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    assert not np.any(got["dquery"]) and not np.any(got["dkey"]) and not np.any(got["dbq"])


def test_dropout_mask_drops_about_p_and_keeps_the_seed_across_dtypes():
    x = np.ones((200, 500))
    out64, keep64 = dropout_forward(x, p=0.25, train=True, rng=5)
    out32, keep32 = dropout_forward(x.astype(np.float32), p=0.25, train=True, rng=5)
    np.testing.assert_array_equal(keep64 == 0, keep32 == 0)           # the same mask in both dtypes
    assert abs(np.mean(keep64 == 0) - 0.25) < 0.005                   # 100,000 draws: sd 0.0014
    np.testing.assert_allclose(np.unique(keep64), [0.0, 1 / 0.75])
    _, odd = dropout_forward(np.ones(7), p=0.5, train=True, rng=1)    # an odd size (half a 64-bit draw)
    assert odd.shape == (7,)
