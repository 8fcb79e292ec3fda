"""Every promise holds under abuse (issue 20): each test names the item of the issue's list it covers.

One rule behind them: every option and combination is checked before any data is loaded or anything
written, with bounds from the data and the machine; a resumed run is the run it continues; training
stops when the loss blows up; the API's errors speak the user's terms; every diagnostic goes to stderr
and the exit status says what kind of problem it was (2 a bad option, 1 a data problem).
Items 8 (download --dest) and 9 (build-dataset --max-length) are in test_download.py and
test_build_dataset.py, next to their fixtures.
"""
import json
import warnings

import numpy as np
import pytest

from cs231n.cli import main

TINY = ["--wordvec-dim", "8", "--hidden-dim", "8", "--batch-size", "50", "--num-val-images", "4", "--quiet"]


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory):
    """A finished 1-epoch run (the default attention LSTM, hidden size 8, seed 0)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--out", str(out)] + TINY) == 0
    return out


@pytest.fixture(scope="module")
def transformer_run(tiny_dir, tmp_path_factory):
    """A 1-epoch Transformer run (2 heads of a model size 6, 1 layer); tests may resume it."""
    out = tmp_path_factory.mktemp("runs") / "transformer"
    assert _train(tiny_dir, out, "--model", "transformer", "--num-heads", "2", "--num-layers", "1",
                  "--wordvec-dim", "6") == 0
    return out


def _train(tiny_dir, out, *extra):
    return main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--out", str(out)] + TINY + list(extra))


def _one_error_line(err):
    lines = [line for line in err.strip().splitlines() if not line.startswith("(see:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ 1. resume changes the run


@pytest.mark.parametrize("option, value, saved", [("--seed", "3", "0"), ("--max-train", "100", "(not given)"),
                                                  ("--model", "transformer", "rnn"), ("--lr", "0.0001", "0.005"),
                                                  ("--batch-size", "20", "50")])
def test_resume_refuses_an_option_that_changes_the_run(run, option, value, saved, capsys):
    """A changed --seed or --max-train trained silently on another subset; others gave internal messages."""
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", option, value]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{option} {value} differs" in line and f"used {option} {saved}" in line
    assert "an attention captioning model" in line and "hidden_dim 8" in line and "49 words" in line  # kind, sizes
    assert "Wx" not in line  # not a list of parameter names
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written


def test_resume_takes_the_runs_own_options_when_they_are_left_out(tiny_dir, tmp_path):
    """`train --resume --out DIR` alone continues the run as it was started (its sizes, seed, data)."""
    from cs231n.archive import load_archive

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--out", str(straight)] + TINY) == 0
    assert _train(tiny_dir, split) == 0
    assert main(["train", "--resume", "--out", str(split), "--epochs", "2", "--quiet"]) == 0
    a, meta = load_archive(straight / "model.npz")
    b, _ = load_archive(split / "model.npz")
    assert meta["config"]["hidden_dim"] == 8
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    config = json.loads((split / "config.json").read_text())
    assert config["epochs"] == 2 and config["hidden_dim"] == 8  # what the run used, nothing else


def test_resume_checks_combinations_with_the_runs_own_options(transformer_run):
    """--num-heads 2 with --wordvec-dim 6 is fine; resuming without them must not test the defaults (4 heads)."""
    assert main(["train", "--resume", "--out", str(transformer_run), "--epochs", "2", "--model", "transformer",
                 "--quiet"]) == 0


# ------------------------------------------------------------------ 2. config.json rewritten before the checks


def test_a_refused_resume_leaves_config_json_as_it_was(run, capsys):
    before = (run / "config.json").read_bytes()
    assert main(["train", "--resume", "--out", str(run), "--hidden-dim", "64"]) == 2
    assert main(["train", "--resume", "--out", str(run), "--lr", "1e-4"]) == 2
    assert (run / "config.json").read_bytes() == before
    assert json.loads(before)["hidden_dim"] == 8


# ------------------------------------------------------------------ 3. sizes with no upper bound


def test_a_batch_larger_than_the_training_set_is_refused_before_any_work(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_dir, out, "--batch-size", "100000", "--max-train", "300") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--batch-size 100000" in line and "300 captions" in line
    assert _train(tiny_dir, out, "--batch-size", "301") == 2  # the tiny dataset has 300 train captions
    assert "300 captions" in capsys.readouterr().err
    assert not out.exists()


def test_a_model_that_cannot_fit_in_memory_is_refused_with_the_estimate(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_dir, out, "--hidden-dim", "200000") == 2  # about 4 TB of weights and Adam state
    line = _one_error_line(capsys.readouterr().err)
    assert "memory" in line and "TB" in line and "weights" in line and "--hidden-dim" in line
    assert not out.exists()


def test_a_data_subset_that_cannot_fit_in_memory_is_refused(tiny_dir, tmp_path, monkeypatch, capsys):
    import cs231n.cli.limits as limits

    monkeypatch.setattr(limits, "physical_memory", lambda: 200 * 10 ** 6)  # a 200 MB machine
    assert _train(tiny_dir, tmp_path / "run", "--max-train", "10000000") == 2  # 720 MB of captions
    line = _one_error_line(capsys.readouterr().err)
    assert "200 MB" in line and "data" in line and "--max-train" in line
    assert not (tmp_path / "run").exists()


def test_the_estimate_counts_what_the_sizes_imply():
    from cs231n.cli.limits import captioning_params, captioning_train_bytes

    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.classifiers.transformer import CaptioningTransformer

    vocab = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(46)])}
    for cell in ("rnn", "lstm", "gru"):
        model = CaptioningRNN(vocab, input_dim=12, wordvec_dim=6, hidden_dim=10, cell_type=cell)
        assert captioning_params("rnn", 12, 50, 6, 10, cell) == sum(p.size for p in model.params.values())
    model = CaptioningTransformer(vocab, 12, 8, num_heads=2, num_layers=2)
    assert captioning_params("transformer", 12, 50, 8, num_layers=2) == sum(p.size for p in model.params.values())
    sizes = {"train_captions": (1000, 17), "val_captions": (100, 17), "train_images": 200, "val_images": 20,
             "feature_dim": 512, "vocab_size": 50}
    small = captioning_train_bytes(sizes, "rnn", 10, 8, 8)
    assert captioning_train_bytes(sizes, "rnn", 100, 8, 8)["activations"] == 10 * small["activations"]
    assert captioning_train_bytes(sizes, "rnn", 10, 8, 8, max_train=10 ** 6)["data"] > 4 * 17 * 10 ** 6


# ------------------------------------------------------------------ 4. a beam wider than the vocabulary


def test_evaluate_refuses_a_beam_wider_than_the_vocabulary(run, capsys):
    assert main(["evaluate", "--checkpoint", str(run / "model.npz"), "--beam-size", "100000",
                 "--num-images", "2"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--beam-size 100000" in line and "49 words" in line


def test_evaluate_refuses_a_max_length_beyond_the_transformers_positions(transformer_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(transformer_run / "model.npz"), "--max-length", "100",
                 "--num-images", "2"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--max-length 100" in line and "--max-length 50 or less" in line


# ------------------------------------------------------------------ 5. divergence short of NaN


class _BlowingUp:
    """A model whose loss grows 1000-fold after its first step (a learning rate far too high)."""

    def __init__(self):
        self.params = {"w": np.zeros(3)}
        self.calls = 0

    def loss(self, x):
        self.calls += 1
        return (5.0 if self.calls == 1 else 5000.0 + self.calls), {"w": np.zeros(3)}


def _solver(model, **kwargs):
    from cs231n.solver import Solver

    class _Solver(Solver):
        def _num_train(self):
            return 10

        def _sample_batch(self):
            return (None,)

    return _Solver(model, batch_size=10, num_epochs=20, verbose=False, **kwargs)


def test_the_solver_stops_when_the_loss_stays_far_above_its_start_only_when_asked():
    from cs231n.solver import TrainingDivergedError

    classic = _solver(_BlowingUp())
    classic.train()  # without the option: the classic loop runs to the end
    assert len(classic.loss_history) == 20
    solver = _solver(_BlowingUp(), divergence_factor=10)
    with pytest.raises(TrainingDivergedError, match="above 10 x its first value") as e:
        solver.train()
    assert e.value.iteration == 6 and solver.iteration == 5  # 5 in a row above 50: the 5th is not applied
    with pytest.raises(ValueError, match="divergence_factor"):
        _solver(_BlowingUp(), divergence_factor=0.5)


def test_train_with_a_huge_learning_rate_ends_in_one_error_line(tiny_dir, tmp_path, capsys):
    assert _train(tiny_dir, tmp_path / "run", "--lr", "1000", "--epochs", "5") == 1
    err = capsys.readouterr().err
    assert "warning: learning rate 1000" in err
    assert "error: Training diverged" in err and "learning rate" in err.split("error:")[1]
    assert not (tmp_path / "run" / "model.npz").exists()


# ------------------------------------------------------------------ 6. the API's errors in the user's terms


def _vocab(n):
    return {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(n - 4)])}


def test_a_model_trained_on_data_with_another_vocabulary_is_refused_as_such(tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data

    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN(_vocab(6), input_dim=512, wordvec_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="the vocabularies differ") as e:
        CaptioningSolver(model, data, verbose=False)
    assert "model has 6 words, data has 49" in str(e.value)


def test_non_finite_features_are_named_at_the_model_and_the_solver(tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data

    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN(data["word_to_idx"], input_dim=512, wordvec_dim=4, hidden_dim=4)
    features = data["train_features"][:2].copy()
    features[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"features must hold finite numbers, but features\[1, 7\] is nan"):
        model.loss(features, data["train_captions"][:2])
    data["train_features"] = data["train_features"].copy()
    data["train_features"][3, 0] = np.inf
    with pytest.raises(ValueError, match=r"train_features.*\[3, 0\] is inf"):
        CaptioningSolver(model, data, verbose=False)


def test_word_to_idx_with_a_gap_is_named(tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data

    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 7}
    model = CaptioningRNN(vocab, input_dim=3, wordvec_dim=2, hidden_dim=2)  # silent: cs231n's notebooks do this
    assert model.unusable_words == ["a"]
    data = dict(load_coco_data(base_dir=str(tiny_dir)), word_to_idx=vocab)
    with pytest.raises(ValueError, match=r"vocabulary has a gap: word_to_idx must number its 4 words 0 to 3 "
                                         r"with no gap, but 'a' has 7"):
        CaptioningSolver(model, data, verbose=False)
    with pytest.raises(ValueError, match="<END> is needed for decoding"):
        CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 9, "a": 2}, input_dim=3, wordvec_dim=2, hidden_dim=2)


# ------------------------------------------------------------------ 10. messages and exit statuses


def test_an_out_that_cannot_be_created_names_out_and_what_to_do(tiny_dir, capsys):
    assert _train(tiny_dir, "/sys/cs231n_x") == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "--out /sys/cs231n_x cannot be created" in line and "choose a directory you can write to" in line


@pytest.mark.parametrize("argv", [
    ["train", "--model", "transformer", "--num-heads", "3", "--wordvec-dim", "16"],
    ["train", "--resume", "--overwrite", "--out", "somewhere"],
    ["classify-train", "--data", ".", "--option", "foo"],
    ["classify-train", "--data", ".", "--model", "bow", "--option", "bogus=1"],
])
def test_bad_options_and_combinations_exit_2_with_one_error_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    if "bogus=1" in argv:
        assert "'bogus'" in line and "reg" in line  # the unknown option and the valid ones
    assert not any(tmp_path.iterdir())


def test_python_warnings_reach_the_user_as_one_warning_line(tiny_dir, tmp_path, monkeypatch, capsys):
    import cs231n.cli.train as train

    def warn_and_refuse(a, base):
        warnings.warn("something the user should know\n  over two lines", UserWarning)
        raise ValueError("stop here")

    monkeypatch.setattr(train, "_check_sizes", warn_and_refuse)
    assert _train(tiny_dir, tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert "warning: something the user should know over two lines\n" in err
    assert "UserWarning" not in err and ".py:" not in err


def test_overflow_in_a_blown_up_model_gives_no_runtime_warning(tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data
    from cs231n.solver import TrainingDivergedError

    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN(data["word_to_idx"], input_dim=512, wordvec_dim=8, hidden_dim=8, cell_type="lstm")
    # Weights that overflow float32 in x @ Wx (rnn_layers.py:357 warned 'overflow encountered in matmul').
    model.params["Wx"] = np.full_like(model.params["Wx"], 3e38)
    model.params["W_embed"] = np.ones_like(model.params["W_embed"])
    solver = CaptioningSolver(model, data, batch_size=10, num_epochs=1, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning ('overflow encountered in matmul') fails the test
        try:
            solver.train()  # saturated gates can keep the loss finite: then training just goes on
        except TrainingDivergedError:
            pass  # or the step's own checks stop it, with their message


# ------------------------------------------------------------------ 7. caption: blank and degenerate images


def test_caption_flags_blank_flat_tiny_and_huge_images_on_stderr(run, tiny_dir, tmp_path, capsys):
    """All black, all white, 1x1 and 5000x5000 images got a confident caption and no warning (distance 1.39)."""
    from PIL import Image

    paths = {}
    for name, size, color in (("black", (96, 96), 0), ("white", (96, 96), 255), ("dot", (1, 1), 128),
                              ("huge", (5000, 5000), 255)):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", size, (color,) * 3).save(paths[name])
    sky = np.zeros((96, 96, 3), dtype=np.uint8)
    sky[:, :, 2] = np.linspace(100, 120, 96).astype(np.uint8)[:, None]  # a faint gradient: not flat, no object
    paths["sky"] = tmp_path / "sky.png"
    Image.fromarray(sky).save(paths["sky"])
    val = tiny_dir / "images" / "val2014" / "000001.png"
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(run / "model.npz"), str(val)] + [str(p) for p in paths.values()]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 6 and "warning" not in captured.out  # stdout: captions only
    warnings_ = {line.split()[1]: line for line in captured.err.splitlines() if line.startswith("warning:")}
    assert set(warnings_) == {str(p) for p in paths.values()}  # every odd image flagged, the val image not
    assert "one flat color" in warnings_[str(paths["black"])] and "one flat color" in warnings_[str(paths["white"])]
    assert "1x1 pixels" in warnings_[str(paths["dot"])] and "5000x5000 pixels" in warnings_[str(paths["huge"])]
    assert "finds no object" in warnings_[str(paths["sky"])]


# ------------------------------------------------------------------ 15. the figures (the sweep's is elsewhere)


def _in_view(ax, y):
    low, high = ax.get_ylim()
    return low < y < high


def test_curves_keep_the_top_point_in_the_frame_and_say_on_how_many_images_per_epoch(tmp_path):
    import matplotlib.pyplot as plt

    from cs231n.vis import plot_training_curves

    # Scores close together far from 0: on a 0-based axis the autoscaled top hugged the highest point.
    history = [{"epoch": e, "iteration": 10 * e, "val_loss": 9.0 - e, "Bleu_1": 0.9, "Bleu_4": 0.6,
                "CIDEr": c, "num_val_images": 200} for e, c in ((1, 4.5), (2, 4.8), (3, 4.7))]
    final = {"Bleu_1": 0.91, "Bleu_4": 0.61, "CIDEr": 4.644, "num_images": 1000}
    fig = plot_training_curves(list(np.linspace(50, 10, 30)), history, path=tmp_path / "curves.png", final=final)
    _, bleu_ax, cider_ax = fig.axes
    low, high = cider_ax.get_ylim()
    assert low == 0 and high >= 4.8 * 1.05  # room above the top point for its marker
    assert cider_ax.get_ylabel() == "val CIDEr (per epoch: 200 images)"
    assert bleu_ax.get_ylabel() == "val BLEU (per epoch: 200 images)"
    fig2 = plot_training_curves([9.0, 8.0], [dict(h, scene_right=0.9) for h in history], val_name="held-out")
    assert [ax.get_ylabel() for ax in fig2.axes[1:]] == [f"held-out {what} (per epoch: 200 images)"
                                                          for what in ("BLEU", "CIDEr", "entirely right")]
    plt.close(fig2)
    labels = {line.get_label() for line in cider_ax.lines}
    assert "final CIDEr: 4.644 (all 1000 val images)" in labels
    plt.close(fig)


def test_a_one_epoch_run_gets_integer_epoch_ticks(tmp_path):
    import matplotlib.pyplot as plt

    from cs231n.vis import plot_training_curves

    history = [{"epoch": 1, "iteration": 6, "val_loss": 30.0, "Bleu_1": 0.3, "Bleu_4": 0.0, "CIDEr": 0.2,
                "num_val_images": 4}]
    fig = plot_training_curves([45.0, 40.0, 35.0, 33.0, 31.0, 30.0], history, path=tmp_path / "curves.png")
    for ax in fig.axes[1:]:
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1]
    plt.close(fig)


def test_classification_curves_name_their_lines_and_show_a_negative_mcc(tmp_path):
    import matplotlib.pyplot as plt

    from cs231n.vis import plot_training_curves

    history = [{"epoch": e, "iteration": 5 * e, "val_loss": 0.7, "val_accuracy": a, "val_mcc": m,
                "train_eval_accuracy": a + 0.1, "train_eval_mcc": m + 0.2}
               for e, a, m in ((1, 0.55, -0.12), (2, 0.62, 0.05), (3, 0.66, 0.18))]
    fig = plot_training_curves(list(np.linspace(0.7, 0.5, 15)), history, path=tmp_path / "curves.png")
    ax = fig.axes[-1]
    labels = {line.get_label() for line in ax.lines}
    assert {"val accuracy", "val MCC", "train accuracy (subset)", "train MCC (subset)"} <= labels
    assert not any("_" in label for label in labels if not label.startswith("kept"))  # no raw keys
    assert _in_view(ax, -0.12) and _in_view(ax, 0.86)  # the negative MCC and the top accuracy both show
    plt.close(fig)


def test_lm_train_refuses_sizes_no_machine_holds_and_stops_when_the_loss_blows_up(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["the cat sat on the mat and the dog lay on the rug"] * 30))
    out = tmp_path / "lm"
    assert main(["lm-train", "--text", str(text), "--hidden-dim", "200000", "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "memory" in line and "--hidden-dim" in line and not out.exists()
    assert main(["lm-train", "--text", str(text), "--seq-len", "5", "--hidden-dim", "16", "--lr", "1000",
                 "--epochs", "3", "--quiet", "--out", str(out)]) == 1
    assert "above 10 x its first value" in capsys.readouterr().err


def test_running_out_of_memory_anyway_is_one_error_line(tiny_dir, tmp_path, monkeypatch, capsys):
    import cs231n.cli.train as train

    def allocate(a, base):
        raise MemoryError("Unable to allocate 640. GiB for an array with shape (200000, 800000)")

    monkeypatch.setattr(train, "_check_sizes", allocate)
    assert _train(tiny_dir, tmp_path / "run") == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "out of memory" in line and "640. GiB" in line


def test_a_dataset_that_fails_to_load_leaves_no_run_directory(tiny_dir, tmp_path, capsys):
    import shutil

    import h5py

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    with h5py.File(broken / "train2014_vgg16_fc7_pca.h5", "r+") as f:
        f["features"][2, 5] = np.nan
    assert _train(broken, tmp_path / "run") == 1
    assert "not finite" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_classify_train_stops_when_the_loss_blows_up(tmp_path, capsys):
    from cola_fixtures import write_cola_dir

    folder = write_cola_dir(tmp_path / "cola")
    rc = main(["classify-train", "--data", str(folder), "--model", "bow", "--lr", "1000", "--epochs", "20",
               "--batch-size", "10", "--quiet", "--out", str(tmp_path / "run")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "warning: learning rate 1000" in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "above 10 x its first value" in errors[0] and "Traceback" not in err
