"""Tests of the many-to-one and many-to-many recurrent regressors and their sequence generation.

Forward values are compared with plain-numpy equations written here, gradients with central
differences in float64, generation with the whole-sequence ``predict`` re-run on the growing sequence,
and learning with noisy sine waves of random phase against the mean and last-value baselines.
"""
import json

import numpy as np
import pytest

from cs231n import optim
from cs231n.classifiers.sequence_regressor import CELL_TYPES, MODES, SequenceRegressor


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference_hidden(params, cell_type, x, h0):
    """Hidden states (N, T, H) by the textbook equations, one step at a time."""
    N, T, _ = x.shape
    H = params["Wh"].shape[0]
    h, c = h0.astype(np.float64), np.zeros((N, H))
    hs = []
    for t in range(T):
        if cell_type == "rnn":
            h = np.tanh(x[:, t] @ params["Wx"] + h @ params["Wh"] + params["b"])
        elif cell_type == "lstm":
            a = x[:, t] @ params["Wx"] + h @ params["Wh"] + params["b"]
            i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H])
            c = f * c + i * np.tanh(a[:, 3 * H:])
            h = o * np.tanh(c)
        else:
            ax = x[:, t] @ params["Wx"] + params["b"]
            ah = h @ params["Wh"] + params["bh"]
            r, z = _sigmoid(ax[:, :H] + ah[:, :H]), _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
            n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
            h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs, axis=1)


def small_model(cell_type, mode, D=3, H=4, M=2, seed=0):
    model = SequenceRegressor(D, H, M, cell_type, mode, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 50)
    for name, w in model.params.items():  # non-zero biases so that their gradients are exercised
        model.params[name] = w + 0.3 * rng.standard_normal(w.shape)
    return model


def small_data(mode, N=3, T=5, D=3, M=2, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D))
    y = rng.standard_normal((N, T, M) if mode == "many_to_many" else (N, M))
    return x, y


# --------------------------------------------------------------------------------------------------
# Shapes, values, configuration
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type, g", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_parameter_shapes(cell_type, g):
    model = SequenceRegressor(3, 5, 2, cell_type, seed=0)
    expected = {"Wx": (3, g * 5), "Wh": (5, g * 5), "b": (g * 5,), "W_out": (5, 2), "b_out": (2,)}
    if cell_type == "gru":
        expected["bh"] = (g * 5,)
    assert {k: v.shape for k, v in model.params.items()} == expected
    assert all(v.dtype == np.float32 for v in model.params.values())


@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("mode", MODES)
def test_predict_and_loss_match_the_reference_equations(cell_type, mode):
    model = small_model(cell_type, mode)
    x, y = small_data(mode)
    h0 = np.random.default_rng(7).standard_normal((3, 4))
    for start in (None, h0):
        hs = reference_hidden(model.params, cell_type, x, np.zeros((3, 4)) if start is None else start)
        out = hs @ model.params["W_out"] + model.params["b_out"]  # (N, T, M)
        expected = out if mode == "many_to_many" else out[:, -1]
        pred = model.predict(x, h0=start)
        np.testing.assert_allclose(pred, expected, rtol=1e-10, atol=1e-12)
        loss, _ = model.loss(x, y, h0=start)
        np.testing.assert_allclose(loss, np.mean((expected - y) ** 2), rtol=1e-10)


def test_predicting_the_mean_scores_the_variance():
    model = SequenceRegressor(1, 3, 1, "rnn", "many_to_one", dtype=np.float64, seed=0)
    model.params["W_out"][:] = 0
    y = np.random.default_rng(0).standard_normal((50, 1)) * 2 + 1
    model.params["b_out"][:] = y.mean()
    loss, _ = model.loss(np.zeros((50, 4, 1)), y)
    np.testing.assert_allclose(loss, y.var(), rtol=1e-12)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_central_differences(cell_type, mode, num_grad, relerr):
    model = small_model(cell_type, mode)
    x, y = small_data(mode)
    h0 = np.random.default_rng(3).standard_normal((3, 4))
    _, grads = model.loss(x, y, h0=h0)
    assert set(grads) == set(model.params)
    for name, w in model.params.items():
        numeric = num_grad(lambda w_, name=name: model.loss(x, y, h0=h0)[0], w, 1.0)
        assert relerr(grads[name], numeric) < 5e-6, (name, relerr(grads[name], numeric))


def test_float32_is_kept():
    model = SequenceRegressor(3, 4, 2, "lstm", seed=0)
    x, y = small_data("many_to_many")
    loss, grads = model.loss(x.astype(np.float32), y.astype(np.float32))
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.loss(np.zeros((2, 5, 3)), np.zeros((2, 2))), ValueError,
     r"many_to_many mode y should have shape \(N, T, M\) = \(2, 5, 2\)"),
    (lambda m: m.predict(np.zeros((2, 5, 4))), ValueError, "D = 3"),
    (lambda m: m.predict(np.zeros((2, 5))), ValueError, "3 dimensions"),
    (lambda m: m.predict(np.zeros((2, 5, 3)), h0=np.zeros((3, 4))), ValueError, r"h0 should have shape"),
    (lambda m: m.predict(np.zeros((2, 0, 3))), ValueError, "at least one timestep"),
])
def test_inputs_are_validated(call, error, match):
    with pytest.raises(error, match=match):
        call(SequenceRegressor(3, 4, 2, "rnn", seed=0))


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "one_to_many"}, "mode must be one of"),
    ({"cell_type": "tcn"}, "cell_type must be one of"),
    ({"hidden_dim": 0}, "hidden_dim must be an int >= 1"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    args = {"input_dim": 1, "hidden_dim": 4, "output_dim": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SequenceRegressor(**args)


def test_config_and_save_load_round_trip(tmp_path):
    model = SequenceRegressor(2, 6, 2, "gru", "many_to_one", seed=4)
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    loaded = SequenceRegressor.load(model.save(tmp_path / "reg.npz"))
    assert loaded.get_config() == config
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("mode", MODES)
def test_generate_sequence_feeds_predictions_back(cell_type, mode):
    model = small_model(cell_type, mode, D=2, M=2)
    seeds = np.random.default_rng(0).standard_normal((3, 4, 2))
    h0 = np.random.default_rng(1).standard_normal((3, 4))
    for start in (None, h0):
        generated = model.generate_sequence(seeds, 5, h0=start)
        assert generated.shape == (3, 5, 2)
        # Reference: re-run the whole growing sequence and take the prediction after its last step.
        seq = seeds
        for t in range(5):
            pred = model.predict(seq, h0=start)
            nxt = pred[:, -1] if mode == "many_to_many" else pred
            np.testing.assert_allclose(generated[:, t], nxt, rtol=1e-10, atol=1e-12)
            seq = np.concatenate([seq, nxt[:, None]], axis=1)
    assert model.generate_sequence(seeds, 0).shape == (3, 0, 2)


def test_generate_sequence_needs_outputs_that_can_be_inputs():
    model = SequenceRegressor(3, 4, 2, "rnn", seed=0)
    with pytest.raises(ValueError, match="output_dim must equal input_dim"):
        model.generate_sequence(np.zeros((1, 2, 3)), 4)
    model = SequenceRegressor(2, 4, 2, "rnn", seed=0)
    with pytest.raises(ValueError, match="T must be an int >= 0"):
        model.generate_sequence(np.zeros((1, 2, 2)), -1)


# --------------------------------------------------------------------------------------------------
# Learning: the next value of noisy sine waves
# --------------------------------------------------------------------------------------------------

OMEGA = 0.3   # radians per step
NOISE = 0.1   # standard deviation of the added noise


def sine_waves(rng, N, T, noise=NOISE):
    """N waves sin(OMEGA t + phase) of random phase, T + 1 steps, plus Gaussian noise: (N, T + 1, 1)."""
    phase = rng.uniform(0, 2 * np.pi, (N, 1))
    clean = np.sin(OMEGA * np.arange(T + 1)[None, :] + phase)
    return (clean + noise * rng.standard_normal(clean.shape))[..., None]


def split(waves, mode):
    """Inputs are all steps but the last; targets the next values (every step, or just the last)."""
    return waves[:, :-1], (waves[:, 1:] if mode == "many_to_many" else waves[:, -1])


def fit(model, x, y, iterations=300, batch_size=32, learning_rate=1e-2, seed=0):
    rng = np.random.default_rng(seed)
    configs = {k: {"learning_rate": learning_rate} for k in model.params}
    for _ in range(iterations):
        idx = rng.integers(0, x.shape[0], batch_size)
        _, grads = model.loss(x[idx], y[idx])
        for k in model.params:
            model.params[k], configs[k] = optim.adam(model.params[k], grads[k], configs[k])


@pytest.mark.parametrize("cell_type, mode", [("lstm", "many_to_many"), ("rnn", "many_to_one"),
                                             ("gru", "many_to_many")])
def test_learns_the_next_value_of_noisy_sine_waves(cell_type, mode):
    x_train, y_train = split(sine_waves(np.random.default_rng(0), 256, 20), mode)
    x_test, y_test = split(sine_waves(np.random.default_rng(1), 256, 20), mode)
    model = SequenceRegressor(1, 16, 1, cell_type, mode, seed=0)
    fit(model, x_train, y_train)
    mse, _ = model.loss(x_test, y_test)
    mean_baseline = np.mean((y_test - y_train.mean()) ** 2)      # predict the training mean
    last_inputs = x_test if mode == "many_to_many" else x_test[:, -1]
    last_value_baseline = np.mean((last_inputs - y_test) ** 2)   # predict "same as now"
    # The noise alone costs NOISE**2 = 0.01; the mean baseline costs the variance, about 0.5.
    assert mse < 0.1 * mean_baseline, (mse, mean_baseline)
    assert mse < 0.5 * last_value_baseline, (mse, last_value_baseline)

    # Fed its own predictions, it continues clean waves from 20 seed steps for 10 more.
    clean = sine_waves(np.random.default_rng(2), 64, 29, noise=0.0)  # (64, 30, 1)
    generated = model.generate_sequence(clean[:, :20], 10)
    assert np.mean((generated - clean[:, 20:]) ** 2) < 0.05
