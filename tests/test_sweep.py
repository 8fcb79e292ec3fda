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


def _first_reference(data, image_ids):
    """Each image's first val caption as ``model.sample`` returns captions: (N, T - 1), without <START>."""
    image_idxs = np.asarray(data["val_image_idxs"])
    rows = [int(np.flatnonzero(image_idxs == i)[0]) for i in image_ids]
    return np.asarray(data["val_captions"])[rows, 1:]


def test_validation_judges_the_scenes_when_asked(tiny_dir):
    from cs231n.coco_utils import decode_captions
    from cs231n.data.shapes.accuracy import SCENE_METRICS, judge_dataset_captions

    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN(data["word_to_idx"], input_dim=512, wordvec_dim=8, hidden_dim=8)
    classic = CaptioningSolver(model, data, num_val_images=20, verbose=False)
    assert not any(k.startswith("scene_") for k in classic.validate())  # off unless asked for
    judged = CaptioningSolver(model, data, num_val_images=20, verbose=False, scene_dir=str(tiny_dir))
    ids = judged.val_image_ids
    for shift in (0, 1):  # each image's own reference caption, then its neighbour's
        captions = _first_reference(data, np.roll(ids, shift))
        model.sample = lambda features, captions=captions: captions
        scores = judged.validate()
        want, _ = judge_dataset_captions(tiny_dir, "val", dict(zip(ids.tolist(), decode_captions(captions, data["idx_to_word"]))))
        assert {k: scores[k] for k in SCENE_METRICS} == pytest.approx(want)
        if shift == 0:
            own = scores["scene_right"]
    assert own > 0.8 and scores["scene_right"] < own  # the references describe their own images
    with pytest.raises(ValueError, match="scene_dir: .* has no shapes_scenes.json"):
        CaptioningSolver(model, data, num_val_images=2, scene_dir=str(tiny_dir / "images"))


def test_the_sweep_figure_rings_the_best_inside_and_has_no_empty_panel(tmp_path):
    from cs231n.vis import plot_sweep

    rows = [{"config": {"model": "transformer", "lr": lr, "wordvec_dim": w, "num_heads": 2, "num_layers": 1},
             "score": score, "status": "finished"}
            for lr, w, score in ((3e-3, 64, 0.9), (1e-3, 32, 0.5), (2e-3, 64, 0.7), (5e-4, 32, 0.1))]
    fig = plot_sweep(rows, "scene_right", path=tmp_path / "sweep.png")
    axes = fig.axes
    assert len(axes) == 2 and "W" in axes[1].get_xlabel()  # a Transformer has no hidden size H
    fig.canvas.draw()
    for ax in axes:
        assert all(len(c.get_offsets()) for c in ax.collections)  # every panel shows the trials
        ring = ax.collections[-1]
        assert ring.get_sizes()[0] > 100  # the best trial's ring, drawn last
        radius = np.sqrt(ring.get_sizes()[0]) / 2 * fig.dpi / 72  # pixels
        x, y = ax.transData.transform(ring.get_offsets()[0])
        box = ax.get_window_extent()
        assert box.y0 <= y - radius and y + radius <= box.y1 and box.x0 <= x - radius and x + radius <= box.x1
    import matplotlib.pyplot as plt
    plt.close(fig)


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and all(line.startswith("(see:") for line in err[1:]), err
    return err[0]


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
def test_requests_that_cannot_run_fail_at_once_with_one_line(tiny_dir, tmp_path, capsys, monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process, whatever ran before
    started = []
    monkeypatch.setattr(ray, "init", lambda **kw: started.append(kw) or pytest.fail("Ray must not start"))
    base = ["sweep", "--data-dir", str(tiny_dir), "--model", "lstm", "--num-samples", "1", "--epochs", "1"]
    # Options the data or the machine cannot hold are bad options (2); a cluster not answering is not (1).
    cases = [(["--max-train", "999999999"], 2, ["--max-train", "999999999", "300 training captions"]),
             (["--cpus-per-trial", "4", "--num-cpus", "2"], 2, ["--cpus-per-trial", "4", "2 CPU"]),
             (["--address", f"127.0.0.1:{_free_port()}"], 1, ["cannot reach a Ray cluster at 127.0.0.1"]),
             (["--holdout", "3", "--num-val-images", "20"], 2, ["--holdout 3 and --num-val-images 20", "give one"]),
             (["--holdout", "60"], 2, ["--holdout 60 holds out every training image", "has 60"])]
    for i, (options, status, words) in enumerate(cases):
        out = tmp_path / f"s{i}"
        assert main(base + options + ["--out", str(out)]) == status
        line = _one_error_line(capsys)
        for w in words:
            assert w in line
        assert not out.exists() or not any(out.iterdir())  # nothing left that blocks the same --out
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert main(base + ["--num-cpus", "2", "--out", str(tmp_path / "s9")]) == 2
    assert "RAY_ADDRESS" in _one_error_line(capsys)
    assert started == []

    # Without an address a new local Ray starts, even when a cluster runs on this machine already.
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "init", lambda **kw: started.append(kw) or (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        sweep.start_ray(num_cpus=2)
    assert started[-1]["address"] == "local" and started[-1]["num_cpus"] == 2


@needs_ray
def test_a_sweep_where_no_trial_got_a_score_is_an_error(monkeypatch, tmp_path, capsys):
    rows = [{"status": "failed"}, {"status": "failed"}, {"status": "diverged"}]
    monkeypatch.setattr(sweep, "run_sweep", lambda out, **kw: {"complete": True, "best": None, "rows": rows})
    assert main(["sweep", "--out", str(tmp_path / "s")]) == 1
    assert "no trial of the sweep got a score (2 failed, 1 diverged)" in _one_error_line(capsys)


@needs_ray
def test_a_token_is_sent_only_to_a_cluster_that_asks_for_one(monkeypatch):
    import ray._raylet
    from ray._private.authentication import authentication_token_setup
    from ray.exceptions import AuthenticationError

    from cs231n.sweep import session

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    enabled = []
    monkeypatch.setattr(authentication_token_setup, "maybe_enable_token_auth_if_token_available",
                        lambda **kw: enabled.append(kw) or found)

    def head(asks_for_token):
        def client(address):
            if asks_for_token:
                raise AuthenticationError("InvalidAuthToken")
        return client

    found = True
    monkeypatch.setattr(ray._raylet, "GcsClient", head(asks_for_token=False))
    session._use_token_if_needed("10.0.0.1:6379")
    assert enabled == []  # a cluster without authentication gets no token (its trials would fail)
    monkeypatch.setattr(ray._raylet, "GcsClient", head(asks_for_token=True))
    session._use_token_if_needed("10.0.0.1:6379")
    assert len(enabled) == 1
    found = False
    with pytest.raises(ConnectionError, match="uses token authentication and no token was found; .*RAY_AUTH_TOKEN"):
        session._use_token_if_needed("10.0.0.1:6379")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's explicit choice stands
    session._use_token_if_needed("10.0.0.1:6379")
    assert len(enabled) == 2


def test_a_trial_with_a_gpu_asks_ray_for_it_and_trains_on_the_gpu(device_backend, tiny_dir):
    from cs231n.backend import params_device
    from cs231n.sweep.trial import trial_model, trial_resources

    data = load_coco_data(base_dir=str(tiny_dir))
    config = dict(SMALL, lr=1e-3)
    cpu = trial_model(config, data, {"gpus_per_trial": 0, "cpus_per_trial": 2})
    gpu = trial_model(config, data, {"gpus_per_trial": 1, "cpus_per_trial": 2})
    assert params_device(cpu.params) == "cpu" and params_device(gpu.params) == "gpu"
    for name, w in cpu.params.items():  # the same weights, drawn with the trial's seed
        device_backend.assert_close(gpu.params[name], w, rtol=0, atol=0)
    assert trial_resources({"gpus_per_trial": 1, "cpus_per_trial": 2}) == {"cpu": 2, "gpu": 1}
    assert trial_resources({"gpus_per_trial": 0, "cpus_per_trial": 1}) == {"cpu": 1}


# ------------------------------------------------------------------ sweeps on a local Ray


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
    with pytest.raises(ValueError, match="holdout 3 and num_val_images 20 both say what the trials are judged on"):
        sweep.run_sweep(tmp_path / "s", space=SMALL, data_dir=tiny_dir, holdout=3, num_val_images=20)
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
    assert "stopped early by ASHA after 1 of 4 epochs" in printed and "| best val CIDEr" in printed
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


@needs_ray
def test_trials_are_judged_on_held_out_training_images_and_the_best_model_once_on_val(ray_session, tiny_dir,
                                                                                      tmp_path):
    from cs231n.coco_utils import hold_out_images
    from cs231n.data.shapes.accuracy import load_scenes

    out = tmp_path / "sweep"
    report = sweep.run_sweep(out, space=dict(SMALL, lr={"grid": [2e-2, 1e-2]}), num_samples=1, num_epochs=2,
                             data_dir=tiny_dir, data_seed=3, metric="scene_right", early_stop=False, verbose=False)
    settings = sweep.load_settings(out)
    assert settings["holdout"] == 6 and settings["num_val_images"] is None  # train's rule: a tenth of 60 images
    best = report["best"]
    assert all(r["epochs"] == 2 for r in report["rows"])

    # The scores that ranked the trials are the held-out training images' (drawn with data_seed), as train
    # holds them out, judged against their train scenes: scoring the exported model on them gives the score.
    data = load_coco_data(base_dir=str(tiny_dir))
    train, held = hold_out_images(data, 6, seed=3)
    scenes = load_scenes(tiny_dir, "train")
    held_data = dict(train, **{k: v for k, v in held.items() if k != "image_ids"})
    model = CaptioningRNN.load(out / "model.npz")
    again = CaptioningSolver(model, held_data, num_val_images=6, verbose=False,
                             val_scenes=[scenes[i] for i in held["image_ids"]]).validate()
    assert again["scene_right"] == best["score"] and again["CIDEr"] == pytest.approx(best["CIDEr"], abs=1e-12)
    assert all(len(_reported(r)) == 2 for r in report["rows"])

    # Val is scored once, at the end, on all its images: the figure the report gives beside the table.
    val = CaptioningSolver(model, data, num_val_images=10 ** 6, verbose=False, scene_dir=str(tiny_dir)).validate()
    assert report["val_scores"]["num_images"] == val["num_val_images"] == 20
    for k in ("CIDEr", "Bleu_4", "scene_right"):
        assert report["val_scores"][k] == pytest.approx(val[k], abs=1e-12)
    text = (out / "report.md").read_text()
    assert "held-out scene_right (max) on the 6 training images held out of training" in text
    assert "held-out scene_right  held-out CIDEr" in text  # the table's columns say what they are of
    assert (f"Val score of the best model, scored once after the sweep (all 20 val images, greedy; the trial "
            f"and its epoch were chosen on held-out training images, not on this): CIDEr "
            f"{val['CIDEr']:.4f}") in text
    assert json.loads((out / "best.json").read_text())["val_scores"] == report["val_scores"]


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
    settings = json.loads((out / "sweep.json").read_text())
    assert settings.pop("holdout") == 0  # num_val_images: judged on val images, as before holdout existed
    (out / "sweep.json").write_text(json.dumps(settings))  # as a sweep made before holdout existed wrote it

    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert "val CIDEr (max) on 20 val images after each epoch" in (out / "report.md").read_text()
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert sorted(t["status"] for t in trials) == ["finished"] * 3
    assert (Path(done[0]["path"]) / "result.json").read_bytes() == before  # not run again
    for t in trials:
        assert [r["epoch"] for r in _reported(t)] == [1, 2]
    assert CaptioningRNN.load(out / "model.npz").hidden_dim == 48


@needs_ray
def test_a_tie_for_the_best_score_reports_and_exports_the_epoch_whose_checkpoint_is_kept(ray_session, tiny_dir,
                                                                                         tmp_path):
    # A learning rate far too small to change a greedy caption: every epoch scores the same (a tie).
    space = dict(SMALL, lr=1e-12)
    out = tmp_path / "sweep"
    report = sweep.run_sweep(out, space=space, num_samples=1, num_epochs=2, data_dir=tiny_dir, num_val_images=20,
                             early_stop=False, verbose=False)
    (row,) = report["rows"]
    reported = _reported(row)
    assert len(reported) == 2 and reported[0]["CIDEr"] == reported[1]["CIDEr"]  # the tie
    assert report["best"]["best_epoch"] == 2 and row["CIDEr"] == row["score"]
    assert "scene_right" in (out / "report.md").read_text() and (out / "model.npz").is_file()
    assert ("greedy; not independent of the choice: the trial and its epoch were chosen on 20 of these val "
            "images)") in (out / "report.md").read_text()  # holdout 0: the val figure says it is not independent
    data = load_coco_data(base_dir=str(tiny_dir))
    again = CaptioningSolver(CaptioningRNN.load(out / "model.npz"), data, num_val_images=20, seed=0,
                             verbose=False, scene_dir=str(tiny_dir)).validate()
    assert again["scene_right"] == row["scene_right"] and again["CIDEr"] == pytest.approx(row["CIDEr"], abs=1e-12)

    # Resuming the finished sweep rewrites its report the same way and keeps the time the sweep took.
    took = report["wall_seconds"]
    assert took > 0
    resumed = sweep.resume_sweep(out, verbose=False)
    assert resumed["best"]["best_epoch"] == 2 and resumed["wall_seconds"] == took
    assert f"the sweep took {took:.0f} s." in (out / "report.md").read_text()


@needs_ray
def test_a_gpu_request_on_a_cluster_without_gpus_fails_at_once(ray_session, tiny_dir, tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"gpus_per_trial \(--gpus-per-trial\) 1 is more than any node .* 0 GPU"):
        sweep.run_sweep(out, space=SMALL, num_samples=1, num_epochs=1, data_dir=tiny_dir, num_val_images=2,
                        gpus_per_trial=1, verbose=False)
    assert not out.exists()


@needs_ray
def test_ctrl_c_of_a_sweep_joined_by_address_leaves_the_report_and_the_hint(ray_session, tiny_dir, tmp_path):
    """The sweep joins this module's Ray by its address, as a user joins a cluster: Ray 2.60 starts local
    clusters with token authentication, and a process given only the address must find the token itself.
    Then Ctrl-C (SIGINT to the sweep's process group) comes before any trial has reported."""
    import subprocess
    import time

    import ray

    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "cs231n", "sweep", "--address", address, "--data-dir", str(tiny_dir),
               "--model", "lstm", "--hidden-dim", "48", "--wordvec-dim", "32", "--batch-size", "25", "--lr",
               "1e-2,5e-3", "--num-samples", "2", "--epochs", "2", "--num-val-images", "20", "--no-early-stop",
               "--metric", "scene_right",
               "--quiet", "--out", str(out)]
    sweep_process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
    deadline = time.time() + 120
    while not list(out.glob("_trial_*")) and sweep_process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if sweep_process.poll() is None:
        os.killpg(sweep_process.pid, signal.SIGINT)
    printed, errors = sweep_process.communicate(timeout=120)
    assert sweep_process.returncode == 130, errors
    assert printed == ""  # --quiet: no Ray banner either
    assert "InvalidAuthToken" not in errors and "/tmp/ray" not in errors and "Traceback" not in errors
    assert f"Continue with: python -m cs231n sweep --resume --out {out}" in errors
    assert "INTERRUPTED" in (out / "report.md").read_text()
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 2 and all(t["config"]["lr"] in (5e-3, 1e-2) for t in trials)  # reported or not

    report = sweep.resume_sweep(out, verbose=False)
    assert report["complete"] and sorted(r["status"] for r in report["rows"]) == ["finished"] * 2
    assert report["best"]["score"] == report["best"]["scene_right"] == max(r["scene_right"] for r in report["rows"])
