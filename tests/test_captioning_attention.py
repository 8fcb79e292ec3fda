"""Tests of CaptioningRNN(cell_type='attention'): the LSTM attending over R image regions (SPEC §10).

The loss and every gradient are compared with a PyTorch build of the same model written here (copied
weights, float64, autograd; skipped without torch) and with float64 central differences. Decoding is
checked against the model's own teacher-forced forward pass: a greedy or beam caption's log-probability
is what ``loss`` charges for it, and the attention weights returned per word are those the sequence
layer computes when fed that caption. Files, the device backends and the solver (checkpoints, bit-exact
resume) are covered as for the other cells.
"""
import numpy as np
import pytest

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers import CaptioningModel, CaptioningRNN
from cs231n.rnn_layers import lstm_attention_forward
from test_attention_layers import fourth_order_difference

N_WORDS = 6
D, W, H, R = 5, 4, 3, 4


def make_vocab(num_words=N_WORDS):
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    word_to_idx.update({f"w{i}": 3 + i for i in range(num_words)})
    return word_to_idx


def make_model(seed=0, dtype=np.float64, scale=1.0, end_bias=0.0, hidden=H):
    np.random.seed(seed)
    model = CaptioningRNN(make_vocab(), input_dim=D, wordvec_dim=W, hidden_dim=hidden, cell_type="attention",
                          dtype=dtype)
    rng = np.random.RandomState(seed + 100)
    for k, v in model.params.items():  # nonzero biases and larger weights, so every path matters
        model.params[k] = (v * scale + rng.randn(*v.shape) * 0.1).astype(dtype)
    model.params["b_vocab"][2] += end_bias
    return model


def make_captions(rng, n, T=6):
    caps = np.zeros((n, T), dtype=np.int32)
    for i in range(n):
        length = int(rng.randint(1, T - 1))
        caps[i, 0] = 1
        caps[i, 1:length + 1] = rng.randint(3, 3 + N_WORDS, size=length)
        caps[i, length + 1] = 2
    return caps


def regions(rng, n, r=R, dtype=np.float64):
    return rng.randn(n, r, D).astype(dtype)


# ----------------------------------------------------------------------------------------------------
# Parameters and input shapes
# ----------------------------------------------------------------------------------------------------
def test_parameters_follow_the_spec():
    model = CaptioningRNN(make_vocab(), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="attention")
    V = N_WORDS + 3
    want = {"W_embed": (V, W), "W_proj": (D, H), "b_proj": (H,), "Wx": (W, 4 * H), "Wh": (H, 4 * H),
            "Wattn": (H, 4 * H), "b": (4 * H,), "W_vocab": (H, V), "b_vocab": (V,)}
    assert {k: v.shape for k, v in model.params.items()} == want
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert not model.params["b"].any() and not model.params["b_proj"].any()
    # The cs231n draws come first, in cs231n's order: an LSTM from the same seed has the same ones.
    np.random.seed(3)
    att = CaptioningRNN(make_vocab(), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="attention")
    np.random.seed(3)
    lstm = CaptioningRNN(make_vocab(), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="lstm")
    for k in ("W_embed", "W_proj", "Wx", "Wh"):
        np.testing.assert_array_equal(att.params[k], lstm.params[k])


def test_grid_features_are_flattened_row_major():
    model = make_model(seed=1)
    rng = np.random.RandomState(1)
    grid = rng.randn(3, D, 2, 3)                                # (N, D, h, w)
    flat = np.stack([grid[:, :, i, j] for i in range(2) for j in range(3)], axis=1)   # (N, 6, D)
    caps = make_captions(rng, 3)
    loss_grid, grads_grid = model.loss(grid, caps)
    loss_flat, grads_flat = model.loss(flat, caps)
    assert loss_grid == loss_flat
    for k in grads_flat:
        np.testing.assert_array_equal(grads_grid[k], grads_flat[k])
    np.testing.assert_array_equal(model.sample(grid, max_length=5), model.sample(flat, max_length=5))


def test_features_of_the_wrong_kind_are_clear_errors():
    rng = np.random.RandomState(2)
    att = make_model(seed=2)
    caps = make_captions(rng, 2)
    with pytest.raises(ValueError, match=r"CaptioningRNN.loss: features should be region features "
                                         r"\(N, R, D\) or a grid \(N, D, h, w\) with D = 5, got shape "
                                         r"\(2, 5\) \(one vector per image\)"):
        att.loss(rng.randn(2, D), caps)
    with pytest.raises(ValueError, match=r"sample: features should have shape \(N, R, D\) with D = 5"):
        att.sample(rng.randn(2, R, D + 1))
    with pytest.raises(ValueError, match=r"grid of features should have shape \(N, D, h, w\) with D = 5"):
        att.sample(rng.randn(2, D + 1, 2, 2))
    np.random.seed(0)
    lstm = CaptioningRNN(make_vocab(), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="lstm")
    with pytest.raises(ValueError, match=r"CaptioningRNN.loss: features of 3 dimensions are region "
                                         r"features or a grid; a lstm model takes one vector per image, "
                                         r"\(N, D\) with D = 5 \(cell_type='attention'"):
        lstm.loss(regions(rng, 2), caps)
    with pytest.raises(ValueError, match="4 dimensions"):
        lstm.sample(rng.randn(2, D, 2, 2))
    with pytest.raises(ValueError, match="return_attention=True, but a lstm model has no attention"):
        lstm.sample(rng.randn(2, D), return_attention=True)
    with pytest.raises(ValueError, match="invalid cell_type 'attn'"):
        CaptioningRNN(make_vocab(), cell_type="attn")


# ----------------------------------------------------------------------------------------------------
# Loss and gradients: PyTorch build and central differences
# ----------------------------------------------------------------------------------------------------
def torch_model(torch, params):
    """The attention captioning model as a torch.nn.Module with the given (numpy) weights copied in."""
    nn = torch.nn

    class AttentionCaptioner(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.ParameterDict({k: nn.Parameter(torch.tensor(v)) for k, v in params.items()})

        def forward(self, features, captions, null=0):
            p = self.w
            Hh = p["Wh"].shape[0]
            A = features @ p["W_proj"] + p["b_proj"]                      # (N, R, H)
            h = A.mean(dim=1)
            c = A.mean(dim=1)
            x = p["W_embed"][captions[:, :-1]]                            # (N, T - 1, W)
            loss = 0.0
            for t in range(x.shape[1]):
                w = torch.softmax((A @ h.unsqueeze(2)).squeeze(2) / Hh ** 0.5, dim=1)
                attn = (w.unsqueeze(2) * A).sum(dim=1)
                a = x[:, t] @ p["Wx"] + h @ p["Wh"] + attn @ p["Wattn"] + p["b"]
                i, f, o = (torch.sigmoid(a[:, k * Hh:(k + 1) * Hh]) for k in range(3))
                g = torch.tanh(a[:, 3 * Hh:])
                c = f * c + i * g
                h = o * torch.tanh(c)
                scores = h @ p["W_vocab"] + p["b_vocab"]
                target = captions[:, t + 1]
                ce = nn.functional.cross_entropy(scores, target, reduction="none")
                loss = loss + (ce * (target != null)).sum()
            return loss / captions.shape[0]

    return AttentionCaptioner().double()


@pytest.mark.parametrize("seed, num_regions", [(0, 3), (1, 9)])   # R < T and R > T (both layer paths)
def test_loss_and_every_gradient_equal_a_torch_build(seed, num_regions):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rng = np.random.RandomState(seed)
    model = make_model(seed=seed, scale=2.0)
    features, caps = regions(rng, 4, num_regions), make_captions(rng, 4, T=7)
    loss, grads = model.loss(features, caps)
    net = torch_model(torch, model.params)
    t_loss = net(torch.tensor(features), torch.tensor(caps.astype(np.int64)))
    t_loss.backward()
    assert abs(loss - t_loss.item()) <= 1e-10 * abs(loss)
    assert set(grads) == set(model.params)
    for k, g in grads.items():
        np.testing.assert_allclose(g, net.w[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("seed, num_regions", [(3, 2), (4, 7)])
def test_numerical_gradient_of_every_parameter(seed, num_regions, relerr):
    rng = np.random.RandomState(seed)
    model = make_model(seed=seed, scale=1.5)
    features, caps = regions(rng, 3, num_regions), make_captions(rng, 3, T=5)
    _, grads = model.loss(features, caps)
    for k, p in model.params.items():
        numeric = fourth_order_difference(lambda _: model.loss(features, caps)[0], p, 1.0)
        # Exact zeros (rows of W_embed of words never fed in) are compared absolutely: the difference
        # there is roundoff of the loss, 1e-13, which no relative error can judge.
        used = grads[k] != 0
        assert np.abs(numeric[~used]).max(initial=0.0) < 1e-10, k
        assert relerr(grads[k][used], numeric[used]) < 1e-7, (k, relerr(grads[k][used], numeric[used]))


def test_float32_loss_and_grads_stay_float32_and_inputs_untouched():
    rng = np.random.RandomState(5)
    model = make_model(seed=5, dtype=np.float32)
    features, caps = regions(rng, 3, dtype=np.float32), make_captions(rng, 3)
    before = (features.copy(), caps.copy())
    loss, grads = model.loss(features, caps)
    assert np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in grads.values())
    np.testing.assert_array_equal(features, before[0])
    np.testing.assert_array_equal(caps, before[1])


# ----------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------
def teacher_forced(model, features, caption_rows):
    """Log-probability ``loss`` charges for each caption, and the layer's attention weights (N, T, R)."""
    n, T = caption_rows.shape
    full = np.zeros((n, T + 1), dtype=np.int32)
    full[:, 0] = model._start
    full[:, 1:] = caption_rows
    logps = np.array([-model.loss(features[i:i + 1], full[i:i + 1])[0] for i in range(n)])
    p = model.params
    A = features @ p["W_proj"] + p["b_proj"]
    x = p["W_embed"][full[:, :-1]]
    _, cache = lstm_attention_forward(x, A, p["Wx"], p["Wh"], p["Wattn"], p["b"])
    return logps, cache[6].transpose(1, 0, 2)                  # (N, T, R)


def check_attention_rows(captions, attention, model, features):
    """Weights sum to 1 where a word was generated and are 0 after the caption; they equal the layer's."""
    generated = captions != model._null
    np.testing.assert_allclose(attention.sum(axis=-1), generated.astype(float), rtol=1e-12, atol=1e-15)
    _, want = teacher_forced(model, features, captions)
    np.testing.assert_allclose(attention[generated], want[generated], rtol=1e-10, atol=1e-13)


def test_greedy_decoding_shapes_end_and_attention():
    rng = np.random.RandomState(6)
    model = make_model(seed=6, scale=2.0, end_bias=1.0)
    features = regions(rng, 12)
    captions, log_probs, attention = model.sample(features, max_length=7, return_log_probs=True,
                                                  return_attention=True)
    assert captions.shape == (12, 7) and captions.dtype == np.int32
    assert attention.shape == (12, 7, R) and attention.dtype == np.float64
    ends = captions == model._end
    assert ends.any() and (~ends.any(axis=1)).any()            # some captions end, some are capped
    for row in captions:                                        # <NULL> after <END>, never before
        if (row == model._end).any():
            e = int(np.argmax(row == model._end))
            assert (row[e + 1:] == model._null).all() and (row[:e] != model._null).all()
    assert not np.isin(captions, [model._start]).any()
    np.testing.assert_array_equal(model.sample(features, max_length=7), captions)   # opt-in changes nothing
    check_attention_rows(captions, attention, model, features)
    want_logp, _ = teacher_forced(model, features, captions)
    np.testing.assert_allclose(log_probs, want_logp, rtol=1e-10)


def test_sampling_returns_attention_too():
    rng = np.random.RandomState(7)
    model = make_model(seed=7, scale=2.0, end_bias=0.5)
    features = regions(rng, 6)
    captions, attention = model.sample(features, max_length=6, temperature=1.0, rng=3, return_attention=True)
    np.testing.assert_array_equal(captions, model.sample(features, max_length=6, temperature=1.0, rng=3))
    check_attention_rows(captions, attention, model, features)


def test_beam_search_with_attention():
    rng = np.random.RandomState(8)
    model = make_model(seed=8, scale=2.0, end_bias=0.5)
    features = regions(rng, 5)
    captions, log_probs, attention = model.sample(features, max_length=6, beam_size=4, n_best=3,
                                                  return_attention=True)
    assert captions.shape == (5, 3, 6) and log_probs.shape == (5, 3) and attention.shape == (5, 3, 6, R)
    np.testing.assert_array_equal(captions, model.sample(features, max_length=6, beam_size=4, n_best=3)[0])
    assert (np.diff(log_probs, axis=1) <= 1e-12).all()
    for j in range(3):
        check_attention_rows(captions[:, j], attention[:, j], model, features)
        np.testing.assert_allclose(log_probs[:, j], teacher_forced(model, features, captions[:, j])[0],
                                   rtol=1e-10)
    greedy, g_lp = model.sample(features, max_length=6, return_log_probs=True)
    best, b_lp, best_att = model.sample(features, max_length=6, beam_size=4, return_log_probs=True,
                                        return_attention=True)
    assert (b_lp >= g_lp - 1e-12).all()
    np.testing.assert_array_equal(best, captions[:, 0])
    np.testing.assert_array_equal(best_att, attention[:, 0])
    # The beam routine with one beam is greedy decoding, attention included.
    caps1, _, att1 = model._beam_search(model._decode_state(features), 6, 1, 0.0, 1, with_attention=True)
    _, g_att = model.sample(features, max_length=6, return_attention=True)
    np.testing.assert_array_equal(caps1[:, 0], greedy)
    np.testing.assert_allclose(att1[:, 0], g_att, rtol=0, atol=1e-15)


def test_caption_features_takes_one_image_or_a_batch():
    rng = np.random.RandomState(9)
    model = make_model(seed=9, scale=2.0, end_bias=1.0)
    features = regions(rng, 3)
    batch = model.caption_features(features, max_length=5)
    assert isinstance(batch, list) and len(batch) == 3
    assert model.caption_features(features[1], max_length=5) == batch[1]


# ----------------------------------------------------------------------------------------------------
# Files, devices, solver
# ----------------------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    rng = np.random.RandomState(10)
    model = make_model(seed=10, dtype=np.float32, scale=2.0, end_bias=0.5)
    path = model.save(str(tmp_path / "att.npz"))
    for loaded in (CaptioningRNN.load(path, word_to_idx=make_vocab()), CaptioningModel.load(path)):
        assert type(loaded) is CaptioningRNN and loaded.cell_type == "attention"
        assert loaded.get_config() == model.get_config()
        for k, v in model.params.items():
            assert loaded.params[k].dtype == v.dtype
            np.testing.assert_array_equal(loaded.params[k], v)
        features = regions(rng, 4, dtype=np.float32)
        for kwargs in ({}, {"beam_size": 3}):
            np.testing.assert_array_equal(loaded.sample(features, max_length=5, **kwargs),
                                          model.sample(features, max_length=5, **kwargs))
        for a, b in zip(loaded.sample(features, max_length=5, return_attention=True),
                        model.sample(features, max_length=5, return_attention=True)):
            np.testing.assert_array_equal(a, b)
    config = model.get_config()
    assert CaptioningModel.from_config(config).cell_type == "attention"
    params = dict(model.params)
    del params["Wattn"]
    model.params = params
    with pytest.raises(ValueError, match=r"missing \['Wattn'\]"):
        model.save(str(tmp_path / "bad.npz"))


def test_on_the_device_backends(device_backend):
    rng = np.random.RandomState(11)
    model = make_model(seed=11, scale=2.0, end_bias=0.5)
    features, caps = regions(rng, 4), make_captions(rng, 4)
    loss, grads = model.loss(features, caps)
    greedy, attention = model.sample(features, max_length=6, return_attention=True)
    beam = model.sample(features, max_length=6, beam_size=3, n_best=2)
    model.to("gpu")
    device_backend.check(model.params["Wattn"])
    d_loss, d_grads = model.loss(features, caps)
    assert float(d_loss) == pytest.approx(loss, rel=1e-12)
    for k, g in grads.items():
        device_backend.assert_close(d_grads[k], g, rtol=1e-10, atol=1e-12)
    d_greedy, d_attention = model.sample(device_backend.put(features), max_length=6, return_attention=True)
    assert type(d_greedy) is np.ndarray and type(d_attention) is np.ndarray
    np.testing.assert_array_equal(d_greedy, greedy)
    np.testing.assert_allclose(d_attention, attention, rtol=1e-10, atol=1e-13)
    d_beam = model.sample(features, max_length=6, beam_size=3, n_best=2)
    np.testing.assert_array_equal(d_beam[0], beam[0])


def region_data(seed=0, num_train=40, num_images=8, num_val_images=4, T=7):
    rng = np.random.RandomState(seed)
    vocab = make_vocab()
    return {
        "train_captions": make_captions(rng, num_train, T),
        "train_image_idxs": rng.randint(0, num_images, size=num_train).astype(np.int32),
        "train_features": regions(rng, num_images, dtype=np.float32),
        "train_urls": np.array([f"http://example.invalid/{i}.jpg" for i in range(num_images)]),
        "val_captions": make_captions(rng, num_val_images * 2, T),
        "val_image_idxs": np.repeat(np.arange(num_val_images), 2).astype(np.int32),
        "val_features": regions(rng, num_val_images, dtype=np.float32),
        "val_urls": np.array([f"http://example.invalid/v{i}.jpg" for i in range(num_val_images)]),
        "word_to_idx": vocab,
        "idx_to_word": {i: w for w, i in vocab.items()},
    }


def solver_for(data, seed, **kwargs):
    np.random.seed(seed)
    model = CaptioningRNN(data["word_to_idx"], input_dim=D, wordvec_dim=W, hidden_dim=5,
                          cell_type="attention")
    options = dict(update_rule="adam", optim_config={"learning_rate": 2e-2}, lr_decay=0.9, batch_size=10,
                   grad_clip=5.0, seed=7, verbose=False, num_val_images=4)
    options.update(kwargs)
    return CaptioningSolver(model, data, **options)


@pytest.mark.filterwarnings("ignore:.*same caption")   # a model this small often repeats itself
def test_solver_trains_checkpoints_and_resumes_bit_for_bit(tmp_path):
    data = region_data()
    full = solver_for(data, 0, num_epochs=4)
    full.train()
    assert full.loss_history[-1] < full.loss_history[0]
    name = str(tmp_path / "half")
    solver_for(data, 0, num_epochs=2, checkpoint_name=name).train()
    resumed = solver_for(data, 99, num_epochs=4, resume_from=name + ".npz")   # other weights: from the file
    assert resumed.iteration == 8
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.val_history == full.val_history
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[k], v)
    accuracy = full.check_accuracy(data["val_features"][data["val_image_idxs"]], data["val_captions"])
    assert 0.0 <= accuracy <= 1.0
