"""Tests of the update rules in cs231n.optim against step-by-step formulas written here.

sgd:          w -= lr dw
sgd_momentum: v = mu v - lr dw;  w += v
rmsprop:      cache = dr cache + (1 - dr) dw^2;  w -= lr dw / (sqrt(cache) + eps)
adam:         t += 1;  m = b1 m + (1 - b1) dw;  v = b2 v + (1 - b2) dw^2;
              w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
Defaults: lr 1e-2 (1e-3 for adam), mu 0.9, dr 0.99, b1 0.9, b2 0.999, eps 1e-8, t starting at 0.
"""
import numpy as np
import pytest

from cs231n.optim import adam, rmsprop, sgd, sgd_momentum

N, D = 4, 5


def notebook_arrays():
    """The arrays the cs231n notebooks use for these checks."""
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    state = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    return w, dw, state


def gradient_stream(steps, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(N, D) for _ in range(steps)]


def run_and_check_untouched(rule, w, dw, config):
    w_copy, dw_copy = w.copy(), dw.copy()
    next_w, config = rule(w, dw, config)
    np.testing.assert_array_equal(w, w_copy)
    np.testing.assert_array_equal(dw, dw_copy)
    assert next_w.shape == w.shape
    return next_w, config


# ----------------------------------------------------------------------------------------------------
# sgd
# ----------------------------------------------------------------------------------------------------
def test_sgd_default_and_given_learning_rate():
    w, dw, _ = notebook_arrays()
    next_w, config = run_and_check_untouched(sgd, w, dw, None)
    np.testing.assert_allclose(next_w, w - 1e-2 * dw, rtol=1e-15)
    assert config["learning_rate"] == 1e-2
    next_w, config = run_and_check_untouched(sgd, w, dw, {"learning_rate": 0.5})
    np.testing.assert_allclose(next_w, w - 0.5 * dw, rtol=1e-15)
    assert config["learning_rate"] == 0.5


# ----------------------------------------------------------------------------------------------------
# sgd_momentum
# ----------------------------------------------------------------------------------------------------
def test_sgd_momentum_notebook_case():
    w, dw, v = notebook_arrays()
    config = {"learning_rate": 1e-3, "velocity": v.copy()}
    next_w, config = run_and_check_untouched(sgd_momentum, w, dw, config)
    want_v = 0.9 * v - 1e-3 * dw
    np.testing.assert_allclose(config["velocity"], want_v, rtol=1e-12)
    np.testing.assert_allclose(next_w, w + want_v, rtol=1e-12)


def test_sgd_momentum_defaults_and_state_over_steps():
    w, _, _ = notebook_arrays()
    config = None
    ref_w, ref_v = w.copy(), np.zeros_like(w)
    for dw in gradient_stream(4):
        w, config = run_and_check_untouched(sgd_momentum, w, dw, config)
        ref_v = 0.9 * ref_v - 1e-2 * dw
        ref_w = ref_w + ref_v
        np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(config["velocity"], ref_v, rtol=1e-12, atol=1e-15)
    assert config["learning_rate"] == 1e-2
    assert config["momentum"] == 0.9


def test_sgd_momentum_custom_momentum():
    w, dw, v = notebook_arrays()
    next_w, config = sgd_momentum(w, dw, {"learning_rate": 0.1, "momentum": 0.5, "velocity": v.copy()})
    np.testing.assert_allclose(next_w, w + 0.5 * v - 0.1 * dw, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------
# rmsprop
# ----------------------------------------------------------------------------------------------------
def test_rmsprop_notebook_case():
    w, dw, cache = notebook_arrays()
    config = {"learning_rate": 1e-2, "cache": cache.copy()}
    next_w, config = run_and_check_untouched(rmsprop, w, dw, config)
    want_cache = 0.99 * cache + 0.01 * dw ** 2
    np.testing.assert_allclose(config["cache"], want_cache, rtol=1e-12)
    np.testing.assert_allclose(next_w, w - 1e-2 * dw / (np.sqrt(want_cache) + 1e-8), rtol=1e-12)


def test_rmsprop_defaults_and_state_over_steps():
    w, _, _ = notebook_arrays()
    config = None
    ref_w, ref_cache = w.copy(), np.zeros_like(w)
    for dw in gradient_stream(4, seed=1):
        w, config = run_and_check_untouched(rmsprop, w, dw, config)
        ref_cache = 0.99 * ref_cache + 0.01 * dw ** 2
        ref_w = ref_w - 1e-2 * dw / (np.sqrt(ref_cache) + 1e-8)
        np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(config["cache"], ref_cache, rtol=1e-12, atol=1e-15)
    assert config["learning_rate"] == 1e-2
    assert config["decay_rate"] == 0.99
    assert config["epsilon"] == 1e-8


# ----------------------------------------------------------------------------------------------------
# adam
# ----------------------------------------------------------------------------------------------------
def test_adam_first_step_moves_each_weight_by_the_learning_rate():
    # With t = 1 the bias corrections undo the (1 - beta) factors: m_hat = dw, v_hat = dw^2, so the step
    # is lr * dw / (|dw| + eps), i.e. lr in the direction of -sign(dw).
    w, dw, _ = notebook_arrays()
    dw = dw + 0.01  # no exact zeros
    next_w, config = run_and_check_untouched(adam, w, dw, None)
    np.testing.assert_allclose(next_w, w - 1e-3 * dw / (np.abs(dw) + 1e-8), rtol=1e-12)
    assert config["t"] == 1
    np.testing.assert_allclose(config["m"], 0.1 * dw, rtol=1e-12)
    np.testing.assert_allclose(config["v"], 0.001 * dw ** 2, rtol=1e-12)
    assert config["learning_rate"] == 1e-3
    assert config["beta1"] == 0.9 and config["beta2"] == 0.999 and config["epsilon"] == 1e-8


def test_adam_notebook_case_increments_t_before_use():
    w, dw, _ = notebook_arrays()
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-2, "m": m.copy(), "v": v.copy(), "t": 5}
    next_w, config = run_and_check_untouched(adam, w, dw, config)
    t = 6
    want_m = 0.9 * m + 0.1 * dw
    want_v = 0.999 * v + 0.001 * dw ** 2
    m_hat = want_m / (1 - 0.9 ** t)
    v_hat = want_v / (1 - 0.999 ** t)
    np.testing.assert_allclose(config["m"], want_m, rtol=1e-12)
    np.testing.assert_allclose(config["v"], want_v, rtol=1e-12)
    assert config["t"] == t
    np.testing.assert_allclose(next_w, w - 1e-2 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_adam_state_over_steps():
    w, _, _ = notebook_arrays()
    config = None
    ref_w, ref_m, ref_v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t, dw in enumerate(gradient_stream(5, seed=2), start=1):
        w, config = run_and_check_untouched(adam, w, dw, config)
        ref_m = 0.9 * ref_m + 0.1 * dw
        ref_v = 0.999 * ref_v + 0.001 * dw ** 2
        ref_w = ref_w - 1e-3 * (ref_m / (1 - 0.9 ** t)) / (np.sqrt(ref_v / (1 - 0.999 ** t)) + 1e-8)
        assert config["t"] == t
        np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(config["m"], ref_m, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(config["v"], ref_v, rtol=1e-12, atol=1e-15)


def test_adam_custom_hyperparameters():
    w, dw, _ = notebook_arrays()
    config = {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.75, "epsilon": 1e-3}
    next_w, config = adam(w, dw, config)
    m = 0.5 * dw
    v = 0.25 * dw ** 2
    want = w - 0.05 * (m / 0.5) / (np.sqrt(v / 0.25) + 1e-3)
    np.testing.assert_allclose(next_w, want, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------
# Shared behaviour
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [sgd, sgd_momentum, rmsprop, adam])
def test_no_state_shared_between_calls_without_config(rule):
    """Two fresh calls (config=None) give the same result: no state leaks through a default argument."""
    w, dw, _ = notebook_arrays()
    first, config1 = rule(w, dw)
    second, config2 = rule(w, dw, None)
    np.testing.assert_array_equal(first, second)
    assert config1 is not config2
    if rule is adam:
        assert config1["t"] == config2["t"] == 1


@pytest.mark.parametrize("rule", [sgd, sgd_momentum, rmsprop, adam])
def test_works_on_any_shape(rule):
    rng = np.random.RandomState(3)
    for shape in [(7,), (2, 3, 4), (1, 1)]:
        w, dw = rng.randn(*shape), rng.randn(*shape)
        next_w, config = rule(w, dw, None)
        assert next_w.shape == shape
        assert np.all(np.isfinite(next_w))
        next_w, _ = rule(next_w, dw, config)  # and the state fits the next call
        assert next_w.shape == shape


@pytest.mark.parametrize("rule", [sgd, sgd_momentum, rmsprop, adam])
def test_zero_gradient_with_fresh_state_leaves_weights(rule):
    w = np.linspace(-1.0, 1.0, 6)
    next_w, _ = rule(w, np.zeros_like(w), None)
    np.testing.assert_array_equal(next_w, w)


@pytest.mark.parametrize("rule, names", [
    (sgd, ("w", "dw")), (sgd_momentum, ("w", "dw")),  # classic: sgd(w, dw), sgd_momentum(w, dw)
    (rmsprop, ("x", "dx")), (adam, ("x", "dx")),      # classic: rmsprop(x, dx), adam(x, dx)
    (rmsprop, ("w", "dw")), (adam, ("w", "dw")),      # later editions' names
])
def test_classic_keyword_names(rule, names):
    w, dw, _ = notebook_arrays()
    expected, expected_config = rule(w, dw, {"learning_rate": 1e-2})
    got, config = rule(**{names[0]: w, names[1]: dw, "config": {"learning_rate": 1e-2}})
    np.testing.assert_array_equal(got, expected)
    assert config.keys() == expected_config.keys()


@pytest.mark.parametrize("rule", [rmsprop, adam])
def test_both_names_of_one_argument_is_an_error(rule):
    w, dw, _ = notebook_arrays()
    with pytest.raises(TypeError, match="'x' and 'w'"):
        rule(x=w, w=w, dw=dw)
