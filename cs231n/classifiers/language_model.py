"""A word-level recurrent language model: predict each next word of a text from the words before it.

The model is built from the same layer functions as the captioning model (:mod:`cs231n.rnn_layers`):
word embedding -> recurrent layer (vanilla RNN, LSTM or GRU) started from a zero hidden state ->
temporal affine to vocabulary scores -> softmax cross-entropy against the next word.

Letters: N minibatch, T timesteps, V vocabulary size, W word-vector size, H hidden size.

The model moves between host and GPU with ``model.to("gpu")`` / ``.to("cpu")`` (see
:mod:`cs231n.classifiers.device`); on the GPU its methods take host or GPU word indices, ``sample``
returns host numpy words (bit for bit those of the CPU for the same seed) and ``evaluate`` Python numbers.
"""
import numpy as np

from cs231n import rnn_layers
from cs231n._validation import index_array
from cs231n.archive import load_archive, save_archive
from cs231n.backend import get_array_module, to_device, to_numpy
from cs231n.classifiers.device import DeviceModel, host_arrays
from cs231n.classifiers.recurrent import GATES as _GATES
from cs231n.classifiers.recurrent import (embedded_recurrent_backward, embedded_recurrent_forward,
                                         init_recurrent_params, initial_state, recurrent_forward, recurrent_step)

CELL_TYPES = ("rnn", "lstm", "gru")
_ARCHIVE_KIND = "LanguageModelRNN"


def _positive_int(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: {name} must be an int >= 1, got {value!r}")
    return int(value)


def as_generator(rng, fn="rng"):
    """A ``np.random.Generator``: ``rng`` itself, one seeded with an int, or a fresh one for None."""
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{fn}: rng must be None, an int seed or a numpy.random.Generator, "
                    f"got {type(rng).__name__}")


def sample_from_scores(scores, temperature, rng, uniforms=None):
    """Draw one index per row of ``scores`` with probabilities ``p ∝ exp(score / temperature)``.

    Temperature 1 samples from the model's softmax; lower temperatures sharpen it towards the highest
    score (greedier), higher ones flatten it towards uniform; temperature 0 returns the argmax (the
    lowest index among ties) and consumes no random numbers. Otherwise exactly one uniform number per
    row is drawn from ``rng`` and inverted through the cumulative distribution.

    Inputs:
    - scores: floating array of shape (N, V).
    - temperature: float >= 0.
    - rng: numpy.random.Generator.
    - uniforms: optional (N,) uniform numbers in [0, 1) on the scores' device, used instead of drawing
      from rng (how GPU scores get the draws of a host Generator without a transfer per step).

    Returns:
    - idx: int32 array of shape (N,), on the scores' device.
    """
    xp = get_array_module(scores)
    if temperature == 0:
        return xp.argmax(scores, axis=1).astype(np.int32)
    s = xp.asarray(scores, dtype=np.float64)
    # Subtract the row maximum before dividing, so tiny temperatures give -inf, never inf - inf.
    logits = (s - s.max(axis=1, keepdims=True)) / temperature  # (N, V), <= 0
    p = xp.exp(logits)
    cdf = xp.cumsum(p, axis=1)                                  # (N, V), unnormalized
    r = rng.random(s.shape[0]) if uniforms is None else uniforms
    u = r * cdf[:, -1]                                          # (N,)
    idx = (cdf <= u[:, None]).sum(axis=1)                       # first index with cdf > u
    return xp.minimum(idx, s.shape[1] - 1).astype(np.int32)


def check_temperature(fn, temperature):
    """Return ``temperature`` as a float, or raise unless it is a finite number >= 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: temperature must be a number, got {type(temperature).__name__}")
    t = float(temperature)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"{fn}: temperature must be finite and >= 0, got {temperature!r}")
    return t


class LanguageModelRNN(DeviceModel):
    """A recurrent word-level language model.

    The vocabulary has V words, word vectors have W dimensions and the hidden state H. Every sequence
    starts from a zero hidden state (and a zero cell state for the LSTM).

    Parameters (``self.params``, float arrays of ``dtype``):
    - ``W_embed`` (V, W): word vectors, randn (unit variance, as ``torch.nn.Embedding``). The
      captioning model's classic randn / 100 makes the inputs so small next to the hidden state that
      the language model spends its first epochs learning a unigram model: on Chapter I of *Alice*
      (LSTM, W 15, H 100, T 50, batch 30, Adam 5e-4) training accuracy passes 80% after 11 epochs with
      unit-variance vectors and after 27 with randn / 100.
    - ``Wx`` (W, gH), ``Wh`` (H, gH), ``b`` (gH,): the recurrent layer, g = 1 (rnn), 4 (lstm, gates
      i, f, o, g), 3 (gru, gates r, z, n); weights randn / sqrt(fan in), biases zero.
    - ``bh`` (3H,): the GRU's second bias, on the hidden projection (gru only), zero.
    - ``W_vocab`` (H, V), ``b_vocab`` (V,): the output layer, randn / sqrt(H) and zero.
    """

    def __init__(self, vocab_size, wordvec_dim=128, hidden_dim=128, cell_type="rnn", dtype=np.float32,
                 idx_to_word=None, seed=None):
        """Create a model with freshly initialized weights.

        Inputs:
        - vocab_size: V, the number of distinct words.
        - wordvec_dim: W, the size of the word vectors.
        - hidden_dim: H, the size of the hidden state.
        - cell_type: ``'rnn'``, ``'lstm'`` or ``'gru'``.
        - dtype: numpy float dtype of the parameters; float64 for gradient checks.
        - idx_to_word: optional list of the V words, kept with the model (``get_config``, ``save``) so
          that samples can be turned back into text.
        - seed: None, an int or a numpy.random.Generator for the initial weights (None: fresh entropy).
        """
        fn = "LanguageModelRNN"
        V = _positive_int(fn, "vocab_size", vocab_size)
        W = _positive_int(fn, "wordvec_dim", wordvec_dim)
        H = _positive_int(fn, "hidden_dim", hidden_dim)
        if cell_type not in CELL_TYPES:
            raise ValueError(f"{fn}: cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{fn}: dtype must be a floating type, got {dtype}")
        if idx_to_word is not None:
            idx_to_word = [str(w) for w in idx_to_word]
            if len(idx_to_word) != V:
                raise ValueError(f"{fn}: idx_to_word has {len(idx_to_word)} words but vocab_size is {V}")
        self.vocab_size, self.wordvec_dim, self.hidden_dim = V, W, H
        self.cell_type = cell_type
        self.dtype = dtype
        self.idx_to_word = idx_to_word
        self.word_to_idx = None if idx_to_word is None else {w: i for i, w in enumerate(idx_to_word)}

        rng = as_generator(seed, fn)
        params = {"W_embed": rng.standard_normal((V, W))}  # unit variance, see the class docstring
        params.update(init_recurrent_params(rng, W, H, cell_type))
        params["W_vocab"] = rng.standard_normal((H, V)) / np.sqrt(H)
        params["b_vocab"] = np.zeros(V)
        self.params = {k: v.astype(dtype) for k, v in params.items()}

    # ------------------------------------------------------------------------------------------------
    # Configuration and files
    # ------------------------------------------------------------------------------------------------

    def param_shapes(self):
        """The shape of every parameter, as a dict name -> tuple."""
        V, W, H = self.vocab_size, self.wordvec_dim, self.hidden_dim
        gH = _GATES[self.cell_type] * H
        shapes = {"W_embed": (V, W), "Wx": (W, gH), "Wh": (H, gH), "b": (gH,),
                  "W_vocab": (H, V), "b_vocab": (V,)}
        if self.cell_type == "gru":
            shapes["bh"] = (gH,)
        return shapes

    def get_config(self):
        """The constructor arguments as a JSON-serializable dict (the weights are in ``params``)."""
        return {"vocab_size": self.vocab_size, "wordvec_dim": self.wordvec_dim,
                "hidden_dim": self.hidden_dim, "cell_type": self.cell_type,
                "dtype": self.dtype.name, "idx_to_word": self.idx_to_word}

    @classmethod
    def from_config(cls, config, params=None):
        """Build a model from :meth:`get_config`'s dict; with ``params``, load those weights into it.

        Inputs:
        - config: dict as returned by get_config.
        - params: optional dict name -> array with exactly the model's parameter names and shapes.

        Returns a LanguageModelRNN.
        """
        if not isinstance(config, dict):
            raise TypeError(f"from_config: config must be a dict, got {type(config).__name__}")
        known = {"vocab_size", "wordvec_dim", "hidden_dim", "cell_type", "dtype", "idx_to_word"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"from_config: unknown config keys {unknown}; expected some of {sorted(known)}")
        if "vocab_size" not in config:
            raise ValueError("from_config: config lacks 'vocab_size'")
        model = cls(**config, seed=0)
        if params is not None:
            model.set_params(params)
        return model

    def set_params(self, params):
        """Replace the weights with ``params`` (copied and cast to the model's dtype) after checking them."""
        device = self.device  # the new weights stay where the model is
        params = host_arrays(params)
        shapes = self.param_shapes()
        missing = sorted(set(shapes) - set(params))
        extra = sorted(set(params) - set(shapes))
        if missing or extra:
            raise ValueError(f"set_params: parameter names do not match the model: missing {missing}, "
                             f"unexpected {extra}")
        new = {}
        for name, shape in shapes.items():
            a = np.asarray(params[name])
            if a.shape != shape:
                raise ValueError(f"set_params: {name} should have shape {shape}, got {a.shape}")
            if a.dtype.kind != "f":
                raise TypeError(f"set_params: {name} must be floating, got dtype {a.dtype}")
            new[name] = a.astype(self.dtype, copy=True)
        self.params = {k: to_device(v, device) for k, v in new.items()} if device == "gpu" else new

    def save(self, path):
        """Write the configuration and weights to ``path`` (an atomic ``.npz`` archive, no pickle)."""
        return save_archive(path, self.params, {"kind": _ARCHIVE_KIND, "config": self.get_config()})

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        arrays, meta = load_archive(path)
        if meta.get("kind") != _ARCHIVE_KIND or "config" not in meta:
            raise ValueError(f"{path} does not hold a {_ARCHIVE_KIND} (kind {meta.get('kind')!r})")
        return cls.from_config(meta["config"], arrays)

    # ------------------------------------------------------------------------------------------------
    # Forward and backward
    # ------------------------------------------------------------------------------------------------

    def _check_indices(self, fn, name, a):
        """Checked word indices (N, T), on the model's device."""
        return self._on_device(index_array(fn, name, a, 2, self.vocab_size))

    def _recurrent_forward(self, x, workspace=None):
        """Run the recurrent layer over embedded words x (N, T, W) from a zero state; return h, cache."""
        h0 = get_array_module(x).zeros((x.shape[0], self.hidden_dim), dtype=self.dtype)  # (N, H)
        return recurrent_forward(self.cell_type, x, h0, self.params, workspace)

    def scores(self, inputs):
        """Vocabulary scores for the word after each input word.

        Inputs:
        - inputs: integer word indices of shape (N, T), values in [0, V).

        Returns:
        - scores: array of shape (N, T, V); ``scores[n, t]`` are the unnormalized log-probabilities of
          the word that follows ``inputs[n, :t + 1]``.
        """
        inputs = self._check_indices("scores", "inputs", inputs)
        p = self.params
        x, _ = rnn_layers.word_embedding_forward(inputs, p["W_embed"])    # (N, T, W)
        h, _ = self._recurrent_forward(x)                                 # (N, T, H)
        out, _ = rnn_layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        return out                                                        # (N, T, V)

    def loss(self, inputs, targets):
        """Mean next-word cross-entropy per token, and its gradients.

        The loss is ``-(1 / (N T)) sum_{n,t} log p(targets[n, t] | inputs[n, :t + 1])``: the
        cs231n ``temporal_softmax_loss`` (a sum over time divided by N) divided again by T, so that it is
        the per-token cross-entropy in nats whose ``exp`` is the perplexity.

        Inputs:
        - inputs: integer word indices of shape (N, T), values in [0, V).
        - targets: integer word indices of shape (N, T); ``targets[n, t]`` is the word after
          ``inputs[n, t]``.

        Returns a tuple of:
        - loss: scalar (numpy float of the model's dtype).
        - grads: dict with the keys of ``self.params``, each gradient of the parameter's shape.
        """
        fn = "LanguageModelRNN.loss"
        inputs = self._check_indices(fn, "inputs", inputs)
        targets = self._check_indices(fn, "targets", targets)
        if targets.shape != inputs.shape:
            raise ValueError(f"{fn}: targets should have the shape of inputs {inputs.shape}, "
                             f"got {targets.shape}")
        N, T = inputs.shape
        p, ws = self.params, self.workspace  # the step's large arrays, reused by the next call

        h0 = get_array_module(inputs).zeros((N, self.hidden_dim), dtype=self.dtype)   # (N, H)
        # The words embedded and run through the recurrent layer (on the CPU the inputs are projected
        # through the vocabulary: each distinct word once), (N, T, H)
        h, cache_rnn = embedded_recurrent_forward(self.cell_type, inputs, p["W_embed"], h0, p, ws)
        scores, cache_aff = rnn_layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"], ws)  # (N, T, V)
        mask = get_array_module(inputs).ones((N, T), dtype=bool)
        loss, dscores = rnn_layers.temporal_softmax_loss(scores, targets, mask, workspace=ws)
        loss = loss / T            # per token: the layer divides the sum by N only
        dscores /= T

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = rnn_layers.temporal_affine_backward(dscores, cache_aff, ws)
        grads["W_embed"], _, recurrent_grads = embedded_recurrent_backward(self.cell_type, dh, cache_rnn, ws)
        grads.update(recurrent_grads)
        return loss, grads

    def evaluate(self, inputs, targets, batch_size=64):
        """Per-token cross-entropy, next-word accuracy and perplexity over many windows (no gradients).

        Inputs:
        - inputs, targets: integer word indices of shape (N, T), as for :meth:`loss`.
        - batch_size: windows per forward pass (bounds the memory of the (batch, T, V) scores).

        Returns a dict with:
        - ``loss``: mean cross-entropy per target token, in nats.
        - ``accuracy``: fraction of targets that are the highest-scoring word.
        - ``perplexity``: ``exp(loss)``.
        - ``tokens``: the number of targets, N * T.
        """
        fn = "LanguageModelRNN.evaluate"
        inputs = self._check_indices(fn, "inputs", inputs)
        targets = self._check_indices(fn, "targets", targets)
        if targets.shape != inputs.shape:
            raise ValueError(f"{fn}: targets should have the shape of inputs {inputs.shape}, "
                             f"got {targets.shape}")
        batch_size = _positive_int(fn, "batch_size", batch_size)
        xp = get_array_module(inputs)
        # Sums stay on the inputs' device until the end: on the GPU one sync for the whole evaluation.
        total_nll = 0.0
        correct = 0
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start:start + batch_size]
            y = targets[start:start + batch_size]
            s = self.scores(x).astype(np.float64)                        # (n, T, V)
            m = s.max(axis=2, keepdims=True)
            log_norm = xp.log(xp.exp(s - m).sum(axis=2)) + m[..., 0]     # (n, T)
            log_p = xp.take_along_axis(s, y[..., None], axis=2)[..., 0] - log_norm
            total_nll = total_nll - log_p.sum()
            correct = correct + (s.argmax(axis=2) == y).sum()
        total_nll, correct = float(total_nll), int(correct)
        count = inputs.size
        mean = total_nll / count if count else float("nan")
        return {"loss": mean, "accuracy": correct / count if count else float("nan"),
                "perplexity": float(np.exp(mean)), "tokens": count}

    # ------------------------------------------------------------------------------------------------
    # Sampling
    # ------------------------------------------------------------------------------------------------

    def _step(self, word, state):
        """One step from word indices (N,): the next recurrent state and the scores (N, V)."""
        p = self.params
        x = p["W_embed"][word]                                          # (N, W)
        state = recurrent_step(self.cell_type, x, state, p)
        scores = state[0] @ p["W_vocab"] + p["b_vocab"]                 # (N, V)
        return state, scores

    def sample(self, start_idx, length, temperature=1.0, rng=None):
        """Generate ``length`` words after ``start_idx``, feeding each sampled word back in.

        The model starts from a zero state, reads ``start_idx`` and draws the next word from
        ``p(w) ∝ exp(score(w) / temperature)`` (the softmax of the scores divided by the temperature),
        then reads that word, and so on. ``temperature = 1`` samples from the model's own
        distribution; lower values make it greedier (the likeliest words gain probability), higher
        values make it more uniform; ``temperature = 0`` is greedy decoding: always the highest-scoring
        word (the lowest index among ties), with no randomness. Each step at temperature > 0 draws one
        uniform number per sequence from ``rng``, so a given seed gives the same words.

        Inputs:
        - start_idx: int, or integer array of shape (N,) to sample N sequences at once, in [0, V).
        - length: int >= 0, the number of words to generate (the start word is not included).
        - temperature: float >= 0.
        - rng: None (fresh entropy), an int seed or a numpy.random.Generator.

        Returns:
        - words: int32 host array of shape (length,) for an int start_idx, (N, length) for an array
          (a model on the GPU samples there and copies the words back once, at the end).
        """
        fn = "LanguageModelRNN.sample"
        xp = get_array_module(start_idx)
        scalar = np.ndim(start_idx) == 0
        start = index_array(fn, "start_idx", xp.atleast_1d(xp.asarray(start_idx)), 1, self.vocab_size)
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"{fn}: length must be an int >= 0, got {length!r}")
        temperature = check_temperature(fn, temperature)
        rng = as_generator(rng, fn)
        start = self._on_device(start)
        xp = get_array_module(start)
        N = start.shape[0]
        words = xp.empty((N, int(length)), dtype=np.int32)
        state = initial_state(self.cell_type, xp.zeros((N, self.hidden_dim), dtype=self.dtype))  # h (N, H)
        uniforms = None
        if xp is not np and temperature > 0:
            # The same numbers, in the same order, as one rng.random(N) per step on the host: one transfer.
            uniforms = xp.asarray(rng.random((int(length), N)))      # (length, N)
        word = start
        for t in range(int(length)):
            state, scores = self._step(word, state)
            word = sample_from_scores(scores, temperature, rng,
                                      None if uniforms is None else uniforms[t])  # (N,)
            words[:, t] = word
        words = to_numpy(words)
        return words[0] if scalar else words
