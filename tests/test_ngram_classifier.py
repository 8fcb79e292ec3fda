"""Tests of the word n-gram logistic regression: the sparse index against brute-force n-gram sets, the
sparse products against dense ones, gradients against central differences, fitting, files.

The brute force here lists each sentence's n-grams as Python tuples of words with '<s>' and '</s>';
it compares with the index through quantities that do not depend on the order of the features (the
number of shared n-grams of two sentences, X X^T), so it does not repeat the index's key arithmetic.
"""
import numpy as np
import pytest

from cola_fixtures import WORDS, make_split, word_to_ix
from cs231n.classifiers.ngram import NgramClassifier, NgramIndex
from cs231n.classifiers.sentence import load_sentence_classifier
from cs231n.metrics import matthews_corrcoef


def _ngram_sets(inputs, max_n=3):
    sets = []
    for row in inputs:
        words = ["<s>"] + [WORDS[i] for i in row if WORDS[i] not in ("CLS", "PAD")] + ["</s>"]
        sets.append({tuple(words[i:i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1)})
    return sets


def _index(inputs, min_count=1, max_n=3):
    w = word_to_ix()
    return NgramIndex.fit(inputs, len(WORDS), max_n, (w["CLS"], w["PAD"]), min_count)


@pytest.mark.parametrize("min_count", [1, 2])
def test_index_counts_against_brute_force(min_count):
    train, _ = make_split(12, 0)
    other, _ = make_split(5, 1)
    sets = _ngram_sets(train)
    rows_with = {}
    for s in sets:
        for g in s:
            rows_with[g] = rows_with.get(g, 0) + 1
    known = {g for g, c in rows_with.items() if c >= min_count}
    index = _index(train, min_count)
    assert index.num_features == len(known)
    X = index.transform(train).toarray()
    Y = index.transform(other).toarray()
    other_sets = _ngram_sets(other)
    for i, si in enumerate(sets):
        assert X[i].sum() == len(si & known)
        for j, sj in enumerate(sets):
            assert X[i] @ X[j] == len(si & sj & known)
        for j, sj in enumerate(other_sets):  # n-grams never seen in training are dropped
            assert X[i] @ Y[j] == len(si & sj & known)
    assert set(np.unique(X)) <= {0.0, 1.0}  # each distinct n-gram once, however often it occurs


def test_normalized_rows_and_sparse_products():
    train, _ = make_split(10, 0)
    index = _index(train)
    S = index.transform(train, normalize=True)
    X = S.toarray()
    nnz = (X > 0).sum(axis=1)
    np.testing.assert_allclose((X ** 2).sum(axis=1), np.ones(10))
    np.testing.assert_allclose(X[X > 0], np.repeat(1 / np.sqrt(nnz), nnz))
    rng = np.random.default_rng(0)
    w, d = rng.standard_normal(index.num_features), rng.standard_normal(10)
    np.testing.assert_allclose(S.dot(w), X @ w)
    np.testing.assert_allclose(S.tdot(d), X.T @ d)


@pytest.mark.parametrize("normalize", [False, True])
def test_gradients_numerically(normalize, num_grad, relerr):
    train, labels = make_split(8, 3)
    model = NgramClassifier(word_to_ix(), max_length=10, reg=0.1, normalize=normalize, dtype=np.float64)
    model.fit(train, labels, iterations=1)  # builds the index
    rng = np.random.default_rng(1)
    for name in model.params:
        model.params[name] = rng.standard_normal(model.params[name].shape)
    inputs, labels = make_split(6, 4)
    weights = rng.random(6) + 0.5
    _, grads = model.loss(inputs, labels, weights)
    for name, w in model.params.items():
        numeric = num_grad(lambda _: model.loss(inputs, labels, weights)[0], w, 1.0)
        assert relerr(grads[name], numeric) < 1e-7, name


def test_fit_learns_the_fixture_task_and_round_trips(tmp_path):
    train, labels = make_split(200, 0)
    test, test_labels = make_split(100, 1)
    model = NgramClassifier(word_to_ix(), max_length=10, reg=1e-3, normalize=False)
    history = model.fit(train, labels, iterations=200)
    assert history[-1] < 0.5 * history[0]
    assert matthews_corrcoef(test_labels, model.predict(test)) > 0.9
    loaded = load_sentence_classifier(model.save(tmp_path / "m.npz"))
    assert isinstance(loaded, NgramClassifier)
    np.testing.assert_array_equal(loaded.scores(test), model.scores(test))


def test_bad_arguments():
    with pytest.raises(ValueError, match="reg"):
        NgramClassifier(word_to_ix(), reg=-1)
    with pytest.raises(ValueError, match="ngrams"):
        NgramClassifier(word_to_ix(), ngrams=[3, 2])
    train, labels = make_split(10, 0)
    with pytest.raises(ValueError, match="class_weight"):
        NgramClassifier(word_to_ix(), max_length=10).fit(train, labels, class_weight="yes")
