"""The command line never loses or fakes a result (issue 13).

Run directories are never overwritten, a model is only scored or used with the data it was trained on,
options are checked before any work, expected failures end in one ``error:`` line (no traceback), and
Ctrl-C leaves a checkpoint that resumes bit for bit. Each test names the item of the issue's
"What was seen" list it covers.
"""
import http.server
import json
import os
import shutil
import signal
import threading

import numpy as np
import pytest

from cs231n.archive import load_archive
from cs231n.cli import build_parser, main
from cs231n.data.shapes import make_shapes_dataset

TINY = ["--wordvec-dim", "8", "--hidden-dim", "8", "--batch-size", "50", "--seed", "1",
        "--num-val-images", "4", "--quiet"]


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory):
    """Another tiny shapes dataset: same format, other images, features and featurizer."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "other", "tiny", seed=2)


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--out", str(out)] + TINY) == 0
    return out


def _train(tiny_dir, out, *extra):
    return main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--out", str(out)] + TINY
                + list(extra))


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# ------------------------------------------------------------------ 1. overwritten runs


def test_train_refuses_an_existing_run_directory_and_changes_nothing(run, tiny_dir, capsys):
    before = _files(run)
    capsys.readouterr()
    assert _train(tiny_dir, run) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--resume" in err and "--overwrite" in err and str(run) in err
    assert _files(run) == before


def test_overwrite_replaces_the_old_run_without_leaving_its_checkpoint(tiny_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"an old run's checkpoint")
    (out / "notes.txt").write_text("mine")
    assert _train(tiny_dir, out, "--overwrite") == 0
    assert load_archive(out / "checkpoint.npz")[1]["iteration"] > 0  # the new run's, not the old file
    assert (out / "notes.txt").read_text() == "mine"  # not one of the run's files: left alone


def test_default_out_picks_a_fresh_directory(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = ["train", "--data-dir", os.path.relpath(tiny_dir), "--epochs", "1"] + TINY
    assert main(common) == 0
    first = _files(tmp_path / "runs" / "train")
    assert main(common) == 0
    assert _files(tmp_path / "runs" / "train") == first
    assert (tmp_path / "runs" / "train-2" / "model.npz").is_file()
    assert "runs/train-2" in capsys.readouterr().out
    # The model records its dataset's absolute path: evaluate finds it from any directory.
    monkeypatch.chdir(tiny_dir)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "runs" / "train" / "model.npz"), "--json"]) == 0


def test_out_that_is_a_file_is_refused_clearly(tiny_dir, tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("keep")
    assert _train(tiny_dir, path) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "existing file" in err and "Errno" not in err
    assert path.read_text() == "keep"


def test_lm_train_refuses_an_existing_run_directory(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 10)
    out = tmp_path / "lm"
    out.mkdir()
    (out / "lm_history.json").write_text("[]\n")
    assert main(["lm-train", "--text", str(text), "--out", str(out), "--epochs", "1", "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["lm_history.json"]


class _Text(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"Alice was beginning to get very tired.\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def text_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Text)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alice.txt"
    server.shutdown()


def test_download_alice_keeps_an_existing_file(tmp_path, text_server, capsys):
    dest = tmp_path / "mine.txt"
    dest.write_text("my own notes")
    assert main(["download", "alice", "--url", text_server, "--dest", str(dest)]) == 1
    assert "--force" in capsys.readouterr().err
    assert dest.read_text() == "my own notes"
    assert main(["download", "alice", "--url", text_server, "--dest", str(dest), "--force"]) == 0
    assert "Alice was beginning" in dest.read_text()


# ------------------------------------------------------------------ 2. silently wrong scores


def test_model_file_records_its_vocabulary_and_training_data(run, tiny_dir):
    _, meta = load_archive(run / "model.npz")
    identity = meta["identity"]
    assert identity["dataset"] == str(tiny_dir)
    # The default model (the attention LSTM) was trained on the region features.
    assert set(identity["features"]) == {"train2014_regions.h5", "val2014_regions.h5"}
    assert set(identity["featurizer"]) == {"shapes_featurizer.npz"}
    assert meta["config"]["word_to_idx"] == json.loads((tiny_dir / "coco2014_vocab.json").read_text())[
        "word_to_idx"]


@pytest.mark.parametrize("name", ["model.npz", "checkpoint.npz"])
def test_evaluate_refuses_another_dataset(run, other_dir, name, capsys):
    assert main(["evaluate", "--checkpoint", str(run / name), "--data-dir", str(other_dir)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error:") and str(other_dir) in err and "Bleu" not in out and "CIDEr" not in out


def test_evaluate_refuses_a_dataset_whose_vocabulary_differs(run, tiny_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    vocab = json.loads((copy / "coco2014_vocab.json").read_text())
    a, b = vocab["idx_to_word"][4], vocab["idx_to_word"][5]  # swap two words: same size, other meaning
    vocab["idx_to_word"][4], vocab["idx_to_word"][5] = b, a
    vocab["word_to_idx"][a], vocab["word_to_idx"][b] = 5, 4
    (copy / "coco2014_vocab.json").write_text(json.dumps(vocab))
    assert main(["evaluate", "--checkpoint", str(run / "model.npz"), "--data-dir", str(copy)]) == 1
    assert "vocabulary" in capsys.readouterr().err


def test_evaluate_defaults_to_the_models_own_dataset(run, tiny_dir, capsys):
    assert main(["evaluate", "--checkpoint", str(run / "model.npz"), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((run / "scores.json").read_text())
    assert json.loads(out.strip().splitlines()[-1]) == {**summary["val_scores"], **summary["val_scene_accuracy"]}


def test_old_model_file_without_identity_loads_with_a_warning(run, tiny_dir, tmp_path, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN

    model = CaptioningRNN.load(run / "model.npz")
    model.identity = None  # as saved by older versions
    model.save(tmp_path / "old.npz")
    assert "identity" not in load_archive(tmp_path / "old.npz")[1]
    assert main(["evaluate", "--checkpoint", str(tmp_path / "old.npz"), "--data-dir", str(tiny_dir)]) == 0
    assert "warning:" in capsys.readouterr().err


def test_caption_refuses_a_featurizer_that_is_not_the_models(run, other_dir, capsys):
    png = other_dir / "images" / "val2014" / "000000.png"
    assert main(["caption", "--checkpoint", str(run / "model.npz"), "--data-dir", str(other_dir),
                 str(png)]) == 1
    out, err = capsys.readouterr()
    assert "shapes_featurizer.npz" in err and out == ""


@pytest.mark.filterwarnings("ignore:.*same caption")  # an image-blind model gives every image one caption
def test_image_blind_model_is_scored_on_zero_features_as_it_was_trained(tiny_dir, tmp_path, capsys):
    out = tmp_path / "blind"
    assert _train(tiny_dir, out, "--zero-features") == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "model.npz"), "--json"]) == 0
    printed, err = capsys.readouterr()
    assert "--zero-features" in err
    summary = json.loads((out / "scores.json").read_text())
    assert json.loads(printed.strip().splitlines()[-1]) == {**summary["val_scores"], **summary["val_scene_accuracy"]}


# ------------------------------------------------------------------ 3. options checked before work


@pytest.mark.parametrize("option, value", [("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"),
                                           ("--beam-size", "0"), ("--epochs", "0"), ("--batch-size", "0")])
def test_bad_train_options_are_refused_before_any_work(tiny_dir, tmp_path, option, value, capsys):
    out = tmp_path / "never"
    assert main(["train", "--data-dir", str(tiny_dir), "--out", str(out), option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and option in err and "Traceback" not in err
    assert not out.exists()


def test_a_huge_learning_rate_is_warned_about(tiny_dir, tmp_path, capsys):
    existing = tmp_path / "file"
    existing.write_text("")
    main(["train", "--data-dir", str(tiny_dir), "--out", str(existing), "--lr", "1e6"])
    assert "warning: learning rate 1e6" in capsys.readouterr().err


def test_lm_train_negative_lr_is_refused_and_writes_nothing(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 10)
    assert main(["lm-train", "--text", str(text), "--lr", "-1", "--out", str(tmp_path / "lm")]) == 2
    assert not (tmp_path / "lm").exists()


def test_json_results_never_hold_nan_or_infinity(tmp_path):
    from cs231n.archive import atomic_write_json

    atomic_write_json(tmp_path / "h.json", [{"perplexity": float("inf"), "loss": np.float32("nan"), "a": 1}])

    def refuse(name):
        raise AssertionError(f"not JSON: {name}")

    assert json.loads((tmp_path / "h.json").read_text(), parse_constant=refuse) == [
        {"perplexity": None, "loss": None, "a": 1}]


def test_caption_with_a_missing_image_exits_non_zero_and_captions_the_rest(run, tiny_dir, tmp_path, capsys):
    good = tiny_dir / "images" / "val2014" / "000000.png"
    missing = tmp_path / "missing.png"
    assert main(["caption", "--checkpoint", str(run / "model.npz"), str(missing), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: ") and len(out.strip().splitlines()) == 1
    # The reason and the summary both go to stderr.
    assert str(missing) in err and "1 of 2 images could not be read" in err


# ------------------------------------------------------------------ 4. no tracebacks


def test_divergence_ends_in_one_error_line(tiny_dir, tmp_path, monkeypatch, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN

    loss = CaptioningRNN.loss

    def nan_loss(self, features, captions, **kwargs):
        value, grads = loss(self, features, captions, **kwargs)
        return float("nan"), grads

    monkeypatch.setattr(CaptioningRNN, "loss", nan_loss)
    assert _train(tiny_dir, tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Training diverged at iteration 1") and "Traceback" not in err


def test_random_bytes_model_file(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["evaluate", "--checkpoint", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err and "pickle" not in err


def test_truncated_featurizer_is_reported_not_raised(run, tiny_dir, tmp_path, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN

    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    featurizer = copy / "shapes_featurizer.npz"
    featurizer.write_bytes(featurizer.read_bytes()[:1000])
    png = copy / "images" / "val2014" / "000000.png"
    # With the model's record of its featurizer the damaged file is refused before it is opened ...
    assert main(["caption", "--checkpoint", str(run / "model.npz"), "--data-dir", str(copy), str(png)]) == 1
    assert "shapes_featurizer.npz has other contents" in capsys.readouterr().err
    # ... and a model without the record gets one error line naming the file instead of BadZipFile.
    model = CaptioningRNN.load(run / "model.npz")
    model.identity = None
    model.save(tmp_path / "old.npz")
    assert main(["caption", "--checkpoint", str(tmp_path / "old.npz"), "--data-dir", str(copy), str(png)]) == 1
    err = capsys.readouterr().err
    assert f"error: {featurizer} is damaged or truncated" in err


def test_binary_text_file_names_the_file(tmp_path, capsys):
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["lm-train", "--text", str(binary), "--out", str(tmp_path / "lm")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(binary) in err and "UTF-8" in err


def test_evaluate_names_a_language_model_file(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 10)
    out = tmp_path / "lm"
    assert main(["lm-train", "--text", str(text), "--out", str(out), "--epochs", "1", "--seq-len", "4",
                 "--batch-size", "5", "--hidden-dim", "8", "--wordvec-dim", "4", "--quiet"]) == 0
    assert main(["evaluate", "--checkpoint", str(out / "lm_checkpoint.npz")]) == 1
    assert "is a language-model file" in capsys.readouterr().err


# ------------------------------------------------------------------ 5. interrupts


def _model_arrays(path):
    arrays, _ = load_archive(path)
    return arrays


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_resume_is_exact(tiny_dir, tmp_path,
                                                                           monkeypatch, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN

    common = ["--data-dir", str(tiny_dir), "--epochs", "2", "--checkpoint-every", "1000"] + TINY
    assert main(["train", "--out", str(tmp_path / "straight")] + common) == 0

    loss, calls = CaptioningRNN.loss, []

    def interrupted_loss(self, features, captions, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # iteration 4 of 12 (6 per epoch): mid-epoch, no checkpoint written yet
            os.kill(os.getpid(), signal.SIGINT)
        return loss(self, features, captions, **kwargs)

    monkeypatch.setattr(CaptioningRNN, "loss", interrupted_loss)
    argv = ["train", "--out", str(tmp_path / "cut")] + common
    capsys.readouterr()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "after iteration 4" in err and "Traceback" not in err
    hint = err.strip().splitlines()[-1]
    assert hint.startswith("continue with: python -m cs231n train ") and "--resume" in hint
    assert load_archive(tmp_path / "cut" / "checkpoint.npz")[1]["iteration"] == 4
    monkeypatch.setattr(CaptioningRNN, "loss", loss)
    assert main(["train", "--resume", "--out", str(tmp_path / "cut")] + common) == 0
    straight, resumed = _model_arrays(tmp_path / "straight" / "model.npz"), _model_arrays(
        tmp_path / "cut" / "model.npz")
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name])


def _interrupting_model(data, at):
    """A small CaptioningRNN whose loss sends this process SIGINT during call number ``at``."""
    from cs231n.classifiers.rnn import CaptioningRNN

    np.random.seed(0)
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=8,
                          hidden_dim=8, cell_type="rnn")
    loss, calls = model.loss, []

    def interrupted_loss(features, captions):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGINT)
        return loss(features, captions)

    model.loss = interrupted_loss
    return model


def test_solver_finishes_the_iteration_checkpoints_and_raises_training_interrupted(tiny_dir, tmp_path):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.coco_utils import load_coco_data
    from cs231n.solver import TrainingInterrupted, load_checkpoint

    data = load_coco_data(base_dir=str(tiny_dir))
    name = str(tmp_path / "ckpt")
    solver = CaptioningSolver(_interrupting_model(data, at=3), data, batch_size=50, num_epochs=2,
                              num_val_images=0, verbose=False, checkpoint_name=name)
    with pytest.raises(TrainingInterrupted) as info:
        solver.train()
    assert info.value.iteration == 3 and solver.iteration == 3 and info.value.checkpoint == name + ".npz"
    assert load_checkpoint(name + ".npz")["meta"]["iteration"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_without_a_checkpoint_ctrl_c_stops_at_once_as_in_the_classic_solver(tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.coco_utils import load_coco_data
    from cs231n.solver import TrainingInterrupted

    data = load_coco_data(base_dir=str(tiny_dir))
    solver = CaptioningSolver(_interrupting_model(data, at=3), data, batch_size=50, num_epochs=2,
                              num_val_images=0, verbose=False)
    with pytest.raises(KeyboardInterrupt) as info:
        solver.train()
    assert not isinstance(info.value, TrainingInterrupted)
    assert solver.iteration == 2  # the interrupted update was not applied


def test_orphan_temporary_files_are_removed_on_the_next_run(run, tiny_dir, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    dead = out / ".tmp-999999999-abc123.npz"  # no such process
    old_style = out / ".tmp-k2j4h5g6.npz"
    alive = out / f".tmp-{os.getppid()}-xyz.npz"  # a running process: may still be writing it
    for path in (dead, old_style, alive):
        path.write_bytes(b"partial")
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--resume", "--out", str(out)]
                + TINY) == 0
    assert not dead.exists() and not old_style.exists() and alive.exists()


def test_resume_with_nothing_to_resume_is_explained(tmp_path, tiny_dir, capsys):
    assert _train(tiny_dir, tmp_path / "empty", "--resume") == 1
    assert "nothing to resume" in capsys.readouterr().err


# ------------------------------------------------------------------ 6. help


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help_and_defaults_are_shown():
    parser = build_parser()
    assert "`" not in parser.description
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = " ".join(sub.format_help().split())
        assert "(default: None)" not in text and "(default: [])" not in text, name  # nothing to say
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS==", []):
                assert f"(default: {action.default})" in text, (name, action.option_strings)


def test_lm_train_resume_and_lm_sample_best(tmp_path, capsys):
    from cs231n.lm_solver import sample_text

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log\n" * 8)
    common = ["--text", str(text), "--seq-len", "5", "--batch-size", "10", "--hidden-dim", "8",
              "--wordvec-dim", "4", "--lr", "1e-2", "--quiet"]
    assert main(["lm-train", "--epochs", "2", "--out", str(tmp_path / "a")] + common) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["lm-train", "--epochs", "1", "--out", str(tmp_path / "b")] + common) == 0
    assert main(["lm-train", "--epochs", "2", "--resume", "--out", str(tmp_path / "b")] + common) == 0
    a, b = _model_arrays(tmp_path / "a" / "lm_checkpoint.npz"), _model_arrays(tmp_path / "b" / "lm_checkpoint.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    checkpoint = str(tmp_path / "a" / "lm_checkpoint.npz")
    capsys.readouterr()
    assert main(["lm-sample", "--checkpoint", checkpoint, "--start", "cat", "--temperature", "0",
                 "--length", "6", "--best"]) == 0
    assert capsys.readouterr().out.strip() == sample_text(checkpoint, "cat", length=6, temperature=0,
                                                          seed=0, best=True)


def test_kill_9_at_random_moments_then_resume_is_bit_exact(tiny_dir, tmp_path):
    """kill -9 a training process a few times right after (mid-epoch) checkpoints; resume each time.

    The final weights, histories and scores equal those of an uninterrupted run, bit for bit, and no
    temporary file of a killed write is left behind.
    """
    import subprocess
    import sys
    import time

    from cs231n.solver import load_checkpoint

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # 20 iterations per epoch, a checkpoint every 3: most checkpoints are in the middle of an epoch.
    args = ["--data-dir", str(tiny_dir), "--epochs", "2", "--max-train", "2000", "--batch-size", "100",
            "--wordvec-dim", "64", "--hidden-dim", "160", "--checkpoint-every", "3", "--num-val-images", "4",
            "--seed", "5", "--quiet"]

    def start(out, *extra):
        return subprocess.Popen([sys.executable, "-m", "cs231n", "train", "--out", str(out)] + args
                                + list(extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # The uninterrupted run, in this process (BLAS is single-threaded here too, see conftest.py).
    assert main(["train", "--out", str(tmp_path / "straight")] + args) == 0

    out = tmp_path / "killed"
    ckpt = out / "checkpoint.npz"
    rng = np.random.default_rng(0)
    killed_at = []
    proc = start(out)
    while len(killed_at) < 3:
        # Wait for a new checkpoint, then kill at a random moment of the iterations after it.
        seen = ckpt.stat().st_ino if ckpt.exists() else None
        while proc.poll() is None and (not ckpt.exists() or ckpt.stat().st_ino == seen):
            time.sleep(0.002)
        if proc.poll() is not None:
            break
        time.sleep(rng.uniform(0, 0.08))
        proc.kill()  # SIGKILL: no handler runs
        proc.wait()
        killed_at.append(load_checkpoint(ckpt)["meta"]["iteration"])
        proc = start(out, "--resume")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    assert len(killed_at) >= 2 and any(0 < i < 40 and i % 20 for i in killed_at), killed_at

    straight, resumed = load_checkpoint(tmp_path / "straight" / "checkpoint.npz"), load_checkpoint(ckpt)
    assert resumed["meta"]["loss_history"] == straight["meta"]["loss_history"]
    assert resumed["meta"]["val_history"] == straight["meta"]["val_history"]
    a, b = _model_arrays(tmp_path / "straight" / "model.npz"), _model_arrays(out / "model.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert json.loads((out / "scores.json").read_text())["val_scores"] == json.loads(
        (tmp_path / "straight" / "scores.json").read_text())["val_scores"]
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]


# ------------------------------------------------------------------ 7. curves.png


def test_curves_log_loss_separate_score_axes_integer_epochs_kept_epoch_marked(tmp_path):
    import matplotlib.pyplot as plt

    from cs231n.vis import plot_training_curves

    loss = [53.0] + list(np.linspace(10, 5, 29))  # the first iteration dwarfs the rest on a linear axis
    history = [{"epoch": e, "iteration": 10 * e, "val_loss": 9.0 - e, "Bleu_1": 0.5 + 0.1 * e,
                "Bleu_4": 0.1 * e, "CIDEr": c} for e, c in ((1, 1.5), (2, 3.2), (3, 2.9))]
    fig = plot_training_curves(loss, history, path=tmp_path / "curves.png")
    loss_ax, bleu_ax, cider_ax = fig.axes
    assert loss_ax.get_yscale() == "log"
    assert {line.get_label() for line in bleu_ax.lines} >= {"Bleu_1", "Bleu_4"}
    assert "CIDEr" not in {line.get_label() for line in bleu_ax.lines}
    assert "CIDEr" in {line.get_label() for line in cider_ax.lines}
    assert bleu_ax.get_ylim() == (0, 1)
    for ax in (bleu_ax, cider_ax):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        # The epoch with the best CIDEr (whose weights train keeps) is marked.
        assert "kept: epoch 2" in {line.get_label() for line in ax.lines}
    assert "kept: epoch 2" in {line.get_label() for line in loss_ax.lines}
    plt.close(fig)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
