"""Running and resuming a sweep: checks, the dataset loaded once, Tune's Tuner, then the report."""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.runs import captioning_data_identity, identity_problems
from cs231n.sweep.progress import sweep_progress_class
from cs231n.sweep.report import REPORT_FILES, judged_on, write_report
from cs231n.sweep.session import check_request, ray_session, require_ray
from cs231n.sweep.space import _is_int, _is_number, _tune_space, make_space
from cs231n.sweep.trial import _trainable, val_options

SETTINGS_FILE = "sweep.json"
SETTINGS_FORMAT = "cs231n-sweep"


def _earlier_runs(out):
    """The seconds of the sweep's earlier runs and whether its last report was complete (trials.json)."""
    try:
        saved = json.loads((Path(out) / "trials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], False
    runs = saved.get("run_seconds")
    if runs is None:
        runs = [] if saved.get("wall_seconds") is None else [saved["wall_seconds"]]
    complete = all(t.get("status") != "unfinished" for t in saved.get("trials", ())) and \
        len(saved.get("trials", ())) == saved.get("settings", {}).get("num_trials")
    return list(runs), complete


def _fit_and_report(tuner, out, settings, data, verbose):
    """Run (or resume) the sweep's trials, then write its report; returns the report's dict.

    The report's time is the sum of the runs that ran trials: resuming a finished sweep only rewrites
    its report and keeps the time it took.
    """
    earlier, complete = _earlier_runs(out)
    t0 = time.time()
    grid = tuner.fit()
    runs = earlier if complete else earlier + [time.time() - t0]
    return write_report(out, grid, settings, data, run_seconds=runs, verbose=verbose)


def check_max_train(base, max_train):
    """Refuse a subsample larger than the training captions before the data is loaded (a sweep's trials
    would only see captions drawn again and again, and a huge draw does not fit in memory)."""
    from cs231n.coco_utils import coco_data_sizes

    if max_train is None:
        return
    available = coco_data_sizes(base)["train_captions"][0]
    if max_train > available:
        raise ValueError(f"max_train (--max-train) {max_train} is more than the {available} training captions "
                         f"of {base}; use at most {available} (or leave it out to train on all)")


def _load_data(data_dir, max_train, seed):
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.shapes import ensure_shapes_dataset

    base = Path(data_dir) if data_dir else ensure_shapes_dataset()
    check_max_train(base, max_train)
    if max_train:
        np.random.seed(seed)  # load_coco_data draws the subsample with np.random, as `train --seed` does
    return base.resolve(), load_coco_data(base_dir=str(base), max_train=max_train)


def _scene_dir(base):
    """The dataset directory when it is a shapes dataset (its scenes let validation judge captions), else None."""
    from cs231n.data.shapes.dataset import SCENES_FILE

    return str(base) if (Path(base) / SCENES_FILE).is_file() else None


VAL_IMAGES = 200  # val images each trial scores after every epoch with holdout 0 (unless num_val_images)


def _trial_data(base, data, settings):
    """(the data the trials train and validate on, their validation options for :func:`solver_options`).

    With ``holdout`` N (:func:`cs231n.holdout.held_out_selection`, drawn with ``data_seed``): N training
    images held out of training are the trials' "val" split, so val is left for the one final score of
    the best model. With holdout 0 (or a sweep made before there was a holdout): the val images.
    """
    holdout = settings.get("holdout", 0)  # a sweep of a version without holdout validated on val
    if not holdout:
        return data, val_options(settings)
    from cs231n.holdout import held_out_selection

    return held_out_selection(base, data, holdout, settings["data_seed"])


def _validation_keys(data, validation):
    """The numeric scores of a validation entry, from a throw-away solver on a tiny model (fast)."""
    from cs231n.classifiers.rnn import CaptioningRNN

    model = CaptioningRNN(data["word_to_idx"], input_dim=int(np.asarray(data["train_features"]).shape[1]),
                          wordvec_dim=2, hidden_dim=2)
    state = np.random.get_state()
    try:
        solver = CaptioningSolver(model, data, verbose=False,
                                  **dict(validation, num_val_images=min(2, validation["num_val_images"])))
        entry = solver.validate()
    finally:
        np.random.set_state(state)
    return sorted(k for k, v in entry.items() if _is_number(v) and k != "num_val_images") + ["train_loss"]


def run_sweep(out_dir="runs/sweep", space=None, num_samples=8, num_epochs=5, data_dir=None, max_train=None,
              data_seed=0, holdout=None, num_val_images=None, metric="CIDEr", mode=None, early_stop=True,
              grace_period=1, reduction_factor=2, max_concurrent=None, cpus_per_trial=1, gpus_per_trial=0, address=None,
              num_cpus=None, max_failures=2, fail_once_at_epoch=None, callbacks=(), verbose=True):
    """Search hyperparameters of the captioning model with Ray Tune; write the report to ``out_dir``.

    Inputs:
    - out_dir: the sweep's directory, new or without a sweep in it (see :func:`sweep_outputs`; continue
      an interrupted sweep with :func:`resume_sweep`); it receives Tune's trial directories and the
      report.
    - space: search space for :func:`make_space` (None: ``DEFAULT_SPACE``).
    - num_samples: trials drawn from the space (with ``grid`` entries: draws per grid point).
    - num_epochs: epochs of a trial that is not stopped early.
    - data_dir: a dataset in the cs231n COCO format (None: the shapes dataset, made on first use);
      max_train, data_seed: as ``train --max-train --seed`` (the subsample is drawn with np.random
      seeded with data_seed; at most the number of training captions).
    - holdout: training images (with all their captions) held out of every trial's training, drawn with
      data_seed; each trial scores them after every epoch, and ASHA and the ranking use those scores.
      None: as ``train --holdout``: 500, at most a tenth of the training images (0 when num_val_images
      is given). The best trial's model at its best epoch is then scored once on all val images
      (greedy; with the scene accuracy on a shapes dataset): nothing was chosen on that figure.
    - num_val_images: only with holdout 0 (the behaviour before holdout existed): the trials are judged
      on this many val images after every epoch (None: 200), so the final val figure is not
      independent of the choice.
    - metric: the score ASHA compares and the report ranks by: a key of the solver's validation entry
      ('CIDEr', 'Bleu_4', 'val_loss', ...; on a shapes dataset also the scene accuracy 'scene_right' and
      its parts, see :mod:`cs231n.data.shapes.accuracy`); mode: 'max' or 'min' (default: 'min' for
      names ending in 'loss' and for 'scene_unparsed', else 'max').
    - early_stop: ASHA with ``grace_period`` epochs before the first decision and ``reduction_factor``
      (keep the best 1/reduction_factor at each milestone); False runs every trial to the end.
    - max_concurrent: most trials at once (None: as many as the CPUs allow); cpus_per_trial: CPUs
      (and BLAS threads) per trial; gpus_per_trial: GPUs per trial (Ray's GPU resource; a trial with
      one trains its model on the GPU, as ``train --device gpu``; needs CuPy on the nodes).
    - address, num_cpus: see :func:`start_ray`.
    - max_failures: restarts of a failed trial, each from its last checkpoint.
    - fail_once_at_epoch: testing fault tolerance: every trial's first attempt raises
      :class:`InjectedFailure` after reporting that epoch.
    - callbacks: more ``ray.tune.Callback`` objects (they are saved with the sweep and used on resume).
    - verbose: print progress and the table.

    Everything is checked before the data is loaded or Ray starts, and ``sweep.json`` is written only
    once Ray runs, so a sweep that could not start leaves nothing that blocks the same ``out_dir``.
    Returns the report dict of :func:`write_report`.
    """
    tune = require_ray()
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or sweep_outputs(out)):
        raise FileExistsError(f"{out} holds a sweep already (or is a file); continue that sweep with "
                              f"resume_sweep (sweep --resume --out {out_dir}) or choose another directory")
    space = make_space(space)
    for name, value in (("num_samples", num_samples), ("num_epochs", num_epochs),
                        ("num_val_images", 1 if num_val_images is None else num_val_images),
                        ("cpus_per_trial", cpus_per_trial), ("grace_period", grace_period)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if holdout is not None and (not _is_int(holdout) or holdout < 0):
        raise ValueError(f"holdout must be an int >= 0 or None, got {holdout!r}")
    if holdout and num_val_images is not None:
        raise ValueError(f"holdout {holdout} and num_val_images {num_val_images} both say what the trials are "
                         f"judged on; give one (holdout judges them on training images held out, so val "
                         f"stays unseen)")
    if not _is_int(gpus_per_trial) or gpus_per_trial < 0:
        raise ValueError(f"gpus_per_trial must be an int >= 0, got {gpus_per_trial!r}")
    if max_concurrent is not None and (not _is_int(max_concurrent) or max_concurrent < 1):
        raise ValueError(f"max_concurrent must be a positive int or None, got {max_concurrent!r}")
    if not _is_int(max_failures) or max_failures < 0:
        raise ValueError(f"max_failures must be an int >= 0, got {max_failures!r}")
    if not _is_number(reduction_factor) or reduction_factor <= 1:
        raise ValueError(f"reduction_factor must be a number > 1, got {reduction_factor!r}")
    if early_stop and grace_period > num_epochs:
        raise ValueError(f"grace_period ({grace_period}) must be at most num_epochs ({num_epochs})")
    if max_train is not None and (not _is_int(max_train) or max_train < 1):
        raise ValueError(f"max_train must be a positive int or None, got {max_train!r}")
    mode = mode or ("min" if metric.lower().endswith("loss") or metric == "scene_unparsed" else "max")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    check_request(address, num_cpus, cpus_per_trial, gpus_per_trial)

    base, data = _load_data(data_dir, max_train, data_seed)
    holdout = _resolve_holdout(holdout, num_val_images, data)
    scene_dir = _scene_dir(base)
    judged = {"data_seed": data_seed, "holdout": holdout, "scene_dir": scene_dir,
              "num_val_images": None if holdout else num_val_images or VAL_IMAGES}
    trial_data, validation = _trial_data(base, data, judged)
    keys = _validation_keys(trial_data, validation)
    if metric not in keys:
        raise ValueError(f"metric {metric!r} is not a validation score; choose one of {', '.join(keys)}"
                         + ("" if scene_dir or not metric.startswith("scene_") else
                            f" (the scene scores need a shapes dataset; {base} is not one)"))
    grid_points = math.prod(len(spec["grid"]) for spec in space.values() if isinstance(spec, dict) and "grid" in spec)
    settings = {"format": SETTINGS_FORMAT, "task": "captioning", "space": space, "num_samples": num_samples,
                "num_trials": num_samples * grid_points,
                "num_epochs": num_epochs, "data_dir": str(base), "max_train": max_train, "data_seed": data_seed,
                "data_identity": captioning_data_identity(base, data["word_to_idx"]),
                "holdout": holdout, "num_val_images": judged["num_val_images"], "scene_dir": scene_dir,
                "metric": metric,
                "mode": mode, "early_stop": bool(early_stop), "grace_period": grace_period,
                "reduction_factor": reduction_factor, "max_concurrent": max_concurrent,
                "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial, "max_failures": max_failures,
                "fail_once_at_epoch": fail_once_at_epoch}
    from cs231n.archive import atomic_write_text

    with ray_session(address, num_cpus, cpus_per_trial, gpus_per_trial):
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
        try:
            scheduler = None
            if early_stop:
                from ray.tune.schedulers import ASHAScheduler
                scheduler = ASHAScheduler(time_attr="epoch", max_t=num_epochs, grace_period=grace_period,
                                          reduction_factor=reduction_factor)
            progress = []
            if verbose:
                progress.append(sweep_progress_class()(metric, mode, num_epochs, settings["num_trials"],
                                                       where=judged_on(settings)))
            tuner = tune.Tuner(
                _trainable(trial_data, settings, validation), param_space=_tune_space(space),
                tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples,
                                            scheduler=scheduler, max_concurrent_trials=max_concurrent),
                run_config=tune.RunConfig(
                    name=out.name, storage_path=str(out.parent), verbose=0, callbacks=progress + list(callbacks),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                            checkpoint_score_order=mode),
                    failure_config=tune.FailureConfig(max_failures=max_failures)))
        except BaseException:
            _forget_start(out, created)
            raise
        if verbose:
            print(f"sweep: {settings['num_trials']} trial(s) of up to {num_epochs} epochs on {base} "
                  f"({trial_data['train_captions'].shape[0]} train captions), {judged_on(settings)} {metric} "
                  f"({mode}" + (f", on {holdout} training images held out of training" if holdout else "") + "), "
                  f"{'ASHA' if early_stop else 'no early stopping'}, {cpus_per_trial} CPU(s)"
                  + (f" and {gpus_per_trial} GPU(s)" if gpus_per_trial else "") + f" per trial; writing {out}")
            sys.stdout.flush()
        return _fit_and_report(tuner, out, settings, data, verbose)


def _resolve_holdout(holdout, num_val_images, data):
    """run_sweep's holdout as ``train --holdout`` resolves it (:func:`cs231n.holdout.holdout_size`)."""
    from cs231n.holdout import holdout_size

    num_images = int(np.asarray(data["train_features"]).shape[0])
    resolved = holdout_size(holdout, num_images, num_val_images)
    if holdout is None and not num_val_images and not resolved:
        raise ValueError(f"the dataset has {num_images} training images, too few to hold out a tenth of them to "
                         f"judge the trials on; give holdout (or 0 to judge them on val images)")
    return resolved


def _forget_start(out, created):
    """Remove what a sweep that failed before Tune took over wrote (sweep.json; the directory if new)."""
    if (out / "tuner.pkl").exists():
        return
    (out / SETTINGS_FILE).unlink(missing_ok=True)
    if created:
        try:
            out.rmdir()
        except OSError:
            pass


def sweep_outputs(out_dir):
    """Names of the entries in ``out_dir`` that a sweep wrote (its own files and Tune's), for overwriting."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    ours = set(REPORT_FILES) | {SETTINGS_FILE, "tuner.pkl", ".validate_storage_marker"}
    return sorted(p.name for p in out.iterdir()
                  if p.name in ours or p.name.startswith(("experiment_state-", "basic-variant-state-",
                                                          "search_gen_state-", "_trial_")))


def load_settings(out_dir):
    """The settings a sweep in ``out_dir`` was started with (``sweep.json``)."""
    path = Path(out_dir) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a sweep directory")
    settings = json.loads(path.read_text(encoding="utf-8"))
    if settings.get("format") != SETTINGS_FORMAT:
        raise ValueError(f"{path} is not a sweep's settings file (format {settings.get('format')!r})")
    return settings


def resume_sweep(out_dir, address=None, num_cpus=None, verbose=True):
    """Continue the interrupted sweep in ``out_dir``: finished trials stay, the others resume.

    The dataset is loaded again as it was (and refused if its arrays changed since); unfinished and
    failed trials resume from their last checkpoints. A finished sweep only has its report rewritten.
    Returns the report dict of :func:`write_report`.
    """
    tune = require_ray()
    out = Path(out_dir).resolve()
    settings = load_settings(out)
    if not (out / "tuner.pkl").is_file():
        raise FileNotFoundError(f"{out} has no Tune state (tuner.pkl); the sweep did not get to start")
    base, data = _load_data(settings["data_dir"], settings["max_train"], settings["data_seed"])
    problems = identity_problems(settings["data_identity"], captioning_data_identity(base, data["word_to_idx"]),
                                 ("vocabulary", "features"))
    if problems:
        raise ValueError(f"{base} is not the dataset this sweep started with ({'; '.join(problems)}); "
                         f"resuming would mix results of different data")
    trial_data, validation = _trial_data(base, data, settings)
    with ray_session(address, num_cpus, settings["cpus_per_trial"], settings.get("gpus_per_trial", 0)):
        tuner = tune.Tuner.restore(str(out), _trainable(trial_data, settings, validation), resume_unfinished=True,
                                   resume_errored=True)
        if verbose:
            print(f"sweep: resuming {out}")
        return _fit_and_report(tuner, out, settings, data, verbose)
