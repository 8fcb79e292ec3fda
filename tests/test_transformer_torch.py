"""Cross-check of the Transformer layers against PyTorch (skipped without torch).

Forward values and every gradient (by autograd) are compared in float64 with ``torch.nn.LayerNorm``,
``torch.nn.functional.scaled_dot_product_attention`` (with boolean and 0/1 masks),
``torch.nn.MultiheadAttention`` (self- and cross-attention, causal mask) and ``torch.nn.functional.gelu``;
the CS7643 per-head layout (dim_q = dim_k != E / h) against the same math written in torch.

The layer tests run our side on every array backend (numpy, the fake CuPy of tests/fake_cupy.py, a real
GPU when present) and compare on the host.

Layouts: torch's ``nn.Linear.weight`` is (out, in), the transpose of ours. ``nn.MultiheadAttention``
stacks the q, k, v projections in ``in_proj_weight`` (3E, E) when key and value have size E, and keeps
them apart (``q_proj_weight``, ...) otherwise. Its ``attn_mask`` is True where attention is NOT allowed
(the opposite of ours and of ``scaled_dot_product_attention``'s), so we pass it ``mask == 0``.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: PyTorch cross-checks skipped")

from cs231n.transformer_layers import (  # noqa: E402  (after the importorskip on purpose)
    feedforward_backward,
    feedforward_forward,
    layernorm_backward,
    layernorm_forward,
    multihead_attention_backward,
    multihead_attention_forward,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)

SEEDS = [0, 1, 2]


def tensor(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def close(ours, theirs, rtol=1e-9, atol=1e-11):
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("seed", SEEDS)
def test_layernorm_matches_torch(seed, backend):
    rng = np.random.RandomState(seed)
    shape = [(4, 6), (2, 3, 5), (2, 2, 3, 4)][seed]
    D = shape[-1]
    x, gamma, beta, dout = rng.randn(*shape) * 2 + 1, rng.randn(D), rng.randn(D), rng.randn(*shape)
    out, cache = layernorm_forward(*backend.put([x, gamma, beta]), {"eps": 1e-5})
    dx, dgamma, dbeta = layernorm_backward(backend.put(dout), cache)
    out, dx, dgamma, dbeta = (backend.get(a) for a in (out, dx, dgamma, dbeta))

    ln = torch.nn.LayerNorm(D, eps=1e-5).double()
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(gamma))
        ln.bias.copy_(torch.from_numpy(beta))
    tx = tensor(x)
    tout = ln(tx)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(dx, tx.grad)
    close(dgamma, ln.weight.grad)
    close(dbeta, ln.bias.grad)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mask_kind", ["none", "causal_bool", "padding_float"])
def test_attention_matches_torch_sdpa(seed, mask_kind, backend):
    rng = np.random.RandomState(seed)
    N, h, S, T, d, dv = 2, 3, 4, 5, 3, 2
    q, k, v = rng.randn(N, h, S, d), rng.randn(N, h, T, d), rng.randn(N, h, T, dv)
    dout = rng.randn(N, h, S, dv)
    if mask_kind == "none":
        mask = None
    elif mask_kind == "causal_bool":
        mask = np.tril(np.ones((S, T), dtype=bool))
    else:
        mask = np.ones((N, 1, 1, T))  # 0/1 numbers, hiding the last two keys of example 0
        mask[0, ..., 3:] = 0
    out, cache = scaled_dot_product_attention_forward(*backend.put([q, k, v]), mask)  # a host mask
    dq, dk, dv_ = scaled_dot_product_attention_backward(backend.put(dout), cache)
    out, dq, dk, dv_ = (backend.get(a) for a in (out, dq, dk, dv_))

    tq, tk, tv = tensor(q), tensor(k), tensor(v)
    tmask = None if mask is None else torch.from_numpy(np.asarray(mask) != 0)  # True = may attend
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(dq, tq.grad)
    close(dk, tk.grad)
    close(dv_, tv.grad)


def torch_mha(E, h, Ek, Ev, Wq, bq, Wk, bk, Wv, bv, Wo, bo):
    """An nn.MultiheadAttention holding our weights (transposed into torch's (out, in) layout)."""
    mha = torch.nn.MultiheadAttention(E, h, bias=True, batch_first=True, kdim=Ek, vdim=Ev).double()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat([t(Wq.T), t(Wk.T), t(Wv.T)]))
        else:
            mha.q_proj_weight.copy_(t(Wq.T))
            mha.k_proj_weight.copy_(t(Wk.T))
            mha.v_proj_weight.copy_(t(Wv.T))
        mha.in_proj_bias.copy_(torch.cat([t(bq), t(bk), t(bv)]))
        mha.out_proj.weight.copy_(t(Wo.T))
        mha.out_proj.bias.copy_(t(bo))
    return mha


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["self_causal", "cross"])
def test_multihead_matches_torch(seed, kind, backend):
    rng = np.random.RandomState(seed)
    N, S, E, h = 2, 4, 6, [1, 2, 3][seed]
    if kind == "self_causal":
        T, Ek, Ev = S, E, E
    else:
        T, Ek, Ev = 3, 5, 4
    x = rng.randn(N, S, E)
    key = x if kind == "self_causal" else rng.randn(N, T, Ek)
    value = x if kind == "self_causal" else rng.randn(N, T, Ev)
    W = [rng.randn(E, E) * 0.4, rng.randn(E) * 0.1, rng.randn(Ek, E) * 0.4, rng.randn(E) * 0.1,
         rng.randn(Ev, E) * 0.4, rng.randn(E) * 0.1, rng.randn(E, E) * 0.4, rng.randn(E) * 0.1]
    mask = np.tril(np.ones((S, T))) if kind == "self_causal" else None
    dout = rng.randn(N, S, E)
    out, cache = multihead_attention_forward(*backend.put([x, key, value, *W]), h, mask=backend.put(mask))
    grads = [backend.get(g) for g in multihead_attention_backward(backend.put(dout), cache)]
    out, probs = backend.get(out), backend.get(cache.attn.probs)

    mha = torch_mha(E, h, Ek, Ev, *W)
    tx = tensor(x)
    if kind == "self_causal":
        tkey = tvalue = tx
        tmask = torch.from_numpy(mask == 0)  # torch: True = NOT allowed
    else:
        tkey, tvalue, tmask = tensor(key), tensor(value), None
    tout, tweights = mha(tx, tkey, tvalue, attn_mask=tmask, need_weights=True, average_attn_weights=False)
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(probs, tweights)
    if kind == "self_causal":
        close(grads[0] + grads[1] + grads[2], tx.grad)
        dW_in = mha.in_proj_weight.grad.numpy()
        close(grads[3], dW_in[:E].T)
        close(grads[5], dW_in[E:2 * E].T)
        close(grads[7], dW_in[2 * E:].T)
    else:
        close(grads[0], tx.grad)
        close(grads[1], tkey.grad)
        close(grads[2], tvalue.grad)
        close(grads[3], mha.q_proj_weight.grad.T)
        close(grads[5], mha.k_proj_weight.grad.T)
        close(grads[7], mha.v_proj_weight.grad.T)
    db_in = mha.in_proj_bias.grad.numpy()
    close(grads[4], db_in[:E])
    close(grads[6], db_in[E:2 * E], atol=1e-12)  # 0 in exact arithmetic: a row shift of the scores
    close(grads[8], db_in[2 * E:])
    close(grads[9], mha.out_proj.weight.grad.T)
    close(grads[10], mha.out_proj.bias.grad)


def test_cs7643_per_head_layout_matches_torch_per_head_modules():
    """The CS7643 classifier's heads: dim_q = dim_k = 5, dim_v = 4, 2 heads of E = 6, concat 8 -> 6."""
    rng = np.random.RandomState(3)
    N, S, E, h, dk, dv = 2, 5, 6, 2, 5, 4
    x = rng.randn(N, S, E)
    pad = np.ones((N, 1, 1, S))
    pad[1, ..., 3:] = 0
    W = [rng.randn(E, h * dk) * 0.4, rng.randn(h * dk) * 0.1, rng.randn(E, h * dk) * 0.4,
         rng.randn(h * dk) * 0.1, rng.randn(E, h * dv) * 0.4, rng.randn(h * dv) * 0.1,
         rng.randn(h * dv, E) * 0.4, rng.randn(E) * 0.1]
    dout = rng.randn(N, S, E)
    out, cache = multihead_attention_forward(x, x, x, *W, h, mask=pad)
    grads = multihead_attention_backward(dout, cache)

    tx = tensor(x)
    tW = [tensor(a) for a in W]
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = tW
    keep = torch.from_numpy(pad[:, 0] != 0)  # (N, 1, S): keys each example may attend
    heads = []
    for i in range(h):  # one module per head, as the CS7643 skeleton writes them
        q = tx @ Wq[:, i * dk:(i + 1) * dk] + bq[i * dk:(i + 1) * dk]
        k = tx @ Wk[:, i * dk:(i + 1) * dk] + bk[i * dk:(i + 1) * dk]
        v = tx @ Wv[:, i * dv:(i + 1) * dv] + bv[i * dv:(i + 1) * dv]
        scores = (q @ k.transpose(1, 2)) / np.sqrt(dk)
        scores = scores.masked_fill(~keep, float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v)
    tout = torch.cat(heads, dim=-1) @ Wo + bo
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    close(grads[0] + grads[1] + grads[2], tx.grad)
    for ours, theirs in zip(grads[3:], tW):
        close(ours, theirs.grad, atol=1e-11)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feedforward_matches_torch(activation, backend):
    rng = np.random.RandomState(4)
    x, W1, b1, W2, b2 = rng.randn(2, 3, 4), rng.randn(4, 8), rng.randn(8), rng.randn(8, 5), rng.randn(5)
    dout = rng.randn(2, 3, 5)
    out, cache = feedforward_forward(*backend.put([x, W1, b1, W2, b2]), activation)
    grads = [backend.get(g) for g in feedforward_backward(backend.put(dout), cache)]
    out = backend.get(out)
    t = [tensor(a) for a in (x, W1, b1, W2, b2)]
    u = t[0] @ t[1] + t[2]
    a = torch.relu(u) if activation == "relu" else torch.nn.functional.gelu(u, approximate="tanh")
    tout = a @ t[3] + t[4]
    tout.backward(torch.from_numpy(dout))
    close(out, tout)
    for ours, theirs in zip(grads, t):
        close(ours, theirs.grad)


# ----------------------------------------------------------------------------------------------------
# The whole captioning model against torch.nn.TransformerDecoderLayer
# ----------------------------------------------------------------------------------------------------

def torch_decoder_layers(model):
    """``num_layers`` torch.nn.TransformerDecoderLayer modules (post-norm, ReLU) holding model's weights."""
    W, h, F = model.wordvec_dim, model.num_heads, model.dim_feedforward
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    layers = []
    for l in range(model.num_layers):
        p = {k[len(f"layer{l}_"):]: v for k, v in model.params.items() if k.startswith(f"layer{l}_")}
        layer = torch.nn.TransformerDecoderLayer(W, h, dim_feedforward=F, dropout=0.0, activation="relu",
                                                 batch_first=True, norm_first=False).double()
        with torch.no_grad():
            for block, mha in (("self", layer.self_attn), ("cross", layer.multihead_attn)):
                mha.in_proj_weight.copy_(torch.cat([t(p[f"{block}_W{c}"].T) for c in "qkv"]))
                mha.in_proj_bias.copy_(torch.cat([t(p[f"{block}_b{c}"]) for c in "qkv"]))
                mha.out_proj.weight.copy_(t(p[f"{block}_Wo"].T))
                mha.out_proj.bias.copy_(t(p[f"{block}_bo"]))
            layer.linear1.weight.copy_(t(p["ffn_W1"].T))
            layer.linear1.bias.copy_(t(p["ffn_b1"]))
            layer.linear2.weight.copy_(t(p["ffn_W2"].T))
            layer.linear2.bias.copy_(t(p["ffn_b2"]))
            for k, norm in ((1, layer.norm1), (2, layer.norm2), (3, layer.norm3)):
                norm.weight.copy_(t(p[f"ln{k}_gamma"]))
                norm.bias.copy_(t(p[f"ln{k}_beta"]))
        layers.append(layer)
    return layers


def torch_layer_grads(layer, l, W):
    """The gradients of one torch decoder layer under our parameter names."""
    g = {}
    for block, mha in (("self", layer.self_attn), ("cross", layer.multihead_attn)):
        w, b = mha.in_proj_weight.grad.numpy(), mha.in_proj_bias.grad.numpy()
        for i, c in enumerate("qkv"):
            g[f"layer{l}_{block}_W{c}"] = w[i * W:(i + 1) * W].T
            g[f"layer{l}_{block}_b{c}"] = b[i * W:(i + 1) * W]
        g[f"layer{l}_{block}_Wo"] = mha.out_proj.weight.grad.numpy().T
        g[f"layer{l}_{block}_bo"] = mha.out_proj.bias.grad.numpy()
    g[f"layer{l}_ffn_W1"] = layer.linear1.weight.grad.numpy().T
    g[f"layer{l}_ffn_b1"] = layer.linear1.bias.grad.numpy()
    g[f"layer{l}_ffn_W2"] = layer.linear2.weight.grad.numpy().T
    g[f"layer{l}_ffn_b2"] = layer.linear2.bias.grad.numpy()
    for k, norm in ((1, layer.norm1), (2, layer.norm2), (3, layer.norm3)):
        g[f"layer{l}_ln{k}_gamma"] = norm.weight.grad.numpy()
        g[f"layer{l}_ln{k}_beta"] = norm.bias.grad.numpy()
    return g


@pytest.mark.parametrize("heads, layers", [(2, 2), (3, 1)])
def test_captioning_transformer_matches_torch_decoder(heads, layers, backend):
    from cs231n.classifiers.transformer import CaptioningTransformer

    rng = np.random.RandomState(heads)
    V, D, W, F, N, T = 11, 5, 6, 10, 4, 7
    vocab = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>"] + [f"w{i}" for i in range(V - 3)])}
    np.random.seed(heads)
    model = CaptioningTransformer(vocab, D, W, num_heads=heads, num_layers=layers, max_length=10,
                                  dim_feedforward=F, dtype=np.float64)
    for k in model.params:  # weights large enough that every path matters
        model.params[k] = model.params[k] + 0.3 * rng.randn(*model.params[k].shape)
    model.training = False
    features = rng.randn(N, D)
    captions = rng.randint(3, V, size=(N, T))
    captions[:, 0] = 1
    captions[1, 4:] = 0  # padding: masked targets
    captions[2, 3], captions[2, 4:] = 2, 0
    model.to(backend.device)  # our side on the backend, compared on the host
    loss, grads = model.loss(*backend.put([features, captions]))
    if backend.name != "numpy" and not isinstance(loss, (float, np.floating)):
        loss = backend.get(loss)  # a 0-d array on the device
    loss = float(loss)
    grads = {k: backend.get(g) for k, g in grads.items()}
    model.to("cpu")

    p = {k: tensor(model.params[k]) for k in ("W_proj", "b_proj", "W_embed", "W_vocab", "b_vocab")}
    decoder = torch_decoder_layers(model)
    cin, cout = torch.from_numpy(captions[:, :-1]), torch.from_numpy(captions[:, 1:])
    S = T - 1
    pos = torch.arange(S, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, W, 2, dtype=torch.float64) / W)
    pe = torch.zeros(S, W, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    x = torch.nn.functional.embedding(cin, p["W_embed"]) + pe
    memory = (torch.from_numpy(features) @ p["W_proj"] + p["b_proj"])[:, None, :]
    causal = torch.nn.Transformer.generate_square_subsequent_mask(S, dtype=torch.float64)
    for layer in decoder:
        x = layer(x, memory, tgt_mask=causal)
    scores = x @ p["W_vocab"] + p["b_vocab"]
    per_word = torch.nn.functional.cross_entropy(scores.reshape(-1, V), cout.reshape(-1), reduction="none")
    tloss = (per_word * (cout.reshape(-1) != 0)).sum() / N
    tloss.backward()

    close(loss, tloss.item(), rtol=1e-10)
    theirs = {k: v.grad.numpy() for k, v in p.items()}
    for l, layer in enumerate(decoder):
        theirs.update(torch_layer_grads(layer, l, W))
    assert set(theirs) == set(grads)
    for k in grads:
        close(grads[k], theirs[k], rtol=1e-8, atol=1e-10)
