"""Tests of honest selection and reporting: the holdout split, the bootstrap intervals (against exact
binomial quantiles), the threshold choice (against a brute-force search), and select_on_holdout.
"""
import math

import numpy as np
import pytest

from cola_fixtures import make_split, word_to_ix
from cs231n.cola_selection import (NGRAM_REGS, choose_threshold, holdout_split, report_scores,
                                   select_on_holdout)
from cs231n.metrics import bootstrap_intervals, matthews_corrcoef, scores_with_intervals


def test_holdout_split_deterministic_disjoint_complete():
    fit, hold = holdout_split(1000, 0.1, seed=3)
    fit2, hold2 = holdout_split(1000, 0.1, seed=3)
    np.testing.assert_array_equal(fit, fit2)
    np.testing.assert_array_equal(hold, hold2)
    assert hold.size == 100 and fit.size == 900
    assert not set(fit) & set(hold)
    assert sorted(set(fit) | set(hold)) == list(range(1000))
    assert np.all(np.diff(hold) > 0)
    _, other = holdout_split(1000, 0.1, seed=4)
    assert set(other) != set(hold)
    assert holdout_split(3, 0.01)[1].size == 1 and holdout_split(3, 0.99)[1].size == 2
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="holdout"):
            holdout_split(10, bad)


def _binomial_quantile(n, p, q):
    """Smallest k with P(Binomial(n, p) <= k) >= q, summed exactly."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if total >= q:
            return k
    return n


def test_bootstrap_accuracy_matches_binomial_quantiles():
    # Resampling N pairs of which a share p are right makes the accuracy Binomial(N, p) / N.
    n, right = 200, 150
    y_true = np.ones(n, dtype=np.int64)
    y_pred = np.r_[np.ones(right), np.zeros(n - right)].astype(np.int64)
    low, high = bootstrap_intervals(y_true, y_pred, num_samples=20000, seed=0)["accuracy"]
    assert low == pytest.approx(_binomial_quantile(n, 0.75, 0.025) / n, abs=1.5 / n)
    assert high == pytest.approx(_binomial_quantile(n, 0.75, 0.975) / n, abs=1.5 / n)


def test_bootstrap_mcc_known_cases():
    y = np.r_[np.zeros(50), np.ones(50)].astype(np.int64)
    assert bootstrap_intervals(y, y)["mcc"] == [1.0, 1.0]
    assert bootstrap_intervals(y, 1 - y)["mcc"] == [-1.0, -1.0]
    assert bootstrap_intervals(y, np.ones_like(y))["mcc"] == [0.0, 0.0]   # a constant answer
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(100) < 0.8, y, 1 - y)
    s = scores_with_intervals(y, noisy, seed=1)
    assert s["mcc"] == matthews_corrcoef(y, noisy)
    assert s["mcc_ci"][0] < s["mcc"] < s["mcc_ci"][1]
    assert s == scores_with_intervals(y, noisy, seed=1)                   # seeded
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals(y, y, level=1.0)


def test_choose_threshold_beats_every_grid_threshold():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = labels + rng.standard_normal(60) - 0.7
    t, mcc = choose_threshold(scores, labels)
    assert mcc == matthews_corrcoef(labels, (scores >= t).astype(np.int64))
    grid = np.linspace(scores.min() - 1, scores.max() + 1, 2001)
    assert mcc >= max(matthews_corrcoef(labels, (scores >= g).astype(np.int64)) for g in grid) - 1e-12
    assert choose_threshold(np.array([-1.0, 1.0]), np.array([0, 1]))[0] == 0.0  # ties go to 0


def _data(num_train=200):
    inputs, labels = make_split(num_train, 0)
    val, val_labels = make_split(50, 1)
    return {"word_to_ix": word_to_ix(), "max_length": 10, "train_inxs": inputs, "train_labels": labels,
            "eval_sets": {"dev": {"inxs": val, "labels": val_labels}}}


def test_select_on_holdout_ngram_chooses_on_holdout_only():
    data = _data()
    result = select_on_holdout("ngram", data, verbose=False, seed=1)
    assert result["chosen"]["reg"] in NGRAM_REGS
    assert [e["options"]["reg"] for e in result["selection"]] == list(NGRAM_REGS)
    assert result["holdout_mcc"] == max(e["holdout_mcc"] for e in result["selection"])
    assert result["num_holdout"] == 20 and result["num_fit"] == 180 and not result["refit"]
    scores = report_scores(result["model"], data)
    assert scores["dev"]["mcc"] > 0.8 and len(scores["dev"]["mcc_ci"]) == 2
    # Changing the report set changes nothing of the selection: it is never read.
    flipped = dict(data, eval_sets={"dev": {"inxs": data["eval_sets"]["dev"]["inxs"],
                                            "labels": 1 - data["eval_sets"]["dev"]["labels"]}})
    again = select_on_holdout("ngram", flipped, verbose=False, seed=1)
    assert again["chosen"] == result["chosen"] and again["holdout_mcc"] == result["holdout_mcc"]


def test_select_on_holdout_epoch_and_refit():
    data = _data(120)
    cands = [{"lr": 0.05}, {"lr": 0.001}]
    result = select_on_holdout("bow", data, candidates=cands, epochs=3, verbose=False, tune_threshold=True)
    best = max(result["selection"], key=lambda e: e["holdout_mcc"])
    assert result["chosen"]["lr"] == best["options"]["lr"]
    assert 1 <= result["chosen"]["epoch"] <= 3 == len(result["history"])
    refit = select_on_holdout("bow", data, candidates=cands, epochs=3, verbose=False, refit=True,
                              tune_threshold=True)
    assert refit["refit"] and refit["chosen"] == result["chosen"]
    assert not np.array_equal(refit["model"].params["W"], result["model"].params["W"])
    majority = select_on_holdout("majority", data)
    assert report_scores(majority["model"], data)["dev"]["mcc"] == 0.0
    with pytest.raises(ValueError, match="kind"):
        select_on_holdout("svm", data)


def _write_tsv_folder(path):
    """A tiny learnable TSV folder: label 1 exactly when the word w1 occurs; dev in GLUE's raw layout."""
    path.mkdir()
    for name, n, seed, raw in (("train.tsv", 120, 0, False), ("dev_a.tsv", 40, 1, True), ("dev_b.tsv", 30, 2, False)):
        rows, labels = make_split(n, seed)
        lines = ["source\tlabel\tjudgement\tsentence"] if raw else []
        for row, y in zip(rows, labels):
            sentence = " ".join(w for w in (list(word_to_ix())[i] for i in row) if w not in ("CLS", "PAD"))
            lines.append(f"src\t{y}\t{'' if y else '*'}\t{sentence}" if raw else f"{sentence}\t{y}")
        (path / name).write_text("\n".join(lines) + "\n")
    return path


def test_cli_end_to_end_on_a_tsv_folder(tmp_path, capsys):
    import json

    from cs231n.cli import main

    folder = _write_tsv_folder(tmp_path / "tsv")
    out = tmp_path / "ngram"
    assert main(["classify-train", "--data", str(folder), "--model", "ngram", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dev_a.tsv: GLUE raw" in printed and "with a header line" in printed
    assert "train.tsv: sentence<TAB>label (2 columns), no header" in printed
    assert "held-out 12 of the training sentences" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["eval"]) == {"dev_a", "dev_b"}
    for s in scores["eval"].values():
        assert s["mcc_ci"][0] <= s["mcc"] <= s["mcc_ci"][1] and s["mcc"] > 0.5
    assert scores["chosen"]["reg"] in NGRAM_REGS and not scores["refit"]

    out = tmp_path / "bow"
    argv = ["classify-train", "--data", str(folder), "--model", "bow", "--epochs", "2", "--eval", "dev_b.tsv",
            "--holdout", "0.2", "--refit", "--min-count", "1", "--tune-threshold", "--word-dropout", "0.1",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "refit on all 120 training sentences" in printed and "dev_b (30 sentences, scored once)" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores["eval"]) == ["dev_b"] and scores["refit"]
    assert scores["holdout"]["num_holdout"] == 24 and 1 <= scores["chosen"]["epoch"] <= 2
    assert scores["min_count"] == 1 and scores["tokenization"] == "whitespace"
    assert scores["chosen"]["word_dropout"] == 0.1

    # The classic behaviour (no holdout) reads preprocessed folders only; bad fractions are refused.
    assert main(["classify-train", "--data", str(folder), "--holdout", "0", "--out", str(tmp_path / "c")]) == 1
    assert "word_to_ix.csv" in capsys.readouterr().err
    assert main(["classify-train", "--data", str(folder), "--holdout", "0", "--refit"]) == 2  # bad combination
    assert "--holdout > 0" in capsys.readouterr().err
    assert main(["classify-train", "--data", str(folder), "--holdout", "1.5"]) == 2
    assert "must be a fraction in [0, 1)" in capsys.readouterr().err


def test_word_dropout_replaces_only_words_and_is_off_by_default():
    from cs231n.classification_solver import ClassificationSolver
    from cs231n.classifiers.sentence import BagOfWordsClassifier

    data = _data(100)
    w = word_to_ix()
    model = BagOfWordsClassifier(w, max_length=10)
    classic = ClassificationSolver(model, data, batch_size=100, num_epochs=1, verbose=False)
    np.testing.assert_array_equal(classic._sample_batch()[0], data["train_inxs"][classic._order])
    solver = ClassificationSolver(model, data, batch_size=100, num_epochs=1, verbose=False, word_dropout=0.5)
    inputs = solver._sample_batch()[0]
    original = data["train_inxs"][solver._order]
    changed = inputs != original
    assert np.all(inputs[changed] == w["UNK"])
    special = np.isin(original, [w["CLS"], w["PAD"]])
    assert not changed[special].any()
    words = ~special & (original != w["UNK"])
    assert 0.35 < changed[words].mean() < 0.65
    with pytest.raises(ValueError, match="word_dropout"):
        ClassificationSolver(model, data, word_dropout=1.0)


def test_ensembles_on_the_holdout():
    from cs231n.cola_selection import EnsembleClassifier, choose_combination, seed_ensemble

    data = _data(150)
    ngram = select_on_holdout("ngram", data, verbose=False, candidates=[{"reg": 1e-4}])
    bow = select_on_holdout("bow", data, verbose=False, epochs=2)
    combo = choose_combination(bow, ngram, data)
    a = combo["chosen"]["weight"]
    assert combo["holdout_mcc"] == max(e["holdout_mcc"] for e in combo["selection"])
    x = data["eval_sets"]["dev"]["inxs"]
    expected = ngram["model"].scores(x) if np.isinf(a) else bow["model"].scores(x) + a * ngram["model"].scores(x)
    np.testing.assert_allclose(combo["model"].scores(x), expected, rtol=1e-6)
    pair = seed_ensemble([bow, ngram], data)
    np.testing.assert_allclose(pair["model"].scores(x), (bow["model"].scores(x) + ngram["model"].scores(x)) / 2,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="refit"):
        choose_combination(select_on_holdout("ngram", data, verbose=False, refit=True), ngram, data)
    with pytest.raises(ValueError, match="weights"):
        EnsembleClassifier([bow["model"]], [1.0, 2.0])


def test_masked_word_loss_gradients_numerically(num_grad, relerr):
    from cs231n.classifiers.classification_transformer import ClassificationTransformer
    from cs231n.classifiers.pretraining import masked_word_loss

    model = ClassificationTransformer(word_to_ix(), hidden_dim=6, num_heads=2, dim_feedforward=8, dim_k=3, dim_v=3,
                                      dim_q=3, max_length=10, pad_mask=True, readout="mean", dtype=np.float64, seed=0)
    inputs, _ = make_split(4, 5)
    rng = np.random.default_rng(0)
    words = ~np.isin(inputs, [word_to_ix()["CLS"], word_to_ix()["PAD"]])
    masked = words & (rng.random(inputs.shape) < 0.5)
    masked[0, 0] = True
    head = {"W_mlm": rng.standard_normal((6, len(word_to_ix()))), "b_mlm": rng.standard_normal(len(word_to_ix()))}
    _, grads = masked_word_loss(model, inputs, masked, head, training=False)
    assert "W_final" not in grads
    for name, w in list(head.items()) + [(k, model.params[k]) for k in ("W_embed", "l0_Wq", "l0_W1", "W_pos")]:
        numeric = num_grad(lambda _: masked_word_loss(model, inputs, masked, head, training=False)[0], w, 1.0)
        assert relerr(grads[name], numeric) < 1e-6, name


def test_pretraining_lowers_the_masked_word_loss_and_feeds_selection():
    from cs231n.classifiers.classification_transformer import ClassificationTransformer
    from cs231n.classifiers.pretraining import masked_word_pretrain

    model = ClassificationTransformer(word_to_ix(), hidden_dim=8, num_heads=2, dim_feedforward=8, dim_k=4, dim_v=4,
                                      dim_q=4, max_length=10, pad_mask=True, readout="mean", seed=0)
    inputs, _ = make_split(200, 0)
    head_before = {k: model.params[k].copy() for k in ("W_final", "b_final")}
    history = masked_word_pretrain(model, inputs, epochs=6, batch_size=20, learning_rate=1e-2, mask_prob=0.3)
    assert history[-1] < history[0]
    for k, v in head_before.items():
        np.testing.assert_array_equal(model.params[k], v)
    options = dict(hidden_dim=8, dim_feedforward=8, dim_k=4, dim_v=4, dim_q=4)
    result = select_on_holdout("transformer", _data(100), epochs=1, verbose=False, model_options=options,
                               candidates=[{"pretrain_epochs": 1}])
    assert result["chosen"]["pretrain_epochs"] == 1
    with pytest.raises(ValueError, match="pre-trained"):
        select_on_holdout("bow", _data(100), epochs=1, verbose=False, candidates=[{"pretrain_epochs": 1}])
