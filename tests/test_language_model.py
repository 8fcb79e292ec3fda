"""Tests of the word-level language model, its solver and the functions the command line calls.

Forward values are compared with a plain-numpy reference written here (its own RNN/LSTM/GRU step
equations and softmax), gradients with central differences in float64, and the sampling
distribution with the closed form ``softmax(scores / temperature)``. The bar of the issue (LSTM with
word vectors 15, hidden 100, T = 50, batch 30, Adam 5e-4 passing 80% training next-word accuracy on
Chapter I of Alice within 50 epochs, and a 40-word sample from "she" that is not one phrase repeated)
runs on ``../shared/data/alice.txt`` (or ``$CS231N_ALICE_TXT``) and is skipped when it is absent.
"""
import json
import os
import time

import numpy as np
import pytest

from cs231n import text_utils
from cs231n.classifiers.language_model import CELL_TYPES, LanguageModelRNN
from cs231n.lm_solver import (LanguageModelSolver, load_language_model, sample_text,
                              train_language_model)
from cs231n.solver import load_checkpoint


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference_scores(params, cell_type, inputs):
    """Scores (N, T, V) of the language model, by the textbook equations, one step at a time."""
    x = params["W_embed"][inputs].astype(np.float64)  # (N, T, W)
    N, T, _ = x.shape
    H = params["Wh"].shape[0]
    h = np.zeros((N, H))
    c = np.zeros((N, H))
    out = []
    for t in range(T):
        if cell_type == "rnn":
            h = np.tanh(x[:, t] @ params["Wx"] + h @ params["Wh"] + params["b"])
        elif cell_type == "lstm":
            a = x[:, t] @ params["Wx"] + h @ params["Wh"] + params["b"]
            i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H])
            g = np.tanh(a[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            ax = x[:, t] @ params["Wx"] + params["b"]
            ah = h @ params["Wh"] + params["bh"]
            r = _sigmoid(ax[:, :H] + ah[:, :H])
            z = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
            n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
            h = (1 - z) * n + z * h
        out.append(h @ params["W_vocab"] + params["b_vocab"])
    return np.stack(out, axis=1)


def reference_log_probs(scores, targets):
    m = scores.max(axis=2, keepdims=True)
    log_z = np.log(np.exp(scores - m).sum(axis=2)) + m[..., 0]
    return np.take_along_axis(scores, targets[..., None], axis=2)[..., 0] - log_z  # (N, T)


def small_model(cell_type, dtype=np.float64, seed=0, V=7, W=4, H=5):
    model = LanguageModelRNN(V, W, H, cell_type, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, w in model.params.items():  # non-zero biases so that their gradients are exercised
        model.params[name] = (w + 0.3 * rng.standard_normal(w.shape)).astype(dtype)
    return model


def small_batch(V=7, N=3, T=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def synthetic_text(num_words=600, seed=0):
    """A text of short repeated phrases with some randomness, as a file's contents would be."""
    rng = np.random.default_rng(seed)
    phrases = ["the cat sat on the mat", "a dog ran to the park", "the bird sang in the tree",
               "she saw the cat", "he fed the dog"]
    words = []
    while len(words) < num_words:
        words.extend(phrases[rng.integers(len(phrases))].split())
    return " ".join(words[:num_words]) + "\n"


# --------------------------------------------------------------------------------------------------
# Construction and configuration
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type, g", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_parameter_shapes_and_dtype(cell_type, g):
    V, W, H = 11, 6, 8
    model = LanguageModelRNN(V, W, H, cell_type, seed=0)
    expected = {"W_embed": (V, W), "Wx": (W, g * H), "Wh": (H, g * H), "b": (g * H,),
                "W_vocab": (H, V), "b_vocab": (V,)}
    if cell_type == "gru":
        expected["bh"] = (g * H,)
    assert {k: v.shape for k, v in model.params.items()} == expected
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert not model.params["b"].any() and not model.params["b_vocab"].any()


def test_same_seed_same_weights():
    a = LanguageModelRNN(9, 4, 5, "lstm", seed=3)
    b = LanguageModelRNN(9, 4, 5, "lstm", seed=np.random.default_rng(3))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"cell_type": "transformer"}, ValueError, "cell_type must be one of"),
    ({"vocab_size": 0}, ValueError, "vocab_size must be an int >= 1"),
    ({"hidden_dim": 2.5}, ValueError, "hidden_dim"),
    ({"dtype": np.int32}, TypeError, "floating"),
    ({"idx_to_word": ["a", "b"]}, ValueError, "idx_to_word has 2 words but vocab_size is 5"),
    ({"seed": "x"}, TypeError, "rng must be None"),
])
def test_constructor_rejects_bad_arguments(kwargs, error, match):
    args = {"vocab_size": 5, "wordvec_dim": 3, "hidden_dim": 4}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        LanguageModelRNN(**args)


def test_config_round_trip_and_save_load(tmp_path):
    words = ["<UNK>", "a", "b", "c"]
    model = LanguageModelRNN(4, 3, 5, "gru", idx_to_word=words, seed=2)
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config == {"vocab_size": 4, "wordvec_dim": 3, "hidden_dim": 5, "cell_type": "gru",
                      "dtype": "float32", "idx_to_word": words}
    path = model.save(tmp_path / "lm.npz")
    loaded = LanguageModelRNN.load(path)
    assert loaded.get_config() == config and loaded.word_to_idx == {"<UNK>": 0, "a": 1, "b": 2, "c": 3}
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
        assert loaded.params[k].dtype == model.params[k].dtype


def test_set_params_checks_names_and_shapes():
    model = LanguageModelRNN(4, 3, 5, "rnn", seed=0)
    params = dict(model.params)
    params.pop("Wh")
    with pytest.raises(ValueError, match=r"missing \['Wh'\]"):
        model.set_params(params)
    params["Wh"] = np.zeros((5, 20))
    with pytest.raises(ValueError, match=r"Wh should have shape \(5, 5\), got \(5, 20\)"):
        model.set_params(params)


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config keys"):
        LanguageModelRNN.from_config({"vocab_size": 3, "layers": 2})


# --------------------------------------------------------------------------------------------------
# Loss and gradients
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_scores_and_loss_match_the_reference_equations(cell_type):
    model = small_model(cell_type)
    inputs, targets = small_batch()
    scores = model.scores(inputs)
    expected = reference_scores(model.params, cell_type, inputs)
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-12)
    loss, _ = model.loss(inputs, targets)
    expected_loss = -reference_log_probs(expected, targets).mean()
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_gradients_match_central_differences(cell_type, num_grad, relerr):
    model = small_model(cell_type)
    inputs, targets = small_batch()
    _, grads = model.loss(inputs, targets)
    assert set(grads) == set(model.params)
    for name in model.params:
        w = model.params[name]
        numeric = num_grad(lambda w_, name=name: model.loss(inputs, targets)[0], w, 1.0)
        assert grads[name].shape == w.shape
        assert relerr(grads[name], numeric) < 5e-6, name


def test_loss_keeps_float32():
    model = LanguageModelRNN(7, 4, 5, "lstm", seed=0)
    inputs, targets = small_batch()
    loss, grads = model.loss(inputs, targets)
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


def test_loss_validates_its_inputs():
    model = LanguageModelRNN(7, 4, 5, "rnn", seed=0)
    inputs, targets = small_batch()
    with pytest.raises(ValueError, match=r"targets should have the shape of inputs \(3, 4\)"):
        model.loss(inputs, targets[:, :3])
    with pytest.raises(ValueError, match=r"outside \[0, 7\)"):
        model.loss(inputs + 7, targets)
    with pytest.raises(TypeError, match="integer indices"):
        model.loss(inputs.astype(float), targets)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_evaluate_reports_loss_accuracy_perplexity(cell_type):
    model = small_model(cell_type)
    inputs, targets = small_batch(N=5, T=6)
    # make some targets the argmax, so that accuracy is neither 0 nor 1
    ref = reference_scores(model.params, cell_type, inputs)
    targets[:2] = ref[:2].argmax(axis=2)
    result = model.evaluate(inputs, targets, batch_size=2)
    nll = -reference_log_probs(ref, targets).mean()
    np.testing.assert_allclose(result["loss"], nll, rtol=1e-10)
    np.testing.assert_allclose(result["perplexity"], np.exp(nll), rtol=1e-10)
    assert result["accuracy"] == pytest.approx(np.mean(ref.argmax(axis=2) == targets))
    assert 0 < result["accuracy"] < 1 and result["tokens"] == 30
    np.testing.assert_allclose(model.loss(inputs, targets)[0], result["loss"], rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_temperature_zero_is_greedy_decoding(cell_type):
    model = small_model(cell_type)
    start = np.array([0, 3, 6])
    words = model.sample(start, 6, temperature=0)
    assert words.shape == (3, 6) and words.dtype == np.int32
    # Reference: re-run the whole prefix through the reference equations and take the argmax.
    seq = start[:, None]
    for t in range(6):
        nxt = reference_scores(model.params, cell_type, seq)[:, -1].argmax(axis=1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(words, seq[:, 1:])
    np.testing.assert_array_equal(model.sample(3, 6, temperature=0), seq[1, 1:])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampling_distribution_is_softmax_of_scores_over_temperature(temperature):
    model = LanguageModelRNN(4, 3, 5, "rnn", dtype=np.float64, seed=0)
    logits = np.array([1.0, 0.0, -1.0, 2.0])
    model.params["W_vocab"][:] = 0  # scores no longer depend on the state: always `logits`
    model.params["b_vocab"][:] = logits
    draws = model.sample(np.zeros(40000, dtype=int), 1, temperature=temperature, rng=0)[:, 0]
    freq = np.bincount(draws, minlength=4) / draws.size
    p = np.exp(logits / temperature)
    p /= p.sum()
    # 40000 draws: the standard error of each frequency is below 0.0025
    np.testing.assert_allclose(freq, p, atol=0.012)


def test_low_temperature_is_greedier_and_high_temperature_flatter():
    model = LanguageModelRNN(4, 3, 5, "rnn", dtype=np.float64, seed=0)
    model.params["W_vocab"][:] = 0
    model.params["b_vocab"][:] = [1.0, 0.0, -1.0, 2.0]
    starts = np.zeros(5000, dtype=int)
    share_of_best = [np.mean(model.sample(starts, 1, temperature=t, rng=1) == 3) for t in (0.1, 1.0, 10.0)]
    assert share_of_best[0] > 0.99 > share_of_best[1] > share_of_best[2] > 0.25


def test_sampling_is_reproducible_with_a_seed_and_a_generator():
    model = small_model("lstm")
    a = model.sample(2, 20, rng=5)
    b = model.sample(2, 20, rng=np.random.default_rng(5))
    c = model.sample(2, 20, rng=6)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20,) and not np.array_equal(a, c)
    assert model.sample(2, 0).shape == (0,)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"temperature": -0.5}, ValueError, "temperature must be finite and >= 0"),
    ({"temperature": float("nan")}, ValueError, "temperature must be finite"),
    ({"temperature": float("inf")}, ValueError, "temperature must be finite"),
    ({"temperature": "hot"}, TypeError, "temperature must be a number"),
    ({"length": -1}, ValueError, "length must be an int >= 0"),
    ({"start_idx": 7}, ValueError, r"outside \[0, 7\)"),
    ({"rng": 1.5}, TypeError, "rng must be None"),
])
def test_sample_validates_its_arguments(kwargs, error, match):
    model = small_model("rnn")
    args = {"start_idx": 1, "length": 3}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        model.sample(**args)


# --------------------------------------------------------------------------------------------------
# Solver: per-epoch metrics, checkpoints, resume, early stop
# --------------------------------------------------------------------------------------------------

def _small_solver(data, **kwargs):
    model = LanguageModelRNN(len(data["idx_to_word"]), 8, 16, "lstm", idx_to_word=data["idx_to_word"], seed=0)
    options = dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=16,
                   num_epochs=3, seed=1, verbose=False)
    options.update(kwargs)
    return model, LanguageModelSolver(model, data, **options)


def test_solver_reports_loss_accuracy_and_perplexity_per_epoch():
    data = text_utils.prepare_text_data(synthetic_text(), seq_len=10, stride=2, val_fraction=0.2)
    model, solver = _small_solver(data)
    solver.train()
    assert solver.iterations_per_epoch == data["train_inputs"].shape[0] // 16
    assert len(solver.loss_history) == 3 * solver.iterations_per_epoch
    assert [e["epoch"] for e in solver.val_history] == [1, 2, 3]
    last = solver.val_history[-1]
    scores = model.scores(data["train_eval_inputs"])
    accuracy = np.mean(scores.argmax(axis=2) == data["train_eval_targets"])
    assert last["train_accuracy"] == pytest.approx(accuracy)
    nll = -reference_log_probs(scores.astype(np.float64), data["train_eval_targets"]).mean()
    assert last["train_loss"] == pytest.approx(nll, rel=1e-5)
    assert last["train_perplexity"] == pytest.approx(np.exp(nll), rel=1e-5)
    assert {"val_loss", "val_accuracy", "val_perplexity"} <= set(last)
    # the phrases are easy: accuracy well above the most frequent word's share
    assert last["train_accuracy"] > 0.5
    assert solver.best_val_score == max(e["val_accuracy"] for e in solver.val_history)


def test_resume_reproduces_an_uninterrupted_run_bit_for_bit(tmp_path):
    data = text_utils.prepare_text_data(synthetic_text(), seq_len=10, stride=3)
    full_model, full = _small_solver(data, num_epochs=4)
    full.train()

    ckpt = tmp_path / "run"
    _, first = _small_solver(data, num_epochs=2, checkpoint_name=str(ckpt))
    first.train()
    resumed_model, resumed = _small_solver(data, num_epochs=4, checkpoint_name=str(ckpt),
                                           resume_from=str(ckpt) + ".npz")
    resumed.train()
    for k in full_model.params:
        np.testing.assert_array_equal(resumed_model.params[k], full_model.params[k])
    assert resumed.loss_history == full.loss_history
    assert resumed.val_history == full.val_history
    meta = load_checkpoint(str(ckpt) + ".npz")["meta"]
    assert meta["extra"] == {"seq_len": 10, "tokenizer": "classic"}
    assert meta["model_config"]["idx_to_word"] == data["idx_to_word"]


def test_stop_at_accuracy_ends_training_and_writes_a_checkpoint(tmp_path):
    data = text_utils.prepare_text_data(synthetic_text(), seq_len=10, stride=2)
    ckpt = str(tmp_path / "stop.npz")
    _, solver = _small_solver(data, num_epochs=40, stop_at_accuracy=0.5, checkpoint_name=ckpt)
    solver.train()
    assert solver.stopped_early
    assert solver.val_history[-1]["train_accuracy"] > 0.5
    assert all(e["train_accuracy"] <= 0.5 for e in solver.val_history[:-1])
    assert solver.epoch < 40
    assert load_checkpoint(ckpt)["meta"]["epoch"] == solver.epoch


def test_solver_rejects_bad_data_and_options():
    data = text_utils.prepare_text_data(synthetic_text(), seq_len=10)
    model = LanguageModelRNN(len(data["idx_to_word"]), 4, 4, seed=0)
    with pytest.raises(ValueError, match="train_targets"):
        LanguageModelSolver(model, {"train_inputs": data["train_inputs"]})
    bad = dict(data, train_targets=data["train_targets"][:, :5])
    with pytest.raises(ValueError, match="must have the same shape"):
        LanguageModelSolver(model, bad)
    with pytest.raises(ValueError, match="stop_at_accuracy"):
        LanguageModelSolver(model, data, stop_at_accuracy=80)
    with pytest.raises(ValueError, match='Unrecognized arguments "colour"'):
        LanguageModelSolver(model, data, colour="red")


# --------------------------------------------------------------------------------------------------
# Entry points of the command line
# --------------------------------------------------------------------------------------------------

def test_train_language_model_and_sample_text(tmp_path):
    text_path = tmp_path / "story.txt"
    text_path.write_text(synthetic_text(), encoding="utf-8")
    out_dir = tmp_path / "out"
    model, history = train_language_model(str(text_path), cell_type="gru", wordvec_dim=8, hidden_dim=16,
                                          seq_len=10, batch_size=16, num_epochs=2, learning_rate=1e-2,
                                          seed=0, out_dir=str(out_dir), verbose=False)
    assert len(history) == 2
    assert json.loads((out_dir / "lm_history.json").read_text()) == history
    ckpt = str(out_dir / "lm_checkpoint.npz")
    loaded, tokenizer = load_language_model(ckpt)
    assert tokenizer == "classic" and loaded.get_config() == model.get_config()

    text = sample_text(ckpt, "The", length=12, temperature=0.7, seed=3)
    words = text.split(" ")
    assert words[0] == "the" and len(words) == 13
    assert set(words) <= set(model.idx_to_word)
    assert text == sample_text(ckpt, "the", length=12, temperature=0.7, seed=3)
    # the same model saved on its own samples the same words
    model.save(tmp_path / "model.npz")
    assert sample_text(str(tmp_path / "model.npz"), "the", length=12, temperature=0.7, seed=3) == text
    with pytest.raises(ValueError, match="'unicorn' is not in the model's vocabulary"):
        sample_text(ckpt, "unicorn")
    with pytest.raises(ValueError, match="must be one word"):
        sample_text(ckpt, "the cat")


def test_train_language_model_resume_needs_a_checkpoint(tmp_path):
    text_path = tmp_path / "story.txt"
    text_path.write_text(synthetic_text(), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_language_model(str(text_path), seq_len=10, out_dir=str(tmp_path / "none"), resume=True,
                             verbose=False)


def test_words_tokenizer_is_recorded_and_used_for_sampling(tmp_path):
    text_path = tmp_path / "story.txt"
    text_path.write_text("The cat sat. The dog ran! " * 30, encoding="utf-8")
    train_language_model(str(text_path), wordvec_dim=6, hidden_dim=12, seq_len=8, batch_size=8,
                         num_epochs=3, learning_rate=2e-2, tokenizer="words", out_dir=str(tmp_path),
                         verbose=False)
    ckpt = str(tmp_path / "lm_checkpoint.npz")
    assert load_language_model(ckpt)[1] == "words"
    text = sample_text(ckpt, "dog", length=30, temperature=0)
    assert text.startswith("dog") and " ." not in text and " !" not in text


# --------------------------------------------------------------------------------------------------
# The bar on Chapter I of Alice
# --------------------------------------------------------------------------------------------------

def _longest_period(words, max_period=20):
    """The smallest p <= max_period with words[i] == words[i + p] for all i, or None."""
    for p in range(1, max_period + 1):
        if all(words[i] == words[i + p] for i in range(len(words) - p)):
            return p
    return None


def test_alice_lstm_passes_80_percent_accuracy_within_50_epochs_and_samples_varied_text():
    path = text_utils.default_alice_path()
    if not os.path.isfile(path):
        pytest.skip(f"Alice text not found at {path} (set CS231N_ALICE_TXT to its location)")
    text = text_utils.read_text(path)
    # The setting exactly: word vectors 15, hidden 100, T = 50, batch 30, Adam 5e-4, <= 50 epochs.
    data = text_utils.prepare_text_data(text, seq_len=50, stride=1)
    model = LanguageModelRNN(len(data["idx_to_word"]), 15, 100, "lstm", idx_to_word=data["idx_to_word"],
                             seed=0)
    solver = LanguageModelSolver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-4},
                                 batch_size=30, num_epochs=50, seed=0, stop_at_accuracy=0.8, verbose=False)
    start = time.perf_counter()
    solver.train()
    seconds = time.perf_counter() - start
    curve = [round(e["train_accuracy"], 3) for e in solver.val_history]
    print(f"Alice: accuracy per epoch {curve}, {seconds:.1f} s")
    assert solver.stopped_early, f"accuracy stayed at or below 80% for 50 epochs: {curve}"
    assert solver.epoch <= 50

    # Accuracy measured here, independently of evaluate(): every target of the text scored once.
    scores = model.scores(data["train_eval_inputs"])
    accuracy = np.mean(scores.argmax(axis=2) == data["train_eval_targets"])
    assert accuracy > 0.8

    # 40 words from "she", sampled (temperature 1) and greedy (temperature 0): neither is one phrase
    # repeated, and both are made of the chapter's word pairs more often than chance: words drawn
    # independently with their frequencies in the chapter form one of its word pairs 5.7% of the time.
    tokens = text_utils.classic_tokenize(text)
    bigrams = set(zip(tokens, tokens[1:]))
    she = model.word_to_idx["she"]
    for temperature, min_pairs in ((1.0, 0.1), (0.0, 0.5)):
        words = text_utils.decode(model.sample(she, 40, temperature=temperature, rng=0), model.idx_to_word)
        sample = "she " + " ".join(words)
        print(f"Sample at temperature {temperature}: {sample}")
        assert len(words) == 40
        assert _longest_period(words) is None, f"the sample repeats one phrase: {sample!r}"
        assert len(set(words)) >= 20, f"the sample uses few distinct words: {sample!r}"
        pairs = list(zip(["she"] + words, words))
        assert np.mean([p in bigrams for p in pairs]) > min_pairs, sample
