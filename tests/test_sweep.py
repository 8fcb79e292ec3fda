"""Hyperparameter sweeps on Ray Tune (cs231n.sweep).

The search-space checks run everywhere; the sweeps need the optional extra (``pip install -e '.[sweep]'``)
and skip without it. They share one local Ray with 2 CPUs (started once for this module) and train
small LSTMs on the tiny shapes dataset, where a trial takes a second or two.
"""
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from cs231n import sweep
from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.cli import main
from cs231n.coco_utils import load_coco_data
from cs231n.data.shapes import make_shapes_dataset

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray Tune is not installed (pip install -e '.[sweep]')")
if importlib.util.find_spec("ray") is not None:
    from ray.tune import Callback as _TuneCallback
else:  # pragma: no cover
    _TuneCallback = object

SMALL = {"model": "lstm", "hidden_dim": 48, "wordvec_dim": 32, "batch_size": 25, "lr_decay": 1.0,
         "grad_clip": 5.0, "seed": 0}


# ------------------------------------------------------------------ the search space (no Ray needed)


def test_make_space_merges_file_and_options_over_the_default(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"model": {"choice": ["gru"]}, "lr": {"loguniform": [1e-4, 1e-2]}}))
    space = sweep.make_space(path, hidden_dim={"choice": [64, 128]}, batch_size=None)
    assert space["model"] == {"choice": ["gru"]}
    assert space["lr"] == {"loguniform": [1e-4, 1e-2]}
    assert space["hidden_dim"] == {"choice": [64, 128]}
    assert space["batch_size"] == sweep.DEFAULT_SPACE["batch_size"]  # None leaves the entry alone
    assert set(space) == set(sweep.DEFAULT_SPACE)


@pytest.mark.parametrize("entry, words", [
    ({"optimizer": "sgd"}, ["unknown key 'optimizer'", "known keys"]),
    ({"model": {"choice": ["lstm", "cnn"]}}, ["model", "'cnn'"]),
    ({"lr": {"loguniform": [1e-2, 1e-3]}}, ["low < high"]),
    ({"lr": {"loguniform": [0, 1e-3]}}, ["positive learning rate", "0"]),
    ({"hidden_dim": {"uniform": [16, 64]}}, ["hidden_dim", "not a uniform range"]),
    ({"hidden_dim": {"choice": [64, 0]}}, ["hidden_dim", "positive int", "0"]),
    ({"lr_decay": 1.5}, ["lr_decay", "(0, 1]", "1.5"]),
    ({"batch_size": {"choice": []}}, ["batch_size", "non-empty list"]),
    ({"lr": {"normal": [0, 1]}}, ["lr", "choice, grid, loguniform, uniform"]),
])
def test_make_space_names_the_bad_entry(entry, words):
    with pytest.raises(ValueError) as e:
        sweep.make_space(entry)
    for w in words:
        assert w in str(e.value)


def test_the_transformer_is_a_model_kind_of_the_space(tmp_path):
    from cs231n.classifiers.transformer import CaptioningTransformer

    space = sweep.make_space({"model": {"choice": ["lstm", "transformer"]}, "wordvec_dim": {"choice": [32, 64]},
                              "num_heads": {"choice": [2, 4]}, "num_layers": 1})
    assert space["num_layers"] == 1
    with pytest.raises(ValueError, match="num_heads to divide wordvec_dim; wordvec_dim 30 with num_heads 4"):
        sweep.make_space({"model": "transformer", "wordvec_dim": 30, "num_heads": 4})
    sweep.make_space({"model": "lstm", "wordvec_dim": 30, "num_heads": 4})  # heads matter to the Transformer only
    data = {"word_to_idx": {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}, "train_features": np.zeros((5, 6))}
    build, from_config, = sweep.MODEL_KINDS["transformer"]
    model = build(dict(wordvec_dim=8, num_heads=2, num_layers=1), data)
    assert isinstance(model, CaptioningTransformer) and (model.num_heads, model.num_layers) == (2, 1)
    assert from_config(model.get_config()).get_config() == model.get_config()


def test_parse_option_reads_values_lists_and_ranges():
    assert sweep.parse_option("lr", "1e-3:2e-2") == {"loguniform": [1e-3, 2e-2]}
    assert sweep.parse_option("lr_decay", "0.6:1") == {"uniform": [0.6, 1.0]}
    assert sweep.parse_option("hidden_dim", "128, 256") == {"choice": [128, 256]}
    assert sweep.parse_option("model", "gru") == "gru"
    with pytest.raises(ValueError, match="--hidden-dim takes a value or a comma-separated list"):
        sweep.parse_option("hidden_dim", "64:128")
    with pytest.raises(ValueError, match="--batch-size: cannot read 'many'"):
        sweep.parse_option("batch_size", "50,many")


def test_sweep_without_ray_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "ray.tune", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[sweep\]'"):
        sweep.run_sweep(tmp_path / "s")
    assert main(["sweep", "--out", str(tmp_path / "s")]) == 1
    assert "pip install -e '.[sweep]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ sweeps on a local Ray


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "tiny", "tiny", seed=1)


@pytest.fixture(scope="module")
def ray_session():
    started = sweep.start_ray(num_cpus=2)
    yield
    if started:
        import ray
        ray.shutdown()


def _reported(row):
    """The results a trial reported, in order, from Tune's result.json."""
    with open(Path(row["path"]) / "result.json") as f:
        return [json.loads(line) for line in f if line.strip()]


@needs_ray
def test_a_bad_metric_is_refused_before_anything_runs(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="metric 'accuracy' is not a validation score; choose one of .*CIDEr"):
        sweep.run_sweep(tmp_path / "s", space=SMALL, data_dir=tiny_dir, num_val_images=20, metric="accuracy")
    assert not (tmp_path / "s").exists()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume"):
        sweep.run_sweep(tmp_path / "s", space=SMALL, data_dir=tiny_dir)
    assert main(["sweep", "--out", str(tmp_path / "s"), "--data-dir", str(tiny_dir)]) == 1
    assert (tmp_path / "s" / "sweep.json").read_text() == "{}"


@needs_ray
def test_asha_stops_weak_trials_and_the_best_model_loads(ray_session, tiny_dir, tmp_path, capsys):
    # Two trials that learn, then two with a learning rate too small to move the weights: they reach the
    # first milestone after the good ones and score far below them there, so ASHA must stop them.
    space = dict(SMALL, lr={"grid": [2e-2, 1e-2, 1e-5, 1e-5]})
    out = tmp_path / "sweep"
    report = sweep.run_sweep(out, space=space, num_samples=1, num_epochs=4, data_dir=tiny_dir,
                             num_val_images=20, max_concurrent=2)
    rows = report["rows"]
    assert report["complete"] and len(rows) == 4
    weak = [r for r in rows if r["config"]["lr"] == 1e-5]
    assert [r["status"] for r in weak] == ["stopped early"] * 2
    assert all(r["epochs"] == 1 and len(_reported(r)) == 1 for r in weak)
    assert any(r["status"] == "finished" and r["epochs"] == 4 for r in rows)
    best = report["best"]
    assert best is rows[0] and best["config"]["lr"] in (2e-2, 1e-2)
    assert best["score"] == max(r["score"] for r in rows) == best["CIDEr"]
    for r in rows:  # one BLAS thread per trial, as cpus_per_trial asks
        assert {res["blas_threads"] for res in _reported(r)} == {1}

    # The exported model is a normal model file holding the best epoch: scoring it again gives that score.
    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN.load(out / "model.npz", word_to_idx=data["word_to_idx"])
    assert model.identity["dataset"] == str(Path(tiny_dir).resolve())  # it records its training data
    again = CaptioningSolver(model, data, num_val_images=20, seed=0, verbose=False).validate()
    assert again["CIDEr"] == pytest.approx(best["CIDEr"], abs=1e-12)
    assert again["Bleu_4"] == pytest.approx(best["Bleu_4"], abs=1e-12)
    for name in ("sweep.png", "report.md", "trials.json", "best.json"):
        assert (out / name).is_file()
    printed = capsys.readouterr().out
    assert "stopped early by ASHA after 1 of 4 epochs" in printed and "| best CIDEr" in printed
    assert main(["evaluate", "--checkpoint", str(out / "model.npz"), "--data-dir", str(tiny_dir),
                 "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1])["CIDEr"] >= 0
    assert "does not record the data" not in printed.err


@needs_ray
@pytest.mark.filterwarnings("ignore:epoch 1. the model gave the same caption")
def test_a_failed_trial_resumes_from_its_checkpoint(ray_session, tiny_dir, tmp_path):
    space = dict(SMALL, lr=2e-2)
    out = tmp_path / "sweep"
    report = sweep.run_sweep(out, space=space, num_samples=1, num_epochs=3, data_dir=tiny_dir,
                             num_val_images=20, early_stop=False, fail_once_at_epoch=2, max_failures=1,
                             verbose=False)
    (row,) = report["rows"]
    assert row["status"] == "finished" and row["resumed_at"] == [2]
    reported = _reported(row)
    # Epochs 1 and 2 come from the first attempt; the retry started from the epoch-2 checkpoint.
    assert [(r["epoch"], r["resumed_from_epoch"]) for r in reported] == [(1, 0), (2, 0), (3, 2)]

    # An uninterrupted run of the same trial in this process: the same scores and the same best weights.
    data = load_coco_data(base_dir=str(tiny_dir))
    settings = sweep.load_settings(out)
    config = dict(sweep.DEFAULT_SPACE, **space)
    np.random.seed(config["seed"])
    model = CaptioningRNN(data["word_to_idx"], input_dim=512, wordvec_dim=32, hidden_dim=48, cell_type="lstm")
    solver = CaptioningSolver(model, data, **sweep.solver_options(config, settings))
    solver.train()
    assert [r["CIDEr"] for r in reported] == [v["CIDEr"] for v in solver.val_history]
    exported = CaptioningRNN.load(out / "model.npz")
    for name, w in solver.best_params.items():
        np.testing.assert_array_equal(exported.params[name], w)


class _InterruptAfterFirstTrial(_TuneCallback):
    """Sends this process SIGINT (what Ctrl-C does) when the first trial ends; once per marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not os.path.exists(self.marker):  # the callback is saved with the sweep and runs again on resume
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGINT)


@needs_ray
def test_resume_finishes_an_interrupted_sweep_without_redoing_finished_trials(ray_session, tiny_dir, tmp_path,
                                                                              capsys):
    space = dict(SMALL, lr={"grid": [2e-2, 1e-2, 5e-3]})
    out = tmp_path / "sweep"
    report = sweep.run_sweep(out, space=space, num_samples=1, num_epochs=2, data_dir=tiny_dir,
                             num_val_images=20, early_stop=False, max_concurrent=1, verbose=False,
                             callbacks=[_InterruptAfterFirstTrial(tmp_path / "interrupted")])
    assert not report["complete"] and report["best"] is None and not (out / "model.npz").exists()
    assert "INTERRUPTED" in (out / "report.md").read_text()
    done = [r for r in report["rows"] if r["status"] == "finished"]
    assert len(done) == 1
    before = (Path(done[0]["path"]) / "result.json").read_bytes()

    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert sorted(t["status"] for t in trials) == ["finished"] * 3
    assert (Path(done[0]["path"]) / "result.json").read_bytes() == before  # not run again
    for t in trials:
        assert [r["epoch"] for r in _reported(t)] == [1, 2]
    assert CaptioningRNN.load(out / "model.npz").hidden_dim == 48
