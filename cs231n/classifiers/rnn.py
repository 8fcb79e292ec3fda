"""An image-captioning model: image features set the initial state of a recurrent network over words.

``CaptioningRNN`` is cs231n's captioning model. The minibatch size is N, image features have size D,
word vectors size W, the hidden state size H, the vocabulary size V and captions have T words. A
feature vector is projected to the initial hidden state ``h0 = features W_proj + b_proj``; the caption,
shifted by one word, is embedded, run through a vanilla RNN, LSTM or GRU, and every hidden state is
mapped to scores over the vocabulary. Training minimizes the softmax loss of predicting each next word.

With ``cell_type='attention'`` (SPEC §10, soft attention of Xu et al. 2015) an image is R region
vectors (N, R, D) instead of one: each is projected, ``A = features W_proj + b_proj`` (N, R, H), the
LSTM starts from the mean region, and at every word it attends over the regions with its previous
hidden state; ``sample(..., return_attention=True)`` returns the weights it gave each region per word.

Decoding (``sample``) starts from ``<START>``: greedy by default, as in cs231n, or beam search, or
temperature sampling driven by a seedable ``np.random.Generator``. ``<NULL>`` (padding) and ``<START>``
are never generated; every other word, ``<END>`` included, is. The log-probability reported for a
caption is the one ``loss`` assigns to it: the sum of the log-softmax of each generated word over the
whole vocabulary, ``<END>`` included when emitted.

Files (save/load) and decoding are shared with the Transformer in
:class:`cs231n.classifiers.captioning.CaptioningModel`; this module gives the recurrent step. Models
are saved as an ``.npz`` archive with JSON metadata (see :mod:`cs231n.archive`), never pickled.
"""
import numpy as np

from cs231n.backend import get_array_module
from cs231n.classifiers.captioning import CaptioningModel, _is_int, log_softmax_rows, region_features
from cs231n.layers import affine_backward, affine_forward, mask_rows, put_rows, softmax_loss_rows, take_rows
from cs231n.classifiers.recurrent import (
    ATTENTION,
    GATES,
    embedded_recurrent_backward,
    embedded_recurrent_forward,
    initial_state,
    recurrent_step,
)
from cs231n.rnn_layers import temporal_affine_backward, temporal_affine_forward, temporal_softmax_loss

ARCHIVE_FORMAT = "cs231n-captioning-model"
ARCHIVE_VERSION = 1

# Gate blocks of width H in Wx, Wh and b for every cell type (the attention LSTM is an LSTM).
_GATES = dict(GATES, **{ATTENTION: 4})


class CaptioningRNN(CaptioningModel):
    """A recurrent captioning model over image features: vanilla RNN, LSTM or GRU cells.

    Letters: N minibatch, D feature size, W word-vector size, H hidden size, V vocabulary size
    (``len(word_to_idx)``), T caption length.

    Args:
    - word_to_idx (dict str -> int): the vocabulary; must contain ``<NULL>`` (padding, index < V);
      ``<START>`` is needed for sampling and ``<END>`` stops captions. As in cs231n, V is the number of
      entries and an index >= V simply cannot occur in captions.
    - input_dim (int, 512): D.
    - wordvec_dim (int, 128): W.
    - hidden_dim (int, 128): H.
    - cell_type (str, 'rnn'): 'rnn', 'lstm', 'gru' or 'attention' (gates i, f, o, g for the LSTM; r, z,
      n with the equations of ``torch.nn.GRU`` for the GRU; 'attention' is the LSTM attending over
      image regions, whose features are (N, R, D), or a grid (N, D, h, w) flattened row-major to R = h w).
    - dtype (np.float16, np.float32 or np.float64; default np.float32): dtype of the parameters and of
      all computation; use np.float64 for gradient checks.

    Parameters (``self.params``), with g = 1 (rnn), 4 (lstm, attention), 3 (gru):
    ``W_proj`` (D, H), ``b_proj`` (H,), ``W_embed`` (V, W), ``Wx`` (W, gH), ``Wh`` (H, gH), ``b`` (gH,),
    ``W_vocab`` (H, V), ``b_vocab`` (V,), for the GRU its hidden bias ``bh`` (3H,), and for 'attention'
    the context's weights ``Wattn`` (H, 4H). Weights are drawn with ``np.random.randn`` in cs231n's order
    (W_embed, W_proj, Wx, Wh, then Wattn for 'attention', W_vocab), so ``np.random.seed`` makes a model
    reproducible, and scaled by 1 / sqrt(fan_in) (W_embed by 1 / 100); biases are zero.

    Training with :class:`cs231n.captioning_solver.CaptioningSolver`: an attention model's data dict
    holds the region features under the usual keys, ``train_features`` (num_images, R, D) and
    ``val_features``: ``cs231n.coco_utils.with_regions(load_coco_data(..., regions=True))``.

    Attributes: ``params``, ``word_to_idx``, ``idx_to_word`` (dict int -> str), ``cell_type``, ``dtype``,
    ``vocab_size``, ``input_dim``, ``wordvec_dim``, ``hidden_dim``, and the special indices ``_null``,
    ``_start``, ``_end`` (the last two None when the vocabulary lacks them). ``identity`` (None, or a
    JSON-ready dict such as :func:`cs231n.runs.dataset_identity` gives) records the data the model was
    trained on; ``save`` stores it and ``load`` restores it (None for files saved without one, e.g. by
    older versions, which still load), so a command can refuse a dataset that is not the model's.
    """

    ARCHIVE_FORMAT = ARCHIVE_FORMAT
    ARCHIVE_VERSION = ARCHIVE_VERSION
    CONFIG_KEYS = ("cell_type", "input_dim", "wordvec_dim", "hidden_dim", "dtype", "word_to_idx")

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32):
        self._configure(word_to_idx, input_dim, wordvec_dim, hidden_dim, cell_type, dtype)
        self.params = self._random_params()
        self.identity = None

    # ------------------------------------------------------------------------------------------------
    # Construction, configuration and files
    # ------------------------------------------------------------------------------------------------

    def _configure(self, word_to_idx, input_dim, wordvec_dim, hidden_dim, cell_type, dtype):
        """Validate the constructor's arguments and set every attribute except ``params``."""
        fn = "CaptioningRNN"
        if not isinstance(cell_type, str) or cell_type not in _GATES:
            raise ValueError(f"{fn}: invalid cell_type {cell_type!r}; expected one of {sorted(_GATES)}")
        for name, value in (("input_dim", input_dim), ("wordvec_dim", wordvec_dim),
                            ("hidden_dim", hidden_dim)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
        self._configure_vocabulary(fn, word_to_idx, dtype)
        self.input_dim = int(input_dim)
        self.wordvec_dim = int(wordvec_dim)
        self.hidden_dim = int(hidden_dim)
        self.cell_type = cell_type

    def _param_shapes(self):
        """The shape of every parameter, in cs231n's order: dict name -> tuple."""
        V, D, W, H = self.vocab_size, self.input_dim, self.wordvec_dim, self.hidden_dim
        gH = _GATES[self.cell_type] * H
        shapes = {"W_embed": (V, W), "W_proj": (D, H), "b_proj": (H,), "Wx": (W, gH), "Wh": (H, gH),
                  "b": (gH,), "W_vocab": (H, V), "b_vocab": (V,)}
        if self.cell_type == "gru":
            shapes["bh"] = (gH,)
        if self.cell_type == ATTENTION:
            shapes["Wattn"] = (H, gH)
        return shapes

    def _random_params(self):
        """Fresh parameters: randn draws in cs231n's order, scaled by 1 / sqrt(fan_in); zero biases."""
        V, D, W, H = self.vocab_size, self.input_dim, self.wordvec_dim, self.hidden_dim
        gH = _GATES[self.cell_type] * H
        p = {}
        p["W_embed"] = np.random.randn(V, W) / 100
        p["W_proj"] = np.random.randn(D, H) / np.sqrt(D)
        p["b_proj"] = np.zeros(H)
        p["Wx"] = np.random.randn(W, gH) / np.sqrt(W)
        p["Wh"] = np.random.randn(H, gH) / np.sqrt(H)
        if self.cell_type == ATTENTION:
            p["Wattn"] = np.random.randn(H, gH) / np.sqrt(H)
        p["b"] = np.zeros(gH)
        if self.cell_type == "gru":
            p["bh"] = np.zeros(gH)
        p["W_vocab"] = np.random.randn(H, V) / np.sqrt(H)
        p["b_vocab"] = np.zeros(V)
        return {k: v.astype(self.dtype) for k, v in p.items()}

    def get_config(self):
        """The model's hyperparameters and vocabulary as a JSON-serializable dict.

        Returns a dict with ``cell_type``, ``input_dim``, ``wordvec_dim``, ``hidden_dim``, ``dtype`` (the
        dtype's name, e.g. 'float32') and ``word_to_idx``; ``from_config`` turns it back into a model.
        """
        return {"cell_type": self.cell_type, "input_dim": self.input_dim, "wordvec_dim": self.wordvec_dim,
                "hidden_dim": self.hidden_dim, "dtype": self.dtype.name,
                "word_to_idx": dict(self.word_to_idx)}

    def _describe(self):
        return "an attention model" if self.cell_type == ATTENTION else f"a {self.cell_type} model"

    def _takes_regions(self):
        return self.cell_type == ATTENTION

    def _check_features(self, fn, features):
        """Features as this cell type takes them: (N, D), or region features (N, R, D) for 'attention'."""
        if self.cell_type == ATTENTION:
            return region_features(fn, features, self.input_dim, self.dtype)
        ndim = get_array_module(features).asarray(features).ndim
        if ndim in (3, 4):
            raise ValueError(f"{fn}: features of {ndim} dimensions are region features or a grid; "
                             f"{self._describe()} takes one vector per image, (N, D) with D = "
                             f"{self.input_dim} (cell_type='attention' attends over regions)")
        return super()._check_features(fn, features)

    # ------------------------------------------------------------------------------------------------
    # Training loss
    # ------------------------------------------------------------------------------------------------

    def loss(self, features, captions, **kwargs):
        """Training loss and gradients for a minibatch of captions.

        The first T - 1 words of each caption are the inputs and the last T - 1 words the targets;
        targets equal to ``<NULL>`` do not count. The loss is summed over time and divided by N.

        Inputs:
        - features: image features, of shape (N, D), floating (cast to the model's dtype); for
          'attention' region features (N, R, D) or a grid (N, D, h, w).
        - captions: integer word indices in [0, V), of shape (N, T) with T >= 2; usually each row is
          ``<START>`` words ``<END>`` then ``<NULL>`` padding.
        - verbose (keyword, default False): passed to temporal_softmax_loss, as in cs231n.

        Returns a tuple of:
        - loss: scalar.
        - grads: dict with the keys of ``self.params``, each gradient of the parameter's shape.
        """
        fn = "CaptioningRNN.loss"
        verbose = self._check_loss_kwargs(fn, kwargs)
        ws = self.workspace  # the step's large arrays, reused by the next call
        h, captions, (cache_proj, cache_rnn) = self._hidden(fn, features, captions, ws)  # h (N, T - 1, H)
        captions_out = captions[:, 1:]            # (N, T - 1)
        mask = captions_out != self._null         # (N, T - 1)
        p, grads = self.params, {}
        if get_array_module(h) is np and not verbose:
            # Only the positions whose target is not <NULL> add to the loss or to any gradient, so the
            # output layer runs on those rows alone: the same loss and gradients, and a padded batch
            # skips its padding's share of the layer's three products and of the softmax. (On a GPU
            # the full layer is kept: counting the rows would wait for the device.)
            rows = mask_rows(mask)                                        # (K,) flat positions that count
            h_rows = take_rows(h, rows, ws, "h_rows")                     # (K, H)
            scores, cache_vocab = temporal_affine_forward(h_rows[None], p["W_vocab"], p["b_vocab"], ws)
            targets = captions_out.ravel()[rows]                          # (K,)
            loss, dscores = softmax_loss_rows(scores[0], targets, captions.shape[0], workspace=ws)  # (K, V)
            dh_rows, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores[None], cache_vocab, ws)
            dh = put_rows(dh_rows[0], rows, h.shape, ws)                  # (N, T - 1, H), 0 at the padding
        else:
            scores, cache_vocab = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"], ws)  # (N, T - 1, V)
            loss, dscores = temporal_softmax_loss(scores, captions_out, mask, verbose=verbose, workspace=ws)
            dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, cache_vocab, ws)
        # dh0: dA for attention
        grads["W_embed"], dh0, recurrent_grads = embedded_recurrent_backward(self.cell_type, dh, cache_rnn, ws)
        grads.update(recurrent_grads)
        grads["W_proj"], grads["b_proj"] = self._project_backward(dh0, cache_proj)
        return loss, grads

    def scores(self, features, captions):
        """Word scores at every step of teacher-forced captions (the forward pass of ``loss``).

        Inputs:
        - features: image features, of shape (N, D) (region features (N, R, D) for 'attention').
        - captions: integer word indices in [0, V), of shape (N, T) with T >= 2; the first T - 1
          words are fed in.

        Returns scores of shape (N, T - 1, V): row t scores the word after ``captions[:, t]``.
        """
        h, _, _ = self._hidden("CaptioningRNN.scores", features, captions)
        return temporal_affine_forward(h, self.params["W_vocab"], self.params["b_vocab"])[0]  # (N, T - 1, V)

    def _hidden(self, fn, features, captions, workspace=None):
        """Check the inputs and run the recurrent part of the forward pass; returns (h (N, T - 1, H),
        captions, (cache_proj, cache_rnn)). With a workspace h and the caches are its buffers (``loss``);
        without, fresh arrays.
        """
        features, captions = self._check_caption_inputs(fn, features, captions)
        p, ws = self.params, workspace
        h0, cache_proj = self._project(features)                               # (N, H) or A (N, R, H)
        # The first T - 1 words embedded and run through the recurrent layer: (N, T - 1, H)
        h, cache_rnn = embedded_recurrent_forward(self.cell_type, captions[:, :-1], p["W_embed"], h0, p, ws)
        return h, captions, (cache_proj, cache_rnn)

    # ------------------------------------------------------------------------------------------------
    # Decoding: one step of the recurrence (the search itself is CaptioningModel.sample)
    # ------------------------------------------------------------------------------------------------

    def _project(self, features):
        """``features W_proj + b_proj``: h0 (N, H), or the regions A (N, R, H) for 'attention'; and cache."""
        project = temporal_affine_forward if self.cell_type == ATTENTION else affine_forward
        return project(features, self.params["W_proj"], self.params["b_proj"])

    def _project_backward(self, dproj, cache):
        """(dW_proj, db_proj) of ``_project``. The features are data, so the R regions' own gradient, as
        costly as dW_proj, is not formed (``affine_backward``'s of the one vector (N, D) costs nothing)."""
        if self.cell_type != ATTENTION:
            _, dW, db = affine_backward(dproj, cache)
            return dW, db
        features, _ = cache                                   # temporal_affine_forward's (x, w)
        H = dproj.shape[2]
        d2 = dproj.reshape(-1, H)                             # (N R, H)
        return features.reshape(-1, features.shape[2]).T @ d2, d2.sum(axis=0)

    def _decode_state(self, features):
        """The recurrent state at time 0: (h0,), (h0, zero cell) for the LSTM, (h, c, A, weights) for
        'attention' (see :func:`cs231n.classifiers.recurrent.initial_state`)."""
        return initial_state(self.cell_type, self._project(features)[0])

    def _step_attention(self, state):
        """The attention weights (M, R) of the last step, for 'attention'; None for the other cells."""
        return state[3] if self.cell_type == ATTENTION else None

    def _step(self, words, state, normalize=True):
        """Advance M captions by one word: the same math as ``loss``, one timestep at a time.

        Inputs:
        - words: the previous words, int array of shape (M,).
        - state: tuple of arrays from ``_decode_state`` or a previous step, each with M rows.
        - normalize: return log-probabilities; False returns the raw scores (same argmax and same
          softmax), which saves the normalization when only the chosen words are wanted.

        Returns (state, log_probs) with log_probs of shape (M, V), float64, normalized over all V words
        (raw scores of the model's dtype when ``normalize`` is False).
        """
        p = self.params
        x = p["W_embed"][words]  # (M, W)
        state = recurrent_step(self.cell_type, x, state, p)
        h = state[0]
        scores = h @ p["W_vocab"] + p["b_vocab"]  # (M, V)
        return state, (log_softmax_rows(scores) if normalize else scores)
