"""Tests of sentence classification: accuracy/MCC, the BCE loss, the baselines, the solver, the command.

Expected values are computed here independently: MCC from hand-worked confusion matrices and from the
Pearson correlation of the two 0/1 vectors (which MCC equals), the loss from probabilities with
``np.log``, gradients by central differences (conftest's ``num_grad``), counts by Python loops.
"""
import json
import math

import numpy as np
import pytest

from cola_fixtures import WORDS, make_split, word_to_ix, write_cola_dir
from cs231n.classification_solver import ClassificationSolver
from cs231n.cola_models import baseline_table, format_table, majority_scores
from cs231n.classifiers.sentence import (BagOfWordsClassifier, LSTMClassifier,
                                         load_sentence_classifier)
from cs231n.cli import main
from cs231n.cola_utils import load_cola_data
from cs231n.layers import sigmoid_cross_entropy_loss
from cs231n.metrics import accuracy, binary_confusion_matrix, matthews_corrcoef
from cs231n.solver import TrainingDivergedError


# ---------------------------------------------------------------------------------------------- metrics

def test_mcc_hand_worked():
    # TP=3, TN=2, FP=1, FN=2: (3*2 - 1*2) / sqrt(4 * 5 * 3 * 4) = 4 / sqrt(240)
    y_true = [1, 1, 1, 1, 1, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 0, 0, 0, 1]
    assert binary_confusion_matrix(y_true, y_pred).tolist() == [[2, 1], [2, 3]]
    assert matthews_corrcoef(y_true, y_pred) == pytest.approx(4 / math.sqrt(240), abs=1e-15)
    assert accuracy(y_true, y_pred) == 5 / 8
    assert matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    # one class predicted (the majority baseline) or present: defined as 0
    assert matthews_corrcoef([0, 1, 1, 1], [1, 1, 1, 1]) == 0.0
    assert matthews_corrcoef([1, 1, 1], [0, 1, 0]) == 0.0


def test_mcc_is_the_pearson_correlation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.7, y, 1 - y)
        if y.std() == 0 or p.std() == 0:
            continue
        assert matthews_corrcoef(y, p) == pytest.approx(np.corrcoef(y, p)[0, 1], abs=1e-12)


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 1], [0, 1, 1], "y_true has 2 labels but y_pred has 3"),
    ([0, 2], [0, 1], "y_true must hold only 0 and 1"),
    ([0.0, 1.0], [0, 1], "y_true must be a 1-D array"),
    ([[0, 1]], [0, 1], "y_true must be a 1-D array"),
    ([], [], "no labels given"),
])
def test_metric_errors(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        matthews_corrcoef(y_true, y_pred)


# ---------------------------------------------------------------------------------------------- loss

def test_sigmoid_cross_entropy_matches_logs_and_gradient(num_grad, relerr):
    rng = np.random.default_rng(1)
    z = rng.standard_normal(7) * 3
    y = rng.integers(0, 2, 7)
    w = rng.random(7) * 2
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(w * (y * np.log(p) + (1 - y) * np.log(1 - p)))
    loss, dz = sigmoid_cross_entropy_loss(z, y, w)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert relerr(dz, num_grad(lambda a: sigmoid_cross_entropy_loss(a, y, w)[0], z, 1.0)) < 1e-8
    # far tails: finite, and the log of 1 - sigmoid(40) is not rounded to log(0)
    loss, dz = sigmoid_cross_entropy_loss(np.array([40.0, -40.0]), np.array([0, 1]))
    assert loss == pytest.approx(40.0, rel=1e-12) and np.all(np.isfinite(dz))


# ---------------------------------------------------------------------------------------------- models

def _models(dtype=np.float64):
    return [BagOfWordsClassifier(word_to_ix(), max_length=10, reg=0.1, dtype=dtype, seed=0),
            LSTMClassifier(word_to_ix(), wordvec_dim=4, hidden_dim=5, max_length=10, dtype=dtype, seed=0),
            LSTMClassifier(word_to_ix(), wordvec_dim=4, hidden_dim=5, max_length=10, readout="mean",
                           dtype=dtype, seed=0)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_gradients_numerically(index, num_grad, relerr):
    model = _models()[index]
    rng = np.random.default_rng(2)
    for name in model.params:  # move off the zero start of the bag of words
        model.params[name] += 0.3 * rng.standard_normal(model.params[name].shape)
    inputs, labels = make_split(6, 3)
    weights = rng.random(6) + 0.5
    _, grads = model.loss(inputs, labels, weights)
    for name, w in model.params.items():
        numeric = num_grad(lambda _: model.loss(inputs, labels, weights)[0], w, 1.0)
        # 1e-5: the LSTM's smallest weight gradients (~1e-5) carry ~1e-11 of central-difference noise
        assert relerr(grads[name], numeric) < 1e-5, name


def test_bag_of_words_counts_by_loop():
    model = _models()[0]
    inputs, _ = make_split(5, 4)
    counts = model.counts(inputs)
    for i, row in enumerate(inputs):
        expected = np.zeros(len(WORDS))
        for ix in row:
            if WORDS[ix] not in ("CLS", "PAD"):
                expected[ix] += 1
        np.testing.assert_array_equal(counts[i], expected)


def test_lstm_ignores_what_comes_after_cls():
    model = _models()[1]
    inputs, _ = make_split(4, 5)
    z = model.scores(inputs)
    longer = np.concatenate([inputs, np.full((4, 3), 14)], axis=1)  # more PAD: same predictions
    bigger = LSTMClassifier(word_to_ix(), wordvec_dim=4, hidden_dim=5, max_length=13, dtype=np.float64, seed=0)
    np.testing.assert_allclose(bigger.scores(longer), z, rtol=1e-12)
    # the CLS readout equals running the LSTM on the words + CLS alone, one sentence at a time
    for i, row in enumerate(inputs):
        end = list(row).index(13) + 1
        np.testing.assert_allclose(model.scores(row[None, :end]), z[i:i + 1], rtol=1e-12)


def test_predict_and_save_load(tmp_path):
    for model in _models(np.float32):
        inputs, _ = make_split(8, 6)
        path = model.save(tmp_path / "m.npz")
        loaded = load_sentence_classifier(path)
        assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(loaded.predict_proba(inputs), model.predict_proba(inputs))
        assert set(model.predict(inputs)) <= {0, 1}
        p = model.predict_proba(inputs)
        np.testing.assert_array_equal(model.predict(inputs), (p >= 0.5).astype(int))
    with pytest.raises(ValueError, match="holds a LSTMClassifier"):
        BagOfWordsClassifier.load(path)


def test_string_indices_are_accepted():
    vocab = {w: str(i) for i, w in enumerate(WORDS)}  # what the classic CSV loader makes
    model = LSTMClassifier(vocab, wordvec_dim=3, hidden_dim=3, max_length=10)
    assert model.word_to_ix == word_to_ix()


@pytest.mark.parametrize("inputs, labels, message", [
    (np.array([[1, 15, 13]]), [1], r"inputs\[0, 1\] = 15 is outside the vocabulary \[0, 15\)"),
    (np.array([[1, -2, 13]]), [1], r"inputs\[0, 1\] = -2 is outside"),
    (np.full((1, 11), 14), [1], "T = 11 positions, beyond the model's max_length 10"),
    (np.array([[1.0, 13.0]]), [1], "must hold integer word indices"),
    (np.zeros((0, 5), dtype=int), [], "inputs is empty"),
    (np.array([[1, 13]]), [2], "label 0 is 2; labels must be 0"),
    (np.array([[1, 13], [2, 13]]), [1], "holds 1 labels but inputs has 2 rows"),
    (np.array([[1, 2]]), [1], "row 0 holds 0 CLS tokens"),
])
def test_loss_errors(inputs, labels, message):
    model = _models()[1]
    with pytest.raises((ValueError, TypeError), match=message):
        model.loss(inputs, labels)


def test_constructor_errors():
    with pytest.raises(ValueError, match="must be 0..2"):
        LSTMClassifier({"a": 0, "b": 1, "CLS": 5})
    with pytest.raises(ValueError, match=r"word_to_ix\['a'\] must be an integer index"):
        LSTMClassifier({"a": "x"})
    with pytest.raises(ValueError, match="readout must be one of"):
        LSTMClassifier(word_to_ix(), readout="first")
    with pytest.raises(ValueError, match="readout='cls' needs a 'CLS' token"):
        LSTMClassifier({"a": 0, "b": 1})


# ---------------------------------------------------------------------------------------------- solver

@pytest.fixture
def data(tmp_path):
    return load_cola_data(write_cola_dir(tmp_path / "cola", num_train=120, num_val=60))


def _solver(data, **kwargs):
    model = LSTMClassifier(data["word_to_ix"], wordvec_dim=8, hidden_dim=16, max_length=10, seed=0)
    options = dict(update_rule="adam", optim_config={"learning_rate": 2e-2}, batch_size=20, num_epochs=4,
                   seed=1, verbose=False)
    options.update(kwargs)
    return ClassificationSolver(model, data, **options)


def test_solver_learns_and_keeps_best_mcc(data):
    solver = _solver(data, num_epochs=8)
    solver.train()
    history = solver.val_history
    assert [h["epoch"] for h in history] == list(range(1, 9))
    best = max(history, key=lambda h: h["val_mcc"])
    assert solver.best_val_mcc == best["val_mcc"] > 0.5  # the synthetic rule is learnable
    solver.model.params.update(solver.best_params)
    scores = solver.model.evaluate(data["val_inxs"], data["val_labels"])
    assert scores["mcc"] == best["val_mcc"]
    assert scores["mcc"] == matthews_corrcoef(data["val_labels"], solver.model.predict(data["val_inxs"]))


def test_epoch_visits_a_permutation(data):
    solver = _solver(data, num_epochs=1)
    seen = []
    real = solver.model.loss
    solver.model.loss = lambda inputs, labels: (seen.extend(map(tuple, inputs)), real(inputs, labels))[1]
    solver.train()
    assert len(seen) == 120
    assert sorted(seen) == sorted(map(tuple, data["train_inxs"]))


def test_resume_is_bit_exact(tmp_path, data):
    ckpt = str(tmp_path / "ck")
    full = _solver(data)
    full.train()
    first = _solver(data, num_epochs=2, checkpoint_name=ckpt)
    first.train()
    resumed = _solver(data, checkpoint_name=ckpt, resume_from=ckpt + ".npz")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.val_history == full.val_history
    for name in full.model.params:
        np.testing.assert_array_equal(resumed.model.params[name], full.model.params[name])
        np.testing.assert_array_equal(resumed.best_params[name], full.best_params[name])


def test_class_weights_balance_the_classes(data):
    solver = _solver(data, class_weight="balanced")
    w, y = solver.example_weights, solver.train_labels
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    assert w.mean() == pytest.approx(1.0)
    args = solver._sample_batch()
    assert len(args) == 3
    with pytest.raises(ValueError, match="class_weight must be one of"):
        _solver(data, class_weight="auto")


def test_divergence_stops_with_the_iteration(data):
    solver = _solver(data)
    real = solver.model.loss
    calls = []

    def loss(*args):
        calls.append(1)
        value, grads = real(*args)
        return (float("nan") if len(calls) == 3 else value), grads

    solver.model.loss = loss
    with pytest.raises(TrainingDivergedError, match="iteration 3"):
        solver.train()
    assert solver.iteration == 2


def test_solver_data_errors(data):
    vocab = {"word_to_ix": data["word_to_ix"]}
    bad = dict(data, train_labels=data["train_labels"][:-1])
    with pytest.raises(ValueError, match="holds 119 labels but data\\['train_inxs'\\] has 120 rows"):
        _solver(bad)
    with pytest.raises(ValueError, match="val_inxs'\\] is empty"):
        _solver(dict(data, val_inxs=data["val_inxs"][:0], val_labels=data["val_labels"][:0]))
    with pytest.raises(ValueError, match="needs 'train_inxs'"):
        _solver(dict(vocab, train_inxs=data["train_inxs"]))


def test_baseline_table(data):
    rows = baseline_table(data, kinds=("majority", "bow"))
    assert rows[0]["model"] == "majority class" and rows[0]["val_mcc"] == 0.0
    assert rows[0] == dict(rows[0], **{"val_accuracy": majority_scores(data)["accuracy"]})
    majority = int(data["train_labels"].mean() >= 0.5)
    assert rows[0]["val_accuracy"] == np.mean(data["val_labels"] == majority)
    assert rows[1]["model"] == "bow" and rows[1]["val_mcc"] > 0.3  # one word decides the label
    assert format_table(rows).count("\n") == 3


def test_classify_train_command(tmp_path, capsys):
    folder = write_cola_dir(tmp_path / "cola", num_train=80, num_val=40)
    out = tmp_path / "run"
    argv = ["classify-train", "--data", str(folder), "--model", "bow", "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    for name in ("model.npz", "checkpoint.npz", "history.json", "curves.png", "scores.json"):
        assert (out / name).is_file(), name
    scores = json.loads((out / "scores.json").read_text())
    model = load_sentence_classifier(out / "model.npz")
    data = load_cola_data(folder)
    assert scores["val"]["accuracy"] == model.evaluate(data["val_inxs"], data["val_labels"])["accuracy"]
    assert len(json.loads((out / "history.json").read_text())) == 2
    # the run is not overwritten without a flag; resume extends it
    assert main(argv) == 1
    assert "already holds" in capsys.readouterr().err
    assert main(argv[:5] + ["--epochs", "3", "--out", str(out), "--quiet", "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 3
    assert main(argv + ["--overwrite", "--option", "nonsense=1"]) == 2  # a bad option (issue 20, item 10)
    err = capsys.readouterr().err
    assert "'nonsense'" in err and "reg" in err  # the unknown option, and the valid ones
    assert len(json.loads((out / "history.json").read_text())) == 3  # --overwrite deleted nothing


# ---------------------------------------------------------------------------------------------- backends

@pytest.mark.parametrize("make", [lambda: BagOfWordsClassifier(word_to_ix(), reg=0.1, dtype=np.float64),
                                  lambda: LSTMClassifier(word_to_ix(), 5, 6, readout="cls", dtype=np.float64,
                                                         seed=0),
                                  lambda: LSTMClassifier(word_to_ix(), 5, 6, readout="mean", dtype=np.float64,
                                                         seed=0)],
                         ids=["bag_of_words", "lstm_cls", "lstm_mean"])
def test_baselines_on_backend_match_numpy(make, backend):
    """With device parameters and inputs, the baselines' loss, gradients and scores are computed there."""
    model = make()
    if isinstance(model, BagOfWordsClassifier):
        model.params["W"] += np.random.default_rng(0).standard_normal(model.params["W"].shape)
    inputs, labels = make_split(6, 3)
    loss, grads = model.loss(inputs, labels)
    scores = model.scores(inputs)
    model.to(backend.device)
    loss_b, grads_b = model.loss(*backend.put([inputs, labels]))
    if backend.name != "numpy" and not isinstance(loss_b, (float, np.floating)):
        loss_b = backend.get(loss_b)  # a 0-d array on the device
    loss_b = float(loss_b)
    assert loss_b == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(backend.get(grads_b[name]), grads[name], rtol=1e-10, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(backend.get(model.scores(backend.put(inputs))), scores, rtol=1e-12)
