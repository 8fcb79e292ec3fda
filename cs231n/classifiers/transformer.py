"""An image-captioning Transformer in numpy: cs231n's CaptioningTransformer with hand-written backward.

The minibatch size is N, image features have size D, word vectors (the model size) W, the vocabulary
size V, the feed-forward size F, h heads, and captions have T words. As in cs231n's 2021+ assignment:

- the image feature is projected to one memory token ``m = features W_proj + b_proj`` (N, 1, W); with
  ``regions=True`` the model reads R region features (N, R, D) instead (SPEC section 10), each projected
  the same way to one of R memory tokens (N, R, W) that cross-attention looks over (a CNN's grid
  (N, D, h, w) is flattened row-major to R = h * w);
- the caption, shifted by one word, is embedded, the sinusoidal positions are added, then dropout;
- ``num_layers`` post-norm decoder layers each do masked (causal) self-attention, cross-attention to
  the memory and a ReLU feed-forward of size F, every sub-layer as ``x = layernorm(x + dropout(f(x)))``,
  with dropout also on the attention weights and on the feed-forward's hidden units;
- an output projection gives scores over the vocabulary at every position.

Decoding a region model can return, for each generated word, its attention weights over the R regions:
the cross-attention weights of that step, averaged over heads and layers
(``sample(..., return_attention=True)``).

``loss`` has CaptioningRNN's conventions exactly (the same inputs/targets, ``<NULL>`` mask, sum over
time divided by N), so :class:`cs231n.captioning_solver.CaptioningSolver` trains it unchanged;
``sample`` is the same greedy / beam / temperature search as CaptioningRNN's (shared in
:class:`cs231n.classifiers.captioning.CaptioningModel`), driven by a step that keeps every layer's
self-attention keys and values, so step t costs O(t) instead of re-running the whole prefix. On the GPU
those keys and values go into buffers of max_length positions (no growing copy per word), a model over
one memory token projects its cross-attention output once per caption, and the residual sums are normed
by the fused kernels (``_decoding_state``, ``_step_at``).

Dropout is used only while ``model.training`` is True (the default, as for a fresh PyTorch module) and
``dropout > 0``; set ``model.training = False`` for gradient checks or an evaluation loss. Its masks come
from a ``np.random.Generator`` seeded by one draw from the global ``np.random`` per ``loss`` call, so
``np.random.seed`` (and the solver's ``seed`` and checkpoints) make training reproducible.

The forward, backward and decoding steps compute with the array module of the parameters (numpy, or
CuPy after ``model.to("gpu")``, which moves the table of positions too), as the layers do.
"""
import numpy as np

from cs231n import gpu_kernels
from cs231n._validation import index_array
from cs231n.backend import get_array_module
from cs231n.classifiers.captioning import CaptioningModel, _is_int, log_softmax_rows, region_features
from cs231n.layers import affine_backward, affine_forward, mask_rows, put_rows, softmax_loss_rows, take_rows
from cs231n.rnn_layers import (
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)
from cs231n.workspace import scope
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
    scaled_dot_product_attention_forward,
    split_heads,
)

ARCHIVE_FORMAT = "cs231n-captioning-transformer"
ARCHIVE_VERSION = 1
LN_PARAM = {"eps": 1e-5}
_ATTN = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")  # the order multihead_attention_forward takes
_FFN = ("W1", "b1", "W2", "b2")


class CaptioningTransformer(CaptioningModel):
    """A Transformer decoder over image features (one memory token), in numpy.

    Letters: N minibatch, D feature size, W model size (word vectors), V vocabulary size, F feed-forward
    size, h heads, L layers, T caption length.

    Args:
    - word_to_idx (dict str -> int): the vocabulary, as for CaptioningRNN (``<NULL>`` required).
    - input_dim (int): D.
    - wordvec_dim (int): W, divisible by num_heads.
    - num_heads (int, 4): h.
    - num_layers (int, 2): L.
    - max_length (int, 50): the longest input sequence (positions 0 .. max_length - 1); ``loss`` takes
      captions of up to max_length + 1 words and ``sample`` generates up to max_length words.
    - dim_feedforward (int, 2048): F.
    - dropout (float, 0.1): drop probability (PyTorch's convention) of every dropout, used only while
      ``training`` is True.
    - dtype (np.float16, np.float32 or np.float64; default np.float32): dtype of the parameters and of
      all computation; np.float64 for gradient checks.
    - regions (bool, False): read region features (N, R, D) or a grid (N, D, h, w) as R memory tokens
      instead of one vector (N, D) per image (the parameters are the same; R may differ between calls).

    Parameters (``self.params``): ``W_proj`` (D, W), ``b_proj`` (W,), ``W_embed`` (V, W), ``W_vocab``
    (W, V), ``b_vocab`` (V,), and for each layer l = 0 .. L-1, prefixed ``layer{l}_``: ``self_Wq``,
    ``self_bq``, ``self_Wk``, ``self_bk``, ``self_Wv``, ``self_bv``, ``self_Wo``, ``self_bo`` (weights
    (W, W), biases (W,)); the same with ``cross_``; ``ln1_gamma``, ``ln1_beta``, ``ln2_*``, ``ln3_*``
    (W,); ``ffn_W1`` (W, F), ``ffn_b1`` (F,), ``ffn_W2`` (F, W), ``ffn_b2`` (W,). Initialized as cs231n
    does: weights and embeddings from N(0, 0.02^2) (drawn with ``np.random``, so ``np.random.seed``
    makes a model reproducible), biases 0, layer-norm gains 1; the output projection keeps
    ``nn.Linear``'s default U(-1/sqrt(W), 1/sqrt(W)) for weights and bias, because cs231n creates it
    after its initialization pass.

    Attributes: ``params``, ``training`` (bool), ``identity`` (the training data's identity, saved with
    the model; see CaptioningRNN), ``word_to_idx``, ``idx_to_word``, ``vocab_size``,
    ``input_dim``, ``wordvec_dim``, ``num_heads``, ``num_layers``, ``max_length``, ``dim_feedforward``,
    ``dropout``, ``dtype``, ``regions``, ``_null``, ``_start``, ``_end``.
    """

    ARCHIVE_FORMAT = ARCHIVE_FORMAT
    ARCHIVE_VERSION = ARCHIVE_VERSION
    DEVICE_ATTRS = ("_positions",)  # the table of positions moves with the weights (model.to)
    CONFIG_KEYS = ("input_dim", "wordvec_dim", "num_heads", "num_layers", "max_length", "dim_feedforward",
                   "dropout", "dtype", "word_to_idx", "regions")
    CONFIG_DEFAULTS = {"regions": False}  # files and checkpoints from before region features

    def __init__(self, word_to_idx, input_dim, wordvec_dim, num_heads=4, num_layers=2, max_length=50,
                 dim_feedforward=2048, dropout=0.1, dtype=np.float32, regions=False):
        self._configure(word_to_idx, input_dim, wordvec_dim, num_heads, num_layers, max_length,
                        dim_feedforward, dropout, dtype, regions)
        self.params = self._random_params()
        self.identity = None

    # ------------------------------------------------------------------------------------------------
    # Construction and configuration (files: CaptioningModel.save / load)
    # ------------------------------------------------------------------------------------------------

    def _configure(self, word_to_idx, input_dim, wordvec_dim, num_heads, num_layers, max_length,
                   dim_feedforward, dropout, dtype, regions=False):
        """Validate the constructor's arguments and set every attribute except ``params``."""
        fn = "CaptioningTransformer"
        for name, value in (("input_dim", input_dim), ("wordvec_dim", wordvec_dim),
                            ("num_heads", num_heads), ("num_layers", num_layers),
                            ("max_length", max_length), ("dim_feedforward", dim_feedforward)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
        if wordvec_dim % num_heads:
            raise ValueError(f"{fn}: num_heads ({num_heads}) must divide wordvec_dim ({wordvec_dim}), "
                             f"the model size that the heads share")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.integer, np.floating)) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{fn}: dropout must be a drop probability in [0, 1), got {dropout!r}")
        if not isinstance(regions, (bool, np.bool_)):
            raise ValueError(f"{fn}: regions must be True or False, got {regions!r}")
        self._configure_vocabulary(fn, word_to_idx, dtype)
        self.input_dim = int(input_dim)
        self.wordvec_dim = int(wordvec_dim)
        self.num_heads = int(num_heads)
        self.num_layers = int(num_layers)
        self.max_length = int(max_length)
        self.dim_feedforward = int(dim_feedforward)
        self.dropout = float(dropout)
        self.regions = bool(regions)
        self.training = True
        self._positions = positional_encoding(self.max_length, self.wordvec_dim, self.dtype)  # (max_length, W)

    def _describe(self):
        memory = " over image regions" if self.regions else ""
        return f"a {self.num_layers}-layer Transformer with W = {self.wordvec_dim}{memory}"

    def _takes_regions(self):
        return self.regions

    def _param_shapes(self):
        """The shape of every parameter: dict name -> tuple."""
        V, D, W, F = self.vocab_size, self.input_dim, self.wordvec_dim, self.dim_feedforward
        shapes = {"W_proj": (D, W), "b_proj": (W,), "W_embed": (V, W)}
        for l in range(self.num_layers):
            for block in ("self", "cross"):
                for name in _ATTN:
                    shapes[f"layer{l}_{block}_{name}"] = (W, W) if name[0] == "W" else (W,)
            for k in (1, 2, 3):
                shapes[f"layer{l}_ln{k}_gamma"] = (W,)
                shapes[f"layer{l}_ln{k}_beta"] = (W,)
            shapes.update({f"layer{l}_ffn_W1": (W, F), f"layer{l}_ffn_b1": (F,),
                           f"layer{l}_ffn_W2": (F, W), f"layer{l}_ffn_b2": (W,)})
        shapes.update({"W_vocab": (W, V), "b_vocab": (V,)})
        return shapes

    def _random_params(self):
        """Fresh parameters (see the class docstring), drawn with np.random in ``_param_shapes`` order."""
        W = self.wordvec_dim
        params = {}
        for name, shape in self._param_shapes().items():
            base = name.rsplit("_", 1)[-1]
            if name in ("W_vocab", "b_vocab"):
                a = np.random.uniform(-1.0, 1.0, size=shape) / np.sqrt(W)
            elif base == "gamma":
                a = np.ones(shape)
            elif len(shape) == 2:
                a = np.random.randn(*shape) * 0.02
            else:
                a = np.zeros(shape)
            params[name] = a.astype(self.dtype)
        return params

    def get_config(self):
        """The model's hyperparameters and vocabulary as a JSON-serializable dict (see CONFIG_KEYS).

        ``regions`` is written only when True, so a one-token model's configuration (and file) is what
        it was before region features existed.
        """
        config = {"input_dim": self.input_dim, "wordvec_dim": self.wordvec_dim, "num_heads": self.num_heads,
                  "num_layers": self.num_layers, "max_length": self.max_length,
                  "dim_feedforward": self.dim_feedforward, "dropout": self.dropout,
                  "dtype": self.dtype.name, "word_to_idx": dict(self.word_to_idx)}
        if self.regions:
            config["regions"] = True
        return config

    # ------------------------------------------------------------------------------------------------
    # Training loss
    # ------------------------------------------------------------------------------------------------

    def loss(self, features, captions, **kwargs):
        """Training loss and gradients for a minibatch of captions (CaptioningRNN's conventions).

        The first T - 1 words of each caption are the inputs and the last T - 1 words the targets;
        targets equal to ``<NULL>`` do not count. The loss is summed over time and divided by N.
        Dropout is on while ``self.training`` is True and ``self.dropout > 0``. On numpy the last layer's
        feed-forward sub-layer and the output layer run only at the positions that count (the same loss,
        gradients and dropout masks as computing every position).

        Inputs:
        - features: image features, of shape (N, D), floating (cast to the model's dtype); with
          ``regions``, region features (N, R, D) or a grid (N, D, h, w).
        - captions: integer word indices in [0, V), of shape (N, T) with 2 <= T <= max_length + 1.
        - verbose (keyword, default False): passed to temporal_softmax_loss, as in cs231n.

        Returns a tuple of:
        - loss: scalar.
        - grads: dict with the keys of ``self.params``, each gradient of the parameter's shape.
        """
        fn = "CaptioningTransformer.loss"
        features, captions, verbose = self._check_loss_inputs(fn, features, captions, kwargs)
        self._check_input_length(fn, "captions", captions.shape[1] - 1, " (T - 1 input words)")
        captions_in = captions[:, :-1]            # (N, T - 1)
        captions_out = captions[:, 1:]            # (N, T - 1)
        mask = captions_out != self._null         # (N, T - 1)
        ws = self.workspace  # the step's large arrays, reused by the next call
        if get_array_module(captions) is np and not verbose and mask.any() and not mask.all():
            # Only the K positions whose target is not <NULL> count. After the last layer's cross-attention
            # everything is computed per position (feed-forward, layer norm, output layer, loss), so the
            # forward keeps only those rows from there on: the same loss and gradients, without the
            # padding's share of the largest products. (On a GPU the full path stays: counting K would
            # wait for the device; verbose prints the full path's shapes; when every position counts the
            # full path is the same computation without copying every row twice.)
            rows = mask_rows(mask)                                                # (K,)
            scores, cache = self._forward(features, captions_in, ws, rows)        # (K, V)
            loss, dscores = softmax_loss_rows(scores, captions_out.reshape(-1)[rows], captions.shape[0],
                                              workspace=ws)
            return loss, self._backward(dscores, cache, ws)
        scores, cache = self._forward(features, captions_in, ws)              # (N, T - 1, V)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask, verbose=verbose, workspace=ws)
        return loss, self._backward(dscores, cache, ws)

    def scores(self, features, captions):
        """Word scores at every step of teacher-forced captions, without dropout (CaptioningRNN.scores).

        Inputs:
        - features: image features, of shape (N, D) (with ``regions``, (N, R, D) or (N, D, h, w)).
        - captions: integer word indices in [0, V), of shape (N, T) with 2 <= T <= max_length + 1; the
          first T - 1 words are fed in.

        Returns scores of shape (N, T - 1, V): row t scores the word after ``captions[:, t]``.
        """
        fn = "CaptioningTransformer.scores"
        features, captions = self._check_caption_inputs(fn, features, captions)
        self._check_input_length(fn, "captions", captions.shape[1] - 1, " (T - 1 input words)")
        training, self.training = self.training, False
        try:
            return self._forward(features, captions[:, :-1])[0]
        finally:
            self.training = training

    def forward(self, features, captions_in, return_attention=False):
        """Scores over the vocabulary at every input position (cs231n's ``forward``).

        Position t sees the image and the words at positions <= t. Dropout is on while
        ``self.training`` is True; set it to False for deterministic scores.

        Inputs:
        - features: image features, of shape (N, D) (with ``regions``, (N, R, D) or (N, D, h, w)).
        - captions_in: input words, int array of shape (N, T) with 1 <= T <= max_length (usually
          ``<START>`` and the words so far).
        - return_attention: also return the attention weights.

        Returns:
        - scores: array of shape (N, T, V).
        - with return_attention, the tuple (scores, attention): ``attention[l]['self']`` (N, h, T, T)
          and ``attention[l]['cross']`` (N, h, T, R) are layer l's attention weights (before dropout);
          R = 1 without ``regions``.
        """
        fn = "CaptioningTransformer.forward"
        features = self._check_features(fn, features)
        captions_in = index_array(fn, "captions_in", captions_in, 2, self.vocab_size)
        if captions_in.shape[0] != features.shape[0] or captions_in.shape[1] < 1:
            raise ValueError(f"{fn}: captions_in should have shape (N, T) with N = {features.shape[0]} and "
                             f"T >= 1, got {captions_in.shape}")
        self._check_input_length(fn, "captions_in", captions_in.shape[1], "")
        features, captions_in = self._on_device(features, captions_in)  # host inputs of a GPU model, once
        scores, cache = self._forward(features, captions_in)
        if not return_attention:
            return scores
        attention = [{"self": c["self"].attn.probs, "cross": c["cross"].attn.probs} for c in cache["layers"]]
        return scores, attention

    def _check_input_length(self, fn, name, T, what):
        if T > self.max_length:
            raise ValueError(f"{fn}: {name} has {T} input positions{what}, more than the model's "
                             f"max_length = {self.max_length} (its table of positions)")

    def _forward(self, features, captions_in, workspace=None, rows=None):
        """Scores (N, T, V) and a cache for ``_backward``; dropout as ``self.training`` says.

        With a workspace the scores and caches are its buffers (``loss``); without, fresh arrays.
        With ``rows`` (K,), flat indices into the N * T positions, the last layer's feed-forward
        sub-layer and the output layer run on those positions only and the scores are (K, V).
        """
        ws = workspace
        p = self.params
        N, T = captions_in.shape
        train = bool(self.training and self.dropout > 0)
        drop = self.dropout if train else 0.0
        gen = np.random.default_rng(np.random.randint(2 ** 62, dtype=np.int64)) if train else None
        cache = {"train": train, "layers": []}
        memory, cache["proj"] = self._project_memory(features)                       # (N, R, W)
        x, cache["embed"] = word_embedding_forward(captions_in, p["W_embed"], ws)     # (N, T, W)
        x += self._positions[:T]
        x, cache["drop"] = dropout_forward(x, drop, train, gen, scope(ws, "drop"))
        xp = get_array_module(x)
        causal = xp.tril(xp.ones((T, T), dtype=bool))                                 # (T, T)
        last = self.num_layers - 1
        for l in range(self.num_layers):
            x, layer_cache = self._layer_forward(l, x, memory, causal, drop, gen, scope(ws, f"layer{l}"),
                                                 rows if l == last else None)         # (N, T, W) or (K, W)
            cache["layers"].append(layer_cache)
        if rows is not None:  # (K, W) rows, as one sequence of K positions
            scores, cache["vocab"] = temporal_affine_forward(x[None], p["W_vocab"], p["b_vocab"], ws)
            return scores[0], cache                                                   # (K, V)
        scores, cache["vocab"] = temporal_affine_forward(x, p["W_vocab"], p["b_vocab"], ws)  # (N, T, V)
        return scores, cache

    def _project_memory(self, features):
        """Memory tokens ``features W_proj + b_proj`` (N, R, W) of features (N, D) (R = 1) or (N, R, D)."""
        N, D = features.shape[0], self.input_dim
        regions = features.reshape(N, -1, D)                                          # (N, R, D)
        memory, cache = affine_forward(regions.reshape(-1, D), self.params["W_proj"], self.params["b_proj"])
        return memory.reshape(N, regions.shape[1], self.wordvec_dim), cache           # (N, R, W)

    def _check_features(self, fn, features):
        if not self.regions:
            return super()._check_features(fn, features)
        return region_features(fn, features, self.input_dim, self.dtype)

    def _layer_params(self, l, block, names):
        return [self.params[f"layer{l}_{block}_{name}"] for name in names]

    def _layer_forward(self, l, x, memory, causal, drop, gen, ws=None, rows=None):
        """One post-norm decoder layer over x (N, T, W) with memory (N, R, W); returns (out, cache).

        ``ws``: None or the layer's Workspace scope (each sub-layer gets its own names in it).
        ``rows``: None, or flat indices (K,) of the positions to keep before the feed-forward sub-layer
        (which works position by position); the output is then (K, W).
        """
        h, train = self.num_heads, drop > 0
        c = {}
        a, c["self"] = multihead_attention_forward(x, x, x, *self._layer_params(l, "self", _ATTN), h,
                                                   mask=causal, dropout_p=drop, rng=gen,
                                                   workspace=scope(ws, "self"))            # (N, T, W)
        a, c["drop1"] = dropout_forward(a, drop, train, gen, scope(ws, "drop1"))
        x, c["ln1"] = self._add_norm(l, 1, x, a, ws=ws)
        a, c["cross"] = multihead_attention_forward(x, memory, memory, *self._layer_params(l, "cross", _ATTN),
                                                    h, dropout_p=drop, rng=gen,
                                                    workspace=scope(ws, "cross"))          # (N, T, W)
        a, c["drop2"] = dropout_forward(a, drop, train, gen, scope(ws, "drop2"))
        x, c["ln2"] = self._add_norm(l, 2, x, a, ws=ws)
        rows_of = None
        if rows is not None:  # dropout draws its masks as for all N * T positions: the same masks
            rows_of = (rows, x.shape[0] * x.shape[1])
            c["rows"] = (rows, x.shape)
            x = take_rows(x, rows, ws, "rows")                                                # (K, W)
        f, c["ffn"] = feedforward_forward(x, *self._layer_params(l, "ffn", _FFN), "relu", drop, gen,
                                          scope(ws, "ffn"), rows_of)
        f, c["drop3"] = dropout_forward(f, drop, train, gen, scope(ws, "drop3"), rows_of)
        x, c["ln3"] = self._add_norm(l, 3, x, f, ws=ws)
        return x, c

    def _add_norm(self, l, k, x, r, c=None, ws=None):
        """Layer l's norm k of the residual sum ``(x + r) + c`` (c None: ``x + r``): (out, cache).

        On real CuPy the norm's kernels add the terms as they read them (3 launches, no array for the
        sum); otherwise the sum is formed (in the workspace buffer ``res{k}`` with ``ws``) and normed.
        """
        gamma, beta = self._layer_params(l, f"ln{k}", ("gamma", "beta"))
        xp = get_array_module(x)
        if gpu_kernels.fused(xp) and gpu_kernels.same_float_dtype(x, r, gamma, beta, *([] if c is None else [c])):
            return gpu_kernels.layernorm_forward(x, gamma, beta, LN_PARAM["eps"], r, c)
        s = _residual(x, r, ws, f"res{k}")
        if c is not None:
            s += c
        return layernorm_forward(s, gamma, beta, LN_PARAM, scope(ws, f"ln{k}"))

    def _backward(self, dscores, cache, ws=None):
        """Gradients of every parameter from the gradient of the scores (N, T, V), or (K, V) of K rows.

        ``ws``: None or the Workspace given to ``_forward`` (the gradients are fresh arrays either way).
        """
        grads = {}
        if dscores.ndim == 2:  # the scores (K, V) of K rows (``_forward`` with rows), as one sequence
            dx, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores[None], cache["vocab"], ws)
            dx = dx[0]                                                # (K, W)
        else:
            dx, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, cache["vocab"], ws)
        dmemory = 0
        for l in reversed(range(self.num_layers)):
            dx, dmem = self._layer_backward(l, dx, cache["layers"][l], grads, scope(ws, f"layer{l}"))
            dmemory = dmemory + dmem                                  # (N, R, W), every layer reads it
        dx = dropout_backward(dx, cache["drop"], scope(ws, "drop"))   # the positions have no parameters
        grads["W_embed"] = word_embedding_backward(dx, cache["embed"], ws)
        dmemory = dmemory.reshape(-1, self.wordvec_dim)               # (N * R, W), as projected
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dmemory, cache["proj"])
        return grads

    def _layer_backward(self, l, dout, c, grads, ws=None):
        """Backward through ``_layer_forward``: returns (dx, dmemory) and writes the layer's grads."""
        pre = f"layer{l}_"
        # x3 = ln3(x2 + f):  the residual sends the gradient both to x2 and through the FFN
        ds, grads[pre + "ln3_gamma"], grads[pre + "ln3_beta"] = layernorm_backward(dout, c["ln3"],
                                                                                   scope(ws, "ln3"))
        df = dropout_backward(ds, c["drop3"], scope(ws, "drop3"))
        dx, *ffn = feedforward_backward(df, c["ffn"], scope(ws, "ffn"))
        grads.update(zip((pre + "ffn_" + n for n in _FFN), ffn))
        dx += ds
        if "rows" in c:  # only K rows went on (``_layer_forward``): the others get no gradient from here
            rows, shape = c["rows"]
            dx = put_rows(dx, rows, shape, ws, "drows")               # (N, T, W)
        # x2 = ln2(x1 + cross(x1, memory))
        ds, grads[pre + "ln2_gamma"], grads[pre + "ln2_beta"] = layernorm_backward(dx, c["ln2"],
                                                                                   scope(ws, "ln2"))
        da = dropout_backward(ds, c["drop2"], scope(ws, "drop2"))
        dq, dk, dv, *cross = multihead_attention_backward(da, c["cross"], scope(ws, "cross"))
        grads.update(zip((pre + "cross_" + n for n in _ATTN), cross))
        dmemory = dk + dv                                             # memory was both key and value
        dx = dq + ds
        # x1 = ln1(x + self(x, x, x))
        ds, grads[pre + "ln1_gamma"], grads[pre + "ln1_beta"] = layernorm_backward(dx, c["ln1"],
                                                                                   scope(ws, "ln1"))
        da = dropout_backward(ds, c["drop1"], scope(ws, "drop1"))
        dq, dk, dv, *attn = multihead_attention_backward(da, c["self"], scope(ws, "self"))
        grads.update(zip((pre + "self_" + n for n in _ATTN), attn))
        if gpu_kernels.fused(get_array_module(dq)) and gpu_kernels.same_float_dtype(dq, dk, dv, ds):
            dx = gpu_kernels.add4(dq, dk, dv, ds)                     # one launch (3)
        else:
            dx = dq + dk + dv + ds                                    # x was query, key and value
        return dx, dmemory

    # ------------------------------------------------------------------------------------------------
    # Decoding with cached keys and values (the search itself is CaptioningModel.sample)
    # ------------------------------------------------------------------------------------------------

    def _check_sample_length(self, fn, max_length):
        if max_length > self.max_length:
            raise ValueError(f"{fn}: max_length = {max_length} is more than the model's max_length = "
                             f"{self.max_length} (its table of positions)")

    def _decode_state(self, features):
        """The decoding state of images with features (N, D) or, with ``regions``, (N, R, D)."""
        return self._initial_state(self._project_memory(features)[0])

    def _initial_state(self, memory):
        """The decoding state before the first word, for M captions with memory tokens (M, R, W).

        A tuple of 4L arrays: for each layer, the cross-attention keys and values of the memory
        (M, h, R, d), computed once, and the self-attention keys and values of the words so far
        (M, h, t, d), empty at first. The position t of the next word is their length. A region model's
        state ends with one more array, the (M, R) attention weights of the last step (zeros at first).
        A memory (M, W) is one token.
        """
        h = self.num_heads
        if memory.ndim == 2:
            memory = memory[:, None, :]                                               # (M, 1, W)
        M, R, W = memory.shape
        xp = get_array_module(memory)
        empty = xp.zeros((M, h, 0, W // h), dtype=self.dtype)                        # (M, h, 0, d)
        state = []
        for l in range(self.num_layers):
            _, _, Wk, bk, Wv, bv, _, _ = self._layer_params(l, "cross", _ATTN)
            state += [split_heads(memory @ Wk + bk, h), split_heads(memory @ Wv + bv, h), empty, empty]
        if self.regions:
            state.append(xp.zeros((M, R)))                                            # (M, R) weights
        return tuple(state)

    def _step_attention(self, state):
        """The (M, R) cross-attention weights (mean over heads and layers) of the last step; None without
        ``regions``."""
        return state[-1] if self.regions else None

    def _decoding_state(self, features, max_length):
        """``sample``'s starting state. On the host: ``_decode_state``. On the GPU every layer's
        self-attention keys and values go into buffers (M, h, max_length, d) that ``_step_at`` fills one
        position per word, in place (no growing copy per word); and, without ``regions``, the one memory
        token's cross-attention (whose softmax over one key is exactly 1, so its output is the memory's
        value whatever the query) is computed once, as its projection ``merge_heads(v) Wo`` (M, 1, W),
        instead of at every word. A tuple of 3L arrays then (that projection, the key and value buffers
        of each layer), 4L + 1 with ``regions`` (as ``_initial_state``'s, with buffers)."""
        memory = self._project_memory(features)[0]                                   # (M, R, W)
        state = self._initial_state(memory)
        xp = get_array_module(memory)
        if xp is np:
            return state
        M, h, W = memory.shape[0], self.num_heads, self.wordvec_dim
        cache = (M, h, max_length, W // h)
        device_state = []
        for l in range(self.num_layers):
            ck, cv = state[4 * l: 4 * l + 2]
            if self.regions:
                device_state += [ck, cv]
            else:
                Wo = self._layer_params(l, "cross", ("Wo",))[0]
                device_state.append(merge_heads(cv) @ Wo)                           # (M, 1, W)
            device_state += [xp.empty(cache, dtype=self.dtype), xp.empty(cache, dtype=self.dtype)]
        if self.regions:
            device_state.append(state[-1])
        return tuple(device_state)

    def _step_at(self, t, words, state, normalize=True):
        """``_step`` (host, or a state from ``_initial_state``), or on the GPU the step over the state of
        ``_decoding_state``: the same math, with the new keys and values written at position t of the
        buffers (the state's arrays are updated in place and returned)."""
        buffered = state[2].shape[2] != t if self.regions else len(state) == 3 * self.num_layers
        if get_array_module(state[0]) is np or not buffered:
            return self._step(words, state, normalize)
        p, h, L = self.params, self.num_heads, self.num_layers
        xp = get_array_module(p["W_embed"])
        n = 4 if self.regions else 3                                                 # arrays per layer
        x = (p["W_embed"][words] + self._positions[t])[:, None, :]                  # (M, 1, W)
        weights = 0.0
        for l in range(L):
            Wq, bq, Wk, bk, Wv, bv, Wo, bo = self._layer_params(l, "self", _ATTN)
            sk, sv = state[n * l + n - 2: n * l + n]                                 # (M, h, T, d) buffers
            for W_, b_, buf in ((Wk, bk, sk), (Wv, bv, sv)):  # the bias added into the buffer: 2 launches
                xp.add((x @ W_).reshape(buf.shape[0], h, -1), b_.reshape(h, -1), out=buf[:, :, t])
            a, _ = scaled_dot_product_attention_forward(split_heads(x @ Wq + bq, h), sk[:, :, :t + 1],
                                                        sv[:, :, :t + 1])           # (M, h, 1, d)
            x = self._add_norm(l, 1, x, merge_heads(a) @ Wo, bo)[0]                  # (M, 1, W)
            Wq, bq, _, _, _, _, Wo, bo = self._layer_params(l, "cross", _ATTN)
            if self.regions:
                ck, cv = state[n * l: n * l + 2]
                a, cross = scaled_dot_product_attention_forward(split_heads(x @ Wq + bq, h), ck, cv)
                weights = weights + cross.probs[:, :, 0, :].mean(axis=1) / L         # (M, R)
                x = self._add_norm(l, 2, x, merge_heads(a) @ Wo, bo)[0]
            else:  # one memory token: its attention output is its value, projected once
                x = self._add_norm(l, 2, x, state[n * l], bo)[0]
            f, _ = feedforward_forward(x, *self._layer_params(l, "ffn", _FFN), "relu")
            x = self._add_norm(l, 3, x, f)[0]
        if self.regions:
            state = state[:-1] + (weights.astype(np.float64),)
        scores = x[:, 0, :] @ p["W_vocab"] + p["b_vocab"]                           # (M, V)
        return state, (log_softmax_rows(scores) if normalize else scores)

    def _step(self, words, state, normalize=True):
        """Advance M captions by one word; the same math as ``forward`` at the newest position.

        Inputs:
        - words: the previous words, int array of shape (M,).
        - state: the tuple from ``_initial_state`` or a previous step.
        - normalize: return log-probabilities; False returns the raw scores.

        Returns (state, log_probs) with log_probs of shape (M, V), float64 (raw scores of the model's
        dtype when ``normalize`` is False); the state's self-attention caches are one word longer.
        """
        p, h, L = self.params, self.num_heads, self.num_layers
        xp = get_array_module(p["W_embed"])
        t = state[2].shape[2]
        x = (p["W_embed"][words] + self._positions[t])[:, None, :]                  # (M, 1, W)
        new_state, weights = [], 0.0
        for l in range(self.num_layers):
            ck, cv, sk, sv = state[4 * l: 4 * l + 4]
            Wq, bq, Wk, bk, Wv, bv, Wo, bo = self._layer_params(l, "self", _ATTN)
            sk = xp.concatenate([sk, split_heads(x @ Wk + bk, h)], axis=2)           # (M, h, t + 1, d)
            sv = xp.concatenate([sv, split_heads(x @ Wv + bv, h)], axis=2)
            a, _ = scaled_dot_product_attention_forward(split_heads(x @ Wq + bq, h), sk, sv)  # (M, h, 1, d)
            x = self._layernorm(l, 1, x + merge_heads(a) @ Wo + bo)                  # (M, 1, W)
            Wq, bq, _, _, _, _, Wo, bo = self._layer_params(l, "cross", _ATTN)
            a, cross = scaled_dot_product_attention_forward(split_heads(x @ Wq + bq, h), ck, cv)
            if self.regions:
                weights = weights + cross.probs[:, :, 0, :].mean(axis=1) / L         # (M, R)
            x = self._layernorm(l, 2, x + merge_heads(a) @ Wo + bo)
            f, _ = feedforward_forward(x, *self._layer_params(l, "ffn", _FFN), "relu")
            x = self._layernorm(l, 3, x + f)
            new_state += [ck, cv, sk, sv]
        if self.regions:
            new_state.append(weights.astype(np.float64))
        scores = x[:, 0, :] @ p["W_vocab"] + p["b_vocab"]                           # (M, V)
        return tuple(new_state), (log_softmax_rows(scores) if normalize else scores)

    def _layernorm(self, l, k, x):
        out, _ = layernorm_forward(x, *self._layer_params(l, f"ln{k}", ("gamma", "beta")), LN_PARAM)
        return out


def _residual(x, a, ws, name):
    """``x + a`` (N, T, W), in the workspace buffer ``name`` when ws is given."""
    if ws is None:
        return x + a
    xp = get_array_module(x)
    return xp.add(x, a, out=ws.empty(xp, name, x.shape, np.result_type(x.dtype, a.dtype)))
