"""Bounds that follow from the data and the machine, checked before any data is loaded.

A size option has no fixed upper bound: ``--batch-size 100000`` is fine on COCO and absurd on 300
captions, ``--hidden-dim 20000`` fits a big machine and not a laptop. So the commands read the
dataset's sizes first (h5 shapes and the vocabulary's length, :func:`cs231n.coco_utils.coco_data_sizes`),
estimate the bytes a run will hold at its peak, and refuse what cannot work, with the estimate:

- :func:`physical_memory`: this machine's RAM (``os.sysconf``), or None where it cannot be read;
- :func:`captioning_train_bytes`, :func:`language_model_train_bytes`: the parts of a training run's
  memory (data, weights with their gradients and Adam state, one minibatch's activations), each
  estimated from the sizes;
- :func:`check_fits`: an :class:`~cs231n.cli.options.OptionError` when the estimate exceeds
  :data:`MEMORY_FRACTION` of the RAM, naming the largest part and the options that set it.

The estimates count the arrays the code keeps (float32, 4 bytes a value), not Python's own overhead,
so they err low: a refused run would certainly not have fit.
"""
import os

from cs231n.cli.options import OptionError

MEMORY_FRACTION = 0.9  # refuse a run whose estimate exceeds this fraction of the physical memory
DIVERGENCE_FACTOR = 10.0  # training commands stop when the loss stays above this many times its first value
_FLOAT = 4  # bytes of a float32 (and of an int32 word index)


def physical_memory():
    """Bytes of RAM of this machine, or None when the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n):
    """``1.5 GB``-style text for a byte count."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000.0


def captioning_params(model, D, V, W, H=None, cell_type="lstm", num_layers=2, dim_feedforward=2048):
    """Number of weights of a captioning model (CaptioningRNN or CaptioningTransformer) of these sizes."""
    if model == "transformer":
        layer = 4 * (W * W + W) * 2 + (W * dim_feedforward + dim_feedforward) + (dim_feedforward * W + W) + 6 * W
        return D * W + W + V * W + num_layers * layer + W * V + V
    g = {"rnn": 1, "lstm": 4, "gru": 3}.get(cell_type, 4)  # other cells (attention): as an LSTM
    biases = (2 if cell_type == "gru" else 1) * g * H  # the GRU has a second bias (torch.nn.GRU's b_hn)
    return D * H + H + V * W + W * g * H + H * g * H + biases + H * V + V


def captioning_train_bytes(sizes, model, batch_size, W, H=None, cell_type="lstm", num_heads=4, num_layers=2,
                           max_train=None, zero_features=False, dim_feedforward=2048):
    """Estimated peak bytes of training a captioning model, by part.

    Inputs:
    - sizes: :func:`cs231n.coco_utils.coco_data_sizes` of the dataset (with ``regions`` when the model
      reads region features).
    - model: 'rnn' or 'transformer'; W the word-vector (model) size, H the hidden size (rnn),
      cell_type, num_heads, num_layers as train's options.
    - batch_size, max_train, zero_features: as train's options.

    Returns a dict part -> bytes: 'data' (captions, the --max-train draw beside them while it is
    made, features of both splits, twice with zero_features), 'weights' (the weights, their gradients,
    the two Adam moments, the update being made and the best epoch's copy: 6 copies),
    'activations' (one minibatch forward and backward, the (N, T, V) scores three times).
    """
    (n_train, T), (n_val, _) = sizes["train_captions"], sizes["val_captions"]
    D, V = sizes["feature_dim"], sizes["vocab_size"]
    images = sizes["train_images"] + sizes["val_images"]
    captions = (n_train + n_val) * (T + 1) + (0 if max_train is None else max_train * (T + 1))
    features = images * D
    if "regions" in sizes:  # (R, D) region features, which the model reads instead
        R, D = sizes["regions"]
        features += images * R * D
    data = _FLOAT * (captions + features * (2 if zero_features else 1))
    weights = 6 * _FLOAT * captioning_params(model, D, V, W, H, cell_type, num_layers, dim_feedforward)
    steps = batch_size * (T - 1)
    if model == "transformer":
        per_step = num_layers * (16 * W + 2 * dim_feedforward + 3 * num_heads * (T - 1)) + 3 * W
    else:
        g = {"rnn": 1, "lstm": 4, "gru": 3}.get(cell_type, 4)  # other cells (attention): as an LSTM
        per_step = 3 * W + 3 * (g + 3) * H
    activations = _FLOAT * steps * (per_step + 3 * V)
    return {"data": data, "weights": weights, "activations": activations}


def language_model_train_bytes(cell_type, W, H, batch_size, seq_len, V=0):
    """Estimated peak bytes of training a LanguageModelRNN, by part ('weights', 'activations').

    ``V`` (the vocabulary, known only once the text is read) may be left at 0: the estimate is then a
    lower bound that still catches sizes no machine holds (``--hidden-dim 200000``).
    """
    params = captioning_params("rnn", 0, V, W, H, cell_type) - H  # no image projection, no its bias
    g = {"rnn": 1, "lstm": 4, "gru": 3}.get(cell_type, 4)
    activations = _FLOAT * batch_size * seq_len * (3 * W + 3 * (g + 3) * H + 3 * V)
    return {"weights": 6 * _FLOAT * params, "activations": activations}


_WHAT_SETS = {"data": "the dataset and --max-train", "weights": "--hidden-dim / --wordvec-dim / --num-layers "
              "and the vocabulary", "activations": "--batch-size (and --seq-len) and the model's sizes"}


def check_fits(parts, what, memory=None):
    """Raise OptionError when the parts' sum exceeds MEMORY_FRACTION of ``memory`` (default: this machine's).

    Inputs:
    - parts: dict part -> bytes (e.g. from :func:`captioning_train_bytes`).
    - what: the work, for the message (e.g. 'this training run').
    - memory: bytes available; None reads :func:`physical_memory` (no check when unknown).
    """
    memory = physical_memory() if memory is None else memory
    total = sum(parts.values())
    if memory is None or total <= MEMORY_FRACTION * memory:
        return
    largest = max(parts, key=parts.get)
    shown = ", ".join(f"{name} {format_bytes(b)}" for name, b in parts.items())
    raise OptionError(f"{what} would need about {format_bytes(total)} of memory ({shown}) but this machine has "
                      f"{format_bytes(memory)}; nothing was loaded or written. Lower what sets the {largest} "
                      f"({_WHAT_SETS.get(largest, largest)})")
