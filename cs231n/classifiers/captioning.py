"""What every captioning model shares: its vocabulary, its files, and decoding (greedy, beam, sampling).

``CaptioningModel`` is the base of :class:`cs231n.classifiers.rnn.CaptioningRNN` and
:class:`cs231n.classifiers.transformer.CaptioningTransformer`. A model is a flat ``params`` dict plus
``loss(features, captions)`` and ``sample(features, ...)``. Letters: N minibatch, D feature size,
V vocabulary size, T caption length.

A subclass provides:
- ``ARCHIVE_FORMAT`` (the format name written in its files), ``ARCHIVE_VERSION`` and ``CONFIG_KEYS``
  (the keys of ``get_config()``, which are its constructor's arguments);
- ``_configure(**config)`` (validates and sets attributes, calling ``_configure_vocabulary``),
  ``_param_shapes()``, ``_random_params()``, ``get_config()``, ``_describe()`` (e.g. 'an lstm model');
- decoding hooks: ``_decode_state(features)`` returns the state before the first word, a tuple of
  arrays whose first axis runs over the captions being decoded (rows are selected and regrouped along
  it), and ``_step(words, state, normalize)`` advances every caption by one word. ``sample`` calls
  them through ``_decoding_state(features, max_length)`` and ``_step_at(t, words, state, normalize)``
  (t: the position of the words), which a model overrides to decode differently on the GPU (the
  Transformer writes its keys and values into buffers of max_length positions there). The default
  ``_decode_state`` gives ``h0 = features W_proj + b_proj`` to ``_initial_state(h0)``, so a model using
  it has ``W_proj`` (D, .) and ``b_proj``. A model that attends over R image regions also gives
  ``_step_attention(state)``, the (M, R) attention weights of the word its last step scored, which
  ``sample(..., return_attention=True)`` collects; the default returns None (no attention).
- ``_check_features(fn, features)`` when its features are not one vector (N, D) per image
  (:func:`region_features` checks and flattens region features (N, R, D) or grids (N, D, h, w)).

Models are saved as an ``.npz`` archive with JSON metadata (see :mod:`cs231n.archive`), never pickled;
``CaptioningModel.load(path)`` reads a file of any registered kind, picked by its format name. A kind
registers itself by subclassing with its own ``ARCHIVE_FORMAT`` (``__init_subclass__`` fills the
registry); this module never imports its subclasses. ``cs231n/classifiers/__init__.py`` imports every
kind, and Python runs it before any of its modules, so the registry is complete before a file is read.

A model moves between host and GPU with ``model.to("gpu")`` / ``model.to("cpu")`` (``model.device``
says where it is; see :mod:`cs231n.classifiers.device`). On the GPU, ``loss``, ``scores`` and
``sample`` take host numpy inputs (copied to the device once per call) or GPU arrays; ``sample``
returns host numpy captions, copied once at the end. Files always hold host numpy arrays, so a model
saved from the GPU loads on a laptop, bit for bit; ``load`` gives a CPU model.
"""

import numpy as np

from cs231n._validation import check_finite, expect_shape, float_array, index_array
from cs231n.backend import get_array_module, to_numpy
from cs231n.classifiers.device import DeviceModel, host_arrays
from cs231n.archive import load_archive, save_archive
from cs231n.layers import affine_forward

_DTYPES = ("float16", "float32", "float64")
_FORMATS = {}  # format name -> subclass, filled by __init_subclass__ as each kind is defined


class CaptioningModel(DeviceModel):
    """Base class of the captioning models: vocabulary, files, input checks and decoding.

    Attributes set by ``_configure_vocabulary``: ``word_to_idx``, ``idx_to_word`` (dict int -> str),
    ``vocab_size`` V, ``dtype``, and the special indices ``_null``, ``_start``, ``_end`` (the last two
    None when the vocabulary lacks them). Subclasses also set ``input_dim`` D and ``params``.
    """

    ARCHIVE_FORMAT = None
    ARCHIVE_VERSION = 1
    CONFIG_KEYS = ()
    CONFIG_DEFAULTS = {}  # keys of CONFIG_KEYS that files written before them lack, and their values

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.ARCHIVE_FORMAT is not None:
            _FORMATS[cls.ARCHIVE_FORMAT] = cls

    # ------------------------------------------------------------------------------------------------
    # Construction, configuration and files
    # ------------------------------------------------------------------------------------------------

    def _configure_vocabulary(self, fn, word_to_idx, dtype):
        """Validate the vocabulary and dtype; set ``word_to_idx``, ``idx_to_word``, ``vocab_size``,
        ``dtype``, ``_null``, ``_start``, ``_end``."""
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
        outside = sorted((i, w) for w, i in vocab.items() if i >= V)
        self.unusable_words = []
        if outside:
            # The rows of the word embedding and of the output scores are indices 0..V-1: a word numbered
            # V or more can be neither read nor written. A special token there breaks decoding (error
            # here); an ordinary word is only unusable, which the model accepts silently because
            # cs231n's own notebook check builds one with {'<NULL>': 0, 'cat': 2, 'dog': 3} and never
            # uses 'dog' (its cells must print what they always printed). Training such a model is
            # refused by CaptioningSolver, which names the gap (``unusable_words``).
            missing = sorted(set(range(V)) - set(vocab.values()))
            gap = (f"word_to_idx must number its {V} words 0 to {V - 1} with no gap, but "
                   f"{', '.join(f'{w!r} has {i}' for i, w in outside[:5])} and {missing[:5]} belong to no word")
            special = [w for _, w in outside if w in ("<NULL>", "<START>", "<END>")]
            if special:
                raise ValueError(f"{fn}: {gap}; {special[0]} is needed for decoding and has no row in the model")
            self.unusable_words = [w for _, w in outside]
            self._vocabulary_gap = gap
        self.word_to_idx = vocab
        self.idx_to_word = {i: w for w, i in vocab.items()}
        self.vocab_size = V
        self.dtype = dt
        self._null = vocab["<NULL>"]
        self._start = vocab.get("<START>")
        self._end = vocab.get("<END>")

    @classmethod
    def from_config(cls, config):
        """Build an untrained model (fresh random parameters) from a dict made by ``get_config``.

        Called on ``CaptioningModel`` itself, the configuration's keys pick the class (a solver
        checkpoint keeps the model's ``get_config()`` but not its class).
        """
        if cls.ARCHIVE_FORMAT is None:
            keys = set(config) if isinstance(config, dict) else None
            kinds = [c for c in _FORMATS.values()
                     if keys is not None and set(c.CONFIG_KEYS) - set(c.CONFIG_DEFAULTS) <= keys <= set(c.CONFIG_KEYS)]
            if not kinds:
                raise ValueError(f"CaptioningModel.from_config: the configuration's keys "
                                 f"{sorted(keys or ())} are those of no captioning model")
            cls = kinds[0]
        model = cls.__new__(cls)
        model._configure(**_config_args(config, f"{cls.__name__}.from_config", cls.CONFIG_KEYS,
                                        cls.CONFIG_DEFAULTS))
        model.params = model._random_params()
        model.identity = None
        return model

    def save(self, path):
        """Save parameters and configuration to ``path`` (an ``.npz`` archive with JSON metadata).

        The file is written atomically and holds only numeric arrays and JSON, so it loads without
        pickle. Parameters must have the shapes and dtype the configuration implies.

        Returns the path written.
        """
        params = host_arrays(self.params)  # a GPU model's arrays, copied to the host once
        self._check_params(params, f"{type(self).__name__}.save")
        meta = model_archive_meta(self.ARCHIVE_FORMAT, self.ARCHIVE_VERSION, self.get_config(),
                                  getattr(self, "identity", None))
        return save_archive(path, params, meta)

    @classmethod
    def load(cls, path, word_to_idx=None):
        """Load a model written by ``save``.

        Inputs:
        - path: the archive's file name.
        - word_to_idx: optional vocabulary the caller expects (e.g. the dataset's); when given it must
          equal the saved one.

        Called on a subclass, the file must be of that kind; called on ``CaptioningModel`` itself, the
        file's format name picks the class (a CaptioningRNN or a CaptioningTransformer).

        Returns the model, on the CPU (move it with ``.to("gpu")``). Raises FileNotFoundError for a missing file, ``ArchiveError`` (a
        ValueError) for a truncated or unreadable one, and ValueError for a file of another kind, with
        missing or extra parameters, shapes or dtypes that disagree with its configuration, or a
        vocabulary other than ``word_to_idx``.
        """
        fn = f"{cls.__name__}.load"
        arrays, meta = load_archive(path)
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        if cls.ARCHIVE_FORMAT is None:
            if got not in _FORMATS:
                raise ValueError(f"{fn}: {path} is not a captioning model (format {got!r}, expected one "
                                 f"of {sorted(_FORMATS)})")
            cls = _FORMATS[got]
        elif got in _FORMATS and got != cls.ARCHIVE_FORMAT:
            raise ValueError(f"{fn}: {path} holds a {_FORMATS[got].__name__} (format {got!r}), not a "
                             f"{cls.__name__}; CaptioningModel.load reads either kind")
        elif got != cls.ARCHIVE_FORMAT:
            raise ValueError(f"{fn}: {path} is not a captioning model (format {got!r}, "
                             f"expected {cls.ARCHIVE_FORMAT!r})")
        if meta.get("version") != cls.ARCHIVE_VERSION:
            raise ValueError(f"{fn}: {path} has format version {meta.get('version')!r}; this library "
                             f"reads version {cls.ARCHIVE_VERSION}")
        model = cls.__new__(cls)
        try:
            model._configure(**_config_args(meta.get("config"), fn, cls.CONFIG_KEYS, cls.CONFIG_DEFAULTS))
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
            raise ValueError(f"{fn}: parameters{where} do not match {self._describe()}: "
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
    # Decoding
    # ------------------------------------------------------------------------------------------------

    def sample(self, features, max_length=30, beam_size=1, length_penalty=0.0, n_best=1,
               return_log_probs=False, temperature=None, rng=None, return_attention=False):
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
        - features: image features, of shape (N, D), floating; region features (N, R, D) or a grid
          (N, D, h, w) for a model that attends over regions (``CaptioningRNN(cell_type='attention')``).
        - max_length: maximum number of generated words T, int >= 1.
        - beam_size: int >= 1.
        - length_penalty: alpha >= 0 of the length normalization (beam search only).
        - n_best: number of distinct captions returned per image, 1 <= n_best <= beam_size.
        - return_log_probs: also return the log-probabilities of the returned captions.
        - temperature: None (deterministic), 0 (greedy) or > 0 (sampling; beam_size must be 1).
        - rng: np.random.Generator or int seed for sampling; None draws a fresh unseeded generator.
          On the GPU all max_length * N uniform numbers are drawn from it at once (one transfer), so
          the same seed samples other captions than on the CPU; greedy and beam search agree.
        - return_attention: also return, for a model that attends over R regions, the attention weights
          with which each returned word was chosen (float64; each row over R sums to 1, and rows past a
          caption's end are zero). ValueError for a model without attention.

        Returns, by case:
        - n_best == 1: captions, an int32 array of shape (N, max_length).
        - n_best == 1 and return_log_probs: the tuple (captions, log_probs (N,) float64).
        - n_best > 1: the tuple (captions (N, n_best, max_length) int32, log_probs (N, n_best) float64),
          best first. Rows beyond the distinct captions that exist (tiny vocabularies, short
          max_length) are all ``<NULL>`` with log-prob -inf.
        - return_attention: the same, with the attention weights appended as the last element of the
          tuple: (N, max_length, R), or (N, n_best, max_length, R) when n_best > 1.
        """
        fn = f"{type(self).__name__}.sample"
        features = self._check_features(fn, features)
        max_length = _positive_int(fn, "max_length", max_length)
        self._check_sample_length(fn, max_length)
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

        state = self._decoding_state(self._on_device(features), max_length)
        if return_attention and self._step_attention(state) is None:
            raise ValueError(f"{fn}: return_attention=True, but {self._describe()} has no attention "
                             f"weights to return")
        # Decoding runs where the model is; its results come back to the host once, at the end.
        if beam_size == 1:
            if temperature:
                gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
                captions, log_probs, _, attention = self._decode_one(
                    state, max_length, float(temperature), gen, with_attention=return_attention)
            else:  # greedy: the argmax needs no normalization unless log-probs are asked for
                captions, log_probs, _, attention = self._decode_one(
                    state, max_length, None, None, with_log_probs=return_log_probs,
                    with_attention=return_attention)
            out = (captions, log_probs) if return_log_probs else (captions,)
        else:
            captions, log_probs, attention = self._beam_search(state, max_length, beam_size,
                                                               float(length_penalty), n_best,
                                                               with_attention=return_attention)
            if n_best > 1:
                out = (captions, log_probs)
            else:
                captions, log_probs = captions[:, 0], log_probs[:, 0]
                attention = None if attention is None else attention[:, 0]
                out = (captions, log_probs) if return_log_probs else (captions,)
        if return_attention:
            out += (attention,)
        out = tuple(to_numpy(a) for a in out)
        return out[0] if len(out) == 1 else out

    def _decode_state(self, features):
        """The decoding state before the first word: ``_initial_state(features W_proj + b_proj)``."""
        h0, _ = affine_forward(features, self.params["W_proj"], self.params["b_proj"])  # (N, H)
        return self._initial_state(h0)

    def _step_attention(self, state):
        """The (M, R) attention weights of the word the last ``_step`` scored; None: no attention."""
        return None

    def _decoding_state(self, features, max_length):
        """The state ``sample`` starts from to decode up to ``max_length`` words: ``_decode_state``."""
        return self._decode_state(features)

    def _step_at(self, t, words, state, normalize=True):
        """``_step`` for the words at position t (0 for <START>), as ``sample``'s loops call it."""
        return self._step(words, state, normalize)

    def caption_features(self, features, max_length=30, beam_size=1, length_penalty=0.0, temperature=None,
                         rng=None):
        """Caption image features a user brings and return readable strings.

        The features must come from the same extractor (and PCA, if any) the model was trained on,
        e.g. 512-d PCA-reduced VGG-16 fc7 features for the cs231n COCO models.

        Inputs:
        - features: one feature vector of shape (D,), or a batch of shape (N, D); for a model that
          attends over regions, one image's regions (R, D), or a batch (N, R, D) or (N, D, h, w).
        - max_length, beam_size, length_penalty, temperature, rng: as for ``sample``.

        Returns one string for a single image, otherwise a list of N strings: the generated words joined
        by spaces, without ``<START>``, ``<END>`` or ``<NULL>``. Indices without a word read ``<UNK>``.

        Example::

            model = CaptioningModel.load('model.npz')
            model.caption_features(feats, beam_size=3)   # ['a man riding a horse', ...]
        """
        fn = f"{type(self).__name__}.caption_features"
        a = get_array_module(features).asarray(features)  # a host or GPU array, never copied across
        regions = self._takes_regions()
        single = a.ndim == (2 if regions else 1)
        if single:
            a = a[None]
        elif a.ndim != 2 and not regions:
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

    def _check_sample_length(self, fn, max_length):
        """Raise if a model cannot decode ``max_length`` words (a Transformer's position table is finite)."""

    def _decode_one(self, state, max_length, temperature, gen, with_log_probs=True, with_attention=False):
        """Greedy decoding (temperature None) or sampling, one caption per row of the initial ``state``.

        On the host only unfinished captions are advanced: finished rows drop out of the batch. On the
        GPU that would need the number of rows left at every step (a device->host sync), so every row
        keeps stepping and the words of finished captions are masked to ``<NULL>``; whether all have
        ended is read back only every ``_SYNC_EVERY`` steps. Both give the same captions. Without
        ``with_log_probs`` the scores are not normalized (argmax and softmax don't need it) and the
        returned log_probs are zeros. With ``with_attention`` the attention weights of every generated
        word are kept (``_step_attention``), zero past each caption's end.

        Returns (captions (N, T) int32, log_probs (N,) float64, lengths (N,) int64, attention (N, T, R)
        float64 or None), on the state's device.
        """
        xp = get_array_module(state[0])
        on_host = xp is np
        N = state[0].shape[0]
        attention = None
        captions = xp.full((N, max_length), self._null, dtype=np.int32)
        log_probs = xp.zeros(N)
        lengths = xp.full(N, max_length, dtype=np.int64)
        ban = xp.asarray(self._generation_mask())          # (V,)
        rows = xp.arange(N)                                # captions still running (host); all (GPU)
        done = xp.zeros(N, dtype=bool)                     # GPU: captions that have emitted <END>
        words = xp.full(N, self._start, dtype=np.int64)
        if temperature is not None and not on_host:
            uniforms = xp.asarray(gen.random((max_length, N)))  # (T, N): one transfer, not one per step
        for t in range(max_length):
            if on_host and rows.size == 0:
                break
            state, logp = self._step_at(t, words, state, normalize=with_log_probs)  # (M, V)
            if with_attention:
                weights = self._step_attention(state)                         # (M, R)
                if attention is None:
                    attention = xp.zeros((N, max_length, weights.shape[1]))
                if on_host:
                    attention[rows, t] = weights
                else:
                    attention[:, t] = xp.where(done[:, None], 0.0, weights)
            if ban.dtype != logp.dtype:
                ban = ban.astype(logp.dtype)              # once, not at every word
            logits = logp + ban
            if temperature is None:
                words = xp.argmax(logits, axis=1)
            else:
                z = logits / temperature
                z -= z.max(axis=1, keepdims=True)
                cdf = xp.cumsum(xp.exp(z), axis=1)        # (M, V), unnormalized
                r = gen.random(rows.size) if on_host else uniforms[t]
                u = (1.0 - r) * cdf[:, -1]                # uniform in (0, total]
                words = xp.minimum((cdf < u[:, None]).sum(axis=1), self.vocab_size - 1)
            if on_host:
                captions[rows, t] = words
                if with_log_probs:
                    log_probs[rows] += logp[np.arange(rows.size), words]
                if self._end is not None:
                    going = words != self._end
                    lengths[rows[~going]] = t + 1
                    if not going.all():
                        rows, words = rows[going], words[going]
                        state = tuple(s[going] for s in state)
                continue
            words = xp.where(done, self._null, words)      # (N,) finished captions are padded
            captions[:, t] = words
            if with_log_probs:
                log_probs += xp.where(done, 0.0, logp[rows, words])
            if self._end is not None:
                ended = words == self._end                 # finished rows hold <NULL>, never <END>
                lengths = xp.where(ended, t + 1, lengths)
                done |= ended
                # The loop's only device->host sync, every few steps: stop once every caption has ended.
                if (t + 1) % _SYNC_EVERY == 0 and bool(done.all()):
                    break
        return captions, log_probs, lengths, attention

    def _beam_search(self, state0, max_length, k, alpha, n_best, with_attention=False):
        """Beam search over all N * k hypotheses at once; returns the n_best distinct captions per image.

        ``state0`` is the initial state of the N images (``_decode_state``). With ``with_attention`` the
        attention weights of every word of every hypothesis are carried along with it.

        Returns (captions (N, n_best, T) int32, log_probs (N, n_best) float64, attention (N, n_best, T,
        R) float64 or None), best first.
        """
        N = state0[0].shape[0]
        V = self.vocab_size
        T = max_length
        xp = get_array_module(state0[0])
        on_host = xp is np
        ban = xp.asarray(self._generation_mask())            # (V,)
        n_idx = xp.arange(N)[:, None]                         # (N, 1) for gathers along the beams
        state = tuple(xp.repeat(s, k, axis=0) for s in state0)  # each (N * k, ...)
        attention = None                                      # (N, k, T, R) when with_attention
        words = xp.full(N * k, self._start, dtype=np.int64)
        score = xp.full((N, k), -np.inf)                      # log-probs; one live beam to begin with
        score[:, 0] = 0.0
        length = xp.zeros((N, k), dtype=np.int64)
        finished = xp.zeros((N, k), dtype=bool)
        seqs = xp.full((N, k, T), self._null, dtype=np.int32)
        for t in range(T):
            state, logp = self._step_at(t, words, state)      # (N * k, V)
            cand = logp.reshape(N, k, V)
            cand += ban
            cand += score[:, :, None]                         # (N, k, V) scores of every extension
            # A finished caption has exactly one continuation: itself (padded with <NULL>). The host
            # skips this while no caption has finished; the GPU always masks (no sync to ask).
            if not on_host:
                cand = xp.where(finished[:, :, None], -np.inf, cand)
                cand[:, :, self._null] = xp.where(finished, score, cand[:, :, self._null])
            elif finished.any():
                cand[finished] = -np.inf
                cand[finished, self._null] = score[finished]
            new_len = xp.where(finished, length, t + 1)       # (N, k)
            rank = cand / (new_len[:, :, None] ** alpha) if alpha else cand
            flat = rank.reshape(N, k * V)
            top = xp.argpartition(-flat, k - 1, axis=1)[:, :k]                     # (N, k), unordered
            order = _stable_argsort(xp, -xp.take_along_axis(flat, top, axis=1))
            top = xp.take_along_axis(top, order, axis=1)                           # best first
            beam, tok = top // V, top % V                                          # (N, k) each
            score = xp.take_along_axis(cand.reshape(N, k * V), top, axis=1)
            length = xp.take_along_axis(new_len, beam, axis=1)
            finished = xp.take_along_axis(finished, beam, axis=1)
            if self._end is not None:
                finished |= tok == self._end
            seqs = seqs[n_idx, beam]                          # (N, k, T)
            seqs[:, :, t] = tok
            state = tuple(s.reshape(N, k, *s.shape[1:])[n_idx, beam].reshape(s.shape) for s in state)
            words = tok.reshape(N * k)
            if with_attention:  # the weights that chose tok: those of its parent beam's step
                weights = self._step_attention(state).reshape(N, k, -1)       # (N, k, R)
                if attention is None:
                    attention = xp.zeros((N, k, T, weights.shape[2]))
                attention = attention[n_idx, beam]
                attention[:, :, t] = weights
            # Stop once no live beam is left; on the GPU that question is a sync, asked every few steps
            # (further steps change nothing: every beam is finished or dead).
            if (on_host or (t + 1) % _SYNC_EVERY == 0) and not bool((xp.isfinite(score) & ~finished).any()):
                break

        # Final pool: the k beams plus the greedy caption; rank, drop duplicates, keep n_best.
        g_caps, g_logp, g_len, g_att = self._decode_one(state0, T, None, None, with_attention=with_attention)
        seqs = xp.concatenate([seqs, g_caps[:, None, :]], axis=1)     # (N, k + 1, T)
        score = xp.concatenate([score, g_logp[:, None]], axis=1)      # (N, k + 1)
        length = xp.concatenate([length, g_len[:, None]], axis=1)
        rank = xp.where(xp.isfinite(score), score / xp.maximum(length, 1) ** alpha, -np.inf)
        order = _stable_argsort(xp, -rank)
        if with_attention:
            attention = xp.concatenate([attention, g_att[:, None]], axis=1)[n_idx, order]  # (N, k + 1, T, R)
        seqs = seqs[n_idx, order]
        score = xp.take_along_axis(score, order, axis=1)
        rank = xp.take_along_axis(rank, order, axis=1)
        same = (seqs[:, :, None, :] == seqs[:, None, :, :]).all(axis=3)   # (N, k + 1, k + 1)
        earlier = xp.tril(xp.ones((k + 1, k + 1), dtype=bool), -1)        # [i, j] true for j < i
        dup = (same & earlier).any(axis=2)                                # (N, k + 1)
        rank = xp.where(dup, -np.inf, rank)
        order = _stable_argsort(xp, -rank)[:, :n_best]
        if with_attention:
            attention = attention[n_idx, order]
        seqs = seqs[n_idx, order]
        score = xp.take_along_axis(score, order, axis=1)
        valid = xp.isfinite(xp.take_along_axis(rank, order, axis=1))      # (N, n_best)
        seqs = xp.where(valid[:, :, None], seqs, self._null).astype(np.int32, copy=False)
        score = xp.where(valid, score, -np.inf)
        if with_attention:  # zero for the <NULL> padding after a caption's end (and for invalid rows)
            attention = xp.where((seqs != self._null)[:, :, :, None], attention, 0.0)
        return seqs, score, attention

    def _check_loss_inputs(self, fn, features, captions, kwargs):
        """Check ``loss``'s arguments; return (features in the model's dtype, captions, verbose)."""
        verbose = self._check_loss_kwargs(fn, kwargs)
        features, captions = self._check_caption_inputs(fn, features, captions)
        return features, captions, verbose

    def _check_loss_kwargs(self, fn, kwargs):
        """``loss``'s keyword arguments: only ``verbose`` (returned, default False)."""
        unknown = sorted(set(kwargs) - {"verbose"})
        if unknown:
            raise TypeError(f"{fn}: unexpected keyword arguments {unknown}")
        return kwargs.get("verbose", False)

    def _check_caption_inputs(self, fn, features, captions):
        """Check features (N, D) and captions (N, T >= 2); return them (features in the model's dtype)."""
        features = self._check_features(fn, features)
        N = features.shape[0]
        if N == 0:
            raise ValueError(f"{fn}: features is an empty minibatch (shape {features.shape})")
        captions = index_array(fn, "captions", captions, 2, self.vocab_size)
        if captions.shape[0] != N or captions.shape[1] < 2:
            raise ValueError(f"{fn}: captions should have shape (N, T) with N = {N} (the rows of features)"
                             f" and T >= 2, got {captions.shape}")
        return self._on_device(features, captions)

    def _takes_regions(self):
        """True when the model reads region features (N, R, D) rather than one vector (N, D) per image."""
        return False

    def _check_features(self, fn, features):
        features = float_array(fn, "features", features, 2)
        expect_shape(fn, "features", features, (("N", features.shape[0]), ("D", self.input_dim)))
        if isinstance(features, np.ndarray):  # host arrays only: a device check would sync every step
            check_finite(fn, "features", features)
        return features.astype(self.dtype, copy=False)


def region_features(fn, features, input_dim, dtype):
    """Check region features and return them as (N, R, D) in ``dtype`` (on the device they are on).

    Inputs:
    - fn: the calling function's name, for messages.
    - features: (N, R, D) region vectors, or a grid (N, D, h, w) (a CNN's channels-first feature map),
      flattened row-major to R = h * w regions.
    - input_dim: D.
    - dtype: the model's dtype.

    Raises ValueError naming the shapes for anything else (one vector per image (N, D) included).
    """
    xp = get_array_module(features)
    a = xp.asarray(features)
    if a.ndim == 4:
        a = float_array(fn, "features", a, 4)
        N, D, h, w = a.shape
        if D != input_dim:
            raise ValueError(f"{fn}: a grid of features should have shape (N, D, h, w) with D = {input_dim}, "
                             f"got {a.shape}")
        a = a.reshape(N, D, h * w).transpose(0, 2, 1)                    # (N, R, D), R = h * w
    elif a.ndim != 3:
        raise ValueError(f"{fn}: features should be region features (N, R, D) or a grid (N, D, h, w) with "
                         f"D = {input_dim}, got shape {a.shape}" +
                         (" (one vector per image)" if a.ndim == 2 else ""))
    a = float_array(fn, "features", a, 3)
    if a.shape[2] != input_dim or a.shape[1] == 0:
        raise ValueError(f"{fn}: features should have shape (N, R, D) with D = {input_dim} and R >= 1, "
                         f"got {a.shape}")
    return xp.ascontiguousarray(a, dtype=dtype)


def model_archive_meta(archive_format, version, config, identity=None):
    """The JSON metadata of a saved model: format, version, configuration and the training data's identity.

    Shared by every captioning model's ``save`` so that all model files record where their training
    data came from in the same place (``meta['identity']``; absent when None).
    """
    meta = {"format": archive_format, "version": version, "config": config}
    if identity is not None:
        meta["identity"] = identity
    return meta


def log_softmax_rows(scores):
    """Log-softmax of each row of (M, V) scores, in float64 (a new array, on the scores' device)."""
    xp = get_array_module(scores)
    scores = scores.astype(np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    scores -= xp.log(xp.exp(scores).sum(axis=1, keepdims=True))
    return scores


# Decoding on the GPU reads back "has every caption ended?" only every this many steps (a sync each).
_SYNC_EVERY = 8


def _stable_argsort(xp, a):
    """Indices that sort ``a`` along its last axis, ties in their original order (CuPy's sort is stable)."""
    return np.argsort(a, axis=-1, kind="stable") if xp is np else xp.argsort(a, axis=-1)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_int(fn, name, value):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{fn}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _config_args(config, fn, keys, defaults=None):
    """Check a ``get_config`` dict and return it as constructor keyword arguments.

    Keys in ``defaults`` (a dict) may be missing (files written before they existed); they get its values.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{fn}: the configuration must be a dict, got {type(config).__name__}")
    config = {**(defaults or {}), **config}
    missing = sorted(set(keys) - set(config))
    extra = sorted(set(config) - set(keys))
    if missing or extra:
        raise ValueError(f"{fn}: the configuration has missing keys {missing} and unexpected keys {extra}")
    dtype = config["dtype"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"{fn}: the configuration's dtype must be one of {_DTYPES}, got {dtype!r}")
    args = {k: config[k] for k in keys}
    args["dtype"] = np.dtype(dtype)
    return args


def _vocab_difference(saved, given, names=("saved", "given")):
    """A short description of how two vocabularies differ, for error messages (``names``: what each is)."""
    a, b = names
    only_saved = sorted(set(saved) - set(given))
    only_given = sorted(set(given) - set(saved))
    moved = sorted(w for w in set(saved) & set(given) if saved[w] != given[w])
    parts = [f"{a} has {len(saved)} words, {b} has {len(given)}"]
    if only_saved:
        parts.append(f"only in the {a} one: {only_saved[:5]}")
    if only_given:
        parts.append(f"only in the {b} one: {only_given[:5]}")
    if moved:
        parts.append(f"different indices for: {moved[:5]}")
    return "; ".join(parts)


def model_formats():
    """The format names of every captioning model's files (what ``CaptioningModel.load`` reads)."""
    return set(_FORMATS)
