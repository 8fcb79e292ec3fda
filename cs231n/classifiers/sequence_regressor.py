"""Recurrent regressors for real-valued sequences: many-to-one and many-to-many, with a squared-error loss.

A :class:`SequenceRegressor` reads vectors x_1..x_T with a recurrent layer (vanilla RNN, LSTM or GRU
from :mod:`cs231n.rnn_layers`) and maps hidden states to outputs with an affine layer:

- ``mode='many_to_many'``: one output per timestep, ``y_t = h_t W_out + b_out`` (e.g. the next value
  of a time series at every step);
- ``mode='many_to_one'``: one output per sequence from the last hidden state, ``y = h_T W_out + b_out``.

:meth:`SequenceRegressor.generate_sequence` runs the model on seed inputs and then feeds each
prediction back in as the next input, to extrapolate a series.

Letters: N minibatch, T timesteps, D input size, H hidden size, M output size.

The regressor moves between host and GPU with ``model.to("gpu")`` / ``.to("cpu")`` (see
:mod:`cs231n.classifiers.device`): on the GPU ``predict`` and ``loss`` take host or GPU inputs and
return GPU arrays; ``generate_sequence`` returns a host numpy array, copied once at the end.
"""
import numpy as np

from cs231n import layers, rnn_layers
from cs231n._validation import copy_params, expect_shape, float_array
from cs231n.archive import load_archive, save_archive
from cs231n.backend import get_array_module, to_numpy
from cs231n.classifiers.device import DeviceModel, host_arrays
from cs231n.classifiers.recurrent import (init_recurrent_params, initial_state, recurrent_backward,
                                         recurrent_forward, recurrent_step)

CELL_TYPES = ("rnn", "lstm", "gru")
MODES = ("many_to_many", "many_to_one")
_ARCHIVE_KIND = "SequenceRegressor"


def _positive_int(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: {name} must be an int >= 1, got {value!r}")
    return int(value)


class SequenceRegressor(DeviceModel):
    """A recurrent network with a linear output layer, trained with the mean squared error.

    Parameters (``self.params``, arrays of ``dtype``):
    - ``Wx`` (D, gH), ``Wh`` (H, gH), ``b`` (gH,): the recurrent layer, g = 1 (rnn), 4 (lstm), 3 (gru);
      weights randn / sqrt(fan in), biases zero.
    - ``bh`` (3H,): the GRU's hidden bias (gru only), zero.
    - ``W_out`` (H, M), ``b_out`` (M,): the output layer, randn / sqrt(H) and zero.

    The initial hidden state is zero unless an ``h0`` is passed (the LSTM's initial cell state is
    always zero).
    """

    def __init__(self, input_dim, hidden_dim, output_dim, cell_type="rnn", mode="many_to_many",
                 dtype=np.float32, seed=None):
        """Create a regressor with freshly initialized weights.

        Inputs:
        - input_dim: D, the size of each input vector.
        - hidden_dim: H, the size of the hidden state.
        - output_dim: M, the size of each output vector.
        - cell_type: 'rnn', 'lstm' or 'gru'.
        - mode: 'many_to_many' (an output at every step) or 'many_to_one' (one output per sequence).
        - dtype: numpy float dtype of the parameters; float64 for gradient checks.
        - seed: None, an int or a numpy.random.Generator for the initial weights.
        """
        fn = "SequenceRegressor"
        D = _positive_int(fn, "input_dim", input_dim)
        H = _positive_int(fn, "hidden_dim", hidden_dim)
        M = _positive_int(fn, "output_dim", output_dim)
        if cell_type not in CELL_TYPES:
            raise ValueError(f"{fn}: cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        if mode not in MODES:
            raise ValueError(f"{fn}: mode must be one of {MODES}, got {mode!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{fn}: dtype must be a floating type, got {dtype}")
        if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)) \
                or isinstance(seed, bool):
            raise TypeError(f"{fn}: seed must be None, an int or a numpy.random.Generator, "
                            f"got {type(seed).__name__}")
        self.input_dim, self.hidden_dim, self.output_dim = D, H, M
        self.cell_type, self.mode, self.dtype = cell_type, mode, dtype
        rng = np.random.default_rng(seed)
        params = init_recurrent_params(rng, D, H, cell_type)
        params["W_out"] = rng.standard_normal((H, M)) / np.sqrt(H)
        params["b_out"] = np.zeros(M)
        self.params = {k: v.astype(dtype) for k, v in params.items()}

    # ------------------------------------------------------------------------------------------------
    # Configuration and files
    # ------------------------------------------------------------------------------------------------

    def get_config(self):
        """The constructor arguments as a JSON-serializable dict (the weights are in ``params``)."""
        return {"input_dim": self.input_dim, "hidden_dim": self.hidden_dim, "output_dim": self.output_dim,
                "cell_type": self.cell_type, "mode": self.mode, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config, params=None):
        """Build a regressor from :meth:`get_config`'s dict, with ``params`` (same names, shapes) if given."""
        if not isinstance(config, dict):
            raise TypeError(f"from_config: config must be a dict, got {type(config).__name__}")
        model = cls(**config, seed=0)
        if params is not None:
            model.params = copy_params("from_config", model.params, host_arrays(params), model.dtype)
        return model

    def save(self, path):
        """Write the configuration and weights to ``path`` (an atomic ``.npz`` archive, no pickle)."""
        return save_archive(path, self.params, {"kind": _ARCHIVE_KIND, "config": self.get_config()})

    @classmethod
    def load(cls, path):
        """Read a regressor written by :meth:`save`."""
        arrays, meta = load_archive(path)
        if meta.get("kind") != _ARCHIVE_KIND or "config" not in meta:
            raise ValueError(f"{path} does not hold a {_ARCHIVE_KIND} (kind {meta.get('kind')!r})")
        return cls.from_config(meta["config"], arrays)

    # ------------------------------------------------------------------------------------------------
    # Forward and backward
    # ------------------------------------------------------------------------------------------------

    def _check_x(self, fn, x):
        """Checked inputs (N, T, D), on the model's device."""
        x = float_array(fn, "x", x, 3)
        if x.shape[2] != self.input_dim:
            raise ValueError(f"{fn}: x should have shape (N, T, D) with D = {self.input_dim}, got {x.shape}")
        if x.shape[1] < 1:
            raise ValueError(f"{fn}: x must have at least one timestep, got shape {x.shape}")
        return self._on_device(x)

    def _initial_state(self, fn, h0, N):
        if h0 is None:
            xp = get_array_module(*self.params.values())
            return xp.zeros((N, self.hidden_dim), dtype=self.dtype)  # (N, H)
        h0 = float_array(fn, "h0", h0, 2)
        expect_shape(fn, "h0", h0, (("N", N), ("H", self.hidden_dim)))
        return self._on_device(h0)

    def _recurrent_forward(self, x, h0):
        return recurrent_forward(self.cell_type, x, h0, self.params)

    def _forward(self, x, h0):
        """Predictions and the caches of both layers."""
        p = self.params
        h, cache_rnn = self._recurrent_forward(x, h0)                       # (N, T, H)
        if self.mode == "many_to_many":
            pred, cache_out = rnn_layers.temporal_affine_forward(h, p["W_out"], p["b_out"])  # (N, T, M)
        else:
            pred, cache_out = layers.affine_forward(h[:, -1, :], p["W_out"], p["b_out"])     # (N, M)
        return pred, (h.shape, cache_rnn, cache_out)

    def predict(self, x, h0=None):
        """Outputs for input sequences.

        Inputs:
        - x: inputs of shape (N, T, D), floating.
        - h0: initial hidden state of shape (N, H), or None for zeros.

        Returns:
        - pred: (N, T, M) in many-to-many mode, (N, M) in many-to-one mode.
        """
        fn = "SequenceRegressor.predict"
        x = self._check_x(fn, x)
        pred, _ = self._forward(x, self._initial_state(fn, h0, x.shape[0]))
        return pred

    def loss(self, x, y, h0=None):
        """Mean squared error of the predictions, and its gradients.

        The loss is the mean over every predicted number, ``sum((pred - y) ** 2) / y.size``: divided by
        N * T * M in many-to-many mode and by N * M in many-to-one mode (no factor 1/2), so predicting
        the mean of y everywhere scores the variance of y.

        Inputs:
        - x: inputs of shape (N, T, D), floating.
        - y: targets of shape (N, T, M) (many-to-many) or (N, M) (many-to-one).
        - h0: initial hidden state of shape (N, H), or None for zeros (it is an input, not trained).

        Returns a tuple of:
        - loss: scalar.
        - grads: dict with the keys of ``self.params``, each gradient of the parameter's shape.
        """
        fn = "SequenceRegressor.loss"
        x = self._check_x(fn, x)
        N, T, _ = x.shape
        M = self.output_dim
        want = (N, T, M) if self.mode == "many_to_many" else (N, M)
        y = get_array_module(y).asarray(y)
        if y.shape != want:
            letters = "(N, T, M)" if self.mode == "many_to_many" else "(N, M)"
            raise ValueError(f"{fn}: in {self.mode} mode y should have shape {letters} = {want}, "
                             f"got {y.shape}")
        y = self._on_device(float_array(fn, "y", y, len(want)))
        h0 = self._initial_state(fn, h0, N)
        pred, (h_shape, cache_rnn, cache_out) = self._forward(x, h0)
        xp = get_array_module(pred)

        diff = pred - y
        loss = xp.mean(diff * diff)
        dpred = (2.0 / diff.size) * diff

        grads = {}
        if self.mode == "many_to_many":
            dh, grads["W_out"], grads["b_out"] = rnn_layers.temporal_affine_backward(dpred, cache_out)
        else:
            dh_last, grads["W_out"], grads["b_out"] = layers.affine_backward(dpred, cache_out)
            dh = xp.zeros(h_shape, dtype=dh_last.dtype)                      # (N, T, H)
            dh[:, -1, :] = dh_last                                          # only h_T feeds the output
        _, _, recurrent_grads = recurrent_backward(self.cell_type, dh, cache_rnn)
        grads.update(recurrent_grads)
        return loss, grads

    # ------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------

    def _step(self, x, state):
        """One timestep from inputs x (N, D): the next recurrent state and the output (N, M)."""
        p = self.params
        state = recurrent_step(self.cell_type, x, state, p)
        return state, state[0] @ p["W_out"] + p["b_out"]

    def generate_sequence(self, seeds, T, h0=None):
        """Extrapolate sequences: read the seeds, then feed each prediction back as the next input.

        The model reads ``seeds[:, 0], ..., seeds[:, S - 1]`` from ``h0``; its output after the last
        seed is the first generated vector, which becomes the next input, and so on. The outputs must
        be inputs, so this needs M == D. In both modes the output of a step is ``h_t W_out + b_out``,
        which is what a many-to-one model predicts after a sequence ending at step t.

        Inputs:
        - seeds: floating array of shape (N, S, D), S >= 1 given timesteps (the first one alone is a
          single starting value).
        - T: int >= 0, the number of vectors to generate.
        - h0: initial hidden state of shape (N, H), or None for zeros.

        Returns:
        - generated: host numpy array of shape (N, T, D); ``generated[:, 0]`` equals the last step of
          ``predict(seeds)`` in many-to-many mode (on the GPU it is copied back once, at the end).
        """
        fn = "SequenceRegressor.generate_sequence"
        if self.output_dim != self.input_dim:
            raise ValueError(f"{fn}: predictions are fed back as inputs, so output_dim must equal input_dim; "
                             f"got output_dim {self.output_dim}, input_dim {self.input_dim}")
        seeds = self._check_x(fn, seeds)
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 0:
            raise ValueError(f"{fn}: T must be an int >= 0, got {T!r}")
        N, S, D = seeds.shape
        h = self._initial_state(fn, h0, N)
        state = initial_state(self.cell_type, h)
        out = None
        for t in range(S):
            state, out = self._step(seeds[:, t, :], state)                    # out (N, D)
        xp = get_array_module(seeds)
        generated = xp.empty((N, int(T), D), dtype=np.result_type(out.dtype, seeds.dtype))
        for t in range(int(T)):
            generated[:, t, :] = out
            if t + 1 < T:
                state, out = self._step(out, state)
        return to_numpy(generated)
