"""The Transformer with an n-gram term (``ngram_n``): gradients, the term itself, files, selection, CLI.

The hybrid's logit is the Transformer's plus ``ngram_scale * X W_ngram``; its gradients (the
Transformer's and the n-gram weights', with the L2 term) are checked in float64 against central
differences, and the term against a dense feature matrix built here from the n-gram sets.
"""
import json

import numpy as np
import pytest

from cola_fixtures import WORDS, make_split, word_to_ix, write_cola_dir
from cs231n.classifiers.classification_transformer import ClassificationTransformer
from cs231n.classifiers.ngram import NgramIndex
from cs231n.classifiers.sentence import load_sentence_classifier

SMALL = dict(hidden_dim=4, num_heads=2, dim_feedforward=6, dim_k=2, dim_v=3, dim_q=2, max_length=10)


def _hybrid(dtype=np.float64, **options):
    kw = dict(SMALL, pad_mask=True, readout="mean", ngram_n=2, ngram_reg=0.3, ngram_scale=2.5)
    kw.update(options)
    return ClassificationTransformer(word_to_ix(), dtype=dtype, seed=1, **kw)


def test_gradients_numerically(num_grad, relerr):
    model = _hybrid(dropout=0.2)
    train, _ = make_split(12, 3)
    assert model.fit_ngrams(train) == model.params["W_ngram"].shape[0] > 0
    rng = np.random.default_rng(0)
    for name in model.params:  # the n-gram weights start at 0 and LayerNorm at 1/0: move them all
        model.params[name] += 0.1 * rng.standard_normal(model.params[name].shape)
    inputs, labels = make_split(4, 5)
    weights = np.array([0.5, 2.0, 1.0, 1.5])

    def loss(_):
        model.rng = np.random.default_rng(7)  # the same dropout masks for every evaluation
        return model.loss(inputs, labels, weights)[0]

    model.rng = np.random.default_rng(7)
    _, grads = model.loss(inputs, labels, weights)
    assert set(grads) == set(model.params)
    for name, w in model.params.items():
        numeric = num_grad(loss, w, 1.0)
        if name.endswith("_bk"):  # softmax ignores the key bias: its gradient is exactly 0
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(numeric).max() < 1e-8
            continue
        assert relerr(grads[name], numeric) < 1e-6, name


def _dense_ngrams(rows, n):
    """Per row, the set of its word 1..n-grams of <s> words </s> (CLS and PAD left out), as tuples."""
    cls, pad = WORDS.index("CLS"), WORDS.index("PAD")
    out = []
    for row in rows:
        toks = ["<s>"] + [int(t) for t in row if t not in (cls, pad)] + ["</s>"]
        out.append({tuple(toks[i:i + k]) for k in range(1, n + 1) for i in range(len(toks) - k + 1)})
    return out


def test_the_ngram_term_is_scale_times_normalised_features_times_weights():
    train, _ = make_split(15, 3)
    other, _ = make_split(6, 4)
    model = _hybrid()
    model.fit_ngrams(train)
    base = model.scores(other).copy()
    # every n-gram of train gets a weight (its own random number), read back through a dense matrix
    vocab = sorted(set().union(*_dense_ngrams(train, 2)), key=str)
    assert len(vocab) == model.params["W_ngram"].shape[0]
    rng = np.random.default_rng(2)
    by_gram = set(vocab)
    sets = _dense_ngrams(other, 2)
    # the index itself is tested in test_ngram_classifier; here the term on top of its 0/1 features
    W = rng.standard_normal(model.params["W_ngram"].shape)
    model.params["W_ngram"] = W.copy()
    X = model.ngram_index.transform(other, normalize=False).toarray()      # (N, F), 0/1
    known = np.array([sum(g in by_gram for g in s) for s in sets])         # n-grams of the row seen in train
    np.testing.assert_array_equal(X.sum(axis=1), known)
    expected = base + 2.5 * (X @ W[:, 0]) / np.sqrt(np.maximum(known, 1))
    np.testing.assert_allclose(model.scores(other), expected, rtol=1e-10, atol=1e-12)


def test_without_ngram_n_nothing_changes(tmp_path):
    plain = ClassificationTransformer(word_to_ix(), seed=3, **SMALL)
    assert "W_ngram" not in plain.params and "ngram_n" not in plain.get_config()
    inputs, labels = make_split(5, 1)
    off = ClassificationTransformer(word_to_ix(), seed=3, ngram_n=0, ngram_scale=9.0, **SMALL)
    np.testing.assert_array_equal(plain.loss(inputs, labels)[0], off.loss(inputs, labels)[0])


def test_saved_and_loaded_with_its_ngrams(tmp_path):
    model = _hybrid(dtype=np.float32)
    train, labels = make_split(20, 3)
    model.fit_ngrams(train, min_count=2)
    model.params["W_ngram"] += np.float32(0.5)
    path = model.save(tmp_path / "m.npz")
    loaded = load_sentence_classifier(path)
    assert loaded.ngram_n == 2 and loaded.ngram_scale == 2.5 and loaded.ngram_reg == 0.3
    np.testing.assert_array_equal(loaded.ngram_index.keys, model.ngram_index.keys)
    np.testing.assert_array_equal(loaded.scores(train), model.scores(train))


def test_errors():
    with pytest.raises(ValueError, match="ngram_n"):
        ClassificationTransformer(word_to_ix(), ngram_n=-1, **SMALL)
    with pytest.raises(ValueError, match="ngram_scale"):
        ClassificationTransformer(word_to_ix(), ngram_n=2, ngram_scale=float("nan"), **SMALL)
    with pytest.raises(ValueError, match="ngram_reg"):
        ClassificationTransformer(word_to_ix(), ngram_n=2, ngram_reg=-1, **SMALL)
    with pytest.raises(ValueError, match="ngram_n is 0"):
        ClassificationTransformer(word_to_ix(), ngrams=[1, 2], **SMALL)
    with pytest.raises(ValueError, match="no n-gram term"):
        ClassificationTransformer(word_to_ix(), **SMALL).fit_ngrams(make_split(3, 0)[0])


def test_selection_fits_the_ngrams_on_the_fitting_rows_and_learns(tmp_path):
    from cs231n.cola_selection import holdout_split, select_on_holdout
    from cs231n.cola_utils import load_cola_data

    data = load_cola_data(write_cola_dir(tmp_path / "d", num_train=200, num_val=20))
    opts = dict(hidden_dim=8, dim_feedforward=8, dim_k=4, dim_v=4, dim_q=4, ngram_n=2, ngram_scale=10.0)
    result = select_on_holdout("transformer", data, verbose=False, epochs=6, lr=5e-3, model_options=opts)
    fit_ids, _ = holdout_split(200, 0.1, 0)
    w = data["word_to_ix"]
    expected = NgramIndex.fit(data["train_inxs"][fit_ids], len(w), 2, (w["CLS"], w["PAD"]))
    np.testing.assert_array_equal(result["model"].ngram_index.keys, expected.keys)
    assert result["holdout_mcc"] > 0.5  # the label is 'w1 occurs': a unigram the term learns at once


def test_classify_train_ngram_features_switch(tmp_path):
    from cs231n.cli import main

    folder = write_cola_dir(tmp_path / "d", num_train=60, num_val=20)
    out = tmp_path / "run"
    assert main(["classify-train", "--data", str(folder), "--ngram-features", "2", "--epochs", "2", "--quiet",
                 "--option", "hidden_dim=8", "--option", "dim_feedforward=8", "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["model_config"]["ngram_n"] == 2
    assert load_sentence_classifier(out / "model.npz").params["W_ngram"].shape[0] > 0


def test_on_backend_matches_numpy(backend):
    """On a device the Transformer computes there and the n-gram term on the host (a copy of the rows
    and of the term each way); loss, gradients (W_ngram's too) and scores equal the host model's."""
    model = _hybrid()
    train, _ = make_split(15, 3)
    model.fit_ngrams(train)
    model.params["W_ngram"] += np.random.default_rng(0).standard_normal(model.params["W_ngram"].shape)
    inputs, labels = make_split(5, 8)
    loss, grads = model.loss(inputs, labels)
    scores = model.scores(inputs)
    model.to(backend.device)
    inputs_b, labels_b = backend.put([inputs, labels])
    loss_b, grads_b = model.loss(inputs_b, labels_b)
    assert float(backend.get(loss_b) if not isinstance(loss_b, float) else loss_b) == pytest.approx(loss, rel=1e-12)
    assert set(grads_b) == set(grads)
    for name in grads:
        np.testing.assert_allclose(backend.get(grads_b[name]), grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(backend.get(model.scores(inputs_b)), scores, rtol=1e-12)
    model.fit_ngrams(backend.put(train))  # a refit on the device keeps W_ngram there
    assert type(model.params["W_ngram"]) is type(model.params["W_final"])
