"""Numerical gradients by central differences, for checking analytic backward passes.

Every function perturbs its array argument in place, one element at a time, and restores it before
returning (also when ``f`` raises), so the caller's array is unchanged afterwards. Use float64 arrays:
in float32 the differences are dominated by rounding.

``x`` and the values of ``f`` may live on a GPU (CuPy arrays): x is perturbed where it is, and the
differences and the returned gradients are computed on the host (numpy), one element at a time.
"""
from random import randrange

import numpy as np

from cs231n.backend import to_numpy


def _at_both_sides(f, x, ix, h):
    """``(f(x + h e_ix), f(x - h e_ix))``, perturbing x in place and restoring it even if f raises.

    Array results are copied, so an f that reuses its output buffer still gives two distinct values.
    """
    # A copy: on CuPy, x[ix] is a 0-d device array that views the element, not a value read out of it.
    # Kept as that view, ``old`` would become old + h with the first write, so f(x - h) would be
    # evaluated at the unperturbed x and every gradient would come out half the true one.
    old = x[ix].copy()
    try:
        x[ix] = old + h
        plus = np.array(to_numpy(f(x)), copy=True)
        x[ix] = old - h
        minus = np.array(to_numpy(f(x)), copy=True)
    finally:
        x[ix] = old
    return plus, minus


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x``: ``(f(x + h) - f(x - h)) / 2h`` per element.

    Inputs:
    - f: function of one argument (the array x) returning a scalar.
    - x: array at which to evaluate the gradient; modified during the call and restored.
    - verbose: print each index and its gradient (as the classic code does).
    - h: step size.

    Returns:
    - grad: numpy array of the same shape as x.
    """
    grad = np.zeros(x.shape, dtype=np.float64 if x.dtype.kind != "f" else x.dtype)
    for ix in np.ndindex(*x.shape):
        fxph, fxmh = _at_both_sides(f, x, ix, h)
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of ``sum(f(x) * df)``: the vector-Jacobian product of an array function.

    Inputs:
    - f: function of one argument (the array x) returning an array.
    - x: input array; modified during the call and restored.
    - df: upstream gradient, of the shape of f(x).
    - h: step size.

    Returns:
    - grad: numpy array of the same shape as x.
    """
    grad = np.zeros(x.shape, dtype=np.float64 if x.dtype.kind != "f" else x.dtype)
    df = to_numpy(df)
    for ix in np.ndindex(*x.shape):
        pos, neg = _at_both_sides(f, x, ix, h)
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5):
    """Compare the analytic gradient with numerical differences at ``num_checks`` random elements.

    The elements are drawn with Python's ``random`` module (seed it with ``random.seed`` to repeat a check).
    Prints one line per element and returns the list of relative errors.

    Inputs:
    - f: function of one argument (the array x) returning a scalar.
    - x: array; modified during the call and restored.
    - analytic_grad: gradient to check, of the shape of x.
    - num_checks: how many elements to check.
    - h: step size.
    """
    errors = []
    for _ in range(num_checks):
        ix = tuple(randrange(m) for m in x.shape)
        fxph, fxmh = _at_both_sides(f, x, ix, h)
        grad_numerical = float((fxph - fxmh) / (2 * h))
        grad_analytic = float(analytic_grad[ix])
        err = abs(grad_numerical - grad_analytic) / max(1e-8, abs(grad_numerical) + abs(grad_analytic))
        errors.append(err)
        print(f"numerical: {grad_numerical:f} analytic: {grad_analytic:f}, relative error: {err:e}")
    return errors


def rel_error(x, y):
    """Maximum relative error ``max |x - y| / max(1e-8, |x| + |y|)``, elementwise then the maximum."""
    x = np.asarray(to_numpy(x), dtype=np.float64)
    y = np.asarray(to_numpy(y), dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
