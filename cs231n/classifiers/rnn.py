"""An image-captioning model: image features set the initial state of a recurrent network over words.

``CaptioningRNN`` is cs231n's captioning model. The minibatch size is N, image features have size D,
word vectors size W, the hidden state size H, the vocabulary size V and captions have T words. A
feature vector is projected to the initial hidden state ``h0 = features W_proj + b_proj``; the caption,
shifted by one word, is embedded, run through a vanilla RNN, LSTM or GRU, and every hidden state is
mapped to scores over the vocabulary. Training minimizes the softmax loss of predicting each next word.

Decoding (``sample``) starts from ``<START>``: greedy by default, as in cs231n, or beam search, or
temperature sampling driven by a seedable ``np.random.Generator``. ``<NULL>`` (padding) and ``<START>``
are never generated; every other word, ``<END>`` included, is. The log-probability reported for a
caption is the one ``loss`` assigns to it: the sum of the log-softmax of each generated word over the
whole vocabulary, ``<END>`` included when emitted.

Models are saved as an ``.npz`` archive with JSON metadata (see :mod:`cs231n.archive`), never pickled.
"""
import numpy as np

from cs231n._validation import expect_shape, float_array, index_array
from cs231n.archive import load_archive, save_archive
from cs231n.layers import affine_backward, affine_forward
from cs231n.classifiers.recurrent import (
    GATES as _GATES,
    initial_state,
    recurrent_backward,
    recurrent_forward,
    recurrent_step,
)
from cs231n.rnn_layers import (
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

ARCHIVE_FORMAT = "cs231n-captioning-model"
ARCHIVE_VERSION = 1
_DTYPES = ("float16", "float32", "float64")
_CONFIG_KEYS = ("cell_type", "input_dim", "wordvec_dim", "hidden_dim", "dtype", "word_to_idx")


class CaptioningRNN:
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
    - cell_type (str, 'rnn'): 'rnn', 'lstm' or 'gru' (gates i, f, o, g for the LSTM; r, z, n with the
      equations of ``torch.nn.GRU`` for the GRU).
    - dtype (np.float16, np.float32 or np.float64; default np.float32): dtype of the parameters and of
      all computation; use np.float64 for gradient checks.

    Parameters (``self.params``), with g = 1 (rnn), 4 (lstm), 3 (gru):
    ``W_proj`` (D, H), ``b_proj`` (H,), ``W_embed`` (V, W), ``Wx`` (W, gH), ``Wh`` (H, gH), ``b`` (gH,),
    ``W_vocab`` (H, V), ``b_vocab`` (V,), and for the GRU its hidden bias ``bh`` (3H,). Weights are drawn
    with ``np.random.randn`` in cs231n's order (W_embed, W_proj, Wx, Wh, W_vocab), so ``np.random.seed``
    makes a model reproducible, and scaled by 1 / sqrt(fan_in) (W_embed by 1 / 100); biases are zero.

    Attributes: ``params``, ``word_to_idx``, ``idx_to_word`` (dict int -> str), ``cell_type``, ``dtype``,
    ``vocab_size``, ``input_dim``, ``wordvec_dim``, ``hidden_dim``, and the special indices ``_null``,
    ``_start``, ``_end`` (the last two None when the vocabulary lacks them). ``identity`` (None, or a
    JSON-ready dict such as :func:`cs231n.runs.dataset_identity` gives) records the data the model was
    trained on; ``save`` stores it and ``load`` restores it (None for files saved without one, e.g. by
    older versions, which still load), so a command can refuse a dataset that is not the model's.
    """

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
        try:
            dt = np.dtype(dtype)
        except TypeError as e:
            raise TypeError(f"{fn}: dtype must be a numpy floating type, got {dtype!r}") from e
        if dt.name not in _DTYPES:
            raise TypeError(f"{fn}: dtype must be one of {', '.join(_DTYPES)}, got {dt}")
        if not isinstance(word_to_idx, dict):
            raise TypeError(f"{fn}: word_to_idx must be a dict of str -> int, "
                            f"got {type(word_to_idx).__name__}")
        vocab = {}
        for word, idx in word_to_idx.items():
            if not isinstance(word, str) or not _is_int(idx) or idx < 0:
                raise TypeError(f"{fn}: word_to_idx must map str to non-negative int, got {word!r}: {idx!r}")
            vocab[word] = int(idx)
        V = len(vocab)
        if "<NULL>" not in vocab:
            raise ValueError(f"{fn}: word_to_idx has no '<NULL>' entry (the padding token)")
        if len(set(vocab.values())) != V:
            raise ValueError(f"{fn}: word_to_idx maps two words to the same index")
        if vocab["<NULL>"] >= V:
            raise ValueError(f"{fn}: '<NULL>' has index {vocab['<NULL>']}, outside [0, V) = [0, {V})")

        self.word_to_idx = vocab
        self.idx_to_word = {i: w for w, i in vocab.items()}
        self.vocab_size = V
        self.input_dim = int(input_dim)
        self.wordvec_dim = int(wordvec_dim)
        self.hidden_dim = int(hidden_dim)
        self.cell_type = cell_type
        self.dtype = dt
        self._null = vocab["<NULL>"]
        self._start = vocab.get("<START>")
        self._end = vocab.get("<END>")

    def _param_shapes(self):
        """The shape of every parameter, in cs231n's order: dict name -> tuple."""
        V, D, W, H = self.vocab_size, self.input_dim, self.wordvec_dim, self.hidden_dim
        gH = _GATES[self.cell_type] * H
        shapes = {"W_embed": (V, W), "W_proj": (D, H), "b_proj": (H,), "Wx": (W, gH), "Wh": (H, gH),
                  "b": (gH,), "W_vocab": (H, V), "b_vocab": (V,)}
        if self.cell_type == "gru":
            shapes["bh"] = (gH,)
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

    @classmethod
    def from_config(cls, config):
        """Build an untrained model (fresh random parameters) from a dict made by ``get_config``."""
        model = cls.__new__(cls)
        model._configure(**_config_args(config, "CaptioningRNN.from_config"))
        model.params = model._random_params()
        model.identity = None
        return model

    def save(self, path):
        """Save parameters, configuration and ``identity`` to ``path`` (an ``.npz`` archive with JSON metadata).

        The file is written atomically and holds only numeric arrays and JSON, so it loads without
        pickle. Parameters must have the shapes and dtype the configuration implies.

        Returns the path written.
        """
        self._check_params(self.params, "CaptioningRNN.save")
        meta = model_archive_meta(ARCHIVE_FORMAT, ARCHIVE_VERSION, self.get_config(), self.identity)
        return save_archive(path, self.params, meta)

    @classmethod
    def load(cls, path, word_to_idx=None):
        """Load a model written by ``save``.

        Inputs:
        - path: the archive's file name.
        - word_to_idx: optional vocabulary the caller expects (e.g. the dataset's); when given it must
          equal the saved one.

        Returns a CaptioningRNN. Raises FileNotFoundError for a missing file, ``ArchiveError`` (a
        ValueError) for a truncated or unreadable one, and ValueError for a file of another kind, with
        missing or extra parameters, shapes or dtypes that disagree with its configuration, or a
        vocabulary other than ``word_to_idx``.
        """
        fn = "CaptioningRNN.load"
        arrays, meta = load_archive(path)
        if not isinstance(meta, dict) or meta.get("format") != ARCHIVE_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{fn}: {path} is not a captioning model (format {got!r}, "
                             f"expected {ARCHIVE_FORMAT!r})")
        if meta.get("version") != ARCHIVE_VERSION:
            raise ValueError(f"{fn}: {path} has format version {meta.get('version')!r}; this library "
                             f"reads version {ARCHIVE_VERSION}")
        model = cls.__new__(cls)
        try:
            model._configure(**_config_args(meta.get("config"), fn))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{fn}: {path} has an invalid configuration: {e}") from e
        if word_to_idx is not None and dict(word_to_idx) != model.word_to_idx:
            raise ValueError(f"{fn}: the vocabulary saved in {path} differs from the word_to_idx given: "
                             f"{_vocab_difference(model.word_to_idx, dict(word_to_idx))}")
        model._check_params(arrays, fn, where=f" in {path}")
        model.params = arrays
        model.identity = meta.get("identity")
        return model

    def _check_params(self, params, fn, where=""):
        """Raise ValueError unless ``params`` has exactly the expected names, shapes and dtype."""
        shapes = self._param_shapes()
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        if missing or extra:
            raise ValueError(f"{fn}: parameters{where} do not match a {self.cell_type} model: "
                             f"missing {missing}, unexpected {extra}")
        for name, shape in shapes.items():
            a = np.asarray(params[name])
            if a.shape != shape:
                raise ValueError(f"{fn}: parameter {name}{where} should have shape {shape} for this "
                                 f"configuration, got {a.shape}")
            if a.dtype != self.dtype:
                raise ValueError(f"{fn}: parameter {name}{where} has dtype {a.dtype}, the model's dtype "
                                 f"is {self.dtype}")

    # ------------------------------------------------------------------------------------------------
    # Training loss
    # ------------------------------------------------------------------------------------------------

    def loss(self, features, captions, **kwargs):
        """Training loss and gradients for a minibatch of captions.

        The first T - 1 words of each caption are the inputs and the last T - 1 words the targets;
        targets equal to ``<NULL>`` do not count. The loss is summed over time and divided by N.

        Inputs:
        - features: image features, of shape (N, D), floating (cast to the model's dtype).
        - captions: integer word indices in [0, V), of shape (N, T) with T >= 2; usually each row is
          ``<START>`` words ``<END>`` then ``<NULL>`` padding.
        - verbose (keyword, default False): passed to temporal_softmax_loss, as in cs231n.

        Returns a tuple of:
        - loss: scalar.
        - grads: dict with the keys of ``self.params``, each gradient of the parameter's shape.
        """
        fn = "CaptioningRNN.loss"
        unknown = sorted(set(kwargs) - {"verbose"})
        if unknown:
            raise TypeError(f"{fn}: unexpected keyword arguments {unknown}")
        verbose = kwargs.get("verbose", False)
        scores, captions, (cache_proj, cache_embed, cache_rnn, cache_vocab) = self._forward(fn, features, captions)
        captions_out = captions[:, 1:]            # (N, T - 1)
        mask = captions_out != self._null         # (N, T - 1)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask, verbose=verbose)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, cache_vocab)
        dx, dh0, recurrent_grads = recurrent_backward(self.cell_type, dh, cache_rnn)
        grads.update(recurrent_grads)
        grads["W_embed"] = word_embedding_backward(dx, cache_embed)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, cache_proj)
        return loss, grads

    def scores(self, features, captions):
        """Word scores at every step of teacher-forced captions (the forward pass of ``loss``).

        Inputs:
        - features: image features, of shape (N, D).
        - captions: integer word indices in [0, V), of shape (N, T) with T >= 2; the first T - 1
          words are fed in.

        Returns scores of shape (N, T - 1, V): row t scores the word after ``captions[:, t]``.
        """
        return self._forward("CaptioningRNN.scores", features, captions)[0]

    def _forward(self, fn, features, captions):
        """Check the inputs and run the forward pass; returns (scores (N, T - 1, V), captions, caches)."""
        features = self._check_features(fn, features)
        N = features.shape[0]
        if N == 0:
            raise ValueError(f"{fn}: features is an empty minibatch (shape {features.shape})")
        captions = index_array(fn, "captions", captions, 2, self.vocab_size)
        if captions.shape[0] != N or captions.shape[1] < 2:
            raise ValueError(f"{fn}: captions should have shape (N, T) with N = {N} (the rows of features)"
                             f" and T >= 2, got {captions.shape}")
        p = self.params
        h0, cache_proj = affine_forward(features, p["W_proj"], p["b_proj"])    # (N, H)
        x, cache_embed = word_embedding_forward(captions[:, :-1], p["W_embed"])  # (N, T - 1, W)
        h, cache_rnn = recurrent_forward(self.cell_type, x, h0, p)             # (N, T - 1, H)
        scores, cache_vocab = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])  # (N, T - 1, V)
        return scores, captions, (cache_proj, cache_embed, cache_rnn, cache_vocab)

    # ------------------------------------------------------------------------------------------------
    # Decoding
    # ------------------------------------------------------------------------------------------------

    def sample(self, features, max_length=30, beam_size=1, length_penalty=0.0, n_best=1,
               return_log_probs=False, temperature=None, rng=None):
        """Generate captions for image features, greedily (the default), by beam search or by sampling.

        Every caption starts after ``<START>``; column 0 holds the first generated word. A caption ends
        when it emits ``<END>`` (kept in the row) or after ``max_length`` words; the rest of its row is
        ``<NULL>``. ``<NULL>`` and ``<START>`` are never generated. The log-probability of a caption is
        the sum over its words (``<END>`` included when emitted) of the log-softmax of the scores over
        the whole vocabulary, which is exactly what ``loss`` charges for it.

        Modes:
        - greedy (``beam_size=1``, ``temperature`` None or 0): the most likely word at every step.
        - beam search (``beam_size=k > 1``): keeps the k best partial captions of each image, all
          N * k of them advanced by one batched step per timestep. A caption that emitted ``<END>`` is
          finished and keeps its score. Hypotheses are ranked by ``log_prob / length**length_penalty``
          (length in words, ``<END>`` included; 0 ranks by the raw log-probability). The greedy caption
          is always among the final candidates, so with ``length_penalty=0`` the result never scores
          below greedy decoding. Duplicates are removed from the n-best list.
        - sampling (``temperature > 0``): each word is drawn from softmax(scores / temperature) over the
          words that may be generated, with ``rng``.

        Inputs:
        - features: image features, of shape (N, D), floating.
        - max_length: maximum number of generated words T, int >= 1.
        - beam_size: int >= 1.
        - length_penalty: alpha >= 0 of the length normalization (beam search only).
        - n_best: number of distinct captions returned per image, 1 <= n_best <= beam_size.
        - return_log_probs: also return the log-probabilities of the returned captions.
        - temperature: None (deterministic), 0 (greedy) or > 0 (sampling; beam_size must be 1).
        - rng: np.random.Generator or int seed for sampling; None draws a fresh unseeded generator.

        Returns, by case:
        - n_best == 1: captions, an int32 array of shape (N, max_length).
        - n_best == 1 and return_log_probs: the tuple (captions, log_probs (N,) float64).
        - n_best > 1: the tuple (captions (N, n_best, max_length) int32, log_probs (N, n_best) float64),
          best first. Rows beyond the distinct captions that exist (tiny vocabularies, short
          max_length) are all ``<NULL>`` with log-prob -inf.
        """
        fn = "CaptioningRNN.sample"
        features = self._check_features(fn, features)
        max_length = _positive_int(fn, "max_length", max_length)
        beam_size = _positive_int(fn, "beam_size", beam_size)
        n_best = _positive_int(fn, "n_best", n_best)
        if n_best > beam_size:
            raise ValueError(f"{fn}: n_best ({n_best}) cannot exceed beam_size ({beam_size})")
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float, np.number)) \
                or not np.isfinite(length_penalty) or length_penalty < 0:
            raise ValueError(f"{fn}: length_penalty must be a finite number >= 0, got {length_penalty!r}")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
                    or not np.isfinite(temperature) or temperature < 0:
                raise ValueError(f"{fn}: temperature must be None or a finite number >= 0, "
                                 f"got {temperature!r}")
            if temperature > 0 and beam_size > 1:
                raise ValueError(f"{fn}: temperature sampling (temperature={temperature}) and beam search "
                                 f"(beam_size={beam_size}) cannot be combined")
        if rng is not None and not isinstance(rng, np.random.Generator) and not _is_int(rng):
            raise TypeError(f"{fn}: rng must be a numpy Generator, an int seed or None, "
                            f"got {type(rng).__name__}")
        self._check_decodable(fn)

        h0, _ = affine_forward(features, self.params["W_proj"], self.params["b_proj"])  # (N, H)
        if beam_size == 1:
            if temperature:
                gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
                captions, log_probs, _ = self._decode_one(h0, max_length, float(temperature), gen)
            else:  # greedy: the argmax needs no normalization unless log-probs are asked for
                captions, log_probs, _ = self._decode_one(h0, max_length, None, None,
                                                          with_log_probs=return_log_probs)
            return (captions, log_probs) if return_log_probs else captions
        captions, log_probs = self._beam_search(h0, max_length, beam_size, float(length_penalty), n_best)
        if n_best > 1:
            return captions, log_probs
        captions, log_probs = captions[:, 0], log_probs[:, 0]
        return (captions, log_probs) if return_log_probs else captions

    def caption_features(self, features, max_length=30, beam_size=1, length_penalty=0.0, temperature=None,
                         rng=None):
        """Caption image features a user brings and return readable strings.

        The features must come from the same extractor (and PCA, if any) the model was trained on,
        e.g. 512-d PCA-reduced VGG-16 fc7 features for the cs231n COCO models.

        Inputs:
        - features: one feature vector of shape (D,), or a batch of shape (N, D).
        - max_length, beam_size, length_penalty, temperature, rng: as for ``sample``.

        Returns one string for a (D,) input, otherwise a list of N strings: the generated words joined
        by spaces, without ``<START>``, ``<END>`` or ``<NULL>``. Indices without a word read ``<UNK>``.

        Example::

            model = CaptioningRNN.load('model.npz')
            model.caption_features(feats, beam_size=3)   # ['a man riding a horse', ...]
        """
        fn = "CaptioningRNN.caption_features"
        a = np.asarray(features)
        single = a.ndim == 1
        if single:
            a = a[None, :]
        elif a.ndim != 2:
            raise ValueError(f"{fn}: features should have shape (D,) or (N, D) with D = {self.input_dim}, "
                             f"got {a.shape}")
        captions = self.sample(a, max_length=max_length, beam_size=beam_size, length_penalty=length_penalty,
                               temperature=temperature, rng=rng)
        texts = [self._decode_row(row) for row in captions]
        return texts[0] if single else texts

    def _decode_row(self, row):
        words = []
        for idx in row:
            idx = int(idx)
            if idx == self._end:
                break
            if idx == self._null or idx == self._start:
                continue
            words.append(self.idx_to_word.get(idx, "<UNK>"))
        return " ".join(words)

    def _check_decodable(self, fn):
        V = self.vocab_size
        if self._start is None or self._start >= V:
            raise ValueError(f"{fn}: sampling needs a '<START>' word with index < V = {V}; "
                             f"the vocabulary has {self._start!r}")
        if V <= len({self._null, self._start}):
            raise ValueError(f"{fn}: the vocabulary has no word to generate besides <NULL> and <START>")

    def _generation_mask(self):
        """(V,) additive mask: 0 for words that may be generated, -inf for <NULL> and <START>."""
        mask = np.zeros(self.vocab_size)
        mask[self._null] = -np.inf
        mask[self._start] = -np.inf
        return mask

    def _initial_state(self, h0):
        """The recurrent state at time 0: (h0,), or (h0, zero cell) for the LSTM."""
        return initial_state(self.cell_type, h0)

    def _step(self, words, state, normalize=True):
        """Advance M captions by one word: the same math as ``loss``, one timestep at a time.

        Inputs:
        - words: the previous words, int array of shape (M,).
        - state: tuple of (M, H) arrays from ``_initial_state`` or a previous step.
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
        if not normalize:
            return state, scores
        scores = scores.astype(np.float64, copy=False)
        scores -= scores.max(axis=1, keepdims=True)
        scores -= np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return state, scores

    def _decode_one(self, h0, max_length, temperature, gen, with_log_probs=True):
        """Greedy decoding (temperature None) or sampling, one caption per row of h0.

        Only unfinished captions are advanced: finished rows drop out of the batch. Without
        ``with_log_probs`` the scores are not normalized (argmax and softmax don't need it) and the
        returned log_probs are zeros.

        Returns (captions (N, T) int32, log_probs (N,) float64, lengths (N,) int64).
        """
        N = h0.shape[0]
        captions = np.full((N, max_length), self._null, dtype=np.int32)
        log_probs = np.zeros(N)
        lengths = np.full(N, max_length, dtype=np.int64)
        ban = self._generation_mask()                      # (V,)
        rows = np.arange(N)                                # captions still running
        words = np.full(N, self._start, dtype=np.int64)
        state = self._initial_state(h0)
        for t in range(max_length):
            if rows.size == 0:
                break
            state, logp = self._step(words, state, normalize=with_log_probs)  # (M, V)
            logits = logp + ban.astype(logp.dtype)
            if temperature is None:
                words = np.argmax(logits, axis=1)
            else:
                z = logits / temperature
                z -= z.max(axis=1, keepdims=True)
                cdf = np.cumsum(np.exp(z), axis=1)        # (M, V), unnormalized
                u = (1.0 - gen.random(rows.size)) * cdf[:, -1]  # uniform in (0, total]
                words = np.minimum((cdf < u[:, None]).sum(axis=1), self.vocab_size - 1)
            captions[rows, t] = words
            if with_log_probs:
                log_probs[rows] += logp[np.arange(rows.size), words]
            if self._end is not None:
                going = words != self._end
                lengths[rows[~going]] = t + 1
                if not going.all():
                    rows, words = rows[going], words[going]
                    state = tuple(s[going] for s in state)
        return captions, log_probs, lengths

    def _beam_search(self, h0, max_length, k, alpha, n_best):
        """Beam search over all N * k hypotheses at once; returns the n_best distinct captions per image.

        Returns (captions (N, n_best, T) int32, log_probs (N, n_best) float64), best first.
        """
        N = h0.shape[0]
        V = self.vocab_size
        T = max_length
        ban = self._generation_mask()                        # (V,)
        n_idx = np.arange(N)[:, None]                         # (N, 1) for gathers along the beams
        state = tuple(np.repeat(s, k, axis=0) for s in self._initial_state(h0))  # each (N * k, H)
        words = np.full(N * k, self._start, dtype=np.int64)
        score = np.full((N, k), -np.inf)                      # log-probs; one live beam to begin with
        score[:, 0] = 0.0
        length = np.zeros((N, k), dtype=np.int64)
        finished = np.zeros((N, k), dtype=bool)
        seqs = np.full((N, k, T), self._null, dtype=np.int32)
        for t in range(T):
            state, logp = self._step(words, state)            # (N * k, V)
            cand = logp.reshape(N, k, V)
            cand += ban
            cand += score[:, :, None]                         # (N, k, V) scores of every extension
            if finished.any():
                # A finished caption has exactly one continuation: itself (padded with <NULL>).
                cand[finished] = -np.inf
                cand[finished, self._null] = score[finished]
            new_len = np.where(finished, length, t + 1)       # (N, k)
            rank = cand / (new_len[:, :, None] ** alpha) if alpha else cand
            flat = rank.reshape(N, k * V)
            top = np.argpartition(-flat, k - 1, axis=1)[:, :k]                     # (N, k), unordered
            order = np.argsort(-np.take_along_axis(flat, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)                           # best first
            beam, tok = np.divmod(top, V)                                          # (N, k) each
            score = np.take_along_axis(cand.reshape(N, k * V), top, axis=1)
            length = np.take_along_axis(new_len, beam, axis=1)
            finished = np.take_along_axis(finished, beam, axis=1)
            if self._end is not None:
                finished |= tok == self._end
            seqs = seqs[n_idx, beam]                          # (N, k, T)
            seqs[:, :, t] = tok
            state = tuple(s.reshape(N, k, -1)[n_idx, beam].reshape(N * k, -1) for s in state)
            words = tok.reshape(N * k)
            if not (np.isfinite(score) & ~finished).any():
                break

        # Final pool: the k beams plus the greedy caption; rank, drop duplicates, keep n_best.
        g_caps, g_logp, g_len = self._decode_one(h0, T, None, None)
        seqs = np.concatenate([seqs, g_caps[:, None, :]], axis=1)     # (N, k + 1, T)
        score = np.concatenate([score, g_logp[:, None]], axis=1)      # (N, k + 1)
        length = np.concatenate([length, g_len[:, None]], axis=1)
        rank = np.where(np.isfinite(score), score / np.maximum(length, 1) ** alpha, -np.inf)
        order = np.argsort(-rank, axis=1, kind="stable")
        seqs = seqs[n_idx, order]
        score = np.take_along_axis(score, order, axis=1)
        rank = np.take_along_axis(rank, order, axis=1)
        same = (seqs[:, :, None, :] == seqs[:, None, :, :]).all(axis=3)   # (N, k + 1, k + 1)
        earlier = np.tril(np.ones((k + 1, k + 1), dtype=bool), -1)        # [i, j] true for j < i
        dup = (same & earlier).any(axis=2)                                # (N, k + 1)
        rank[dup] = -np.inf
        order = np.argsort(-rank, axis=1, kind="stable")[:, :n_best]
        seqs = seqs[n_idx, order]
        score = np.take_along_axis(score, order, axis=1)
        valid = np.isfinite(np.take_along_axis(rank, order, axis=1))
        seqs[~valid] = self._null
        score[~valid] = -np.inf
        return seqs, score

    def _check_features(self, fn, features):
        features = float_array(fn, "features", features, 2)
        expect_shape(fn, "features", features, (("N", features.shape[0]), ("D", self.input_dim)))
        return features.astype(self.dtype, copy=False)


def model_archive_meta(archive_format, version, config, identity=None):
    """The JSON metadata of a saved model: format, version, configuration and the training data's identity.

    Shared by every captioning model's ``save`` so that all model files record where their training
    data came from in the same place (``meta['identity']``; absent when None).
    """
    meta = {"format": archive_format, "version": version, "config": config}
    if identity is not None:
        meta["identity"] = identity
    return meta


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_int(fn, name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{fn}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _config_args(config, fn):
    """Check a ``get_config`` dict and return it as constructor keyword arguments."""
    if not isinstance(config, dict):
        raise ValueError(f"{fn}: the configuration must be a dict, got {type(config).__name__}")
    missing = sorted(set(_CONFIG_KEYS) - set(config))
    extra = sorted(set(config) - set(_CONFIG_KEYS))
    if missing or extra:
        raise ValueError(f"{fn}: the configuration has missing keys {missing} and unexpected keys {extra}")
    dtype = config["dtype"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"{fn}: the configuration's dtype must be one of {_DTYPES}, got {dtype!r}")
    args = {k: config[k] for k in _CONFIG_KEYS}
    args["dtype"] = np.dtype(dtype)
    return args


def _vocab_difference(saved, given):
    """A short description of how two vocabularies differ, for error messages."""
    only_saved = sorted(set(saved) - set(given))
    only_given = sorted(set(given) - set(saved))
    moved = sorted(w for w in set(saved) & set(given) if saved[w] != given[w])
    parts = [f"saved has {len(saved)} words, given has {len(given)}"]
    if only_saved:
        parts.append(f"only in the saved one: {only_saved[:5]}")
    if only_given:
        parts.append(f"only in the given one: {only_given[:5]}")
    if moved:
        parts.append(f"different indices for: {moved[:5]}")
    return "; ".join(parts)
