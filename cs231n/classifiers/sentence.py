"""Sentence classifiers for CoLA-format data: the shared base and two baselines.

Every model here reads rows of word indices (N, T), as :func:`cs231n.cola_utils.load_cola_data` gives
them (the sentence's words, then ``CLS``, then ``PAD``), and scores each sentence with one number z,
the logit of "acceptable": ``p = sigmoid(z)``. They share, through :class:`SentenceClassifier`:

- ``loss(inputs, labels, weights=None) -> (loss, grads)``: binary cross-entropy, mean over N
  (:func:`cs231n.layers.sigmoid_cross_entropy_loss`), optional per-example weights for class weighting;
- ``predict_proba(inputs)`` (N,), ``predict(inputs, threshold=0.5)`` (N,) in {0, 1}, and
  ``evaluate(inputs, labels)`` (loss, accuracy, Matthews correlation, confusion matrix);
- ``get_config``/``from_config``, ``save``/``load`` in the project's archive format (npz + JSON, no
  pickle), and :func:`load_sentence_classifier`, which loads any of them.

Baselines:

- :class:`BagOfWordsClassifier`: logistic regression on word counts (CLS and PAD not counted).
- :class:`LSTMClassifier`: word embedding, an LSTM of :mod:`cs231n.rnn_layers`, and an affine readout of
  the hidden state at the CLS position (the end of the sentence) or of the mean over the sentence.

The Transformer (:class:`cs231n.classifiers.classification_transformer.ClassificationTransformer`) is
built on the same base.

Letters: N sentences, T positions, V vocabulary size, W word-vector size, H hidden size.

Every classifier moves between host and GPU with ``model.to("gpu")`` / ``.to("cpu")`` (see
:mod:`cs231n.classifiers.device`); on the GPU ``loss`` and ``scores`` take host inputs (checked on
the host, then copied once) or GPU inputs.
"""
import numpy as np

from cs231n import metrics
from cs231n._validation import copy_params
from cs231n.archive import load_archive, save_archive
from cs231n.backend import check_on_device, get_array_module, to_numpy
from cs231n.classifiers.recurrent import init_recurrent_params, recurrent_backward, recurrent_forward
from cs231n.classifiers.device import DeviceModel, host_arrays
from cs231n.cola_utils import CLS, PAD, check_binary_labels
from cs231n.layers import affine_backward, affine_forward, sigmoid_cross_entropy_loss
from cs231n.rnn_layers import word_embedding_backward, word_embedding_forward

ARCHIVE_FORMAT = "cs231n-sentence-classifier"
ARCHIVE_VERSION = 1
_DTYPES = ("float32", "float64")
_KINDS = {}  # class name -> class, filled by SentenceClassifier.__init_subclass__


def _int_vocab(fn, word_to_ix):
    """``word_to_ix`` with int values (the classic CSV loader gives str values), checked to be 0..V-1."""
    if not isinstance(word_to_ix, dict) or not word_to_ix:
        raise TypeError(f"{fn}: word_to_ix must be a non-empty dict word -> index, "
                        f"got {type(word_to_ix).__name__}")
    vocab = {}
    for word, ix in word_to_ix.items():
        try:
            if isinstance(ix, (bool, float)):
                raise ValueError
            vocab[str(word)] = int(ix)
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: word_to_ix[{word!r}] must be an integer index (or its string), "
                             f"got {ix!r}") from None
    V = len(vocab)
    if sorted(vocab.values()) != list(range(V)):
        raise ValueError(f"{fn}: the indices of word_to_ix must be 0..{V - 1}, each once")
    return vocab


def _positive_int(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: {name} must be an int >= 1, got {value!r}")
    return int(value)


def _choice(fn, name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{fn}: {name} must be one of {allowed}, got {value!r}")
    return value


class SentenceClassifier(DeviceModel):
    """Base of the sentence classifiers: vocabulary, input checks, loss, prediction, files.

    Subclasses set ``self.params`` and implement ``_forward(inputs, training) -> (z, cache)`` with
    scores z of shape (N,), ``_backward(dz, cache) -> grads``, and ``_own_config()`` (their constructor
    arguments beyond ``word_to_ix``, ``max_length`` and ``dtype``). ``_penalty()`` may add a
    regularization term (loss, grads).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KINDS[cls.__name__] = cls

    def _init_common(self, fn, word_to_ix, max_length, dtype):
        self.word_to_ix = _int_vocab(fn, word_to_ix)
        self.vocab_size = len(self.word_to_ix)
        self.max_length = _positive_int(fn, "max_length", max_length)
        dtype = np.dtype(dtype)
        if dtype.name not in _DTYPES:
            raise TypeError(f"{fn}: dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self.cls_index = self.word_to_ix.get(CLS)
        self.pad_index = self.word_to_ix.get(PAD)

    # ------------------------------------------------------------------ inputs

    def check_inputs(self, fn, inputs):
        """Return ``inputs`` as an int64 (N, T) array with 1 <= T <= max_length and indices in [0, V).

        GPU inputs stay on the GPU (the range check reads one boolean back)."""
        inputs = get_array_module(inputs).asarray(inputs)
        if inputs.dtype.kind not in "iu":
            raise TypeError(f"{fn}: inputs must hold integer word indices, got dtype {inputs.dtype}")
        if inputs.ndim != 2:
            raise ValueError(f"{fn}: inputs must have shape (N, T), got {inputs.shape}")
        N, T = inputs.shape
        if N == 0 or T == 0:
            raise ValueError(f"{fn}: inputs is empty (shape {inputs.shape}); need at least one sentence "
                             f"of at least one position")
        if T > self.max_length:
            raise ValueError(f"{fn}: inputs has T = {T} positions, beyond the model's max_length "
                             f"{self.max_length}")
        bad = (inputs < 0) | (inputs >= self.vocab_size)

        def fail():
            host, where = to_numpy(inputs), to_numpy(bad)
            r, c = np.argwhere(where)[0]
            raise ValueError(f"{fn}: inputs[{r}, {c}] = {host[r, c]} is outside the vocabulary "
                             f"[0, {self.vocab_size})")
        check_on_device(~bad.any(), fail)
        return inputs.astype(np.int64, copy=False)

    def cls_positions(self, fn, inputs):
        """The position of the CLS token in each row, (N,); ValueError unless every row has exactly one."""
        if self.cls_index is None:
            raise ValueError(f"{fn}: the vocabulary has no {CLS!r} token, so there is no CLS position to "
                             f"read from")
        is_cls = inputs == self.cls_index
        counts = is_cls.sum(axis=1)
        if np.any(counts != 1):
            r = int(np.flatnonzero(counts != 1)[0])
            raise ValueError(f"{fn}: inputs row {r} holds {counts[r]} CLS tokens; reading at the CLS "
                             f"position needs exactly one per row")
        return np.argmax(is_cls, axis=1)                                 # (N,)

    def not_padding(self, inputs):
        """(N, T) bool, True where the token is not PAD (all True without a PAD token)."""
        if self.pad_index is None:
            return get_array_module(inputs).ones(inputs.shape, dtype=bool)
        return inputs != self.pad_index

    # ------------------------------------------------------------------ loss and prediction

    def _penalty(self):
        """Regularization added to the loss: (value, dict of gradients), empty by default."""
        return 0.0, {}

    def loss(self, inputs, labels, weights=None):
        """Binary cross-entropy of the predictions, mean over N, and its gradients.

        Inputs:
        - inputs: (N, T) int word indices, T <= max_length.
        - labels: (N,) int labels in {0, 1} (1 = acceptable).
        - weights: optional (N,) non-negative per-example weights (for class weighting; weights
          averaging 1 keep the loss on the scale of the unweighted one).

        Returns a tuple of:
        - loss: float, ``mean(weights * cross-entropy)`` plus the model's regularization term if any.
        - grads: dict with the keys of ``self.params``, arrays of the same shapes.
        """
        fn = f"{type(self).__name__}.loss"
        inputs = self.check_inputs(fn, inputs)
        labels = check_binary_labels(labels, inputs.shape[0], f"{fn}: labels", "inputs")
        if weights is not None:
            xp = get_array_module(weights)
            weights = xp.asarray(weights, dtype=self.dtype)
            if weights.shape != labels.shape or not bool(xp.all((weights >= 0) & xp.isfinite(weights))):
                raise ValueError(f"{fn}: weights must be {labels.shape[0]} finite non-negative numbers, "
                                 f"got shape {weights.shape}")
        inputs, labels, weights = self._on_device(inputs, labels, weights)
        z, cache = self._forward(inputs, training=True)
        loss, dz = sigmoid_cross_entropy_loss(z, labels, weights)
        grads = self._backward(dz, cache)
        penalty, dpenalty = self._penalty()
        for name, g in dpenalty.items():
            grads[name] = grads[name] + g
        return loss + penalty, grads

    def scores(self, inputs, batch_size=500):
        """The logits z (N,) of "acceptable" in test mode, computed ``batch_size`` rows at a time."""
        fn = f"{type(self).__name__}.scores"
        inputs = self.check_inputs(fn, inputs)
        batch_size = _positive_int(fn, "batch_size", batch_size)
        inputs = self._on_device(inputs)
        out = get_array_module(inputs).empty(inputs.shape[0], dtype=self.dtype)  # (N,), on the model's device
        for lo in range(0, inputs.shape[0], batch_size):
            out[lo:lo + batch_size], _ = self._forward(inputs[lo:lo + batch_size], training=False)
        return out

    def predict_proba(self, inputs, batch_size=500):
        """Probabilities (N,) that each sentence is acceptable."""
        z = self.scores(inputs, batch_size)
        return 0.5 * (1.0 + get_array_module(z).tanh(0.5 * z))           # sigmoid, no overflow

    def predict(self, inputs, threshold=0.5, batch_size=500):
        """Labels (N,) int64: 1 where the probability of "acceptable" is at least ``threshold``."""
        return (self.predict_proba(inputs, batch_size) >= threshold).astype(np.int64)

    def evaluate(self, inputs, labels, batch_size=500):
        """Scores of the model on labelled sentences (test mode, no state changes).

        Returns a dict with 'loss' (mean binary cross-entropy), 'accuracy', 'mcc' (Matthews
        correlation), 'confusion' ([[TN, FP], [FN, TP]] as lists), 'positive_rate' (share predicted
        acceptable) and 'num' (N).
        """
        fn = f"{type(self).__name__}.evaluate"
        inputs = self.check_inputs(fn, inputs)
        labels = to_numpy(check_binary_labels(labels, inputs.shape[0], f"{fn}: labels", "inputs"))
        z = to_numpy(self.scores(inputs, batch_size))                    # the metrics are counted on the host
        loss, _ = sigmoid_cross_entropy_loss(z.astype(np.float64), labels)
        pred = (z >= 0).astype(np.int64)
        return {"loss": loss, "accuracy": metrics.accuracy(labels, pred),
                "mcc": metrics.matthews_corrcoef(labels, pred),
                "confusion": metrics.binary_confusion_matrix(labels, pred).tolist(),
                "positive_rate": float(pred.mean()), "num": int(labels.shape[0])}

    # ------------------------------------------------------------------ configuration and files

    def get_config(self):
        """The constructor arguments as a JSON-ready dict (the weights are in ``params``)."""
        config = {"word_to_ix": dict(self.word_to_ix), "max_length": self.max_length,
                  "dtype": self.dtype.name}
        config.update(self._own_config())
        return config

    @classmethod
    def from_config(cls, config, params=None):
        """A model of this class from :meth:`get_config`'s dict, with ``params`` copied in if given."""
        fn = f"{cls.__name__}.from_config"
        if not isinstance(config, dict):
            raise TypeError(f"{fn}: config must be a dict, got {type(config).__name__}")
        model = cls(**config, seed=0)
        if params is not None:
            model.set_params(params, fn)
        return model

    def set_params(self, params, fn="set_params", where=""):
        """Copy ``params`` (the model's names and shapes) into the model, cast to its dtype."""
        device = self.device  # the new weights stay where the model is
        self.params = copy_params(fn, host_arrays(self.params), host_arrays(params), self.dtype, where)
        if device == "gpu":
            self.to(device)

    def save(self, path):
        """Write configuration and weights to ``path`` atomically (npz + JSON, no pickle); return it."""
        meta = {"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "kind": type(self).__name__,
                "config": self.get_config()}
        return save_archive(path, self.params, meta)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; it must be of this class (or use
        :func:`load_sentence_classifier` for any kind)."""
        model = load_sentence_classifier(path)
        if not isinstance(model, cls):
            raise ValueError(f"{cls.__name__}.load: {path} holds a {type(model).__name__}")
        return model


def load_sentence_classifier(path):
    """Load any sentence classifier written by ``save``: a model of the kind recorded in the file."""
    fn = "load_sentence_classifier"
    arrays, meta = load_archive(path)
    if meta.get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"{fn}: {path} is not a sentence classifier (format {meta.get('format')!r}, "
                         f"expected {ARCHIVE_FORMAT!r})")
    if meta.get("version") != ARCHIVE_VERSION:
        raise ValueError(f"{fn}: {path} has format version {meta.get('version')!r}; this library reads "
                         f"version {ARCHIVE_VERSION}")
    kind = meta.get("kind")  # every kind registered itself: cs231n/classifiers/__init__ imports them all
    if kind not in _KINDS:
        raise ValueError(f"{fn}: {path} holds an unknown kind of model {kind!r}; known: {sorted(_KINDS)}")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{fn}: {path} has no configuration")
    try:
        model = _KINDS[kind](**config, seed=0)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: {path} has an invalid configuration: {e}") from e
    model.set_params(arrays, fn, where=f" in {path}")
    return model


# ----------------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------------

class BagOfWordsClassifier(SentenceClassifier):
    """Logistic regression on word counts: ``z = counts(sentence) . W + b``.

    The counts run over the V vocabulary words; CLS and PAD are not counted (every sentence has one
    CLS, and PAD only marks the length), UNK is. ``reg`` adds ``0.5 * reg * sum(W ** 2)`` to the loss.

    Parameters: ``W`` (V, 1) and ``b`` (1,), both zero at the start (the loss is convex).
    """

    def __init__(self, word_to_ix, max_length=43, reg=0.0, dtype=np.float32, seed=None):
        fn = "BagOfWordsClassifier"
        self._init_common(fn, word_to_ix, max_length, dtype)
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
            raise ValueError(f"{fn}: reg must be a number >= 0, got {reg!r}")
        self.reg = float(reg)
        self.params = {"W": np.zeros((self.vocab_size, 1), dtype=self.dtype),
                       "b": np.zeros(1, dtype=self.dtype)}

    def _own_config(self):
        return {"reg": self.reg}

    def counts(self, inputs):
        """(N, V) word counts of each row, CLS and PAD excluded, in the model's dtype."""
        xp = get_array_module(inputs)
        N, V = inputs.shape[0], self.vocab_size
        keep = xp.ones(inputs.shape, dtype=bool)
        for special in (self.cls_index, self.pad_index):
            if special is not None:
                keep &= inputs != special
        rows = xp.broadcast_to(xp.arange(N)[:, None], inputs.shape)
        flat = (rows * V + inputs)[keep]
        return xp.bincount(flat, minlength=N * V).reshape(N, V).astype(self.dtype)  # (N, V)

    def _forward(self, inputs, training):
        X = self.counts(inputs)                                          # (N, V)
        z, cache = affine_forward(X, self.params["W"], self.params["b"])  # (N, 1)
        return z[:, 0], cache

    def _backward(self, dz, cache):
        _, dW, db = affine_backward(dz[:, None], cache)
        return {"W": dW, "b": db}

    def _penalty(self):
        W = self.params["W"]
        return 0.5 * self.reg * float((W * W).sum()), {"W": self.reg * W}


class LSTMClassifier(SentenceClassifier):
    """An LSTM over the words, read out by an affine layer.

    ``x_t = W_embed[word_t]``; ``h = LSTM(x)`` from a zero state (:func:`cs231n.rnn_layers.lstm_forward`);
    the sentence vector is h at the CLS position (``readout='cls'``: the LSTM has then read the whole
    sentence) or the mean of h over the non-PAD positions (``readout='mean'``); ``z = h W_out + b_out``.
    Positions after the last non-PAD token of the batch are not computed: they cannot change either
    readout, since the LSTM only looks back.

    Parameters: ``W_embed`` (V, W) randn / 100 (as cs231n's captioning model), ``Wx`` (W, 4H) and
    ``Wh`` (H, 4H) randn / sqrt(fan in), ``b`` (4H,) zero, ``W_out`` (H, 1) randn / sqrt(H), ``b_out`` (1,)
    zero, drawn in that order from ``np.random.default_rng(seed)``.
    """

    READOUTS = ("cls", "mean")

    def __init__(self, word_to_ix, wordvec_dim=64, hidden_dim=128, max_length=43, readout="cls",
                 dtype=np.float32, seed=None):
        fn = "LSTMClassifier"
        self._init_common(fn, word_to_ix, max_length, dtype)
        self.wordvec_dim = _positive_int(fn, "wordvec_dim", wordvec_dim)
        self.hidden_dim = _positive_int(fn, "hidden_dim", hidden_dim)
        self.readout = _choice(fn, "readout", readout, self.READOUTS)
        if readout == "cls" and self.cls_index is None:
            raise ValueError(f"{fn}: readout='cls' needs a {CLS!r} token in word_to_ix")
        rng = np.random.default_rng(seed)
        V, W, H = self.vocab_size, self.wordvec_dim, self.hidden_dim
        p = {"W_embed": rng.standard_normal((V, W)) / 100}
        p.update(init_recurrent_params(rng, W, H, "lstm"))
        p["W_out"] = rng.standard_normal((H, 1)) / np.sqrt(H)
        p["b_out"] = np.zeros(1)
        self.params = {k: v.astype(self.dtype) for k, v in p.items()}

    def _own_config(self):
        return {"wordvec_dim": self.wordvec_dim, "hidden_dim": self.hidden_dim, "readout": self.readout}

    def _forward(self, inputs, training):
        fn = "LSTMClassifier"
        p = self.params
        xp = get_array_module(inputs)
        keep = self.not_padding(inputs)                                  # (N, T)
        if self.readout == "cls":
            last = self.cls_positions(fn, inputs)                        # (N,)
            T_used = int(last.max()) + 1
        else:
            used_cols = xp.flatnonzero(keep.any(axis=0))
            T_used = int(used_cols.max()) + 1 if used_cols.size else 1
        x_idx = inputs[:, :T_used]                                       # (N, T')
        N = x_idx.shape[0]
        x, cache_embed = word_embedding_forward(x_idx, p["W_embed"])     # (N, T', W)
        h0 = xp.zeros((N, self.hidden_dim), dtype=self.dtype)            # (N, H)
        h, cache_lstm = recurrent_forward("lstm", x, h0, p)              # (N, T', H)
        if self.readout == "cls":
            v = h[xp.arange(N), last]                                    # (N, H)
            weights = None
        else:
            weights = keep[:, :T_used].astype(self.dtype)                # (N, T')
            weights /= xp.maximum(weights.sum(axis=1, keepdims=True), 1)
            v = xp.einsum("nt,nth->nh", weights, h)                      # (N, H)
        z, cache_out = affine_forward(v, p["W_out"], p["b_out"])         # (N, 1)
        cache = (cache_embed, cache_lstm, cache_out, h.shape, weights, None if weights is not None else last)
        return z[:, 0], cache

    def _backward(self, dz, cache):
        cache_embed, cache_lstm, cache_out, h_shape, weights, last = cache
        grads = {}
        dv, grads["W_out"], grads["b_out"] = affine_backward(dz[:, None], cache_out)  # dv (N, H)
        if weights is None:
            xp = get_array_module(dv)
            dh = xp.zeros(h_shape, dtype=dv.dtype)                       # (N, T', H)
            dh[xp.arange(h_shape[0]), last] = dv                         # only the CLS position is read
        else:
            dh = weights[:, :, None] * dv[:, None, :]                    # the mean spreads dv over positions
        dx, _, lstm_grads = recurrent_backward("lstm", dh, cache_lstm)
        grads.update(lstm_grads)
        grads["W_embed"] = word_embedding_backward(dx, cache_embed)
        return grads
