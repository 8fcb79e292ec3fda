"""Tests of CaptioningRNN: parameters, loss, gradients, decoding, save/load and argument checks.

The loss is compared with the course's published values and with a straightforward loop written here;
every parameter's gradient is checked against central differences (written here too) in float64 for
the RNN, LSTM and GRU. Decoding is checked against an independent step-by-step scorer: greedy and
sampled captions report the log-probability ``loss`` assigns them, beam search never scores below
greedy, equals exhaustive search on a tiny vocabulary, and returns unique sorted n-best lists.
A small model overfits 100 captions with the notebook's training settings.
"""
import itertools
import json
import os

import warnings

import numpy as np
import pytest

from cs231n.archive import ArchiveError, load_archive, save_archive
from cs231n.classifiers import CaptioningRNN
from cs231n.optim import adam

CELLS = ["rnn", "lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


# ----------------------------------------------------------------------------------------------------
# Independent helpers: a vocabulary, reference cells, a reference scorer and loss, central differences.
# ----------------------------------------------------------------------------------------------------
def make_vocab(num_words):
    """``<NULL>``, ``<START>``, ``<END>`` at 0, 1, 2, then words w0, w1, ...: V = num_words + 3."""
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2}
    for i in range(num_words):
        word_to_idx[f"w{i}"] = 3 + i
    return word_to_idx


def ref_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_cell(cell, p, x, h, c):
    """One step of the named cell for one example, from the equations: returns (h, c)."""
    H = h.shape[0]
    if cell == "rnn":
        return np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"]), c
    if cell == "lstm":
        a = x @ p["Wx"] + h @ p["Wh"] + p["b"]
        i, f, o = ref_sigmoid(a[:H]), ref_sigmoid(a[H:2 * H]), ref_sigmoid(a[2 * H:3 * H])
        g = np.tanh(a[3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c
    ax = x @ p["Wx"] + p["b"]
    ah = h @ p["Wh"] + p["bh"]
    r = ref_sigmoid(ax[:H] + ah[:H])
    z = ref_sigmoid(ax[H:2 * H] + ah[H:2 * H])
    n = np.tanh(ax[2 * H:] + r * ah[2 * H:])
    return (1 - z) * n + z * h, c


def ref_log_probs(cell, p, feature, inputs):
    """Log-softmax over the vocabulary after each input word, for one example: (len(inputs), V)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    h = np.asarray(feature, dtype=np.float64) @ p["W_proj"] + p["b_proj"]
    c = np.zeros_like(h)
    out = []
    for word in inputs:
        h, c = ref_cell(cell, p, p["W_embed"][word], h, c)
        s = h @ p["W_vocab"] + p["b_vocab"]
        m = s.max()
        out.append(s - m - np.log(np.sum(np.exp(s - m))))
    return np.array(out)


def ref_caption_log_prob(model, feature, row):
    """Model log-probability of a generated row (words up to and including <END>, no padding)."""
    words = []
    for w in row:
        words.append(int(w))
        if w == model._end:
            break
    assert model._null not in words, f"<NULL> inside a generated caption: {row}"
    lp = ref_log_probs(model.cell_type, model.params, feature, [model._start] + words[:-1])
    return float(sum(lp[t, w] for t, w in enumerate(words)))


def ref_loss(model, features, captions):
    """The captioning loss by a loop over examples and timesteps."""
    N, T = captions.shape
    total = 0.0
    for n in range(N):
        lp = ref_log_probs(model.cell_type, model.params, features[n], captions[n, :-1])
        for t in range(T - 1):
            target = captions[n, t + 1]
            if target != model._null:
                total -= lp[t, target]
    return total / N


def central_difference(f, x, h=1e-6):
    """Numerical gradient of the scalar f() with respect to the array x, which f reads; x is restored."""
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad


def rel_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def random_model(cell, num_words=9, D=7, W=6, H=5, seed=0, scale=0.5, dtype=np.float64, end_bias=0.0):
    """A model whose parameters are all random (biases too), so that every gradient is exercised."""
    np.random.seed(seed)
    model = CaptioningRNN(make_vocab(num_words), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                          dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for k, v in model.params.items():
        model.params[k] = (scale * rng.standard_normal(v.shape)).astype(dtype)
    model.params["b_vocab"][model._end] += end_bias
    return model


def random_captions(rng, N, T, V, null=0, start=1, end=2):
    """Rows <START> words <END> <NULL>...; lengths vary, some rows fill T without <END>."""
    caps = np.full((N, T), null, dtype=np.int32)
    caps[:, 0] = start
    for n in range(N):
        L = int(rng.integers(1, T))
        caps[n, 1:L + 1] = rng.integers(3, V, size=L)
        if L + 1 < T:
            caps[n, L + 1] = end
    return caps


# ----------------------------------------------------------------------------------------------------
# Construction
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_params_shapes_dtype_and_init(cell):
    word_to_idx = make_vocab(7)
    V, D, W, H = 10, 6, 5, 4
    g = GATES[cell]
    np.random.seed(3)
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell)
    shapes = {"W_proj": (D, H), "b_proj": (H,), "W_embed": (V, W), "Wx": (W, g * H), "Wh": (H, g * H),
              "b": (g * H,), "W_vocab": (H, V), "b_vocab": (V,)}
    if cell == "gru":
        shapes["bh"] = (3 * H,)
    assert {k: v.shape for k, v in model.params.items()} == shapes
    assert all(v.dtype == np.float32 for v in model.params.values())
    # Draws in cs231n's order, scaled by 1 / sqrt(fan_in), W_embed by 1 / 100; biases zero.
    np.random.seed(3)
    expected = {"W_embed": np.random.randn(V, W) / 100, "W_proj": np.random.randn(D, H) / np.sqrt(D),
                "Wx": np.random.randn(W, g * H) / np.sqrt(W), "Wh": np.random.randn(H, g * H) / np.sqrt(H),
                "W_vocab": np.random.randn(H, V) / np.sqrt(H)}
    for k, v in expected.items():
        np.testing.assert_array_equal(model.params[k], v.astype(np.float32))
    for k in ["b_proj", "b", "b_vocab"] + (["bh"] if cell == "gru" else []):
        assert not model.params[k].any()
    assert (model._null, model._start, model._end) == (0, 1, 2)
    assert model.idx_to_word[2] == "<END>" and model.idx_to_word[3] == "w0"


def test_constructor_refusals():
    with pytest.raises(ValueError, match="cell_type"):
        CaptioningRNN(make_vocab(3), cell_type="transformer")
    with pytest.raises(ValueError, match="<NULL>"):
        CaptioningRNN({"a": 0, "b": 1})
    with pytest.raises(ValueError, match="hidden_dim"):
        CaptioningRNN(make_vocab(3), hidden_dim=0)
    with pytest.raises(TypeError, match="dtype"):
        CaptioningRNN(make_vocab(3), dtype=np.int32)
    with pytest.raises(TypeError, match="word_to_idx"):
        CaptioningRNN([("<NULL>", 0)])


# ----------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, feature_range, expected", [
    ("rnn", (-1.5, 0.3), 9.83235591003),
    ("lstm", (-0.5, 1.7), 9.82445935443),
])
def test_loss_matches_course_values(cell, feature_range, expected):
    # The checks of the RNN_Captioning and LSTM_Captioning notebooks, with their published losses.
    N, D, W, H = 10, 20, 30, 40
    word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
    V = len(word_to_idx)
    T = 13
    # The notebooks' vocabulary numbers 'dog' 3 among 3 words: accepted without a word (the notebooks'
    # cells print what they always printed); training such a model is refused (test_cli_abuse).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                              dtype=np.float64)
    assert model.unusable_words == ["dog"]
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    features = np.linspace(*feature_range, num=N * D).reshape(N, D)
    captions = (np.arange(N * T, dtype=np.int32) % V).reshape(N, T)
    loss, grads = model.loss(features, captions)
    assert abs(loss - expected) < 1e-9
    assert set(grads) == set(model.params)


@pytest.mark.parametrize("cell", CELLS)
def test_loss_equals_reference_loop(cell):
    model = random_model(cell, seed=1)
    rng = np.random.default_rng(1)
    features = rng.standard_normal((4, 7))
    captions = random_captions(rng, 4, 6, model.vocab_size)
    captions[0, 2] = model._null  # a <NULL> target inside a row is masked too
    loss, _ = model.loss(features, captions)
    assert abs(loss - ref_loss(model, features, captions)) < 1e-10


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_of_every_parameter(cell):
    model = random_model(cell, seed=2)
    rng = np.random.default_rng(2)
    N, T = 3, 5
    features = rng.standard_normal((N, 7))
    captions = random_captions(rng, N, T, model.vocab_size)
    _, grads = model.loss(features, captions)
    assert set(grads) == set(model.params)
    for name in model.params:
        param = model.params[name]
        numeric = central_difference(lambda: model.loss(features, captions)[0], param)
        assert grads[name].shape == param.shape
        err = rel_error(grads[name], numeric)
        assert err < 5e-6, f"{cell} {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", CELLS)
def test_output_layer_on_counted_rows_equals_the_full_layer(cell, capsys):
    """On the CPU the loss computes scores only where the target is not <NULL>; verbose=True takes the
    full (N, T - 1, V) layer (it prints that array's shape). Same loss and gradients, also when the
    next batch has another number of counted rows (workspace buffers reused) or none at all."""
    model = random_model(cell, seed=5)
    rng = np.random.default_rng(5)
    batches = []
    for N, T in ((4, 7), (3, 7), (5, 4)):
        captions = random_captions(rng, N, T, model.vocab_size)
        batches.append((rng.standard_normal((N, 7)), captions))
    batches.append((batches[1][0], np.full_like(batches[1][1], model._null)))  # nothing counts
    batches[-1][1][:, 0] = model._start
    for features, captions in batches:
        loss, grads = model.loss(features, captions)
        full_loss, full_grads = model.loss(features, captions, verbose=True)
        assert "dx_flat" in capsys.readouterr().out
        assert abs(loss - full_loss) < 1e-12
        for name in grads:
            np.testing.assert_allclose(grads[name], full_grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    assert loss == 0 and not grads["W_vocab"].any()


def test_loss_float32_and_inputs_untouched():
    model = random_model("lstm", dtype=np.float32, seed=4)
    rng = np.random.default_rng(4)
    features = rng.standard_normal((3, 7))          # float64 features go into a float32 model
    captions = random_captions(rng, 3, 5, model.vocab_size)
    f0, c0 = features.copy(), captions.copy()
    loss, grads = model.loss(features, captions, verbose=False)
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert abs(float(loss) - ref_loss(model, features.astype(np.float32), captions)) < 1e-4
    np.testing.assert_array_equal(features, f0)
    np.testing.assert_array_equal(captions, c0)


# ----------------------------------------------------------------------------------------------------
# Greedy decoding and sampling
# ----------------------------------------------------------------------------------------------------
def check_rows(model, captions):
    """Generated rows: no <NULL>/<START> before the end; after <END> only <NULL>."""
    for row in captions:
        ends = np.flatnonzero(row == model._end)
        stop = ends[0] + 1 if ends.size else len(row)
        assert not np.isin(row[:stop], [model._null, model._start]).any(), row
        assert (row[stop:] == model._null).all(), row


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_picks_the_argmax_and_reports_the_loss_log_prob(cell):
    model = random_model(cell, num_words=12, seed=5, scale=0.8, end_bias=1.0)
    features = np.random.default_rng(5).standard_normal((6, 7))
    captions, log_probs = model.sample(features, max_length=8, return_log_probs=True)
    assert captions.shape == (6, 8) and captions.dtype == np.int32 and log_probs.shape == (6,)
    np.testing.assert_array_equal(model.sample(features, max_length=8), captions)
    check_rows(model, captions)
    for n, row in enumerate(captions):
        # Every word is the most likely allowed one given the words before it.
        k = int(np.argmax(row == model._end)) + 1 if (row == model._end).any() else len(row)
        lp = ref_log_probs(cell, model.params, features[n], [model._start] + list(row[:k - 1]))
        lp[:, [model._null, model._start]] = -np.inf
        np.testing.assert_array_equal(np.argmax(lp, axis=1), row[:k])
        assert abs(log_probs[n] - ref_caption_log_prob(model, features[n], row)) < 1e-10
        # ... and equals minus the loss of that caption (loss divides by N = 1).
        caption = np.concatenate([[model._start], row[:k]])[None, :]
        assert abs(log_probs[n] + model.loss(features[n:n + 1], caption)[0]) < 1e-10


def test_sampling_stops_at_end():
    # A hand-built RNN that walks <START> -> w0 -> w1 -> w2 -> <END> whatever the image.
    word_to_idx = make_vocab(5)
    V = len(word_to_idx)
    model = CaptioningRNN(word_to_idx, input_dim=3, wordvec_dim=V, hidden_dim=V, dtype=np.float64)
    p = model.params
    p["W_embed"][:] = 3 * np.eye(V)
    p["Wx"][:] = np.eye(V)
    p["Wh"][:] = 0
    p["W_vocab"][:] = 0
    for prev, nxt in [(1, 3), (3, 4), (4, 5), (5, 2)]:
        p["W_vocab"][prev, nxt] = 10.0
    features = np.random.default_rng(6).standard_normal((4, 3))
    expected = np.array([3, 4, 5, 2, 0, 0, 0, 0, 0, 0], dtype=np.int32)
    for kwargs in [{}, {"beam_size": 3}, {"temperature": 0.05, "rng": 0}]:
        captions = model.sample(features, max_length=10, **kwargs)
        np.testing.assert_array_equal(captions, np.tile(expected, (4, 1)))
    assert model.caption_features(features) == ["w0 w1 w2"] * 4
    assert model.caption_features(features[0]) == "w0 w1 w2"
    assert model.sample(features, max_length=2).tolist() == [[3, 4]] * 4


def test_rows_after_end_are_null_with_mixed_lengths():
    model = random_model("gru", num_words=8, seed=7, scale=1.0, end_bias=1.5)
    features = np.random.default_rng(7).standard_normal((40, 7))
    for kwargs in [{}, {"beam_size": 4}, {"temperature": 1.0, "rng": 7}]:
        captions = model.sample(features, max_length=12, **kwargs)
        check_rows(model, captions)
        lengths = [(row == model._end).argmax() for row in captions if (row == model._end).any()]
        assert len(set(lengths)) > 2  # captions of several lengths in one batch


@pytest.mark.parametrize("cell", CELLS)
def test_temperature_sampling(cell):
    model = random_model(cell, num_words=10, seed=8, scale=0.8, end_bias=0.5)
    features = np.random.default_rng(8).standard_normal((20, 7))
    a, lp_a = model.sample(features, max_length=10, temperature=0.7, rng=np.random.default_rng(123),
                           return_log_probs=True)
    b = model.sample(features, max_length=10, temperature=0.7, rng=123)
    c = model.sample(features, max_length=10, temperature=0.7, rng=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    check_rows(model, a)
    for n in range(20):
        assert abs(lp_a[n] - ref_caption_log_prob(model, features[n], a[n])) < 1e-10
    np.testing.assert_array_equal(model.sample(features, max_length=10, temperature=0, rng=1),
                                  model.sample(features, max_length=10))


def test_temperature_sampling_follows_the_tempered_distribution():
    model = random_model("lstm", num_words=5, seed=9, scale=1.0)
    feature = np.random.default_rng(9).standard_normal(7)
    M, temp = 40000, 0.6
    first = model.sample(np.tile(feature, (M, 1)), max_length=1, temperature=temp, rng=2024)[:, 0]
    lp = ref_log_probs("lstm", model.params, feature, [model._start])[0]
    z = lp / temp
    z[[model._null, model._start]] = -np.inf
    prob = np.exp(z - z.max())
    prob /= prob.sum()
    freq = np.bincount(first, minlength=model.vocab_size) / M
    sigma = np.sqrt(prob * (1 - prob) / M)
    assert np.all(np.abs(freq - prob) <= 5 * sigma + 1e-12), (freq, prob)


# ----------------------------------------------------------------------------------------------------
# Beam search
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_beam_never_below_greedy_and_reports_true_log_probs(cell):
    model = random_model(cell, num_words=15, seed=10, scale=1.0, end_bias=0.5)
    features = np.random.default_rng(10).standard_normal((30, 7))
    greedy, lp_greedy = model.sample(features, max_length=7, return_log_probs=True)
    for k in (2, 3, 5):
        beam, lp_beam = model.sample(features, max_length=7, beam_size=k, return_log_probs=True)
        check_rows(model, beam)
        assert np.all(lp_beam >= lp_greedy - 1e-12)
        for n in range(0, 30, 3):
            assert abs(lp_beam[n] - ref_caption_log_prob(model, features[n], beam[n])) < 1e-10
    assert np.any(lp_beam > lp_greedy + 1e-6)  # the search does find better captions
    # Each image is decoded on its own: the batch does not change the answer.
    one = np.stack([model.sample(features[n:n + 1], max_length=7, beam_size=5)[0] for n in range(30)])
    np.testing.assert_array_equal(one, beam)


@pytest.mark.parametrize("cell", CELLS)
def test_beam_size_one_is_greedy(cell):
    model = random_model(cell, num_words=10, seed=11, scale=1.0, end_bias=0.5)
    features = np.random.default_rng(11).standard_normal((15, 7))
    greedy, lp = model.sample(features, max_length=9, return_log_probs=True)
    # The beam-search routine itself with one beam (sample() takes a shortcut for beam_size=1).
    caps, lps, _ = model._beam_search(model._decode_state(features), 9, 1, 0.0, 1)
    np.testing.assert_array_equal(caps[:, 0], greedy)
    np.testing.assert_allclose(lps[:, 0], lp, rtol=0, atol=1e-10)


def exhaustive(model, feature, max_length, alpha):
    """Every caption of at most max_length words, <END> last or capped, with (rank, log_prob, row)."""
    words = [w for w in range(model.vocab_size) if w not in (model._null, model._start, model._end)]
    out = []
    for L in range(1, max_length + 1):
        out += [list(prefix) + [model._end] for prefix in itertools.product(words, repeat=L - 1)]
    out += [list(seq) for seq in itertools.product(words, repeat=max_length)]
    result = []
    for seq in out:
        lp = ref_caption_log_prob(model, feature, seq)
        row = np.full(max_length, model._null)
        row[:len(seq)] = seq
        result.append((lp / len(seq) ** alpha, lp, tuple(row)))
    result.sort(key=lambda r: -r[0])
    return result


@pytest.mark.parametrize("cell, alpha", [("rnn", 0.0), ("lstm", 0.0), ("gru", 0.0), ("lstm", 0.7),
                                         ("rnn", 1.0)])
def test_beam_equals_exhaustive_search_on_a_tiny_vocabulary(cell, alpha):
    # V = 6: <NULL>, <START>, <END> and three words. With 3 words and 4 steps there are at most
    # 27 + 9 + 3 + 1 = 40 hypotheses before the last step, so a beam of 40 loses nothing.
    model = random_model(cell, num_words=3, seed=12, scale=1.2, end_bias=0.3)
    features = np.random.default_rng(12).standard_normal((3, 7))
    T, k, n_best = 4, 40, 12
    caps, lps = model.sample(features, max_length=T, beam_size=k, n_best=n_best, length_penalty=alpha)
    assert caps.shape == (3, n_best, T) and lps.shape == (3, n_best)
    for n in range(3):
        best = exhaustive(model, features[n], T, alpha)
        assert len(best) == 3 ** 4 + 3 ** 3 + 3 ** 2 + 3 + 1
        for j in range(n_best):
            assert tuple(caps[n, j]) == best[j][2], (n, j)
            assert abs(lps[n, j] - best[j][1]) < 1e-10
        top1 = model.sample(features[n:n + 1], max_length=T, beam_size=k, length_penalty=alpha)[0]
        assert tuple(top1) == best[0][2]


def test_n_best_unique_sorted_and_padded():
    model = random_model("lstm", num_words=20, seed=13, scale=1.0, end_bias=0.5)
    features = np.random.default_rng(13).standard_normal((10, 7))
    caps, lps = model.sample(features, max_length=8, beam_size=6, n_best=6)
    assert caps.shape == (10, 6, 8) and caps.dtype == np.int32
    assert np.all(np.diff(lps, axis=1) <= 0)
    for n in range(10):
        assert len({tuple(r) for r in caps[n]}) == 6
        for j in range(6):
            assert abs(lps[n, j] - ref_caption_log_prob(model, features[n], caps[n, j])) < 1e-10
    best, lp_best = model.sample(features, max_length=8, beam_size=6, return_log_probs=True)
    np.testing.assert_array_equal(best, caps[:, 0])
    np.testing.assert_array_equal(lp_best, lps[:, 0])
    # Only 2 one-word captions exist: the rest of a 5-best list is <NULL> with log-prob -inf.
    tiny = random_model("rnn", num_words=1, seed=14)
    caps, lps = tiny.sample(features, max_length=1, beam_size=5, n_best=5)
    assert {tuple(sorted(c[:2, 0])) for c in caps} == {(2, 3)}
    assert np.isfinite(lps[:, :2]).all() and np.isneginf(lps[:, 2:]).all() and (caps[:, 2:] == 0).all()


# ----------------------------------------------------------------------------------------------------
# Overfitting a small dataset with the notebook's settings
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, limit", [("rnn", 0.1), ("lstm", 0.5)])
def test_overfits_100_captions(cell, limit):
    # Notebook settings: adam, learning rate 5e-3, lr decay 0.995 per epoch, batch 25, 50 epochs.
    # The sizes are smaller than the notebook's (W 256, H 512, D 512, V 1004) to keep this fast.
    rng = np.random.default_rng(0)
    num_train, T, V, D, W, H = 100, 17, 200, 128, 64, 256
    captions = np.zeros((num_train, T), dtype=np.int32)
    captions[:, 0] = 1
    for n in range(num_train):
        L = int(rng.integers(3, 9))
        captions[n, 1:L + 1] = rng.integers(3, V, size=L)
        captions[n, L + 1] = 2
    features = rng.standard_normal((num_train, D)).astype(np.float32)
    np.random.seed(0)
    model = CaptioningRNN(make_vocab(V - 3), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell)
    configs = {k: {"learning_rate": 5e-3} for k in model.params}
    first = None
    for epoch in range(50):
        for _ in range(num_train // 25):
            batch = rng.integers(0, num_train, size=25)
            loss, grads = model.loss(features[batch], captions[batch])
            first = float(loss) if first is None else first
            for k in model.params:
                model.params[k], configs[k] = adam(model.params[k], grads[k], configs[k])
        for c in configs.values():
            c["learning_rate"] *= 0.995
    final = float(model.loss(features, captions)[0])
    assert first > 30 and final < limit, (first, final)
    # The trained model reproduces its training captions.
    np.testing.assert_array_equal(model.sample(features[:10], max_length=T - 1), captions[:10, 1:])


# ----------------------------------------------------------------------------------------------------
# Configuration, save and load
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_config_round_trip(cell):
    model = CaptioningRNN(make_vocab(4), input_dim=5, wordvec_dim=3, hidden_dim=2, cell_type=cell,
                          dtype=np.float64)
    config = json.loads(json.dumps(model.get_config()))
    assert config == {"cell_type": cell, "input_dim": 5, "wordvec_dim": 3, "hidden_dim": 2,
                      "dtype": "float64", "word_to_idx": make_vocab(4)}
    other = CaptioningRNN.from_config(config)
    assert other.get_config() == config
    assert {k: (v.shape, v.dtype) for k, v in other.params.items()} == \
        {k: (v.shape, v.dtype) for k, v in model.params.items()}
    with pytest.raises(ValueError, match="unexpected keys"):
        CaptioningRNN.from_config(dict(config, extra=1))


@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip(tmp_path, cell):
    model = random_model(cell, num_words=10, seed=15, dtype=np.float32, end_bias=0.5)
    path = str(tmp_path / "model.npz")
    assert model.save(path) == path
    state = np.random.get_state()
    loaded = CaptioningRNN.load(path, word_to_idx=make_vocab(10))
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # loading draws no random numbers
    assert loaded.get_config() == model.get_config()
    assert set(loaded.params) == set(model.params)
    for k, v in model.params.items():
        assert loaded.params[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.params[k], v)
    features = np.random.default_rng(15).standard_normal((5, 7))
    for kwargs in [{}, {"beam_size": 3}, {"temperature": 1.0, "rng": 5}]:
        np.testing.assert_array_equal(loaded.sample(features, **kwargs), model.sample(features, **kwargs))
    # The file holds no pickled objects.
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def test_load_refusals(tmp_path):
    model = random_model("lstm", num_words=4, seed=16, dtype=np.float32)
    good = str(tmp_path / "good.npz")
    model.save(good)
    arrays, meta = load_archive(good)

    def write(name, arrays, meta):
        path = str(tmp_path / name)
        save_archive(path, arrays, meta)
        return path

    cases = [
        (write("fmt.npz", arrays, dict(meta, format="something-else")), "not a captioning model"),
        (write("ver.npz", arrays, dict(meta, version=99)), "version"),
        (write("missing.npz", {k: v for k, v in arrays.items() if k != "Wh"}, meta), r"missing \['Wh'\]"),
        (write("extra.npz", dict(arrays, bh=np.zeros(16, np.float32)), meta), r"unexpected \['bh'\]"),
        (write("shape.npz", dict(arrays, Wx=np.zeros((6, 5), np.float32)), meta), "Wx.*shape"),
        (write("dtype.npz", dict(arrays, b=arrays["b"].astype(np.float64)), meta), "dtype"),
        (write("cell.npz", arrays, dict(meta, config=dict(meta["config"], cell_type="gru"))), "bh"),
        (write("cfg.npz", arrays, dict(meta, config=dict(meta["config"], cell_type="x"))), "configuration"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            CaptioningRNN.load(path)
    with pytest.raises(ValueError, match="vocabulary"):
        CaptioningRNN.load(good, word_to_idx=make_vocab(5))
    swapped = make_vocab(4)
    swapped["w0"], swapped["w1"] = swapped["w1"], swapped["w0"]
    with pytest.raises(ValueError, match="different indices"):
        CaptioningRNN.load(good, word_to_idx=swapped)
    # A truncated file is an ArchiveError (a ValueError).
    with open(good, "rb") as f:
        data = f.read()
    cut = str(tmp_path / "cut.npz")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ArchiveError):
        CaptioningRNN.load(cut)
    with pytest.raises(FileNotFoundError):
        CaptioningRNN.load(str(tmp_path / "absent.npz"))
    # A model whose parameters no longer fit its configuration is not saved.
    model.params["Wh"] = model.params["Wh"][:, :4]
    with pytest.raises(ValueError, match="Wh"):
        model.save(str(tmp_path / "bad.npz"))
    assert not os.path.exists(tmp_path / "bad.npz")


def test_a_new_kind_registers_its_format_without_editing_the_base(tmp_path):
    import ast
    import inspect

    from cs231n.classifiers import captioning
    from cs231n.classifiers.captioning import CaptioningModel, model_formats

    # The base imports none of its subclasses' modules (no import circle).
    tree = ast.parse(inspect.getsource(captioning))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"cs231n.classifiers.rnn", "cs231n.classifiers.transformer",
                           "cs231n.classifiers"}

    class OtherKind(CaptioningRNN):
        ARCHIVE_FORMAT = "test-other-kind"

    try:
        assert "test-other-kind" in model_formats()
        model = random_model("lstm", num_words=4, seed=3, dtype=np.float32)
        other = OtherKind.__new__(OtherKind)
        other.__dict__.update(model.__dict__)
        path = other.save(str(tmp_path / "other.npz"))
        loaded = CaptioningModel.load(path)
        assert type(loaded) is OtherKind
        with pytest.raises(ValueError, match="holds a OtherKind"):
            CaptioningRNN.load(path)
    finally:
        del captioning._FORMATS["test-other-kind"]
    assert isinstance(CaptioningModel.load(model.save(str(tmp_path / "m.npz"))), CaptioningRNN)


# ----------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------
def test_error_paths():
    model = random_model("rnn", num_words=5, seed=17)
    V = model.vocab_size
    features = np.zeros((2, 7))
    captions = np.array([[1, 3, 4, 2], [1, 5, 2, 0]])
    with pytest.raises(ValueError, match=r"features.*\(N, D\) = \(2, 7\), got \(2, 8\)"):
        model.loss(np.zeros((2, 8)), captions)
    with pytest.raises(ValueError, match="features"):
        model.sample(np.zeros(7))
    with pytest.raises(ValueError, match="features"):
        model.caption_features(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="features"):
        model.sample(np.array([["a"] * 7]))
    with pytest.raises(ValueError, match=f"captions holds index {V}"):
        model.loss(features, np.array([[1, 3, V, 2], [1, 2, 0, 0]]))
    with pytest.raises(ValueError, match="captions holds index -1"):
        model.loss(features, np.array([[1, 3, -1, 2], [1, 2, 0, 0]]))
    with pytest.raises(TypeError, match="captions"):
        model.loss(features, captions.astype(np.float64))
    with pytest.raises(ValueError, match="captions"):
        model.loss(features, captions[:, :1])
    with pytest.raises(ValueError, match="captions"):
        model.loss(features, captions[:1])
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.loss(features, captions, verbos=True)
    for kwargs, message in [({"max_length": 0}, "max_length"), ({"beam_size": 0}, "beam_size"),
                            ({"beam_size": 1.5}, "beam_size"), ({"beam_size": 2, "n_best": 3}, "n_best"),
                            ({"temperature": -1.0}, "temperature"),
                            ({"length_penalty": -0.5}, "length_penalty"),
                            ({"temperature": 1.0, "beam_size": 2}, "cannot be combined")]:
        with pytest.raises(ValueError, match=message):
            model.sample(features, **kwargs)
    with pytest.raises(TypeError, match="rng"):
        model.sample(features, temperature=1.0, rng="seed")
    no_start = CaptioningRNN({"<NULL>": 0, "<END>": 1, "a": 2}, input_dim=7, wordvec_dim=3, hidden_dim=4)
    with pytest.raises(ValueError, match="<START>"):
        no_start.sample(features)
    assert model.sample(np.zeros((0, 7)), max_length=3).shape == (0, 3)
