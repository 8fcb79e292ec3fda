"""Tests of CaptioningTransformer over image regions (``regions=True``, SPEC section 10): R memory tokens.

Gradients against independent central differences in float64; the one-token path against a region
model given one region; decoding (greedy and beam, with cached keys and values) against re-running
``forward`` over the prefix; the attention weights decoding returns against ``forward``'s; files,
old configurations, the solver and the device. The one-vector model's own tests are in
tests/test_captioning_transformer.py (unchanged).
"""
import numpy as np
import pytest

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.captioning import CaptioningModel
from cs231n.classifiers.transformer import CaptioningTransformer
from test_captioning_transformer import MODEL_TOL, make_vocab, on_backend, param_grad_check, random_captions


def region_model(seed=0, V=8, D=5, W=6, heads=2, layers=2, F=10, max_length=8, dropout=0.0,
                 dtype=np.float64, scale=0.3, regions=True):
    """A tiny model with larger-than-default weights, so that every path carries a visible gradient."""
    np.random.seed(seed)
    model = CaptioningTransformer(make_vocab(V), D, W, num_heads=heads, num_layers=layers,
                                  max_length=max_length, dim_feedforward=F, dropout=dropout, dtype=dtype,
                                  regions=regions)
    rng = np.random.RandomState(seed + 100)
    for name, value in model.params.items():
        model.params[name] = (value + scale * rng.randn(*value.shape)).astype(dtype)
    model.training = False
    return model


def test_gradients_of_every_parameter_over_regions(num_grad, relerr):
    model = region_model(V=7, D=3, W=4, F=6)
    rng = np.random.RandomState(1)
    features, captions = rng.randn(2, 3, 3), random_captions(rng, 2, 5, 7)  # R = 3 regions
    # A key bias adds q.bk to every key's score alike, which softmax ignores: its gradient is exactly 0,
    # so central differences give only rounding noise there; those are checked to be ~0 instead.
    key_biases = [name for name in model.params if name.endswith("_bk")]
    errors = param_grad_check(model, features, captions, num_grad, relerr,
                              names=sorted(set(model.params) - set(key_biases)))
    assert len(errors) + len(key_biases) == len(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < MODEL_TOL, f"{worst}: {errors[worst]:.2e}"
    _, grads = model.loss(features, captions)
    for name in key_biases:
        assert np.abs(grads[name]).max() < 1e-12
        assert np.abs(num_grad(lambda _: model.loss(features, captions)[0], model.params[name], 1.0)).max() < 1e-8


def test_gradients_with_dropout_on_over_regions(num_grad, relerr):
    model = region_model(dropout=0.2, layers=1)
    model.training = True
    rng = np.random.RandomState(2)
    features, captions = rng.randn(3, 4, 5), random_captions(rng, 3, 6, 8)
    errors = param_grad_check(model, features, captions, num_grad, relerr,
                              names=["W_proj", "b_proj", "layer0_cross_Wk", "layer0_cross_Wq"], seed=5)
    worst = max(errors, key=errors.get)
    assert errors[worst] < MODEL_TOL, f"{worst}: {errors[worst]:.2e}"


def test_one_region_is_the_one_token_model():
    """A region model given (N, 1, D) computes what the one-vector model computes from (N, D)."""
    regional = region_model(seed=3)
    single = region_model(seed=3, regions=False)
    rng = np.random.RandomState(3)
    features, captions = rng.randn(3, 5), random_captions(rng, 3, 7, 8)
    loss, grads = single.loss(features, captions)
    loss_r, grads_r = regional.loss(features[:, None, :], captions)
    assert loss_r == loss
    for name in grads:
        np.testing.assert_array_equal(grads_r[name], grads[name], err_msg=name)
    np.testing.assert_array_equal(regional.sample(features[:, None, :], max_length=8, beam_size=3),
                                  single.sample(features, max_length=8, beam_size=3))


def test_regions_are_a_set_and_every_region_counts():
    """No order among the memory tokens (no positions): permuting the regions changes nothing; changing
    one region changes the scores."""
    model = region_model(seed=4)
    rng = np.random.RandomState(4)
    features, captions = rng.randn(3, 4, 5), random_captions(rng, 3, 7, 8)
    scores = model.scores(features, captions)
    np.testing.assert_allclose(model.scores(features[:, [2, 0, 3, 1]], captions), scores, rtol=1e-12, atol=1e-12)
    for r in range(4):
        changed = features.copy()
        changed[:, r] += 1.0
        assert np.abs(model.scores(changed, captions) - scores).max() > 1e-3
    # a grid (N, D, h, w) is its row-major cells
    grid = features.transpose(0, 2, 1).reshape(3, 5, 2, 2)
    np.testing.assert_array_equal(model.scores(grid, captions), scores)


def test_cached_steps_over_regions_match_forward_and_give_its_cross_attention():
    model = region_model(seed=8, V=9)
    rng = np.random.RandomState(6)
    features, words = rng.randn(4, 3, 5), rng.randint(1, 9, size=(4, 8))
    full, attention = model.forward(features, words, return_attention=True)   # (N, T, V)
    state = model._decode_state(features)
    np.testing.assert_array_equal(model._step_attention(state), 0)            # nothing scored yet
    for t in range(8):
        state, scores = model._step(words[:, t], state, normalize=False)
        np.testing.assert_allclose(scores, full[:, t], rtol=1e-12, atol=1e-12)
        # the weights of this step: cross-attention at position t, mean over heads and layers
        expected = np.mean([layer["cross"][:, :, t, :].mean(axis=1) for layer in attention], axis=0)  # (N, R)
        np.testing.assert_allclose(model._step_attention(state), expected, rtol=1e-12)
        np.testing.assert_allclose(model._step_attention(state).sum(axis=1), 1.0)


def reference_greedy(model, features, T):
    """Greedy decoding by re-running forward over the whole prefix at every step (no cache)."""
    N = features.shape[0]
    prefix = np.full((N, 1), model._start)
    words = np.full((N, T), model._null)
    ref_logp, done = np.zeros(N), np.zeros(N, dtype=bool)
    for t in range(T):
        scores = model.forward(features, prefix)[:, -1].astype(np.float64)
        allowed = scores.copy()
        allowed[:, [model._null, model._start]] = -np.inf
        choice = allowed.argmax(axis=1)
        logp = scores - scores.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        ref_logp += np.where(done, 0.0, logp[np.arange(N), choice])
        words[:, t] = np.where(done, model._null, choice)
        done |= choice == model._end
        prefix = np.concatenate([prefix, choice[:, None]], axis=1)
    return words, ref_logp


def test_greedy_and_beam_decoding_over_regions():
    model = region_model(seed=7, V=9, max_length=10)
    rng = np.random.RandomState(5)
    features = rng.randn(6, 4, 5)
    captions, log_probs = model.sample(features, max_length=10, return_log_probs=True)
    words, ref_logp = reference_greedy(model, features, 10)
    np.testing.assert_array_equal(captions, words)
    np.testing.assert_allclose(log_probs, ref_logp, rtol=1e-10)
    # beam search: never below greedy, and its log-probs are what the teacher-forced scores give
    beam, beam_logp = model.sample(features, max_length=10, beam_size=3, return_log_probs=True)
    assert (beam_logp >= log_probs - 1e-9).all()
    for n in range(6):
        row = [w for w in beam[n] if w != model._null]
        seq = np.array([[model._start] + row])
        scores = model.scores(features[n:n + 1], np.concatenate([seq, [[model._null]]], axis=1))[0]
        logp = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - scores.max(1, keepdims=True)
        assert beam_logp[n] == pytest.approx(sum(logp[t, w] for t, w in enumerate(row)), rel=1e-9)


def test_decoding_returns_the_attention_weights_of_each_word():
    model = region_model(seed=9, V=9, max_length=8)
    rng = np.random.RandomState(9)
    features = rng.randn(3, 4, 5)
    captions, weights = model.sample(features, max_length=8, return_attention=True)
    assert weights.shape == (3, 8, 4)
    _, attention = model.forward(features, np.concatenate([np.full((3, 1), model._start), captions[:, :-1]], 1)
                                 .clip(0, None), return_attention=True)
    expected = np.mean([layer["cross"].mean(axis=1) for layer in attention], axis=0)  # (N, T, R)
    for n in range(3):
        length = int((captions[n] != model._null).sum())
        np.testing.assert_allclose(weights[n, :length], expected[n, :length], rtol=1e-10)
        np.testing.assert_array_equal(weights[n, length:], 0)
    beam, _, beam_weights = model.sample(features, max_length=8, beam_size=2, return_log_probs=True,
                                         return_attention=True)
    assert beam_weights.shape == (3, 8, 4)
    live = beam != model._null
    np.testing.assert_allclose(beam_weights.sum(axis=2)[live], 1.0)
    with pytest.raises(ValueError, match="no attention"):
        region_model(seed=9, V=9, regions=False).sample(features[:, 0], max_length=8, return_attention=True)


def test_wrong_shapes_are_named():
    model = region_model()
    single = region_model(regions=False)
    rng = np.random.RandomState(0)
    captions = random_captions(rng, 2, 5, 8)
    with pytest.raises(ValueError, match=r"\(N, R, D\).*one vector per image"):
        model.loss(rng.randn(2, 5), captions)
    with pytest.raises(ValueError, match="D = 5"):
        model.loss(rng.randn(2, 3, 4), captions)
    with pytest.raises(ValueError, match="features"):
        single.loss(rng.randn(2, 3, 5), captions)
    with pytest.raises(ValueError, match="captions"):
        model.loss(rng.randn(3, 3, 5), captions)  # 3 images, 2 captions
    with pytest.raises(ValueError, match="D = 5"):
        model.sample(rng.randn(2, 4, 3, 3))  # a grid with 4 channels
    with pytest.raises(ValueError, match="regions must be True or False"):
        CaptioningTransformer(make_vocab(8), 5, 8, regions="yes")


def test_files_configs_and_old_files(tmp_path):
    model = region_model(seed=2, dtype=np.float32)
    assert model.get_config()["regions"] is True
    assert "regions" not in region_model(regions=False).get_config()  # one-token configs as before
    loaded = CaptioningModel.load(model.save(tmp_path / "m.npz"))
    assert isinstance(loaded, CaptioningTransformer) and loaded.regions
    features = np.random.RandomState(2).randn(2, 4, 5).astype(np.float32)
    np.testing.assert_array_equal(loaded.sample(features, max_length=8), model.sample(features, max_length=8))
    again = CaptioningModel.from_config(model.get_config())
    assert again.regions and again.params.keys() == model.params.keys()
    # a configuration written before region features (no "regions" key) is a one-token model
    old = region_model(regions=False).get_config()
    assert not CaptioningModel.from_config(old).regions


def test_solver_trains_a_region_model(tmp_path):
    model = region_model(seed=1, V=9, W=8, heads=2, dtype=np.float32, scale=0.0, dropout=0.1)
    model.training = True
    rng = np.random.RandomState(0)
    images = rng.randn(6, 3, 5).astype(np.float32)
    captions = random_captions(rng, 6, 7, 9).astype(np.int32)
    data = {"train_captions": captions, "train_image_idxs": np.arange(6, dtype=np.int32),
            "train_features": images, "val_captions": captions, "val_image_idxs": np.arange(6, dtype=np.int32),
            "val_features": images, "idx_to_word": [w for w, _ in sorted(make_vocab(9).items(), key=lambda x: x[1])],
            "train_urls": np.array(["u"] * 6), "val_urls": np.array(["u"] * 6)}
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=100, batch_size=6,
                              optim_config={"learning_rate": 2e-2}, verbose=False)
    solver.train()
    assert solver.loss_history[-1] < 0.3 * solver.loss_history[0]


def test_region_model_on_backend_matches_numpy(backend):
    model = region_model(seed=12)
    rng = np.random.RandomState(12)
    features, captions = rng.randn(3, 4, 5), random_captions(rng, 3, 7, 8)
    loss, grads = model.loss(features, captions)
    greedy, weights = model.sample(features, max_length=8, return_attention=True)
    beam = model.sample(features, max_length=8, beam_size=3)
    on_backend(model, backend)
    loss_b, grads_b = model.loss(*backend.put([features, captions]))
    assert float(backend.get(loss_b) if backend.name != "numpy" and not isinstance(loss_b, float) else loss_b) \
        == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(backend.get(grads_b[name]), grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    greedy_b, weights_b = model.sample(features, max_length=8, return_attention=True)
    np.testing.assert_array_equal(greedy_b, greedy)
    np.testing.assert_allclose(weights_b, weights, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.sample(features, max_length=8, beam_size=3), beam)
