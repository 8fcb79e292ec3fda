"""The feed-forward affine layer, as a pure forward/backward pair (the recurrent layers build on it).

``affine_forward`` returns ``(out, cache)``; ``affine_backward(dout, cache)`` returns the gradients of
its array arguments in order. No state, no I/O; the dtype of the inputs is kept.
"""
import numpy as np

from cs231n._validation import expect_shape, float_array


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
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have a leading batch dimension, got shape {x.shape}")
    x = float_array(fn, "x", x, x.ndim)
    w = float_array(fn, "w", w, 2)
    b = float_array(fn, "b", b, 1)
    N = x.shape[0]
    D = int(np.prod(x.shape[1:]))
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
    dout = np.asarray(dout)
    if dout.shape != (N, w.shape[1]):
        raise ValueError(f"affine_backward: dout should have shape (N, M) = {(N, w.shape[1])}, got {dout.shape}")
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
