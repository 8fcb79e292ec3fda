"""Tests of cs231n.gradient_check on functions whose gradients are known in closed form.

For f(x) = sum(x**3) the central difference is exact up to rounding: ((x+h)^3 - (x-h)^3) / 2h = 3x^2 + h^2,
so with a large h the result shows both that the difference is central (a one-sided one would add 3xh)
and that the step ``h`` is the one passed in.
"""
import random
import re

import numpy as np
import pytest

from cs231n.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)


def cube_sum(x):
    return np.sum(x ** 3)


# ----------------------------------------------------------------------------------------------------
# eval_numerical_gradient
# ----------------------------------------------------------------------------------------------------
def test_eval_numerical_gradient_cube_default_step():
    rng = np.random.RandomState(0)
    x = rng.randn(3, 4)
    x_copy = x.copy()
    grad = eval_numerical_gradient(cube_sum, x, verbose=False)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, 3 * x_copy ** 2 + 1e-10, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(x, x_copy)  # restored exactly


@pytest.mark.parametrize("h", [1e-2, 1e-3])
def test_eval_numerical_gradient_is_central_with_given_step(h):
    rng = np.random.RandomState(1)
    x = rng.randn(5)
    grad = eval_numerical_gradient(cube_sum, x, verbose=False, h=h)
    np.testing.assert_allclose(grad, 3 * x ** 2 + h ** 2, rtol=1e-9, atol=1e-9)
    # A forward difference (f(x+h) - f(x)) / h would be 3x^2 + 3xh + h^2: clearly different here.
    assert not np.allclose(grad, 3 * x ** 2 + 3 * x * h + h ** 2, rtol=1e-9, atol=1e-9)


def test_eval_numerical_gradient_keeps_index_layout():
    """Each entry's gradient lands at its own index for a 3-D array (no flattening mix-ups)."""
    rng = np.random.RandomState(2)
    c = rng.randn(2, 3, 4)
    x = rng.randn(2, 3, 4)
    grad = eval_numerical_gradient(lambda x_: float(np.sum(c * x_)), x, verbose=False)
    np.testing.assert_allclose(grad, c, rtol=1e-8, atol=1e-10)


def test_eval_numerical_gradient_verbose_prints(capsys):
    x = np.array([1.0, 2.0])
    eval_numerical_gradient(cube_sum, x, verbose=False)
    assert capsys.readouterr().out == ""
    grad = eval_numerical_gradient(cube_sum, x)  # verbose=True is the default
    assert capsys.readouterr().out.strip() != ""
    np.testing.assert_allclose(grad, [3.0, 12.0], rtol=1e-8)


def test_eval_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    x_copy = x.copy()
    calls = []

    def flaky(x_):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return np.sum(x_)

    with pytest.raises(RuntimeError, match="boom"):
        eval_numerical_gradient(flaky, x, verbose=False)
    np.testing.assert_array_equal(x, x_copy)


# ----------------------------------------------------------------------------------------------------
# eval_numerical_gradient_array
# ----------------------------------------------------------------------------------------------------
def test_eval_numerical_gradient_array_elementwise_and_matrix():
    rng = np.random.RandomState(3)
    x = rng.randn(3, 4)
    x_copy = x.copy()
    A = rng.randn(3, 4)
    df = rng.randn(3, 4)
    grad = eval_numerical_gradient_array(lambda x_: A * x_ ** 2, x, df)
    np.testing.assert_allclose(grad, 2 * A * x * df, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(x, x_copy)

    M = rng.randn(4, 5)
    df2 = rng.randn(3, 5)
    grad = eval_numerical_gradient_array(lambda x_: x_ @ M, x, df2)
    np.testing.assert_allclose(grad, df2 @ M.T, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(x, x_copy)


def test_eval_numerical_gradient_array_central_with_given_step():
    rng = np.random.RandomState(4)
    x = rng.randn(6)
    df = rng.randn(6)
    h = 1e-2
    grad = eval_numerical_gradient_array(lambda x_: x_ ** 3, x, df, h=h)
    np.testing.assert_allclose(grad, (3 * x ** 2 + h ** 2) * df, rtol=1e-9, atol=1e-9)


def test_eval_numerical_gradient_array_when_f_reuses_its_output_buffer():
    """A function that writes into the same buffer every call (as in-place layers do) still works:
    the value at x + h must be saved before f is called at x - h."""
    rng = np.random.RandomState(5)
    x = rng.randn(4)
    df = rng.randn(4)
    buf = np.empty(4)

    def f(x_):
        np.multiply(x_, x_, out=buf)
        return buf

    grad = eval_numerical_gradient_array(f, x, df)
    np.testing.assert_allclose(grad, 2 * x * df, rtol=1e-7, atol=1e-9)


def test_eval_numerical_gradient_array_restores_x_when_f_raises():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    x_copy = x.copy()

    def bad(x_):
        if x_[0, 1] != 2.0:
            raise ValueError("perturbed")
        return x_ * 2

    with pytest.raises(ValueError, match="perturbed"):
        eval_numerical_gradient_array(bad, x, np.ones((2, 2)))
    np.testing.assert_array_equal(x, x_copy)


# ----------------------------------------------------------------------------------------------------
# grad_check_sparse
# ----------------------------------------------------------------------------------------------------
def printed_errors(text):
    """The relative errors printed by grad_check_sparse: the last number on each non-empty line."""
    number = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
    errors = []
    for line in text.strip().splitlines():
        found = re.findall(number, line)
        assert found, f"no number on line {line!r}"
        errors.append(float(found[-1]))
    return errors


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)


def test_grad_check_sparse_correct_gradient(capsys):
    seed_everything(0)
    rng = np.random.RandomState(6)
    x = rng.randn(5, 6)
    x_copy = x.copy()
    grad_check_sparse(cube_sum, x, 3 * x ** 2, num_checks=7)
    errors = printed_errors(capsys.readouterr().out)
    assert len(errors) == 7
    assert max(errors) < 1e-7
    np.testing.assert_array_equal(x, x_copy)


def test_grad_check_sparse_wrong_gradient_is_reported(capsys):
    seed_everything(1)
    rng = np.random.RandomState(7)
    x = rng.randn(4, 3) + 3.0  # keep 3x^2 away from 0
    grad_check_sparse(cube_sum, x, 2 * x ** 2, num_checks=5)  # wrong by a factor 2/3
    errors = printed_errors(capsys.readouterr().out)
    assert len(errors) == 5
    # |3 - 2| / (3 + 2) = 0.2 for every element
    np.testing.assert_allclose(errors, 0.2, rtol=1e-4)


def test_grad_check_sparse_default_num_checks_and_step(capsys):
    seed_everything(2)
    x = np.linspace(1.0, 2.0, 8)
    grad_check_sparse(cube_sum, x, 3 * x ** 2, h=1e-2)
    errors = printed_errors(capsys.readouterr().out)
    assert len(errors) == 10  # default num_checks
    # Central differences with h = 1e-2 are off by exactly h^2 = 1e-4, so each printed error must be
    # 1e-4 / (6 x^2 + 1e-4) for one of the entries x (between 4.2e-6 and 1.7e-5 here).
    possible = 1e-4 / (6 * x ** 2 + 1e-4)
    for err in errors:
        assert np.min(np.abs(err - possible) / possible) < 1e-3, err


# ----------------------------------------------------------------------------------------------------
# rel_error
# ----------------------------------------------------------------------------------------------------
def test_rel_error_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    # The maximum over elements, each divided by its own |x| + |y|.
    assert rel_error(np.array([1.0, 10.0]), np.array([1.1, 10.0])) == pytest.approx(0.1 / 2.1)
    # Near zero the denominator is floored at 1e-8.
    assert rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    # Works on scalars and is symmetric.
    assert rel_error(2.0, 1.0) == pytest.approx(1.0 / 3.0)
    assert rel_error(1.0, 2.0) == rel_error(2.0, 1.0)


# ----------------------------------------------------------------------------------------------------
# Arrays on a device
# ----------------------------------------------------------------------------------------------------
def test_numerical_gradients_of_device_arrays(device_backend):
    """x and f's values on the device: x is perturbed there, the gradient comes back as numpy."""
    rng = np.random.RandomState(7)
    x, df = rng.randn(3, 2), rng.randn(3, 2)
    x_dev, df_dev = device_backend.put([x, df])
    xp = device_backend.xp
    grad = eval_numerical_gradient_array(lambda a: xp.sin(a) * 2.0, x_dev, df_dev)
    assert type(grad) is np.ndarray
    np.testing.assert_allclose(grad, 2.0 * np.cos(x) * df, rtol=1e-7, atol=1e-9)
    grad = eval_numerical_gradient(lambda a: xp.sum(a ** 3), x_dev, verbose=False)
    np.testing.assert_allclose(grad, 3 * x ** 2 + 1e-10, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(device_backend.get(x_dev), x)  # restored exactly
    assert rel_error(x_dev, x) == 0.0
