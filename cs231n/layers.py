"""The feed-forward affine layer, as a pure forward/backward pair (the recurrent layers build on it),
and the losses and row helpers that the captioning models share.

``affine_forward`` returns ``(out, cache)``; ``affine_backward(dout, cache)`` returns the gradients of
its array arguments in order. No state, no I/O; the dtype of the inputs is kept, and so is their kind:
numpy arrays in, numpy out; CuPy arrays in, CuPy out (``xp`` below is the array module of the inputs).

A captioning loss counts only the positions whose target is not ``<NULL>``; the rest of a padded batch
contributes nothing to the loss or to any gradient. ``mask_rows`` lists the positions that count,
``take_rows`` gathers them, ``softmax_loss_rows`` is the loss of gathered score rows and
``put_rows`` scatters their gradient back (zeros elsewhere), so a model can skip the output layer, and
whatever else is computed per position, at the padding.
"""
import math

from cs231n._validation import expect_shape, float_array, same_device
from cs231n.backend import get_array_module, is_device_array
from cs231n.workspace import empty as _empty


def affine_forward(x, w, b):
    """Affine (fully connected) layer: ``out = x.reshape(N, D) w + b``.

    The input x has shape (N, d_1, ..., d_k): a minibatch of N examples, each of D = d_1 * ... * d_k
    numbers, which are flattened into a vector before the product with the weights.

    Inputs:
    - x: input data, of shape (N, d_1, ..., d_k), floating.
    - w: weights, of shape (D, M).
    - b: biases, of shape (M,).

    Returns a tuple of:
    - out: output, of shape (N, M).
    - cache: (x, w) for the backward pass.
    """
    fn = "affine_forward"
    x = get_array_module(x).asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have a leading batch dimension, got shape {x.shape}")
    x = float_array(fn, "x", x, x.ndim)
    w = float_array(fn, "w", w, 2)
    b = float_array(fn, "b", b, 1)
    same_device(fn, (("x", x), ("w", w), ("b", b)))
    N = x.shape[0]
    D = math.prod(x.shape[1:])
    expect_shape(fn, "w", w, (("D", D), ("M", w.shape[1])))
    expect_shape(fn, "b", b, (("M", w.shape[1]),))
    out = x.reshape(N, D) @ w + b  # (N, M)
    return out, (x, w)


def affine_backward(dout, cache):
    """Backward pass for the affine layer.

    Inputs:
    - dout: upstream gradient, of shape (N, M).
    - cache: the cache from affine_forward.

    Returns a tuple of:
    - dx: gradient of x, of shape (N, d_1, ..., d_k).
    - dw: gradient of w, of shape (D, M).
    - db: gradient of b, of shape (M,).
    """
    x, w = cache
    N = x.shape[0]
    dout = get_array_module(dout).asarray(dout)
    if dout.shape != (N, w.shape[1]):
        raise ValueError(f"affine_backward: dout should have shape (N, M) = {(N, w.shape[1])}, got {dout.shape}")
    same_device("affine_backward", (("dout", dout), ("the forward's x", x)))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def sigmoid_cross_entropy_loss(z, y, weights=None):
    """Binary cross-entropy of sigmoid probabilities, computed from the scores (logits) for stability.

    With ``p = sigmoid(z)``, example i costs ``-(y_i log p_i + (1 - y_i) log(1 - p_i))``, written as
    ``logaddexp(0, z_i) - y_i z_i`` so that no probability is rounded to 0 or 1 before its log. The loss
    is the mean over the N examples, each multiplied by its weight when ``weights`` is given (weights
    that average 1 keep the scale of the unweighted loss).

    Inputs:
    - z: scores (logits), of shape (N,).
    - y: labels in {0, 1}, of shape (N,).
    - weights: optional non-negative per-example weights, of shape (N,).

    Returns a tuple of:
    - loss: ``sum(weights * cost) / N``, a float (a 0-d array on the device for device inputs:
      ``float(loss)`` reads it, one sync).
    - dz: gradient of the loss with respect to z, of shape (N,), ``weights * (p - y) / N``.
    """
    fn = "sigmoid_cross_entropy_loss"
    z = float_array(fn, "z", z, 1)
    xp = get_array_module(z)
    y = get_array_module(y).asarray(y)
    same_device(fn, (("z", z), ("y", y)))
    expect_shape(fn, "y", y, (("N", z.shape[0]),))
    if z.shape[0] == 0:
        raise ValueError(f"{fn}: z is empty; the loss is a mean over at least one example")
    N = z.shape[0]
    yf = y.astype(z.dtype)                                   # (N,)
    cost = xp.logaddexp(0, z) - yf * z                       # (N,)
    p = 0.5 * (1.0 + xp.tanh(0.5 * z))                       # sigmoid(z), no overflow for any z
    dz = (p - yf) / N                                        # (N,)
    if weights is not None:
        w = float_array(fn, "weights", weights, 1)
        same_device(fn, (("z", z), ("weights", w)))
        expect_shape(fn, "weights", w, (("N", N),))
        cost = cost * w
        dz = dz * w
    loss = xp.sum(cost) / N
    # numpy: a float, as always; a GPU: a 0-d device array, so that a training step needs no sync here
    return (loss if is_device_array(loss) else float(loss)), dz.astype(z.dtype, copy=False)


def softmax_loss_rows(x, y, n, mask=None, workspace=None):
    """Softmax cross-entropy of R rows of scores, summed over the rows that count and divided by n.

    Row r costs ``-log softmax(x[r])[y[r]]``. With rows gathered from a batch of n captions (the
    positions whose target is not ``<NULL>``) every row counts and the result is the batch's loss;
    ``temporal_softmax_loss`` passes every position with a 0/1 mask instead (a masked row adds nothing
    to the loss or its gradient, but a NaN or inf score in it still makes the loss NaN).

    Inputs:
    - x: scores, of shape (R, V), floating.
    - y: integer targets in [0, V), of shape (R,) (not checked here: the callers check them).
    - n: the divisor, the number of captions in the batch.
    - mask: None (every row counts), or 0s and 1s of shape (R,) and x's dtype.
    - workspace: None (a fresh dx), or a Workspace whose buffer ``loss_dx`` holds dx until its next use.

    Returns a tuple of:
    - loss: a scalar of x's dtype.
    - dx: gradient of the loss with respect to x, of shape (R, V): ``mask / n * (softmax(x) - onehot(y))``.
    """
    xp = get_array_module(x)
    R, V = x.shape
    rows = xp.arange(R)
    # One (R, V) buffer: shifted scores, then exponentials, then the gradient, scaled in one pass:
    # exp * (weight / sum exp), and the weight taken off at each target.
    shift = x.max(axis=1, keepdims=True)                           # (R, 1)
    probs = _empty(xp, workspace, "loss_dx", (R, V), x.dtype)
    xp.subtract(x, shift, out=probs)
    xp.exp(probs, out=probs)
    norm = probs.sum(axis=1)                                       # (R,) sum exp of shifted scores
    log_p_y = x[rows, y] - shift[:, 0] - xp.log(norm)              # (R,)
    if mask is None:
        loss = -xp.sum(log_p_y) / n
        weight = 1.0 / n                                           # each row's share of the loss
    else:
        loss = -xp.sum(mask * log_p_y) / n
        weight = mask / n
    probs *= (weight / norm)[:, None]
    probs[rows, y] -= weight
    return loss, probs


def mask_rows(mask):
    """The flat indices (K,) of the True entries of a (N, T) mask: the rows of (N * T, .) that count."""
    xp = get_array_module(mask)
    return xp.flatnonzero(mask)


def take_rows(x, rows, workspace=None, name="rows"):
    """The rows ``rows`` (K,) of x (..., D) flattened to (L, D): an array of shape (K, D).

    With a workspace it is written into the buffer ``name`` (reused whatever K is, see
    :class:`cs231n.workspace.Workspace`).
    """
    xp = get_array_module(x)
    D = x.shape[-1]
    out = _empty(xp, workspace, name, (rows.shape[0], D), x.dtype)
    xp.take(x.reshape(-1, D), rows, axis=0, out=out)
    return out


def put_rows(d, rows, shape, workspace=None, name="put_rows"):
    """The gradient of ``take_rows``: an array of ``shape`` (..., D) that is ``d`` (K, D) at the rows
    ``rows`` of its (L, D) flattening and 0 elsewhere (a workspace buffer ``name`` with a workspace)."""
    xp = get_array_module(d)
    out = _empty(xp, workspace, name, shape, d.dtype)
    out[...] = 0
    out.reshape(-1, shape[-1])[rows] = d
    return out
