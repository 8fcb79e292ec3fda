"""The CS 4803/7643 sentence-classification Transformer, with backward passes, trainable in numpy.

Classic model (Georgia Tech CS 4803/7643, Fall 2019; forward only, never trained there): a one-layer
Transformer encoder over word indices, built here from :mod:`cs231n.transformer_layers`:

1. ``embed``: token embedding plus a learned position embedding, ``x = W_embed[w_t] + W_pos[t]``
   (N, T, H);
2. ``multi_head_attention``: h heads of sizes dim_q = dim_k and dim_v, concatenated (N, T, h*dim_v),
   projected back to H, then residual and LayerNorm: ``LN(x + MHA(x))``;
3. ``feedforward_layer``: ``LN(x + W2 relu(W1 x + b1) + b2)`` with hidden size F (2048);
4. ``final_layer``: ``sigmoid(x[:, 0] W_final + b_final)``, the probability that the sentence is
   acceptable, read at position 0. In the CoLA data the CLS token is appended at the END of each
   sentence, so position 0 is the first word, not CLS; the classic model reads there anyway (and,
   without a padding mask, every position attends to the PAD tokens too).

Beyond the classic model, options whose defaults give the classic behaviour:

- ``pad_mask`` (False): PAD keys are hidden from every query (``mask[n, t] == 0`` where the token is
  PAD); the positions after the batch's last non-PAD token are then dropped before the forward pass,
  which changes nothing (no query may look at them and no readout reads them) and saves time.
- ``readout`` ('first'): 'first' (position 0, classic), 'cls' (the CLS position of each row) or 'mean'
  (the mean over the non-PAD positions).
- ``dropout`` (0.0): probability of DROPPING (PyTorch's convention), applied in training to the
  embeddings, the attention weights, the attention block's output before its residual, the
  feed-forward hidden units and the feed-forward output before its residual. Masks come from
  ``self.rng`` (seeded by ``seed``), whose state the classification solver keeps in checkpoints.
- ``num_layers`` (1): encoder layers (attention + feed-forward), each with its own weights.
- ``activation`` ('relu'): or 'gelu'.
- ``ngram_n`` (0): with n > 0, a hybrid: the logit is the Transformer's plus a sparse linear term on
  the sentence's word 1..n-grams, ``z = z_transformer + ngram_scale * X W_ngram``, with X the
  (per-sentence normalised) n-gram features of :class:`cs231n.classifiers.ngram.NgramIndex` over the
  n-grams ``ngrams`` (sorted keys; :meth:`fit_ngrams` builds them from training rows). Both parts train
  together, end to end, by the same optimizer. ``ngram_scale`` multiplies the term (with Adam, whose
  steps do not depend on a gradient's size, it multiplies the n-gram weights' effective step: Adam at a
  Transformer's learning rate moves a linear model's weights too slowly otherwise), and
  ``ngram_reg`` adds ``0.5 * ngram_reg * |ngram_scale * W_ngram|^2`` to the loss: an L2 on the term's
  effective weights, of the same meaning as :class:`cs231n.classifiers.ngram.NgramClassifier`'s ``reg``
  (both losses are means over the sentences). The n-gram term is computed on
  the host (sparse sums with ``np.bincount``) whatever the Transformer's device. The defaults (scale 30,
  reg 1e-4) are those chosen on the held-out slice of CoLA's public train (README, CoLA section).

Parameters (``self.params``; weights multiply from the right, ``x @ W``): ``W_embed`` (V, H),
``W_pos`` (max_length, H); per layer i, with the prefix ``l{i}_``: ``Wq`` (H, h*dim_q), ``bq``,
``Wk`` (H, h*dim_k), ``bk``, ``Wv`` (H, h*dim_v), ``bv``, ``Wo`` (h*dim_v, H), ``bo``, ``ln1_gamma``,
``ln1_beta`` (H,), ``W1`` (H, F), ``b1``, ``W2`` (F, H), ``b2``, ``ln2_gamma``, ``ln2_beta``; then
``W_final`` (H, 1), ``b_final`` (1,); with ``ngram_n`` also ``W_ngram`` (F, 1), zero at the start,
for F n-grams. Head i of the classic model's ``q{i+1}`` is columns
``[i*dim_q:(i+1)*dim_q]`` of ``Wq``. Initialization follows PyTorch's defaults (embeddings N(0, 1),
linear layers uniform(+-1/sqrt(fan in)), LayerNorm ones and zeros), drawn from
``np.random.default_rng(seed)``.

The forward and backward passes compute with the array module of the parameters: with CuPy
``params`` (and inputs on the same GPU) everything runs there, dropout masks included.

Letters: N sentences, T positions, V vocabulary size, H hidden size, F feed-forward size.
"""
import numpy as np

from cs231n import transformer_layers as tl
from cs231n.backend import get_array_module, to_numpy
from cs231n.classifiers.sentence import SentenceClassifier, _choice, _positive_int
from cs231n.layers import affine_backward, affine_forward
from cs231n.rnn_layers import sigmoid, word_embedding_backward, word_embedding_forward

_LAYER_PARAMS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo", "ln1_gamma", "ln1_beta",
                 "W1", "b1", "W2", "b2", "ln2_gamma", "ln2_beta")


class ClassificationTransformer(SentenceClassifier):
    """A Transformer encoder that scores sentences (see the module docstring for the architecture).

    Classic use (the CS7643 notebook)::

        model = ClassificationTransformer(word_to_ix, hidden_dim=128, num_heads=2, dim_feedforward=2048,
                                          dim_k=96, dim_v=96, dim_q=96, max_length=43)
        probs = model.forward(train_inxs[0:2])          # (2, 1)

    and, beyond it, ``loss(inputs, labels) -> (loss, grads)`` for training with
    :class:`cs231n.classification_solver.ClassificationSolver`.
    """

    READOUTS = ("first", "cls", "mean")

    def __init__(self, word_to_ix, hidden_dim=128, num_heads=2, dim_feedforward=2048, dim_k=96, dim_v=96,
                 dim_q=96, max_length=43, num_layers=1, pad_mask=False, readout="first", dropout=0.0,
                 activation="relu", dtype=np.float32, seed=None, ngram_n=0, ngram_reg=1e-4, ngram_scale=30.0,
                 ngrams=None):
        """Create a model with freshly initialized weights.

        Inputs:
        - word_to_ix: dict word -> index 0..V-1 (int, or its string as the classic CSV loader gives).
        - hidden_dim: H. num_heads: h. dim_feedforward: F. dim_k, dim_v, dim_q: per-head sizes
          (dim_q must equal dim_k: queries and keys meet in a dot product).
        - max_length: the longest row accepted (the number of learned positions).
        - num_layers, pad_mask, readout, dropout, activation: see the module docstring.
        - dtype: float32, or float64 for gradient checks.
        - seed: None, an int or a np.random.Generator, for the weights and the dropout masks.
        - ngram_n, ngram_reg, ngram_scale, ngrams: the n-gram term (module docstring; ngram_n 0: none).
        """
        fn = "ClassificationTransformer"
        self._init_common(fn, word_to_ix, max_length, dtype)
        self.hidden_dim = _positive_int(fn, "hidden_dim", hidden_dim)
        self.num_heads = _positive_int(fn, "num_heads", num_heads)
        self.dim_feedforward = _positive_int(fn, "dim_feedforward", dim_feedforward)
        self.dim_k = _positive_int(fn, "dim_k", dim_k)
        self.dim_v = _positive_int(fn, "dim_v", dim_v)
        self.dim_q = _positive_int(fn, "dim_q", dim_q)
        if self.dim_q != self.dim_k:
            raise ValueError(f"{fn}: dim_q must equal dim_k (queries and keys are multiplied), got dim_q "
                             f"{dim_q} and dim_k {dim_k}")
        self.num_layers = _positive_int(fn, "num_layers", num_layers)
        if not isinstance(pad_mask, (bool, np.bool_)):
            raise TypeError(f"{fn}: pad_mask must be True or False, got {pad_mask!r}")
        self.pad_mask = bool(pad_mask)
        if self.pad_mask and self.pad_index is None:
            raise ValueError(f"{fn}: pad_mask=True needs a 'PAD' token in word_to_ix")
        self.readout = _choice(fn, "readout", readout, self.READOUTS)
        if readout == "cls" and self.cls_index is None:
            raise ValueError(f"{fn}: readout='cls' needs a 'CLS' token in word_to_ix")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{fn}: dropout must be a drop probability in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.activation = _choice(fn, "activation", activation, ("relu", "gelu"))
        if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)) \
                or isinstance(seed, bool):
            raise TypeError(f"{fn}: seed must be None, an int or a numpy.random.Generator, "
                            f"got {type(seed).__name__}")
        self.rng = np.random.default_rng(seed)
        self.params = self._init_params(self.rng)
        self._init_ngrams(fn, ngram_n, ngram_reg, ngram_scale, ngrams)

    def _init_ngrams(self, fn, ngram_n, ngram_reg, ngram_scale, ngrams):
        if isinstance(ngram_n, bool) or not isinstance(ngram_n, (int, np.integer)) or ngram_n < 0:
            raise ValueError(f"{fn}: ngram_n must be an int >= 0 (0: no n-gram term), got {ngram_n!r}")
        self.ngram_n = int(ngram_n)
        for name, value in (("ngram_reg", ngram_reg), ("ngram_scale", ngram_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                    or not np.isfinite(value):
                raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {value!r}")
        self.ngram_reg, self.ngram_scale = float(ngram_reg), float(ngram_scale)
        self.ngram_index = None
        if not self.ngram_n:
            if ngrams is not None:
                raise ValueError(f"{fn}: ngrams were given but ngram_n is 0; set ngram_n to use them")
            return
        keys = np.zeros(0, dtype=np.int64) if ngrams is None else np.asarray(ngrams, dtype=np.int64)
        if keys.ndim != 1 or np.any(np.diff(keys) <= 0):
            raise ValueError(f"{fn}: ngrams must be a sorted list of distinct int keys")
        self._set_ngram_index(keys)

    def _set_ngram_index(self, keys):
        from cs231n.classifiers.ngram import NgramIndex

        self.ngram_index = NgramIndex(keys, self.vocab_size, self.ngram_n, (self.cls_index, self.pad_index))
        xp = get_array_module(self.params["W_final"])
        self.params["W_ngram"] = xp.zeros((self.ngram_index.num_features, 1), dtype=self.dtype)

    def fit_ngrams(self, inputs, min_count=1):
        """Build the n-gram term's index from training rows ``inputs`` (the n-grams in at least
        ``min_count`` rows) and set ``W_ngram`` to zeros of the new size; returns the number of n-grams."""
        from cs231n.classifiers.ngram import NgramIndex

        fn = "ClassificationTransformer.fit_ngrams"
        if not self.ngram_n:
            raise ValueError(f"{fn}: the model has no n-gram term (ngram_n is 0)")
        inputs = to_numpy(self.check_inputs(fn, inputs))
        index = NgramIndex.fit(inputs, self.vocab_size, self.ngram_n, (self.cls_index, self.pad_index),
                               _positive_int(fn, "min_count", min_count))
        self._set_ngram_index(index.keys)
        return index.num_features

    def _init_params(self, rng):
        V, H, F, h = self.vocab_size, self.hidden_dim, self.dim_feedforward, self.num_heads

        def linear(fan_in, fan_out):
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out)

        p = {"W_embed": rng.standard_normal((V, H)), "W_pos": rng.standard_normal((self.max_length, H))}
        for i in range(self.num_layers):
            layer = {}
            layer["Wq"], layer["bq"] = linear(H, h * self.dim_q)
            layer["Wk"], layer["bk"] = linear(H, h * self.dim_k)
            layer["Wv"], layer["bv"] = linear(H, h * self.dim_v)
            layer["Wo"], layer["bo"] = linear(h * self.dim_v, H)
            layer["ln1_gamma"], layer["ln1_beta"] = np.ones(H), np.zeros(H)
            layer["W1"], layer["b1"] = linear(H, F)
            layer["W2"], layer["b2"] = linear(F, H)
            layer["ln2_gamma"], layer["ln2_beta"] = np.ones(H), np.zeros(H)
            p.update({f"l{i}_{k}": v for k, v in layer.items()})
        p["W_final"], p["b_final"] = linear(H, 1)
        return {k: np.asarray(v).astype(self.dtype) for k, v in p.items()}

    def _own_config(self):
        config = {"hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                  "dim_feedforward": self.dim_feedforward, "dim_k": self.dim_k, "dim_v": self.dim_v,
                  "dim_q": self.dim_q, "num_layers": self.num_layers, "pad_mask": self.pad_mask,
                  "readout": self.readout, "dropout": self.dropout, "activation": self.activation}
        if self.ngram_n:  # written only when used, so configurations without it stay as they were
            config.update(ngram_n=self.ngram_n, ngram_reg=self.ngram_reg, ngram_scale=self.ngram_scale,
                          ngrams=self.ngram_index.keys.tolist())
        return config

    def _layer(self, i):
        return {k: self.params[f"l{i}_{k}"] for k in _LAYER_PARAMS}

    # ------------------------------------------------------------------ the classic methods (test mode)

    def embed(self, inputs):
        """Token plus learned position embeddings of (N, T) int word indices: (N, T, H)."""
        inputs = self.check_inputs("ClassificationTransformer.embed", inputs)
        return self._embed(inputs, training=False)[0]

    def multi_head_attention(self, inputs):
        """The first layer's attention block on (N, T, H) embeddings: ``LN(x + MHA(x))``, (N, T, H).

        No padding mask here (the block sees only vectors, not which positions are PAD): this is the
        classic method; the model's own forward pass applies ``pad_mask`` when it is set.
        """
        x = self._check_hidden("multi_head_attention", inputs)
        return self._attention_block(x, self._layer(0), None, False)[0]

    def feedforward_layer(self, inputs):
        """The first layer's feed-forward block on (N, T, H): ``LN(x + FFN(x))``, (N, T, H)."""
        x = self._check_hidden("feedforward_layer", inputs)
        return self._feedforward_block(x, self._layer(0), False)[0]

    def final_layer(self, inputs):
        """Probabilities (N, 1) from (N, T, H) encoder outputs, read at position 0 (the classic readout)."""
        x = self._check_hidden("final_layer", inputs)
        z, _ = affine_forward(x[:, 0, :], self.params["W_final"], self.params["b_final"])  # (N, 1)
        return sigmoid(z)

    def forward(self, inputs):
        """Probabilities (N, 1) that each sentence of (N, T) word indices is acceptable (test mode)."""
        return self.predict_proba(inputs)[:, None]

    def _check_hidden(self, name, x):
        fn = f"ClassificationTransformer.{name}"
        x = get_array_module(x).asarray(x)
        if x.ndim != 3 or x.shape[2] != self.hidden_dim or x.dtype.kind != "f":
            raise ValueError(f"{fn}: inputs should be a float array of shape (N, T, H) with H = "
                             f"{self.hidden_dim}, got shape {x.shape} dtype {x.dtype}")
        if x.shape[1] == 0:
            raise ValueError(f"{fn}: inputs has no positions (shape {x.shape})")
        return x.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------ blocks

    def _drop(self, x, training):
        return tl.dropout_forward(x, self.dropout, train=training and self.dropout > 0, rng=self.rng)

    def _embed(self, inputs, training):
        T = inputs.shape[1]
        words, cache_words = word_embedding_forward(inputs, self.params["W_embed"])  # (N, T, H)
        x = words + self.params["W_pos"][:T]                                        # (N, T, H)
        x, keep = self._drop(x, training)
        return x, (cache_words, keep)

    def _attention_block(self, x, w, mask, training):
        p = self.dropout if training else 0.0
        a, cache_mha = tl.multihead_attention_forward(x, x, x, w["Wq"], w["bq"], w["Wk"], w["bk"], w["Wv"],
                                                      w["bv"], w["Wo"], w["bo"], self.num_heads, mask=mask,
                                                      dropout_p=p, rng=self.rng)  # (N, T, H)
        a, keep = self._drop(a, training)
        out, cache_ln = tl.layernorm_forward(x + a, w["ln1_gamma"], w["ln1_beta"])   # (N, T, H)
        return out, (cache_mha, keep, cache_ln)

    def _attention_backward(self, dout, cache):
        cache_mha, keep, cache_ln = cache
        ds, dgamma, dbeta = tl.layernorm_backward(dout, cache_ln)                   # ds (N, T, H)
        da = tl.dropout_backward(ds, keep)
        dq, dk, dv, *dw = tl.multihead_attention_backward(da, cache_mha)
        grads = dict(zip(("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"), dw))
        grads["ln1_gamma"], grads["ln1_beta"] = dgamma, dbeta
        return ds + dq + dk + dv, grads            # the residual, and x as query, key and value

    def _feedforward_block(self, x, w, training):
        p = self.dropout if training else 0.0
        f, cache_ffn = tl.feedforward_forward(x, w["W1"], w["b1"], w["W2"], w["b2"], self.activation,
                                              dropout_p=p, rng=self.rng)       # (N, T, H)
        f, keep = self._drop(f, training)
        out, cache_ln = tl.layernorm_forward(x + f, w["ln2_gamma"], w["ln2_beta"])  # (N, T, H)
        return out, (cache_ffn, keep, cache_ln)

    def _feedforward_backward(self, dout, cache):
        cache_ffn, keep, cache_ln = cache
        ds, dgamma, dbeta = tl.layernorm_backward(dout, cache_ln)
        df = tl.dropout_backward(ds, keep)
        dx, dW1, db1, dW2, db2 = tl.feedforward_backward(df, cache_ffn)
        grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "ln2_gamma": dgamma, "ln2_beta": dbeta}
        return ds + dx, grads

    # ------------------------------------------------------------------ whole model

    def encode(self, inputs, training):
        """The encoder's hidden states, for heads other than the classifier's (e.g. pre-training).

        Inputs: inputs (N, T) checked word indices; training: dropout on or off.

        Returns (x, inputs, cache): x (N, T', H) the last layer's output, inputs (N, T') the inputs cut
        to the batch's last non-PAD column (with ``pad_mask``; else T' = T), and the cache of
        :meth:`encode_backward`.
        """
        fn = "ClassificationTransformer"
        N, T = inputs.shape
        mask = None
        if self.pad_mask:
            not_pad = self.not_padding(inputs)                                       # (N, T)
            if not bool(not_pad.any(axis=1).all()):  # one check (one read from a GPU) for both errors
                empty = ~to_numpy(not_pad).any(axis=1)
                if empty.all():
                    raise ValueError(f"{fn}: every token of the batch is PAD; with pad_mask=True a row needs "
                                     f"at least one other token")
                raise ValueError(f"{fn}: inputs row {int(np.flatnonzero(empty)[0])} is all PAD; with "
                                 f"pad_mask=True a row needs at least one other token")
            T = T - int(not_pad.any(axis=0)[::-1].argmax())  # up to the last non-PAD column of the batch:
            inputs = inputs[:, :T]                           # nothing may attend or read beyond it
            mask = not_pad[:, None, None, :T]                                        # (N, 1, 1, T')
        x, cache_embed = self._embed(inputs, training)
        layer_caches = []
        for i in range(self.num_layers):
            w = self._layer(i)
            x, cache_a = self._attention_block(x, w, mask, training)
            x, cache_f = self._feedforward_block(x, w, training)
            layer_caches.append((cache_a, cache_f))
        return x, inputs, (cache_embed, layer_caches)

    def encode_backward(self, dx, cache):
        """Gradients of the embedding and layer parameters from the upstream gradient dx (N, T', H) of
        :meth:`encode`'s output."""
        cache_embed, layer_caches = cache
        grads = {}
        for i in reversed(range(self.num_layers)):
            cache_a, cache_f = layer_caches[i]
            dx, g_f = self._feedforward_backward(dx, cache_f)
            dx, g_a = self._attention_backward(dx, cache_a)
            grads.update({f"l{i}_{k}": g for k, g in {**g_a, **g_f}.items()})
        cache_words, keep = cache_embed
        dx = tl.dropout_backward(dx, keep)
        grads["W_embed"] = word_embedding_backward(dx, cache_words)
        dpos = get_array_module(dx).zeros_like(self.params["W_pos"])                # (max_length, H)
        dpos[:dx.shape[1]] = dx.sum(axis=0)
        grads["W_pos"] = dpos
        return grads

    def _forward(self, inputs, training):
        fn = "ClassificationTransformer"
        xp = get_array_module(inputs)
        N, rows = inputs.shape[0], inputs
        x, inputs, cache_encode = self.encode(inputs, training)
        T = inputs.shape[1]
        if self.readout == "first":
            weights = xp.zeros((N, T), dtype=self.dtype)
            weights[:, 0] = 1
        elif self.readout == "cls":
            weights = xp.zeros((N, T), dtype=self.dtype)
            weights[xp.arange(N), self.cls_positions(fn, inputs)] = 1
        else:
            weights = self.not_padding(inputs).astype(self.dtype)                    # (N, T)
            weights /= xp.maximum(weights.sum(axis=1, keepdims=True), 1)
        v = xp.einsum("nt,nth->nh", weights, x)                                      # (N, H)
        z, cache_out = affine_forward(v, self.params["W_final"], self.params["b_final"])  # (N, 1)
        z, features = z[:, 0], None
        if self.ngram_n:
            features = self.ngram_index.transform(to_numpy(rows), normalize=True, dtype=self.dtype)  # (N, F)
            zn = self.ngram_scale * features.dot(to_numpy(self.params["W_ngram"])[:, 0])  # (N,) on the host
            z = z + xp.asarray(zn.astype(self.dtype))
        return z, (cache_encode, weights, cache_out, features)

    def _backward(self, dz, cache):
        cache_encode, weights, cache_out, features = cache
        dv, dW_final, db_final = affine_backward(dz[:, None], cache_out)            # dv (N, H)
        dx = weights[:, :, None] * dv[:, None, :]                                    # (N, T, H)
        grads = {"W_final": dW_final, "b_final": db_final}
        grads.update(self.encode_backward(dx, cache_encode))
        if features is not None:
            dW = self.ngram_scale * features.tdot(to_numpy(dz).astype(self.dtype))  # (F,)
            grads["W_ngram"] = get_array_module(dz).asarray(dW[:, None].astype(self.dtype))
        return grads

    def _penalty(self):
        if not (self.ngram_n and self.ngram_reg):
            return 0.0, {}
        W, c = self.params["W_ngram"], self.ngram_reg * self.ngram_scale ** 2
        return 0.5 * c * float((W * W).sum()), {"W_ngram": c * W}


# ----------------------------------------------------------------------------------------------------
# The classic PyTorch model (for reproducing the reference outputs d1..d4)
# ----------------------------------------------------------------------------------------------------

def classic_torch_model(vocab_size, hidden_dim=128, num_heads=2, dim_feedforward=2048, dim_k=96, dim_v=96,
                        dim_q=96, max_length=43):
    """The classic model's PyTorch layers, initialized exactly as the CS7643 reference outputs were.

    Seeds ``random``, ``np.random`` and ``torch`` with 0, then constructs, in this order: the token
    embedding (V, H), the position embedding (max_length, H), ``k{i}``, ``v{i}``, ``q{i}`` for each head
    i = 1..h (Linear H -> dim), ``attention_head_projection`` (Linear h*dim_v -> H), ``norm_mh``,
    ``W1`` (H -> F), ``W2`` (F -> H), ``norm_ffn`` and ``final_dense`` (H -> 1), as attributes of an
    ``nn.Module`` (the assignment's attribute names). PyTorch's initializers then draw the same numbers
    as the assignment's did. Needs torch; only the weights are used (see :func:`copy_torch_weights`).
    """
    import random

    import torch
    from torch import nn

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    m = nn.Module()
    m.embeddingL = nn.Embedding(vocab_size, hidden_dim)
    m.posembeddingL = nn.Embedding(max_length, hidden_dim)
    for i in range(1, num_heads + 1):
        setattr(m, f"k{i}", nn.Linear(hidden_dim, dim_k))
        setattr(m, f"v{i}", nn.Linear(hidden_dim, dim_v))
        setattr(m, f"q{i}", nn.Linear(hidden_dim, dim_q))
    m.attention_head_projection = nn.Linear(dim_v * num_heads, hidden_dim)
    m.norm_mh = nn.LayerNorm(hidden_dim)
    m.W1 = nn.Linear(hidden_dim, dim_feedforward)
    m.W2 = nn.Linear(dim_feedforward, hidden_dim)
    m.norm_ffn = nn.LayerNorm(hidden_dim)
    m.final_dense = nn.Linear(hidden_dim, 1)
    return m


def torch_weights_as_params(module, num_heads):
    """The classic PyTorch module's weights under ClassificationTransformer's names (one layer).

    PyTorch's ``Linear.weight`` is (out, in); ours multiply from the right, so each is transposed. The
    heads' ``q{i}``/``k{i}``/``v{i}`` are placed side by side: head i owns columns
    ``[(i-1)*dim:i*dim]`` of ``l0_Wq``/``l0_Wk``/``l0_Wv``. Returns a dict name -> float64 array, for
    :meth:`ClassificationTransformer.set_params`.
    """
    def t(x):
        return x.detach().cpu().double().numpy()

    p = {"W_embed": t(module.embeddingL.weight), "W_pos": t(module.posembeddingL.weight)}
    for name in ("q", "k", "v"):
        heads = [getattr(module, f"{name}{i}") for i in range(1, num_heads + 1)]
        p[f"l0_W{name}"] = np.concatenate([t(layer.weight).T for layer in heads], axis=1)
        p[f"l0_b{name}"] = np.concatenate([t(layer.bias) for layer in heads])
    for ours, theirs in (("l0_Wo", "attention_head_projection"), ("l0_W1", "W1"), ("l0_W2", "W2"),
                         ("W_final", "final_dense")):
        layer = getattr(module, theirs)
        p[ours], p[ours.replace("W", "b", 1)] = t(layer.weight).T, t(layer.bias)
    for ours, theirs in (("l0_ln1", "norm_mh"), ("l0_ln2", "norm_ffn")):
        norm = getattr(module, theirs)
        p[ours + "_gamma"], p[ours + "_beta"] = t(norm.weight), t(norm.bias)
    return p
