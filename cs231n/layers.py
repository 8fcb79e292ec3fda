"""The feed-forward affine layer, as a pure forward/backward pair (the recurrent layers build on it).

``affine_forward`` returns ``(out, cache)``; ``affine_backward(dout, cache)`` returns the gradients of
its array arguments in order. No state, no I/O; the dtype of the inputs is kept, and so is their kind:
numpy arrays in, numpy out; CuPy arrays in, CuPy out (``xp`` below is the array module of the inputs).
"""
import math

from cs231n._validation import expect_shape, float_array, same_device
from cs231n.backend import get_array_module, is_device_array


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
