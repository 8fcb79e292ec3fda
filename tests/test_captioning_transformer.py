"""Tests of CaptioningTransformer: gradients, causality, cached decoding, files, the solver, overfitting.

The whole model's gradients are checked against independent central differences in float64 (relative
error < 5e-6 with dropout off; with dropout on, the masks are fixed by seeding np.random before each
call). The PyTorch build of the same decoder (weights copied into ``torch.nn.TransformerDecoderLayer``)
is in tests/test_transformer_torch.py.
"""
import warnings

import numpy as np
import pytest

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.captioning import CaptioningModel
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.classifiers.transformer import CaptioningTransformer

MODEL_TOL = 5e-6


def make_vocab(num_words):
    words = ["<NULL>", "<START>", "<END>"] + [f"w{i}" for i in range(num_words - 3)]
    return {w: i for i, w in enumerate(words)}


def small_model(seed=0, V=8, D=5, W=6, heads=2, layers=2, F=10, max_length=8, dropout=0.1,
                dtype=np.float64, scale=0.3):
    """A tiny model with larger-than-default weights, so that every path carries a visible gradient."""
    np.random.seed(seed)
    model = CaptioningTransformer(make_vocab(V), D, W, num_heads=heads, num_layers=layers,
                                  max_length=max_length, dim_feedforward=F, dropout=dropout, dtype=dtype)
    rng = np.random.RandomState(seed + 100)
    for name, value in model.params.items():
        model.params[name] = (value + scale * rng.randn(*value.shape)).astype(dtype)
    return model


def random_captions(rng, N, T, V, null=0, start=1, end=2):
    """Rows of <START> words <END> <NULL>...; lengths vary so that the mask matters."""
    captions = np.full((N, T), null, dtype=np.int64)
    for n in range(N):
        length = rng.randint(1, T - 1)
        captions[n, 0] = start
        captions[n, 1:1 + length] = rng.randint(3, V, size=length)
        captions[n, 1 + length] = end
    return captions


def param_grad_check(model, features, captions, num_grad, relerr, names=None, seed=None):
    """Relative errors of the analytic gradients of ``names`` against central differences."""
    def loss_of(_):
        if seed is not None:
            np.random.seed(seed)  # the same dropout masks on every call
        return model.loss(features, captions)[0]
    if seed is not None:
        np.random.seed(seed)
    _, grads = model.loss(features, captions)
    errors = {}
    for name in names or sorted(model.params):
        numeric = num_grad(loss_of, model.params[name], 1.0)
        errors[name] = relerr(grads[name], numeric)
    return errors


def test_gradients_of_every_parameter_dropout_off(num_grad, relerr):
    model = small_model(V=7, D=3, W=4, F=6)
    model.training = False
    rng = np.random.RandomState(1)
    features, captions = rng.randn(2, 3), random_captions(rng, 2, 5, 7)
    errors = param_grad_check(model, features, captions, num_grad, relerr)
    assert len(errors) == len(model.params) == 5 + 2 * (16 + 6 + 4)
    worst = max(errors, key=errors.get)
    assert errors[worst] < MODEL_TOL, f"{worst}: {errors[worst]:.2e}"


def test_gradients_with_dropout_on(num_grad, relerr):
    model = small_model(dropout=0.2, layers=1)
    assert model.training
    rng = np.random.RandomState(2)
    features, captions = rng.randn(3, 5), random_captions(rng, 3, 6, 8)
    names = ["W_embed", "W_proj", "layer0_self_Wq", "layer0_cross_Wv", "layer0_ffn_W1", "layer0_ln2_gamma",
             "W_vocab"]
    errors = param_grad_check(model, features, captions, num_grad, relerr, names, seed=5)
    worst = max(errors, key=errors.get)
    assert errors[worst] < MODEL_TOL, f"{worst}: {errors[worst]:.2e}"
    # dropout really acts: two calls with different masks give different losses
    np.random.seed(5)
    a = model.loss(features, captions)[0]
    np.random.seed(6)
    b = model.loss(features, captions)[0]
    assert a != b


def test_loss_over_the_counted_positions_equals_the_full_computation(capsys):
    """On numpy, loss runs the last feed-forward and the output layer only at positions whose target is
    not <NULL>; the full path (taken with verbose=True) gives the same loss and gradients, dropout on
    (the masks are drawn as for every position), and a batch with no counted target gives 0."""
    model = small_model(seed=4, dropout=0.3)
    rng = np.random.RandomState(4)
    features, captions = rng.randn(4, 5), random_captions(rng, 4, 7, 8)
    assert 0 < np.count_nonzero(captions[:, 1:]) < captions[:, 1:].size
    np.random.seed(9)
    loss, grads = model.loss(features, captions)
    np.random.seed(9)
    full_loss, full_grads = model.loss(features, captions, verbose=True)
    assert "dx_flat" in capsys.readouterr().out
    assert loss == pytest.approx(full_loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], full_grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    empty = np.zeros_like(captions)
    empty[:, 0] = 1
    loss0, grads0 = model.loss(features, empty)
    assert loss0 == 0.0 and all(not np.any(g) for g in grads0.values())


def test_loss_conventions_match_captioning_rnn():
    """Masked cross-entropy summed over time and divided by N: checked against the model's own scores."""
    model = small_model()
    model.training = False
    rng = np.random.RandomState(3)
    features, captions = rng.randn(4, 5), random_captions(rng, 4, 7, 8)
    loss, _ = model.loss(features, captions)
    scores = model.forward(features, captions[:, :-1])                   # (N, T - 1, V)
    logp = scores - scores.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    total = 0.0
    for n in range(4):
        for t in range(6):
            if captions[n, t + 1] != 0:
                total -= logp[n, t, captions[n, t + 1]]
    assert loss == pytest.approx(total / 4, rel=1e-12)
    # scores() is the same forward pass without dropout, whatever the training flag
    model.training = True
    np.testing.assert_array_equal(model.scores(features, captions), scores)
    assert model.training is True
    model.training = False
    # <NULL> targets add nothing: padding a caption with more <NULL>s leaves the loss unchanged
    padded = np.concatenate([captions, np.zeros((4, 1), dtype=captions.dtype)], axis=1)
    assert model.loss(features, padded)[0] == pytest.approx(loss, rel=1e-12)


def test_causality_scores_ignore_later_words():
    model = small_model()
    model.training = False
    rng = np.random.RandomState(4)
    T = 7
    features = rng.randn(3, 5)
    words = rng.randint(1, 8, size=(3, T))
    scores = model.forward(features, words)
    for t in range(T - 1):
        changed = words.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1 + rng.randint(0, 6, size=3)) % 8
        other = model.forward(features, changed)
        np.testing.assert_array_equal(other[:, :t + 1], scores[:, :t + 1])
        assert not np.allclose(other[:, t + 1], scores[:, t + 1])


def test_cached_decoding_agrees_with_rerunning_the_prefix():
    """Greedy decoding with cached keys/values gives the same words and scores as re-running forward."""
    model = small_model(seed=7, V=9, max_length=10)
    model.training = False
    rng = np.random.RandomState(5)
    features = rng.randn(6, 5)
    captions, log_probs = model.sample(features, max_length=10, return_log_probs=True)

    # uncached: the whole prefix through forward at every step, argmax of the last position
    N = features.shape[0]
    prefix = np.full((N, 1), model._start)
    words = np.full((N, 10), model._null)
    ref_logp = np.zeros(N)
    done = np.zeros(N, dtype=bool)
    for t in range(10):
        scores = model.forward(features, prefix)[:, -1].astype(np.float64)      # (N, V)
        allowed = scores.copy()
        allowed[:, [model._null, model._start]] = -np.inf                       # never generated
        choice = allowed.argmax(axis=1)
        logp = scores - scores.max(1, keepdims=True)                             # over all V words
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        ref_logp += np.where(done, 0.0, logp[np.arange(N), choice])
        words[:, t] = np.where(done, model._null, choice)
        done |= choice == model._end
        prefix = np.concatenate([prefix, choice[:, None]], axis=1)
    np.testing.assert_array_equal(captions, words)
    np.testing.assert_allclose(log_probs, ref_logp, rtol=1e-10)


def test_cached_step_scores_match_forward_at_every_position():
    model = small_model(seed=8, V=9)
    model.training = False
    rng = np.random.RandomState(6)
    features = rng.randn(4, 5)
    words = rng.randint(1, 9, size=(4, 8))
    full = model.forward(features, words)                          # (N, T, V)
    h0 = features @ model.params["W_proj"] + model.params["b_proj"]
    state = model._initial_state(h0)
    for t in range(8):
        state, scores = model._step(words[:, t], state, normalize=False)
        np.testing.assert_allclose(scores, full[:, t], rtol=1e-12, atol=1e-12)
        assert state[2].shape[2] == t + 1                           # keys cached for t + 1 words


def test_sample_modes_share_captioning_rnn_semantics():
    model = small_model(seed=9, V=9, max_length=8)
    model.training = False
    rng = np.random.RandomState(7)
    features = rng.randn(3, 5)
    greedy, g_logp = model.sample(features, max_length=8, return_log_probs=True)
    assert greedy.shape == (3, 8) and greedy.dtype == np.int32
    beam, b_logp = model.sample(features, max_length=8, beam_size=4, return_log_probs=True)
    assert np.all(b_logp >= g_logp - 1e-12)                       # beam never below greedy
    caps, logps = model.sample(features, max_length=8, beam_size=4, n_best=3)
    assert caps.shape == (3, 3, 8) and logps.shape == (3, 3)
    a = model.sample(features, max_length=8, temperature=1.0, rng=3)
    b = model.sample(features, max_length=8, temperature=1.0, rng=3)
    np.testing.assert_array_equal(a, b)
    assert not np.any(np.isin(greedy, [model._start]))             # <START> never generated
    texts = model.caption_features(features, max_length=8)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert model.training is False  # sampling does not touch the flag


def test_sampling_ignores_dropout_and_training_flag():
    model = small_model(seed=10, V=9)
    features = np.random.RandomState(8).randn(3, 5)
    model.training = True
    a = model.sample(features, max_length=6)
    model.training = False
    np.testing.assert_array_equal(a, model.sample(features, max_length=6))


def test_float32_model_and_inputs_untouched():
    model = small_model(dtype=np.float32)
    rng = np.random.RandomState(9)
    features, captions = rng.randn(3, 5), random_captions(rng, 3, 6, 8)
    f0, c0 = features.copy(), captions.copy()
    p0 = {k: v.copy() for k, v in model.params.items()}
    loss, grads = model.loss(features, captions)
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    np.testing.assert_array_equal(features, f0)
    np.testing.assert_array_equal(captions, c0)
    for k in p0:
        np.testing.assert_array_equal(model.params[k], p0[k])


def test_save_load_round_trip_and_dispatch(tmp_path):
    model = small_model(seed=11, V=9)
    assert model.identity is None
    model.identity = {"dataset": "shapes", "fingerprint": "abc"}
    path = model.save(tmp_path / "t.npz")
    loaded = CaptioningModel.load(path)
    assert type(loaded) is CaptioningTransformer
    assert loaded.identity == model.identity
    fresh = CaptioningModel.from_config(model.get_config())        # the keys pick the class
    assert type(fresh) is CaptioningTransformer and fresh.identity is None
    assert loaded.get_config() == model.get_config()
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    features = np.random.RandomState(10).randn(2, 5)
    model.training = loaded.training = False
    np.testing.assert_array_equal(loaded.sample(features, max_length=6), model.sample(features, max_length=6))
    assert type(CaptioningTransformer.load(path, word_to_idx=make_vocab(9))) is CaptioningTransformer

    np.random.seed(0)
    rnn_path = CaptioningRNN(make_vocab(9), input_dim=5, wordvec_dim=4, hidden_dim=4).save(tmp_path / "r.npz")
    assert type(CaptioningModel.load(rnn_path)) is CaptioningRNN
    with pytest.raises(ValueError, match="holds a CaptioningRNN .* not a CaptioningTransformer"):
        CaptioningTransformer.load(rnn_path)
    with pytest.raises(ValueError, match="holds a CaptioningTransformer .* not a CaptioningRNN"):
        CaptioningRNN.load(path)
    with pytest.raises(ValueError, match="vocabulary saved in .* differs"):
        CaptioningTransformer.load(path, word_to_idx=make_vocab(10))


def test_load_refuses_inconsistent_files(tmp_path):
    from cs231n.archive import load_archive, save_archive
    model = small_model(seed=12)
    arrays, meta = load_archive(model.save(tmp_path / "m.npz"))
    bad = dict(arrays)
    del bad["layer1_ffn_W2"]
    save_archive(tmp_path / "missing.npz", bad, meta)
    with pytest.raises(ValueError, match=r"missing \['layer1_ffn_W2'\]"):
        CaptioningTransformer.load(tmp_path / "missing.npz")
    save_archive(tmp_path / "heads.npz", arrays, dict(meta, config=dict(meta["config"], num_heads=4)))
    with pytest.raises(ValueError, match="num_heads .4. must divide wordvec_dim .6."):
        CaptioningTransformer.load(tmp_path / "heads.npz")
    save_archive(tmp_path / "layers.npz", arrays, dict(meta, config=dict(meta["config"], num_layers=1)))
    with pytest.raises(ValueError, match="unexpected"):
        CaptioningModel.load(tmp_path / "layers.npz")
    save_archive(tmp_path / "other.npz", arrays, dict(meta, format="something-else"))
    with pytest.raises(ValueError, match="is not a captioning model"):
        CaptioningModel.load(tmp_path / "other.npz")


def test_error_paths():
    vocab = make_vocab(8)
    with pytest.raises(ValueError, match=r"num_heads \(4\) must divide wordvec_dim \(6\)"):
        CaptioningTransformer(vocab, 5, 6, num_heads=4)
    with pytest.raises(ValueError, match="dropout must be a drop probability in \\[0, 1\\)"):
        CaptioningTransformer(vocab, 5, 6, num_heads=2, dropout=1.0)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        CaptioningTransformer(vocab, 5, 6, num_heads=2, num_layers=0)
    with pytest.raises(ValueError, match="<NULL>"):
        CaptioningTransformer({"a": 0}, 5, 6, num_heads=2)
    model = small_model(max_length=4)
    rng = np.random.RandomState(11)
    with pytest.raises(ValueError, match="captions has 5 input positions .* max_length = 4"):
        model.loss(rng.randn(2, 5), random_captions(rng, 2, 6, 8))
    with pytest.raises(ValueError, match="max_length = 5 is more than the model's max_length = 4"):
        model.sample(rng.randn(2, 5), max_length=5)
    with pytest.raises(ValueError, match=r"features should have shape \(N, D\) = \(2, 5\)"):
        model.loss(rng.randn(2, 4), random_captions(rng, 2, 4, 8))
    with pytest.raises(ValueError, match="captions holds index 8"):
        model.loss(rng.randn(2, 5), np.full((2, 3), 8))
    with pytest.raises(ValueError, match="captions_in should have shape"):
        model.forward(rng.randn(2, 5), np.ones((3, 2), dtype=int))
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        model.loss(rng.randn(2, 5), random_captions(rng, 2, 4, 8), mode="test")


def tiny_data(rng, num_train=40, num_val=6, V=10, D=5, T=6):
    vocab = make_vocab(V)
    data = {"word_to_idx": vocab, "idx_to_word": {i: w for w, i in vocab.items()}}
    for split, n in (("train", num_train), ("val", num_val)):
        data[f"{split}_features"] = rng.randn(n, D)
        data[f"{split}_captions"] = random_captions(rng, n, T, V)
        data[f"{split}_image_idxs"] = np.arange(n)
        data[f"{split}_urls"] = np.array([f"http://127.0.0.1/{i}.jpg" for i in range(n)])
    return data


def test_captioning_solver_trains_it_unchanged_and_validates_without_dropout(tmp_path):
    rng = np.random.RandomState(12)
    data = tiny_data(rng)
    np.random.seed(0)
    model = CaptioningTransformer(data["word_to_idx"], 5, 8, num_heads=2, num_layers=1, max_length=30,
                                  dim_feedforward=16, dtype=np.float64)
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                              batch_size=10, num_epochs=10, print_every=1000, verbose=False, seed=0,
                              num_val_images=6)
    model.training = False
    before = model.loss(data["train_features"], data["train_captions"])[0]
    model.training = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'the same caption for every val image' early in training
        solver.train()
    assert len(solver.val_history) == 10
    assert model.training is True                                  # restored after validation
    val = solver.validate()
    model.training = False
    assert model.loss(data["train_features"], data["train_captions"])[0] < 0.8 * before
    expected = model.loss(data["val_features"], data["val_captions"])[0]
    model.training = True
    assert val["val_loss"] == pytest.approx(expected, rel=1e-12)   # no dropout in the val loss


def test_overfits_50_captions():
    """cs231n's setting (2 heads, 2 layers, W = 256, Adam lr 1e-3, batch 25, 100 epochs, dropout 0.1),
    with a feed-forward of 256 instead of 2048 to keep the test fast, on 50 random captions."""
    rng = np.random.RandomState(13)
    V, D, T, N = 40, 32, 12, 50
    data = tiny_data(rng, num_train=N, num_val=0, V=V, D=D, T=T)
    for key in ("val_features", "val_captions", "val_image_idxs", "val_urls"):
        data.pop(key)
    np.random.seed(231)
    model = CaptioningTransformer(data["word_to_idx"], D, 256, num_heads=2, num_layers=2, max_length=T,
                                  dim_feedforward=256)
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                              batch_size=25, num_epochs=100, print_every=10 ** 6, verbose=False, seed=0)
    solver.train()
    model.training = False
    loss, _ = model.loss(data["train_features"], data["train_captions"])
    words = np.count_nonzero(data["train_captions"][:, 1:] != model._null)
    per_word = float(loss) * N / words
    assert per_word < 0.03, per_word


# ----------------------------------------------------------------------------------------------------
# Array backends: a model whose parameters are device arrays computes on the device
# ----------------------------------------------------------------------------------------------------

def on_backend(model, backend):
    """``model`` moved onto ``backend``."""
    return model.to(backend.device)


def host_float(backend, value):
    """A loss (a Python/numpy number, or a 0-d array on the backend) as a float on the host."""
    if backend.name != "numpy" and not isinstance(value, (float, np.floating)):
        value = backend.get(value)
    return float(value)


def test_loss_and_gradients_on_backend_match_numpy(backend):
    model = small_model(seed=12, layers=2)
    model.training = False
    rng = np.random.RandomState(12)
    features, captions = rng.randn(3, 5), random_captions(rng, 3, 7, 8)
    loss, grads = model.loss(features, captions)
    scores, attention = model.forward(features, captions[:, :-1], return_attention=True)
    on_backend(model, backend)
    features_b, captions_b = backend.put([features, captions])
    copies = getattr(backend.xp, "transfers", 0)
    loss_b, grads_b = model.loss(features_b, captions_b)
    assert getattr(backend.xp, "transfers", 0) == copies  # nothing copied to the device during a step
    scores_b, attention_b = model.forward(*backend.put([features, captions[:, :-1]]), return_attention=True)
    assert host_float(backend, loss_b) == pytest.approx(loss, rel=1e-12)
    for name in grads:
        got = backend.get(grads_b[name])
        np.testing.assert_allclose(got, grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(backend.get(scores_b), scores, rtol=1e-10, atol=1e-12)
    # forward, like loss, takes host inputs for a model on the device (moved once) and computes there
    np.testing.assert_allclose(backend.get(model.forward(features, captions[:, :-1])), scores,
                               rtol=1e-10, atol=1e-12)
    for layer, layer_b in zip(attention, attention_b):
        for kind in ("self", "cross"):
            np.testing.assert_allclose(backend.get(layer_b[kind]), layer[kind], rtol=1e-10, atol=1e-12)


def test_cached_steps_on_backend_match_forward(backend):
    """The decoding step (cached keys/values, the position table) runs where the parameters are."""
    model = small_model(seed=8, V=9)
    model.training = False
    rng = np.random.RandomState(6)
    features, words = rng.randn(4, 5), rng.randint(1, 9, size=(4, 6))
    full = model.forward(features, words)                                # (N, T, V), numpy
    on_backend(model, backend)
    features, words = backend.put([features, words])
    state = model._initial_state(features @ model.params["W_proj"] + model.params["b_proj"])
    for t in range(6):
        state, scores = model._step(words[:, t], state, normalize=False)
        for s in state:
            backend.check(s)
        np.testing.assert_allclose(backend.get(scores), full[:, t], rtol=1e-10, atol=1e-12)
    # and back on the host
    model.to("cpu")
    np.testing.assert_array_equal(model.forward(backend.get(features), backend.get(words)), full)


def test_greedy_and_beam_decoding_on_backend_match_numpy(backend):
    """The shared search driven by the cached-key/value step gives numpy's captions on the device."""
    model = small_model(seed=9, V=9, max_length=8)
    model.training = False
    features = np.random.RandomState(7).randn(3, 5)
    greedy, g_logp = model.sample(features, max_length=8, return_log_probs=True)
    beam, b_logp = model.sample(features, max_length=8, beam_size=3, return_log_probs=True)
    on_backend(model, backend)
    greedy_b, g_logp_b = model.sample(backend.put(features), max_length=8, return_log_probs=True)
    beam_b, b_logp_b = model.sample(backend.put(features), max_length=8, beam_size=3, return_log_probs=True)
    for a in (greedy_b, g_logp_b, beam_b, b_logp_b):
        assert type(a) is np.ndarray  # sample returns host arrays whatever the model's device
    np.testing.assert_array_equal(greedy_b, greedy)
    np.testing.assert_array_equal(beam_b, beam)
    np.testing.assert_allclose(g_logp_b, g_logp, rtol=1e-10)
    np.testing.assert_allclose(b_logp_b, b_logp, rtol=1e-10)


def test_dropout_training_on_device_is_reproducible_and_checks(device_backend, num_grad, relerr):
    """With dropout on, a device loss is fixed by np.random.seed as on numpy (the device masks come from
    one host draw each), and float64 gradients on the device agree with central differences taken on
    the host."""
    model = on_backend(small_model(V=7, D=3, W=4, F=6, dropout=0.2, layers=1), device_backend)
    rng = np.random.RandomState(2)
    features, captions = device_backend.put([rng.randn(3, 3), random_captions(rng, 3, 6, 7)])

    def loss_at(seed):
        np.random.seed(seed)
        return host_float(device_backend, model.loss(features, captions)[0])

    assert loss_at(5) == loss_at(5) != loss_at(6)
    np.random.seed(5)
    _, grads = model.loss(features, captions)
    for name in ["W_proj", "layer0_self_Wq", "layer0_ffn_W1"]:  # the memory, attention and FFN paths
        host = device_backend.get(model.params[name])

        def loss_of(w, name=name):
            model.params[name] = device_backend.put(w)
            return loss_at(5)

        numeric = num_grad(loss_of, host, 1.0)
        model.params[name] = device_backend.put(host)
        err = relerr(device_backend.get(grads[name]), numeric)
        assert err < MODEL_TOL, f"{name}: {err:.2e}"


def test_error_messages_unchanged_on_device(device_backend):
    model = on_backend(small_model(max_length=4), device_backend)
    put = device_backend.put
    rng = np.random.RandomState(11)
    with pytest.raises(ValueError, match="captions has 5 input positions .* max_length = 4"):
        model.loss(*put([rng.randn(2, 5), random_captions(rng, 2, 6, 8)]))
    with pytest.raises(ValueError, match=r"features should have shape \(N, D\) = \(2, 5\)"):
        model.loss(*put([rng.randn(2, 4), random_captions(rng, 2, 4, 8)]))
    with pytest.raises(ValueError, match="captions holds index 8"):
        model.loss(*put([rng.randn(2, 5), np.full((2, 3), 8)]))
    with pytest.raises(ValueError, match="captions_in should have shape"):
        model.forward(*put([rng.randn(2, 5), np.ones((3, 2), dtype=int)]))
