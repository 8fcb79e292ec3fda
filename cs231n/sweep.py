"""Hyperparameter sweeps on Ray Tune: many CaptioningSolver runs, early stopping, resume, a report.

Ray (https://docs.ray.io) is an optional extra, ``pip install -e '.[sweep]'``; this is the only module
of the package that imports it. The same code runs on a laptop (Ray starts a local cluster sized to
the machine) and on an existing Ray cluster (``address``).

What a sweep is:

- A search space (:data:`DEFAULT_SPACE`, a JSON file or a dict; see :func:`make_space`): each key is a
  hyperparameter of one trial, each value a constant or a distribution. The model kind is just another
  value (``"model": {"choice": ["rnn", "lstm", "gru"]}``).
- Each trial is the project's own :class:`cs231n.captioning_solver.CaptioningSolver` run. At the end of
  every epoch (the solver's ``_epoch_end`` hook) the trial reports the epoch's validation scores to
  Tune, with a checkpoint in the solver's own format (``checkpoint.npz``, no pickle) written by
  ``Solver.save_checkpoint``.
- ASHA (asynchronous successive halving) stops trials whose score at an epoch milestone (1, 2, 4, ...
  with the default grace period 1 and reduction factor 2) is below the median of the trials that
  reached it before; the score is ``metric`` (val CIDEr by default; any numeric key of the solver's
  per-epoch validation entry can be used, e.g. ``val_loss`` with mode 'min').
- A trial that fails (a crash, a lost node) is restarted up to ``max_failures`` times and resumes from
  its last checkpoint, bit for bit as if it had not failed (the solver's resume). A trial whose loss
  diverges (NaN) ends as 'diverged'; retrying it would only diverge again.
- A whole sweep that was interrupted (Ctrl-C, a crash of the driver) continues with
  :func:`resume_sweep` (``python -m cs231n sweep --resume --out DIR``): finished trials are kept as they are,
  unfinished ones resume from their checkpoints.
- The report (:func:`write_report`): a table of the trials, ``model.npz`` of the best trial at its
  best epoch (a normal :class:`cs231n.classifiers.rnn.CaptioningRNN` archive that ``evaluate`` and
  ``caption`` load), ``sweep.png`` (score against learning rate and hidden size, early-stopped trials
  marked), ``trials.json`` and ``report.md``.

The dataset is loaded once by the driver and shipped to the trials through Ray's object store
(``tune.with_parameters``), so on a cluster only the machine that starts the sweep needs the data
files. The output directory must be one that every node can write (a shared filesystem) when trials
run on more than one machine, because Tune stores the trials' checkpoints there.

Each trial runs with ``cpus_per_trial`` BLAS threads (OPENBLAS/OMP/MKL_NUM_THREADS in the trial's
environment, and numpy's OpenBLAS told directly), so concurrent trials do not oversubscribe the cores.
Numpy trains one model per process; a sweep runs many such processes side by side.
"""
import contextlib
import ctypes
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.runs import captioning_data_identity, identity_problems

INSTALL_HINT = "install the sweep extra: pip install -e '.[sweep]'"
CHECKPOINT_FILE = "checkpoint.npz"
SETTINGS_FILE = "sweep.json"
SETTINGS_FORMAT = "cs231n-sweep"
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# The space a plain `python -m cs231n sweep` searches (the `train` command's defaults are inside it).
DEFAULT_SPACE = {
    "model": {"choice": ["rnn", "lstm", "gru"]},
    "lr": {"loguniform": [1e-3, 2e-2]},
    "hidden_dim": {"choice": [128, 256, 512]},
    "wordvec_dim": {"choice": [128, 256]},
    "batch_size": {"choice": [50, 100]},
    "lr_decay": {"choice": [0.7, 0.85, 1.0]},
    "grad_clip": {"choice": [0, 5.0]},
    "seed": 0,
    "num_heads": 4,  # the Transformer's; it must divide wordvec_dim
    "num_layers": 2,
}

_DISTRIBUTIONS = ("choice", "grid", "loguniform", "uniform")
_RANGE_KIND = {"lr": "loguniform", "lr_decay": "uniform"}  # what "LO:HI" means for an option


def require_ray():
    """``ray.tune``, imported on first use (it takes seconds); ImportError saying how to install it."""
    try:
        import ray.tune
    except ImportError as e:
        raise ImportError(f"cs231n.sweep needs Ray Tune, which is not installed; {INSTALL_HINT}") from e
    return ray.tune


def __getattr__(name):
    # SweepProgress subclasses ray.tune.Callback, so it is made when first asked for (PEP 562); Tune
    # pickles it with the sweep and finds it again here by name on resume.
    if name == "SweepProgress":
        cls = type("SweepProgress", (_Progress, require_ray().Callback), {"__module__": __name__,
                                                                    "__doc__": _Progress.__doc__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------------
# Models: a model kind is a value of the space's "model" key.
# ----------------------------------------------------------------------------------------------------


def _recurrent_model(config, data):
    from cs231n.classifiers.rnn import CaptioningRNN

    return CaptioningRNN(data["word_to_idx"], input_dim=int(np.asarray(data["train_features"]).shape[1]),
                         wordvec_dim=config["wordvec_dim"], hidden_dim=config["hidden_dim"],
                         cell_type=config["model"])


def _recurrent_from_checkpoint(model_config):
    from cs231n.classifiers.rnn import CaptioningRNN

    return CaptioningRNN.from_config(model_config)


def _transformer_model(config, data):
    from cs231n.classifiers.transformer import CaptioningTransformer

    return CaptioningTransformer(data["word_to_idx"], int(np.asarray(data["train_features"]).shape[1]),
                                 config["wordvec_dim"], num_heads=config["num_heads"],
                                 num_layers=config["num_layers"])


def _transformer_from_checkpoint(model_config):
    from cs231n.classifiers.transformer import CaptioningTransformer

    return CaptioningTransformer.from_config(model_config)


# kind -> (build(config, data) -> model, from_checkpoint(model_config) -> untrained model of that config).
# A new captioning model joins sweeps by adding its kind here.
MODEL_KINDS = {
    "rnn": (_recurrent_model, _recurrent_from_checkpoint),
    "lstm": (_recurrent_model, _recurrent_from_checkpoint),
    "gru": (_recurrent_model, _recurrent_from_checkpoint),
    "transformer": (_transformer_model, _transformer_from_checkpoint),  # uses wordvec_dim, num_heads, num_layers
}


# ----------------------------------------------------------------------------------------------------
# The search space
# ----------------------------------------------------------------------------------------------------


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


# key -> (what a value must be, check(value) -> ok, converter for command-line text)
_KEYS = {
    "model": ("a model kind: " + ", ".join(MODEL_KINDS), lambda v: isinstance(v, str) and v in MODEL_KINDS, str),
    "lr": ("a positive learning rate", lambda v: _is_number(v) and v > 0, float),
    "hidden_dim": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "wordvec_dim": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "batch_size": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "lr_decay": ("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1, float),
    "grad_clip": ("a number >= 0 (0: no clipping)", lambda v: _is_number(v) and v >= 0, float),
    "seed": ("an int >= 0", lambda v: _is_int(v) and v >= 0, int),
    "num_heads": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "num_layers": ("a positive int", lambda v: _is_int(v) and v > 0, int),
}


def _check_value(key, value, where):
    what, ok, _ = _KEYS[key]
    if not ok(value):
        raise ValueError(f"search space: {where} must be {what}, got {value!r}")


def _normalize_entry(key, spec):
    """One entry of a space, checked: a constant, or a one-key dict naming a distribution."""
    if key not in _KEYS:
        raise ValueError(f"search space: unknown key {key!r}; known keys: {', '.join(_KEYS)}")
    if not isinstance(spec, dict):
        _check_value(key, spec, key)
        return spec
    if len(spec) != 1 or next(iter(spec)) not in _DISTRIBUTIONS:
        raise ValueError(f"search space: {key} must be a constant or a dict with one key out of "
                         f"{', '.join(_DISTRIBUTIONS)}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, (list, tuple)) or not args:
        raise ValueError(f"search space: {key}: {kind} takes a non-empty list, got {args!r}")
    args = list(args)
    if kind in ("choice", "grid"):
        for v in args:
            _check_value(key, v, f"every {kind} value of {key}")
        return {kind: args}
    if len(args) != 2:
        raise ValueError(f"search space: {key}: {kind} takes [low, high], got {args!r}")
    if key not in _RANGE_KIND:
        raise ValueError(f"search space: {key} takes a constant, choice or grid, not a {kind} range")
    for v in args:
        _check_value(key, v, f"the {kind} bounds of {key}")
    if not args[0] < args[1]:
        raise ValueError(f"search space: {key}: {kind} needs low < high, got {args!r}")
    return {kind: [float(args[0]), float(args[1])]}


def make_space(space=None, **options):
    """A checked search space: ``DEFAULT_SPACE`` updated by ``space`` and then by ``options``.

    Each value is a constant (every trial uses it) or a dict with one key:
    ``{"choice": [...]}`` (drawn uniformly), ``{"grid": [...]}`` (every value, times ``num_samples``),
    ``{"loguniform": [low, high]}`` (``lr`` only) or ``{"uniform": [low, high]}`` (``lr_decay`` only).
    Keys: ``model`` (rnn, lstm, gru, transformer), ``lr`` (Adam's learning rate), ``hidden_dim``, ``wordvec_dim``,
    ``batch_size``, ``lr_decay`` (per epoch), ``grad_clip`` (global norm; 0 = off), ``seed`` (for the
    weights and the minibatches; the same for all trials unless you make it a choice or grid), and
    the Transformer's ``num_heads`` (it must divide ``wordvec_dim``) and ``num_layers``; ``hidden_dim``
    is the recurrent models' only.
    Keys left out keep the default space's entries.

    Inputs:
    - space: None, a dict as above, or the path of a JSON file holding one.
    - options: more entries (None values are ignored), e.g. from the command line.

    Returns a new dict. Raises ValueError naming the key for unknown keys or bad values.
    """
    merged = dict(DEFAULT_SPACE)
    if isinstance(space, (str, os.PathLike)):
        with open(space, encoding="utf-8") as f:
            try:
                space = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"search space file {os.fspath(space)} is not valid JSON: {e}") from e
    if space is not None:
        if not isinstance(space, dict):
            raise TypeError(f"space must be a dict or a JSON file path, got {type(space).__name__}")
        merged.update(space)
    merged.update({k: v for k, v in options.items() if v is not None})
    space = {key: _normalize_entry(key, spec) for key, spec in merged.items()}
    if "transformer" in _values(space["model"]):
        bad = [(w, h) for w in _values(space["wordvec_dim"]) for h in _values(space["num_heads"]) if w % h]
        if bad:
            raise ValueError(f"search space: the Transformer needs num_heads to divide wordvec_dim; "
                             f"wordvec_dim {bad[0][0]} with num_heads {bad[0][1]} does not")
    return space


def _values(spec):
    """The values a constant, choice or grid entry can take."""
    return next(iter(spec.values())) if isinstance(spec, dict) else [spec]


def parse_option(key, text):
    """A space entry from command-line text: ``a,b,c`` is a choice, ``LO:HI`` a range, else a constant.

    ``LO:HI`` is log-uniform for ``lr`` and uniform for ``lr_decay``; other keys take lists or single
    values. Values are converted to the key's type (e.g. ``--hidden-dim 128,256``).
    """
    if key not in _KEYS:
        raise ValueError(f"unknown search-space key {key!r}")
    convert = _KEYS[key][2]

    def one(t):
        try:
            return convert(t.strip())
        except ValueError:
            raise ValueError(f"--{key.replace('_', '-')}: cannot read {t!r} as {_KEYS[key][0]}") from None

    if ":" in text:
        if key not in _RANGE_KIND:
            raise ValueError(f"--{key.replace('_', '-')} takes a value or a comma-separated list, not a "
                             f"range ({text!r})")
        low, _, high = text.partition(":")
        return {_RANGE_KIND[key]: [one(low), one(high)]}
    values = [one(t) for t in text.split(",")]
    return values[0] if len(values) == 1 else {"choice": values}


def _tune_space(space):
    """The checked space as Tune's sampling objects."""
    tune = require_ray()
    out = {}
    for key, spec in space.items():
        if not isinstance(spec, dict):
            out[key] = spec
            continue
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            out[key] = tune.choice(args)
        elif kind == "grid":
            out[key] = tune.grid_search(args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        else:
            out[key] = tune.uniform(*args)
    return out


def describe_config(config):
    """A short one-line description of a trial's configuration, e.g. ``lstm lr=3.2e-03 H=256 ...``."""
    parts = [str(config.get("model", "?")), "lr=%.2e" % config["lr"] if "lr" in config else ""]
    kind_keys = ((("num_heads", "heads"), ("num_layers", "layers")) if config.get("model") == "transformer"
                 else (("hidden_dim", "H"),))
    for key, label in kind_keys + (("wordvec_dim", "W"), ("batch_size", "batch"),
                       ("lr_decay", "decay"), ("grad_clip", "clip")):
        if key in config:
            parts.append("%s=%s" % (label, _fmt(config[key])))
    return " ".join(p for p in parts if p)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v
    return str(v)


# ----------------------------------------------------------------------------------------------------
# Inside a trial
# ----------------------------------------------------------------------------------------------------


def _openblas():
    """numpy's OpenBLAS library through ctypes, or None (not Linux, or another BLAS)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("scipy_openblas_%s_num_threads64_", "openblas_%s_num_threads64_", "openblas_%s_num_threads"):
            get, put = getattr(lib, suffix % "get", None), getattr(lib, suffix % "set", None)
            if get is not None and put is not None:
                return get, put
    return None


def limit_blas_threads(n):
    """Run BLAS with ``n`` threads in this process and in processes it starts.

    Sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS, and, when numpy's OpenBLAS is
    loaded already (it reads those variables only once, at load), sets its thread count directly.
    Returns the thread count OpenBLAS reports afterwards, or None when it cannot be asked.
    """
    for var in BLAS_THREAD_VARIABLES:
        os.environ[var] = str(int(n))
    blas = _openblas()
    if blas is None:
        return None
    get, put = blas
    put(ctypes.c_int(int(n)))
    return int(get())


class _ReportEveryEpoch:
    """Mixin for a Solver subclass: after each epoch's own ``_epoch_end``, call ``epoch_report(solver)``."""

    def __init__(self, *args, epoch_report, **kwargs):
        self._epoch_report = epoch_report
        super().__init__(*args, **kwargs)

    def _epoch_end(self):
        stop = super()._epoch_end()
        self._epoch_report(self)
        return stop


class SweepCaptioningSolver(_ReportEveryEpoch, CaptioningSolver):
    """A CaptioningSolver that calls ``epoch_report(solver)`` after every epoch (a sweep's trial)."""


class InjectedFailure(RuntimeError):
    """The failure ``fail_once_at_epoch`` asks for (to check that trials resume from checkpoints)."""


class _EpochReporter:
    """Reports a solver's last validation entry and a checkpoint to Tune; called by the solver each epoch."""

    def __init__(self, settings, blas_threads, resumed_from_epoch):
        self.settings = settings
        self.blas_threads = blas_threads
        self.resumed_from_epoch = resumed_from_epoch

    def __call__(self, solver):
        entry = solver.val_history[-1] if solver.val_history else {}
        if entry.get("epoch") != solver.epoch:
            raise RuntimeError(f"epoch {solver.epoch} ended without a validation entry; a sweep needs "
                               f"num_val_images > 0 and a val split")
        metrics = {k: float(v) for k, v in entry.items()
                   if _is_number(v) and k not in ("epoch", "iteration", "num_val_images")}
        metric = self.settings["metric"]
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} is not among the validation scores {sorted(metrics)}")
        metrics.update(epoch=solver.epoch, iteration=solver.iteration,
                       resumed_from_epoch=self.resumed_from_epoch, diverged=0)
        if self.blas_threads is not None:
            metrics["blas_threads"] = self.blas_threads
        tune = require_ray()
        with tempfile.TemporaryDirectory(prefix="cs231n-sweep-") as d:
            solver.save_checkpoint(os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        solver.last_checkpoint = None  # that file is gone; Tune keeps its copy
        fail_at = self.settings.get("fail_once_at_epoch")
        if fail_at is not None and solver.epoch == fail_at and self.resumed_from_epoch == 0:
            raise InjectedFailure(f"injected failure after epoch {solver.epoch} (fail_once_at_epoch)")


def solver_options(config, settings):
    """The CaptioningSolver options of one trial (what ``python -m cs231n train`` would pass)."""
    return dict(update_rule="adam", optim_config={"learning_rate": config["lr"]}, lr_decay=config["lr_decay"],
                batch_size=config["batch_size"], num_epochs=settings["num_epochs"],
                grad_clip=config["grad_clip"] or None, seed=config["seed"],
                num_val_images=settings["num_val_images"], verbose=False)


def _trial(config, data=None, settings=None):
    """One trial: a CaptioningSolver run that reports to Tune each epoch (runs in a Ray worker)."""
    from cs231n.solver import TrainingDivergedError

    tune = require_ray()
    threads = limit_blas_threads(settings["cpus_per_trial"])
    checkpoint = tune.get_checkpoint()
    np.random.seed(config["seed"])  # the weights, as `train` draws them
    model = MODEL_KINDS[config["model"]][0](config, data)
    options = solver_options(config, settings)
    solver_class = SweepCaptioningSolver
    reporter = _EpochReporter(settings, threads, resumed_from_epoch=0)
    if checkpoint is None:
        solver = solver_class(model, data, epoch_report=reporter, **options)
    else:
        with checkpoint.as_directory() as d:
            solver = solver_class(model, data, epoch_report=reporter,
                                  resume_from=os.path.join(d, CHECKPOINT_FILE), **options)
        reporter.resumed_from_epoch = solver.epoch
    try:
        solver.train()
    except TrainingDivergedError as e:
        # Retrying would diverge again: end the trial, and say so in its last result.
        tune.report({"epoch": solver.epoch, "iteration": e.iteration, "diverged": 1,
                     "resumed_from_epoch": reporter.resumed_from_epoch})


# ----------------------------------------------------------------------------------------------------
# Progress while it runs
# ----------------------------------------------------------------------------------------------------


class _Progress:
    """Progress lines of a running sweep (used as the ``ray.tune.Callback`` ``SweepProgress``).

    A line when a trial ends or fails, and a status line: trials done/running/pending/failed and the best
    score so far with its configuration.

    Inputs:
    - metric, mode: the score and 'max' or 'min'.
    - num_epochs: epochs of a full trial (fewer means stopped early).
    - total: the number of trials of the sweep (Tune creates them as it goes).
    - every_s: seconds between status lines while nothing ends.
    """

    def __init__(self, metric, mode, num_epochs, total, every_s=30.0):
        self.metric, self.mode, self.num_epochs, self.every_s = metric, mode, num_epochs, every_s
        self.total = total
        self._start = self._last = time.time()
        self._best = None

    def setup(self, **info):
        self._start = self._last = time.time()

    def _better(self, a, b):
        return b is None or (a > b if self.mode == "max" else a < b)

    def _print(self, message):
        elapsed = time.time() - self._start
        print("[%d:%02d:%02d] %s" % (elapsed // 3600, elapsed % 3600 // 60, elapsed % 60, message))
        sys.stdout.flush()
        self._last = time.time()

    def _status(self, trials, ended=None):
        counts = {"done": 0, "stopped": 0, "running": 0, "pending": 0, "failed": 0}
        for t in trials:
            if t.status == "TERMINATED" or t is ended:  # `ended` is still RUNNING while Tune tells us
                counts["done"] += 1
                last = t.last_result or {}
                if last.get("diverged") or last.get("epoch", 0) < self.num_epochs:
                    counts["stopped"] += 1
            elif t.status == "RUNNING":
                counts["running"] += 1
            elif t.status == "ERROR":
                counts["failed"] += 1
            else:
                counts["pending"] += 1
        counts["pending"] += max(0, self.total - len(trials))  # not created yet
        line = ("trials: %(done)d done (%(stopped)d stopped early), %(running)d running, %(pending)d pending, "
                "%(failed)d failed" % counts)
        if self._best is not None:
            value, trial_id, epoch, config = self._best
            line += " | best %s %.4f (trial %s, epoch %d: %s)" % (self.metric, value, trial_id, epoch,
                                                                 describe_config(config))
        self._print(line)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if value is not None and not math.isnan(value) and self._better(value, self._best and self._best[0]):
            self._best = (value, trial.trial_id, result.get("epoch", 0), trial.config)
        if time.time() - self._last >= self.every_s:
            self._status(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        if last.get("diverged"):
            how = "diverged at iteration %d" % last.get("iteration", 0)
        elif epochs < self.num_epochs:
            how = "stopped early by ASHA after %d of %d epochs" % (epochs, self.num_epochs)
        else:
            how = "finished %d epochs" % epochs
        self._print("trial %s %s (%s)" % (trial.trial_id, how, describe_config(trial.config)))
        self._status(trials, ended=trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._print("trial %s failed; restarting it from its last checkpoint (epoch %s)"
                    % (trial.trial_id, (trial.last_result or {}).get("epoch", 0)))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print("trial %s failed for good; its error is in %s"
                    % (trial.trial_id, os.path.join(trial.path or "?", "error.txt")))
        self._status(trials)


# ----------------------------------------------------------------------------------------------------
# Running, resuming
# ----------------------------------------------------------------------------------------------------


def start_ray(address=None, num_cpus=None, cpus_per_trial=1):
    """Connect to Ray unless already connected: a local cluster by default, or the cluster at ``address``.

    Inputs:
    - address: None (start a local Ray on this machine), 'auto' (the cluster this machine belongs to)
      or 'host:port' of a cluster's head.
    - num_cpus: CPUs of the local cluster (default: all of this machine's); not used with ``address``.
    - cpus_per_trial: the BLAS thread count given to every worker's environment.

    Returns True when this call started or joined Ray (the caller then shuts it down), False when Ray
    was already initialized (e.g. by a test session).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    require_ray()
    import ray

    # Tune warns when a checkpoint per epoch makes it save its state often; for small trials that is normal.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return False
    env = {var: str(cpus_per_trial) for var in BLAS_THREAD_VARIABLES}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                  runtime_env={"env_vars": env})
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        if num_cpus is not None:
            raise ValueError("num_cpus sizes a local cluster; it cannot be combined with address")
        ray.init(address=address, **kwargs)
    return True


@contextlib.contextmanager
def ray_session(address=None, num_cpus=None, cpus_per_trial=1):
    """:func:`start_ray` for the length of a ``with`` block; Ray is shut down after it if this started it."""
    started = start_ray(address, num_cpus, cpus_per_trial)
    try:
        yield
    finally:
        if started:
            import ray
            ray.shutdown()


def _fit_and_report(tuner, out, settings, data, verbose):
    """Run (or resume) the sweep's trials, then write its report; returns the report's dict."""
    t0 = time.time()
    grid = tuner.fit()
    return write_report(out, grid, settings, data, wall_seconds=time.time() - t0, verbose=verbose)


def _load_data(data_dir, max_train, seed):
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.shapes import ensure_shapes_dataset

    base = Path(data_dir) if data_dir else ensure_shapes_dataset()
    if max_train:
        np.random.seed(seed)  # load_coco_data draws the subsample with np.random, as `train --seed` does
    return base.resolve(), load_coco_data(base_dir=str(base), max_train=max_train)


def _validation_keys(data, num_val_images):
    """The numeric scores of a validation entry, from a throw-away solver on a tiny model (fast)."""
    from cs231n.classifiers.rnn import CaptioningRNN

    model = CaptioningRNN(data["word_to_idx"], input_dim=int(np.asarray(data["train_features"]).shape[1]),
                          wordvec_dim=2, hidden_dim=2)
    state = np.random.get_state()
    try:
        solver = CaptioningSolver(model, data, num_val_images=min(2, num_val_images), verbose=False)
        entry = solver.validate()
    finally:
        np.random.set_state(state)
    return sorted(k for k, v in entry.items() if _is_number(v) and k != "num_val_images") + ["train_loss"]


def _trainable(data, settings):
    tune = require_ray()
    return tune.with_resources(tune.with_parameters(_trial, data=data, settings=settings),
                               {"cpu": settings["cpus_per_trial"]})


def run_sweep(out_dir="runs/sweep", space=None, num_samples=8, num_epochs=5, data_dir=None, max_train=None,
              data_seed=0, num_val_images=200, metric="CIDEr", mode=None, early_stop=True, grace_period=1,
              reduction_factor=2, max_concurrent=None, cpus_per_trial=1, address=None, num_cpus=None,
              max_failures=2, fail_once_at_epoch=None, callbacks=(), verbose=True):
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
      seeded with data_seed).
    - num_val_images: val images scored after every epoch (>= 1).
    - metric: the score ASHA compares and the report ranks by: a key of the solver's validation entry
      ('CIDEr', 'Bleu_4', 'val_loss', ...); mode: 'max' or 'min' (default: 'min' for names ending in
      'loss', else 'max').
    - early_stop: ASHA with ``grace_period`` epochs before the first decision and ``reduction_factor``
      (keep the best 1/reduction_factor at each milestone); False runs every trial to the end.
    - max_concurrent: most trials at once (None: as many as the CPUs allow); cpus_per_trial: CPUs
      (and BLAS threads) per trial.
    - address, num_cpus: see :func:`start_ray`.
    - max_failures: restarts of a failed trial, each from its last checkpoint.
    - fail_once_at_epoch: testing fault tolerance: every trial's first attempt raises
      :class:`InjectedFailure` after reporting that epoch.
    - callbacks: more ``ray.tune.Callback`` objects (they are saved with the sweep and used on resume).
    - verbose: print progress and the table.

    Returns the report dict of :func:`write_report`.
    """
    tune = require_ray()
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or sweep_outputs(out)):
        raise FileExistsError(f"{out} holds a sweep already (or is a file); continue that sweep with "
                              f"resume_sweep (sweep --resume --out {out_dir}) or choose another directory")
    space = make_space(space)
    for name, value in (("num_samples", num_samples), ("num_epochs", num_epochs),
                        ("num_val_images", num_val_images), ("cpus_per_trial", cpus_per_trial),
                        ("grace_period", grace_period)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if max_concurrent is not None and (not _is_int(max_concurrent) or max_concurrent < 1):
        raise ValueError(f"max_concurrent must be a positive int or None, got {max_concurrent!r}")
    if not _is_int(max_failures) or max_failures < 0:
        raise ValueError(f"max_failures must be an int >= 0, got {max_failures!r}")
    if not _is_number(reduction_factor) or reduction_factor <= 1:
        raise ValueError(f"reduction_factor must be a number > 1, got {reduction_factor!r}")
    if early_stop and grace_period > num_epochs:
        raise ValueError(f"grace_period ({grace_period}) must be at most num_epochs ({num_epochs})")
    mode = mode or ("min" if metric.lower().endswith("loss") else "max")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")

    base, data = _load_data(data_dir, max_train, data_seed)
    keys = _validation_keys(data, num_val_images)
    if metric not in keys:
        raise ValueError(f"metric {metric!r} is not a validation score; choose one of {', '.join(keys)}")
    grid_points = math.prod(len(spec["grid"]) for spec in space.values() if isinstance(spec, dict) and "grid" in spec)
    settings = {"format": SETTINGS_FORMAT, "task": "captioning", "space": space, "num_samples": num_samples,
                "num_trials": num_samples * grid_points,
                "num_epochs": num_epochs, "data_dir": str(base), "max_train": max_train, "data_seed": data_seed,
                "data_identity": captioning_data_identity(base, data["word_to_idx"]), "num_val_images": num_val_images, "metric": metric,
                "mode": mode, "early_stop": bool(early_stop), "grace_period": grace_period,
                "reduction_factor": reduction_factor, "max_concurrent": max_concurrent,
                "cpus_per_trial": cpus_per_trial, "max_failures": max_failures,
                "fail_once_at_epoch": fail_once_at_epoch}
    from cs231n.archive import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")

    with ray_session(address, num_cpus, cpus_per_trial):
        scheduler = None
        if early_stop:
            from ray.tune.schedulers import ASHAScheduler
            scheduler = ASHAScheduler(time_attr="epoch", max_t=num_epochs, grace_period=grace_period,
                                      reduction_factor=reduction_factor)
        progress = []
        if verbose:
            progress.append(__getattr__("SweepProgress")(metric, mode, num_epochs, settings["num_trials"]))
        tuner = tune.Tuner(
            _trainable(data, settings), param_space=_tune_space(space),
            tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples, scheduler=scheduler,
                                        max_concurrent_trials=max_concurrent),
            run_config=tune.RunConfig(
                name=out.name, storage_path=str(out.parent), verbose=0, callbacks=progress + list(callbacks),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                        checkpoint_score_order=mode),
                failure_config=tune.FailureConfig(max_failures=max_failures)))
        if verbose:
            print(f"sweep: {settings['num_trials']} trial(s) of up to {num_epochs} epochs on {base} "
                  f"({data['train_captions'].shape[0]} train captions), {metric} ({mode}), "
                  f"{'ASHA' if early_stop else 'no early stopping'}, {cpus_per_trial} CPU(s) per trial; "
                  f"writing {out}")
            sys.stdout.flush()
        return _fit_and_report(tuner, out, settings, data, verbose)


REPORT_FILES = ("model.npz", "best.json", "trials.json", "report.md", "sweep.png")


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
    with ray_session(address, num_cpus, settings["cpus_per_trial"]):
        tuner = tune.Tuner.restore(str(out), _trainable(data, settings), resume_unfinished=True,
                                   resume_errored=True)
        if verbose:
            print(f"sweep: resuming {out}")
        return _fit_and_report(tuner, out, settings, data, verbose)


# ----------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------


def _trial_row(result, settings, trial_status):
    metric, mode = settings["metric"], settings["mode"]
    df = result.metrics_dataframe
    last = result.metrics or {}
    row = {"trial": last.get("trial_id") or Path(result.path).name,
           "config": {k: result.config[k] for k in settings["space"] if k in result.config
                      and not (k == "hidden_dim" and result.config.get("model") == "transformer")},
           "epochs": 0, "best_epoch": None, "score": None, "CIDEr": None, "Bleu_4": None,
           "resumed_at": [], "path": result.path}
    if df is not None and metric in df.columns:
        scored = df[df[metric].notna()] if "diverged" not in df.columns else df[(df["diverged"] == 0)]
        scored = scored[scored[metric].notna()]
        row["epochs"] = int(df["epoch"].max())
        if len(scored):
            best = scored.loc[scored[metric].idxmax() if mode == "max" else scored[metric].idxmin()]
            row.update(best_epoch=int(best["epoch"]), score=float(best[metric]),
                       CIDEr=float(best["CIDEr"]) if "CIDEr" in best else None,
                       Bleu_4=float(best["Bleu_4"]) if "Bleu_4" in best else None)
        row["resumed_at"] = sorted({int(e) for e in df.get("resumed_from_epoch", []) if e > 0})
    if result.error is not None or trial_status == "ERROR":
        row["status"] = "failed"
        row["error"] = (str(result.error).strip() or "error").splitlines()[-1]
    elif trial_status != "TERMINATED":
        row["status"] = "unfinished"
    elif last.get("diverged"):
        row["status"] = "diverged"
    elif row["epochs"] < settings["num_epochs"]:
        row["status"] = "stopped early"
    else:
        row["status"] = "finished"
    return row


def _export_best(result, row, out, settings):
    """Write the best trial's parameters at its best epoch as out/model.npz; returns the path."""
    from cs231n.solver import load_checkpoint

    metric = settings["metric"]
    kept = [(ckpt, m) for ckpt, m in result.best_checkpoints if m.get("epoch") == row["best_epoch"]]
    if not kept:
        raise RuntimeError(f"the checkpoint of trial {row['trial']} at its best epoch {row['best_epoch']} "
                           f"is missing from {result.path}")
    ckpt, metrics = kept[0]
    with ckpt.as_directory() as d:
        saved = load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    meta = saved["meta"]
    if meta["epoch"] != row["best_epoch"] or meta["val_history"][-1].get(metric) != metrics[metric]:
        raise RuntimeError(f"the checkpoint of trial {row['trial']} does not hold epoch {row['best_epoch']}'s "
                           f"model; not exporting it")
    model = MODEL_KINDS[row["config"]["model"]][1](meta["model_config"])
    model.params.update(saved["params"])
    model.identity = settings["data_identity"]  # the project's rule: a model file records its data
    return model.save(out / "model.npz")


def _table(rows, settings):
    """The trials as a fixed-width text table (keys that vary across trials get columns)."""
    keys = [k for k in settings["space"] if len({json.dumps(r["config"].get(k)) for r in rows}) > 1]
    fixed = {k: rows[0]["config"].get(k) for k in settings["space"] if k not in keys} if rows else {}
    metric = settings["metric"]
    header = ["trial"] + keys + ["epochs", "best@", metric] + [m for m in ("CIDEr", "Bleu_4") if m != metric]
    header += ["status"]
    lines = []
    for r in rows:
        cells = [r["trial"]] + [("%.2e" % r["config"][k]) if k == "lr" else _fmt(r["config"].get(k))
                                for k in keys]
        cells += [str(r["epochs"]), "-" if r["best_epoch"] is None else str(r["best_epoch"])]
        for m in [metric] + [m for m in ("CIDEr", "Bleu_4") if m != metric]:
            value = r["score"] if m == metric else r[m]
            cells.append("-" if value is None else "%.4f" % value)
        status = r["status"] + (" (resumed at epoch %s)" % ",".join(map(str, r["resumed_at"]))
                                if r["resumed_at"] else "")
        cells.append(status)
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + lines]
    fixed_line = "fixed: " + ", ".join(f"{k}={_fmt(v)}" for k, v in fixed.items()) if fixed else ""
    return "\n".join(text), fixed_line


def write_report(out, grid, settings, data, wall_seconds=None, verbose=True):
    """Summarize a finished sweep: table, best model, figure; write them to ``out``.

    Inputs:
    - out: the sweep directory (Path).
    - grid: the ``ray.tune.ResultGrid`` of the sweep.
    - settings: the sweep's settings (``sweep.json``).
    - data: the dataset (for the figure's title).
    - wall_seconds: the time ``fit`` took, reported as is.

    Writes ``trials.json``, ``report.md``, ``sweep.png`` and (when a trial has a score) ``model.npz``,
    ``best.json``. Returns a dict with 'rows' (one dict per trial, best first: trial, config, epochs,
    best_epoch, score, CIDEr, Bleu_4 (at the best epoch), status, resumed_at, path), 'best' (the best
    row or None), 'model_path' (or None), 'figure', 'table' (text) and 'wall_seconds'.
    """
    from cs231n.archive import atomic_write_text
    from cs231n.vis import plot_sweep

    metric, mode = settings["metric"], settings["mode"]
    results = list(grid)
    # Tune's saved state says which trials ended (a result's own 'done' flag is not reliable after a resume).
    status = {Path(t.path).name: t.status for t in require_ray().ExperimentAnalysis(str(out)).trials}
    rows = [_trial_row(r, settings, status.get(Path(r.path).name)) for r in results]
    unfinished = settings["num_trials"] - sum(r["status"] != "unfinished" for r in rows)
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["score"] is None,
                                                    -sign * (rows[i]["score"] or 0.0), rows[i]["trial"]))
    rows = [rows[i] for i in order]
    results = [results[i] for i in order]
    best = rows[0] if rows and rows[0]["score"] is not None and not unfinished else None
    model_path = None
    if best is not None:
        model_path = str(_export_best(results[0], best, out, settings))
        atomic_write_text(out / "best.json", json.dumps(best, indent=2) + "\n")
    table, fixed = _table(rows, settings)
    import matplotlib.pyplot as plt
    title = (f"{metric} of {len(rows)} trials on {Path(settings['data_dir']).name} "
             f"({data['train_captions'].shape[0]} train captions)")
    plt.close(plot_sweep(rows, metric, path=out / "sweep.png", title=title))
    atomic_write_text(out / "trials.json", json.dumps(
        {"settings": settings, "wall_seconds": wall_seconds, "trials": rows}, indent=2) + "\n")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "stopped early", "diverged", "failed")}
    counts["unfinished or not started"] = unfinished
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    interrupted = (f"INTERRUPTED: {unfinished} of {settings['num_trials']} trials have not finished; this "
                   f"table is partial and no best model was exported. Continue with: python -m cs231n sweep "
                   f"--resume --out {out}") if unfinished else ""
    lines = [f"# Sweep {out.name}", ""] + ([interrupted, ""] if interrupted else []) + [ f"{settings['num_trials']} trials ({summary}); val {metric} ({mode}) on "
             f"{settings['num_val_images']} val images after each epoch; up to {settings['num_epochs']} epochs"
             + (f"; this run of the sweep took {wall_seconds:.0f} s" if wall_seconds is not None else "") + ".", ""]
    if fixed:
        lines += [fixed, ""]
    lines += ["```", table, "```", ""]
    if best is not None:
        lines += [f"Best: trial {best['trial']} at epoch {best['best_epoch']}: {metric} {best['score']:.4f} "
                  f"({describe_config(best['config'])}); its model: model.npz", ""]
    lines += ["![score against learning rate and size](sweep.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    if verbose:
        print()
        if fixed:
            print(fixed)
        print(table)
        if best is not None:
            print(f"\nbest: trial {best['trial']}, epoch {best['best_epoch']}: {metric} {best['score']:.4f} "
                  f"({describe_config(best['config'])})")
        if interrupted:
            print("\n" + interrupted)
        print(f"wrote {out}/model.npz, best.json, trials.json, report.md, sweep.png"
              if best is not None else f"wrote {out}/trials.json, report.md, sweep.png")
        sys.stdout.flush()
    return {"rows": rows, "best": best, "model_path": model_path, "figure": str(out / "sweep.png"),
            "table": table, "wall_seconds": wall_seconds, "complete": not unfinished}
