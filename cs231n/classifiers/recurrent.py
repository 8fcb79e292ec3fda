"""The recurrent core every model shares: one place that maps a cell type to its layer functions.

The captioning model, the language model and the sequence regressor all keep their recurrent weights
under the same names: ``Wx`` (D, gH), ``Wh`` (H, gH), ``b`` (gH,) and, for the GRU only, ``bh`` (gH,),
with g = 1 (rnn), 4 (lstm) or 3 (gru). These functions run the matching layer of
:mod:`cs231n.rnn_layers` over a whole sequence or one step, so a model's ``loss`` and ``sample`` read
the same for every cell type.

The attention LSTM (cell type ``'attention'``, captioning only, so not in ``GATES``) has the LSTM's
weights plus ``Wattn`` (H, 4H), and starts from R projected region vectors A (N, R, H) instead of h0:
its initial state is h = c = the mean region, and its decoding state carries A and the last step's
attention weights (N, R).
"""
import numpy as np

from cs231n import rnn_layers
from cs231n.backend import get_array_module

# Number of gate blocks of width H in Wx, Wh and b for each cell type.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


ATTENTION = "attention"

# Each cell type's layer functions: (forward, backward) over inputs x, and (forward, backward) over their
# input projections ax (``rnn_layers.*_projected_*``, see embedded_recurrent_forward).
_LAYERS = {
    "rnn": (rnn_layers.rnn_forward, rnn_layers.rnn_backward,
            rnn_layers.rnn_projected_forward, rnn_layers.rnn_projected_backward),
    "lstm": (rnn_layers.lstm_forward, rnn_layers.lstm_backward,
             rnn_layers.lstm_projected_forward, rnn_layers.lstm_projected_backward),
    "gru": (rnn_layers.gru_forward, rnn_layers.gru_backward,
            rnn_layers.gru_projected_forward, rnn_layers.gru_projected_backward),
    ATTENTION: (rnn_layers.lstm_attention_forward, rnn_layers.lstm_attention_backward,
                rnn_layers.lstm_attention_projected_forward, rnn_layers.lstm_attention_projected_backward),
}


def recurrent_param_names(cell_type):
    """The names of the recurrent weights of ``cell_type``, in the order the layer functions take them."""
    if cell_type == ATTENTION:
        return ("Wx", "Wh", "Wattn", "b")
    return ("Wx", "Wh", "b", "bh") if cell_type == "gru" else ("Wx", "Wh", "b")


def init_recurrent_params(rng, D, H, cell_type):
    """Fresh recurrent weights: ``Wx`` (D, gH) and ``Wh`` (H, gH) as randn / sqrt(fan_in), drawn in that
    order from the ``np.random.Generator`` ``rng``; ``b`` and the GRU's ``bh`` zero. Returned as float64."""
    gH = GATES[cell_type] * H
    params = {"Wx": rng.standard_normal((D, gH)) / np.sqrt(D),
              "Wh": rng.standard_normal((H, gH)) / np.sqrt(H),
              "b": np.zeros(gH)}
    if cell_type == "gru":
        params["bh"] = np.zeros(gH)
    return params


def recurrent_forward(cell_type, x, h0, params, workspace=None):
    """Run the recurrent layer of ``cell_type`` over a sequence.

    Inputs:
    - cell_type: 'rnn', 'lstm', 'gru' or 'attention'.
    - x: inputs, of shape (N, T, D).
    - h0: initial hidden state, of shape (N, H) (the LSTM's initial cell is zero); for 'attention' the
      projected regions A, of shape (N, R, H).
    - params: dict holding the recurrent weights (other keys are ignored).
    - workspace: None, or a :class:`cs231n.workspace.Workspace` for the layer's buffers.

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: for :func:`recurrent_backward`.
    """
    weights = [params[k] for k in recurrent_param_names(cell_type)]
    return _LAYERS[cell_type][0](x, h0, *weights, workspace=workspace)


def recurrent_backward(cell_type, dh, cache, workspace=None):
    """Backward pass of :func:`recurrent_forward`.

    Inputs:
    - cell_type: as given to the forward.
    - dh: upstream gradients of every hidden state, of shape (N, T, H).
    - cache: from :func:`recurrent_forward`.
    - workspace: None, or the Workspace given to the forward.

    Returns a tuple of:
    - dx: gradient of the inputs, of shape (N, T, D).
    - dh0: gradient of the initial hidden state, of shape (N, H) (of A, (N, R, H), for 'attention').
    - grads: dict with the gradient of every recurrent weight, keyed like ``params``.
    """
    dx, dh0, *dweights = _LAYERS[cell_type][1](dh, cache, workspace=workspace)
    return dx, dh0, dict(zip(recurrent_param_names(cell_type), dweights))


def _hidden_param_names(cell_type):
    """The weights a layer takes besides its input projections (``*_projected_forward``), in order."""
    return tuple(k for k in recurrent_param_names(cell_type) if k not in ("Wx", "b"))


def embedded_recurrent_forward(cell_type, words, W_embed, h0, params, workspace=None):
    """Embed words (``W_embed[words]``) and run the recurrent layer of ``cell_type`` over them.

    On the CPU (numpy arrays) the inputs are projected through the vocabulary
    (:func:`cs231n.rnn_layers.word_projection_forward`: each distinct word of the minibatch times Wx
    once, instead of every position), the same values with far fewer multiply-adds, and the layer runs
    from those projections (``rnn_layers.*_projected_forward``). On a GPU the words are embedded and
    given to :func:`recurrent_forward` (there the step is bound by kernel launches, and finding the
    distinct words would wait for the device).

    Inputs:
    - cell_type: 'rnn', 'lstm', 'gru' or 'attention'.
    - words: integer array of shape (N, T) with indices in [0, V).
    - W_embed: word vectors, of shape (V, D).
    - h0: as for recurrent_forward (A (N, R, H) for 'attention').
    - params: dict holding the recurrent weights.
    - workspace: None, or a Workspace for the layers' buffers.

    Returns a tuple of:
    - h: hidden states, of shape (N, T, H).
    - cache: for :func:`embedded_recurrent_backward`.
    """
    if get_array_module(W_embed) is np:
        ax, cache_words = rnn_layers.word_projection_forward(words, W_embed, params["Wx"], params["b"], workspace)
        hidden = [params[k] for k in _hidden_param_names(cell_type)]
        h, cache = _LAYERS[cell_type][2](ax, h0, *hidden, workspace=workspace)
        return h, (True, cache_words, cache)
    x, cache_embed = rnn_layers.word_embedding_forward(words, W_embed, workspace)
    h, cache = recurrent_forward(cell_type, x, h0, params, workspace)
    return h, (False, cache_embed, cache)


def embedded_recurrent_backward(cell_type, dh, cache, workspace=None):
    """Backward pass of :func:`embedded_recurrent_forward`.

    Returns a tuple of:
    - dW_embed: gradient of the word vectors, of shape (V, D).
    - dh0: gradient of h0 (of A, (N, R, H), for 'attention').
    - grads: dict with the gradient of every recurrent weight, keyed like ``params``.
    """
    projected, cache_words, cache = cache
    if not projected:
        dx, dh0, grads = recurrent_backward(cell_type, dh, cache, workspace)
        return rnn_layers.word_embedding_backward(dx, cache_words, workspace), dh0, grads
    dax, dh0, *dhidden = _LAYERS[cell_type][3](dh, cache, workspace)
    dW_embed, dWx, db = rnn_layers.word_projection_backward(dax, cache_words, workspace)
    grads = dict(zip(_hidden_param_names(cell_type), dhidden), Wx=dWx, b=db)
    return dW_embed, dh0, grads


def initial_state(cell_type, h0):
    """The recurrent state at time 0: ``(h0,)``, or ``(h0, zero cell)`` for the LSTM.

    For 'attention', ``h0`` is the projected regions A (N, R, H) and the state is ``(h, c, A, weights)``
    with h = c = the mean region and weights (N, R) uniform (no step has attended yet).
    """
    xp = get_array_module(h0)
    if cell_type == ATTENTION:
        mean = h0.mean(axis=1)
        R = h0.shape[1]
        return (mean, mean.copy(), h0, xp.full((h0.shape[0], R), 1.0 / R, dtype=h0.dtype))
    if cell_type == "lstm":
        return (h0, xp.zeros_like(h0))
    return (h0,)


def recurrent_step(cell_type, x, state, params):
    """Advance the recurrent state by one timestep.

    Inputs:
    - cell_type: 'rnn', 'lstm', 'gru' or 'attention'.
    - x: inputs of this step, of shape (N, D).
    - state: tuple from :func:`initial_state` or a previous step; its first element is h (N, H).
    - params: dict holding the recurrent weights.

    Returns the next state, a tuple whose first element is the next hidden state (N, H).
    """
    weights = [params[k] for k in recurrent_param_names(cell_type)]
    if cell_type == ATTENTION:
        h, c, A, _ = state
        attn, cache = rnn_layers.attention_forward(h, A)          # context from the previous h
        h, c, _ = rnn_layers.lstm_attention_step_forward(x, h, c, attn, *weights)
        return (h, c, A, cache[2])
    if cell_type == "lstm":
        h, c, _ = rnn_layers.lstm_step_forward(x, state[0], state[1], *weights)
        return (h, c)
    step = rnn_layers.rnn_step_forward if cell_type == "rnn" else rnn_layers.gru_step_forward
    h, _ = step(x, state[0], *weights)
    return (h,)
