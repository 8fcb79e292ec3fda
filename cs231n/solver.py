"""A generic minibatch training loop: options, updates, clipping, divergence stop, checkpoints, resume.

:class:`Solver` trains any model that keeps its weights in a flat dict ``model.params`` and computes
``loss, grads = model.loss(*batch)`` with ``grads`` keyed like ``params``. A subclass says where the
batches come from and what happens at the end of an epoch by implementing a few hooks:

- ``_num_train()``: the number of training examples (an epoch is ``max(num_train // batch_size, 1)``
  iterations, as in cs231n);
- ``_sample_batch()``: the positional arguments of ``model.loss`` for one minibatch;
- ``_epoch_end()``: optional, e.g. validation; it may append to ``val_history`` and call
  ``_track_best(score)``; returning True ends training after this epoch (a checkpoint is written
  when ``checkpoint_name`` is set, and ``stopped_early`` is set to True);
- ``_setup()``: optional, called once after the options are read (``self.seed`` is set);
- ``_config()``, ``_extra_meta()``, ``_extra_arrays()``, ``_restore_extra(arrays, meta)``: optional,
  to put the subclass's own options and state into checkpoints.

A subclass that draws its minibatches from its own ``np.random.Generator`` instead of the global
``np.random`` stores it in ``self.rng`` (in ``_setup()``); its state is then saved in checkpoints and
restored on resume like the global one.

Options (keyword arguments of the constructor; anything else raises ValueError naming it):

- ``update_rule`` ('sgd'): the name of a rule in :mod:`cs231n.optim` ('sgd', 'sgd_momentum',
  'rmsprop', 'adam').
- ``optim_config`` ({}): hyperparameters for the rule, e.g. ``{'learning_rate': 1e-3}``; every
  parameter gets its own deep copy, which then also holds that parameter's optimizer state.
- ``lr_decay`` (1.0): every learning rate is multiplied by it at the end of each epoch.
- ``batch_size`` (100), ``num_epochs`` (10).
- ``print_every`` (10), ``verbose`` (True), ``progress`` ('lines'): with ``'lines'`` exactly the
  classic ``(Iteration i / n) loss: x`` line is printed every ``print_every`` iterations; with
  ``'eta'`` each of those lines ends with the seconds per iteration and the estimated time left,
  ``  (0.12 s/it, ETA 0:01:23)``; with ``'bar'`` a tqdm progress bar (which shows s/it and the ETA
  itself) replaces the lines.
- ``grad_clip`` (None): when set, gradients whose global L2 norm (over all parameters together)
  exceeds it are scaled down to that norm before the update (see :func:`clip_grad_norm`).
- ``seed`` (None): with an int, ``train()`` calls ``np.random.seed(seed)`` before the first
  iteration. Minibatches are drawn through the global ``np.random`` as in the classic cs231n solver,
  so this sets the global generator (that is the classic API). With None the global state is used
  as it is.
- ``checkpoint_name`` (None): when set, checkpoints are written to ``checkpoint_name + '.npz'`` (or
  to ``checkpoint_name`` itself if it already ends in ``.npz``), atomically: a crash at any moment
  leaves the previous checkpoint or the new one, never a partial file.
- ``checkpoint_every`` (None): also write a checkpoint every that many iterations (mid-epoch ones
  resume as exactly as the others). Checkpoints are always written at the end of every epoch and
  when training finishes.
- ``resume_from`` (None): path of a checkpoint to continue from. Parameters, optimizer state (moving
  averages, step counts, decayed learning rates), epoch, iteration, histories, best parameters and
  the random state are restored, and ``train()`` continues the same run: with the same options a
  resumed run reproduces an uninterrupted one bit for bit. ``num_epochs`` may be larger than the
  original run's (the run is extended). The checkpoint's optimizer state replaces ``optim_config``;
  the update rule, batch size and epoch length must match the checkpoint's.
- ``init_from`` (None): path of a checkpoint (or a params archive) whose parameters initialize the
  model; optimizer, epoch and histories start fresh. It cannot be combined with ``resume_from``.
- ``precision`` ('float32'): 'tf32' lets the GPU compute the float32 matrix products of the forward
  and backward passes in TF32 (faster on NVIDIA Ampere and newer, about 3 significant digits in each
  product's inputs; see :func:`cs231n.backend.matmul_precision` for exactly what changes). float32 is
  the reference; on the CPU both are numpy's float32.
- ``divergence_factor`` (None: off), ``divergence_patience`` (5): stop with
  :class:`TrainingDivergedError` once the loss has been above ``divergence_factor`` (a number > 1)
  times the run's first loss for ``divergence_patience`` iterations in a row (see below).

Ctrl-C (SIGINT, in the main thread) while a solver with ``checkpoint_name`` trains does not stop it in
the middle of an update: the iteration under way is finished, a checkpoint of it is written, and
:class:`TrainingInterrupted` (a KeyboardInterrupt) is raised, naming the checkpoint; resuming from it
continues bit for bit. A second Ctrl-C stops at once (the last checkpoint on disk stays intact).
Without ``checkpoint_name`` Ctrl-C raises KeyboardInterrupt at once, as in the classic solver.

With only the classic options a solver prints the classic lines and nothing else, and writes nothing:
the extras (the ETA, the progress bar, checkpoints, and a subclass's per-epoch validation) are each
switched on by their own option. ``loss_history`` holds Python floats (the classic solver kept the
numpy scalars the model returned; floats print, plot and compare the same, and go into JSON).

A loss or gradient that is NaN or infinite stops training with :class:`TrainingDivergedError` naming
the iteration; the parameters are not updated with it and no checkpoint is written from that state,
so the last checkpoint stays intact (numpy's overflow and invalid-value warnings on the way there are
not shown: the error says it). A loss that blows up without becoming NaN (a learning rate far too
high) is caught the same way when ``divergence_factor`` is set (off by default, so classic calls run as
before): training stops once the loss has stayed above ``divergence_factor`` times the run's first loss
for ``divergence_patience`` iterations in a row (the first loss is that of the untrained model, e.g.
about ln(V) per word for a captioning model, so no healthy run comes near it again).

A model on the GPU (``model.to("gpu")``, see :mod:`cs231n.classifiers.device`) trains there: each
minibatch is copied to the device once, the optimizer state is created (or, on resume, moved) there,
and the loss, the finiteness checks and gradient clipping are computed on the device, so an iteration
waits for the GPU once: to read the loss (a Python float in ``loss_history``) together with the
finiteness flags (and the model's checks of its inputs' values, e.g. index ranges, queued by
``backend.deferred_checks`` instead of each reading its own flag back). Checkpoints hold host numpy arrays, like every file of this package, so a run
checkpointed on the GPU resumes on the CPU and vice versa, bit for bit (the arrays are the same; the
arithmetic of a real GPU may round differently from numpy's from there on).
"""
import copy
import inspect
import json
import math
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

from cs231n import gpu_kernels, optim
from cs231n.archive import load_archive, save_archive
from cs231n.backend import (check_precision, deferred_checks, get_array_module, matmul_precision,
                             is_device_array, params_device, to_numpy, tree_to_device)

CHECKPOINT_FORMAT = "cs231n-solver-checkpoint"
CHECKPOINT_VERSION = 1

_PROGRESS_MODES = ("lines", "eta", "bar")


class TrainingDivergedError(FloatingPointError):
    """Training stopped because the loss or a gradient became NaN or infinite.

    Attributes:
    - iteration: the 1-based iteration whose loss or gradient was not finite
    - checkpoint: path of the last checkpoint written before it (intact), or None
    """

    def __init__(self, message, iteration, checkpoint=None):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after a finished iteration, and a checkpoint of it was written.

    Attributes:
    - iteration: the number of finished iterations (all of them are in the checkpoint)
    - checkpoint: path of that checkpoint
    """

    def __init__(self, message, iteration, checkpoint):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


class _DeferredInterrupt:
    """While active, the first SIGINT only sets ``requested``; a second one raises KeyboardInterrupt.

    Takes effect only in the main thread and only when SIGINT has Python's default handler (so a
    handler someone else installed is left alone); otherwise ``requested`` simply stays False.
    """

    def __enter__(self):
        self.requested = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a signal handler may run in the middle of another print.
        os.write(2, b"\nCtrl-C: stopping after this iteration and writing a checkpoint "
                    b"(press Ctrl-C again to stop at once)\n")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def update_rules():
    """Names of the update rules defined in :mod:`cs231n.optim`, sorted."""
    return sorted(name for name, obj in vars(optim).items()
                  if inspect.isfunction(obj) and obj.__module__ == optim.__name__
                  and not name.startswith("_"))


def clip_grad_norm(grads, max_norm):
    """Scale a dict of gradients so that their global L2 norm is at most ``max_norm``.

    The global norm is ``sqrt(sum over arrays of sum(g ** 2))``, computed in float64. When it exceeds
    ``max_norm`` every gradient is multiplied by ``max_norm / norm`` (one factor for all, so the
    direction of the whole update is kept); otherwise the gradients are returned unchanged.

    Inputs:
    - grads: dict of name -> float array of any shape
    - max_norm: positive float

    Returns a tuple of:
    - clipped: a new dict with the same keys (arrays in their original dtypes and devices; the inputs
      are not modified)
    - norm: float, the global norm before clipping (for GPU gradients, reading it is one sync)
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float, np.integer, np.floating)):
        raise TypeError(f"clip_grad_norm: max_norm must be a positive number, got {type(max_norm).__name__}")
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be a positive number, got {max_norm}")
    if any(is_device_array(g) for g in grads.values()):
        clipped, norm = _clip_on_device(grads, max_norm)
        return clipped, float(norm)
    total = 0.0
    for g in grads.values():
        g = np.asarray(g)
        total += float(np.sum(np.square(g, dtype=np.float64)))
    norm = math.sqrt(total)
    if norm <= max_norm:
        return dict(grads), norm
    scale = max_norm / norm
    clipped = {}
    for name, g in grads.items():
        g = np.asarray(g)
        clipped[name] = (g * scale).astype(g.dtype, copy=False)
    return clipped, norm


def _clip_on_device(grads, max_norm):
    """:func:`clip_grad_norm` without leaving the device: returns (clipped, norm as a 0-d device array).

    The same arithmetic as the host path (float64 sums added in order, one scale for all, rounded to
    each gradient's dtype as a Python float would be), so the fake GPU of the tests matches it bit for
    bit; gradients under the limit are multiplied by exactly 1.
    """
    xp = get_array_module(*grads.values())
    total = xp.zeros((), dtype=np.float64)
    for g in grads.values():
        total = total + xp.sum(xp.square(g, dtype=np.float64))
    norm = xp.sqrt(total)
    scale = xp.where(norm > max_norm, max_norm / norm, 1.0)                 # 0-d, float64
    return {name: g * scale.astype(g.dtype) for name, g in grads.items()}, norm


def checkpoint_path(checkpoint_name):
    """The file a solver with this ``checkpoint_name`` writes: the name plus ``.npz`` unless present."""
    name = os.fspath(checkpoint_name)
    return name if name.endswith(".npz") else name + ".npz"


def load_checkpoint(path):
    """Read a solver checkpoint written by :meth:`Solver.save_checkpoint`.

    Returns a dict with:
    - 'params': dict name -> array, the model parameters
    - 'best_params': dict name -> array (empty if no validation score was recorded)
    - 'optim_configs': dict name -> dict, the optimizer config and state of each parameter
    - 'rng_state': the global ``np.random`` state as ``np.random.get_state()`` returns it
    - 'meta': the JSON metadata (epoch, iteration, solver config, model config, histories, ...)
    - 'extra': dict name -> array of subclass state
    Raises FileNotFoundError, or ValueError when the file is not a checkpoint of a known version.
    """
    arrays, meta = load_archive(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a solver checkpoint (format {meta.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    if not isinstance(meta.get("version"), int) or meta["version"] > CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {meta.get('version')!r}; this library reads "
                         f"versions up to {CHECKPOINT_VERSION}")
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    best = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
    extra = {k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")}
    optim_configs = {}
    for name, scalars in meta["optim"].items():
        optim_configs[name] = dict(scalars)
    for key, value in arrays.items():
        if key.startswith("optim/"):
            name, _, state_key = key[len("optim/"):].rpartition("/")
            optim_configs.setdefault(name, {})[state_key] = value
    rng = meta["rng"]
    rng_state = (rng["algorithm"], arrays["rng/keys"].astype(np.uint32), rng["pos"],
                 rng["has_gauss"], rng["cached_gaussian"])
    return {"params": params, "best_params": best, "optim_configs": optim_configs,
            "rng_state": rng_state, "meta": meta, "extra": extra}


def _format_duration(seconds):
    """Seconds as ``H:MM:SS`` (rounded to the second)."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs)


def _json_scalar(where, value):
    """A JSON-ready copy of an optimizer-config scalar (numpy scalars become Python numbers)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    raise TypeError(f"cannot store {where} in a checkpoint: expected a number, string, None or "
                    f"array, got {type(value).__name__}")


def _json_normal(obj):
    """``obj`` as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.dtype) or isinstance(obj, type):
        return np.dtype(obj).name
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _difference(key, saved, current):
    """'hidden_dim 256 in the checkpoint, 64 here'; a dict or list by its size (a vocabulary would fill
    the screen): 'word_to_idx differs (49 entries in the checkpoint, 49 here)'."""
    if isinstance(saved, (dict, list)) or isinstance(current, (dict, list)):
        size = lambda v: len(v) if isinstance(v, (dict, list)) else "no"  # noqa: E731
        return "%s differs (%s entries in the checkpoint, %s here)" % (key, size(saved), size(current))
    return "%s %r in the checkpoint, %r here" % (key, saved, current)


def _check_positive_int(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {bound} int, got {value}")
    return int(value)


def _check_positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} ({value!r})")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


class Solver:
    """Minibatch training of a params-dict model with a :mod:`cs231n.optim` update rule.

    Not used directly: subclasses implement ``_num_train()`` and ``_sample_batch()`` (see the module
    docstring for the hooks and the options).

    Attributes after ``train()``:
    - loss_history: list of float, the training loss of every iteration
    - epoch: int, number of completed epochs
    - iteration: int, number of completed iterations (updates)
    - val_history: list of dict, one per validation (filled by subclasses)
    - best_params: dict name -> array, deep copy of the parameters with the best validation score
    - best_val_score: float or None, that score
    - optim_configs: dict name -> dict, each parameter's optimizer config and state
    - seconds_per_iteration: float or None, the average over the last call of ``train()``
    """

    def __init__(self, model, **kwargs):
        """Read the options (see the module docstring); unknown ones raise ValueError naming them."""
        if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
            raise TypeError(f"model must have a dict attribute 'params' and a method 'loss', "
                            f"got {type(model).__name__}")
        if not model.params:
            raise ValueError("model.params is empty; there is nothing to train")
        self.model = model

        self.update_rule_name = kwargs.pop("update_rule", "sgd")
        optim_config = kwargs.pop("optim_config", None)
        self.optim_config = {} if optim_config is None else optim_config
        self.lr_decay = kwargs.pop("lr_decay", 1.0)
        self.batch_size = kwargs.pop("batch_size", 100)
        self.num_epochs = kwargs.pop("num_epochs", 10)
        self.print_every = kwargs.pop("print_every", 10)
        self.verbose = kwargs.pop("verbose", True)
        self.progress = kwargs.pop("progress", "lines")
        self.grad_clip = kwargs.pop("grad_clip", None)
        self.seed = kwargs.pop("seed", None)
        self.checkpoint_name = kwargs.pop("checkpoint_name", None)
        self.checkpoint_every = kwargs.pop("checkpoint_every", None)
        self.precision = check_precision("Solver", kwargs.pop("precision", "float32"))
        resume_from = kwargs.pop("resume_from", None)
        init_from = kwargs.pop("init_from", None)
        self.divergence_factor = kwargs.pop("divergence_factor", None)
        self.divergence_patience = kwargs.pop("divergence_patience", 5)
        if kwargs:
            extra = ", ".join('"%s"' % k for k in kwargs)
            raise ValueError("Unrecognized arguments %s" % extra)

        if not isinstance(self.update_rule_name, str):
            raise TypeError(f"update_rule must be the name of a rule in cs231n.optim (a str), "
                            f"got {type(self.update_rule_name).__name__}")
        if self.update_rule_name not in update_rules():
            raise ValueError('Invalid update_rule "%s"; expected one of %s'
                             % (self.update_rule_name, ", ".join(update_rules())))
        self.update_rule = getattr(optim, self.update_rule_name)
        if not isinstance(self.optim_config, dict):
            raise TypeError(f"optim_config must be a dict, got {type(self.optim_config).__name__}")
        self.lr_decay = _check_positive_number("lr_decay", self.lr_decay)
        self.batch_size = _check_positive_int("batch_size", self.batch_size)
        self.num_epochs = _check_positive_int("num_epochs", self.num_epochs, allow_zero=True)
        self.print_every = _check_positive_int("print_every", self.print_every)
        if self.progress not in _PROGRESS_MODES:
            raise ValueError(f"progress must be one of {_PROGRESS_MODES}, got {self.progress!r}")
        if self.grad_clip is not None:
            self.grad_clip = _check_positive_number("grad_clip", self.grad_clip)
        if self.seed is not None:
            self.seed = _check_positive_int("seed", self.seed, allow_zero=True)
            if self.seed >= 2 ** 32:
                raise ValueError(f"seed must be below 2**32 (np.random.seed's range), got {self.seed}")
        if self.divergence_factor is not None:
            self.divergence_factor = _check_positive_number("divergence_factor", self.divergence_factor)
            if self.divergence_factor <= 1:
                raise ValueError(f"divergence_factor must be > 1 (the loss is compared with that many times "
                                 f"its first value), got {self.divergence_factor}")
        self.divergence_patience = _check_positive_int("divergence_patience", self.divergence_patience)
        if self.checkpoint_every is not None:
            self.checkpoint_every = _check_positive_int("checkpoint_every", self.checkpoint_every)
            if self.checkpoint_name is None:
                raise ValueError("checkpoint_every is set but checkpoint_name is None; "
                                 "name the checkpoint file with checkpoint_name")
        if self.checkpoint_name is not None:
            self.checkpoint_name = os.fspath(self.checkpoint_name)
        if resume_from is not None and init_from is not None:
            raise ValueError("resume_from and init_from cannot both be given: resume_from continues a "
                             "run, init_from starts a new run from saved weights")

        num_train = self._num_train()
        if num_train <= 0:
            raise ValueError(f"the training data is empty (num_train = {num_train}); "
                             f"need at least one training example")
        self.iterations_per_epoch = max(num_train // self.batch_size, 1)
        self.seconds_per_iteration = None
        self.last_checkpoint = None  # (path, iteration) of the last checkpoint written or resumed
        self._rng_to_restore = None  # global np.random state to set when train() starts
        self._bar = None             # the tqdm bar while train() runs with progress='bar'
        self.rng = None              # a subclass's own np.random.Generator, saved in checkpoints
        self._setup()
        self._reset()
        if resume_from is not None:
            self._resume(os.fspath(resume_from))
        elif init_from is not None:
            self.init_params(os.fspath(init_from))

    # ------------------------------------------------------------------ hooks for subclasses

    def _num_train(self):
        """Number of training examples."""
        raise NotImplementedError(f"{type(self).__name__} must implement _num_train()")

    def _sample_batch(self):
        """Positional arguments of ``model.loss`` for one training minibatch (a tuple)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _sample_batch()")

    def _setup(self):
        """Called once by the constructor after the options are read, before ``_reset()``."""

    def _epoch_end(self):
        """Called after every epoch (after ``epoch`` is incremented and learning rates decayed)."""

    def _config(self):
        """The solver's options as a JSON-ready dict (subclasses add theirs)."""
        return {
            "update_rule": self.update_rule_name,
            "optim_config": {k: _json_scalar("optim_config[%r]" % k, v)
                             for k, v in self.optim_config.items()},
            "lr_decay": self.lr_decay,
            "batch_size": self.batch_size,
            "num_epochs": self.num_epochs,
            "print_every": self.print_every,
            "verbose": bool(self.verbose),
            "progress": self.progress,
            "grad_clip": self.grad_clip,
            "seed": self.seed,
            "checkpoint_name": self.checkpoint_name,
            "checkpoint_every": self.checkpoint_every,
            "precision": self.precision,
            "iterations_per_epoch": self.iterations_per_epoch,
        }

    def _model_config(self):
        """The model's ``get_config()`` (JSON-ready) or None if the model has none."""
        get_config = getattr(self.model, "get_config", None)
        return _json_normal(get_config()) if callable(get_config) else None

    def _extra_meta(self):
        """Subclass state for checkpoints, JSON-ready."""
        return {}

    def _extra_arrays(self):
        """Subclass state for checkpoints, as name -> array."""
        return {}

    def _restore_extra(self, arrays, meta):
        """Restore what ``_extra_arrays()`` and ``_extra_meta()`` saved (on resume)."""

    # ------------------------------------------------------------------ training

    def _reset(self):
        """Set up the bookkeeping of a fresh run (called by the constructor; don't call by hand)."""
        self.epoch = 0
        self.iteration = 0
        self.loss_history = []
        self.stopped_early = False
        self.val_history = []
        self.best_params = {}
        self.best_val_score = None
        self.optim_configs = {p: copy.deepcopy(self.optim_config) for p in self.model.params}

    def _log(self, message):
        """Print a line when verbose, without breaking a progress bar."""
        if not self.verbose:
            return
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.write(message)
        else:
            print(message)
            sys.stdout.flush()

    def _track_best(self, score):
        """Keep a deep copy of the parameters when ``score`` beats ``best_val_score`` (higher is better)."""
        score = float(score)
        if math.isnan(score):
            return False
        if self.best_val_score is None or score > self.best_val_score:
            self.best_val_score = score
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}  # on the model's device
            return True
        return False

    def _step(self):
        """One update: sample a minibatch, compute loss and gradients, check them, clip, update."""
        if params_device(self.model.params) == "gpu":
            return self._step_on_device()
        iteration = self.iteration + 1
        args = self._sample_batch()
        loss, grads = self.model.loss(*args)
        loss = float(loss)
        if not math.isfinite(loss):
            self._diverged(iteration, "the loss is %r" % loss)
        self._check_blowup(iteration, loss)
        self._check_gradient_names(grads)
        for p in self.model.params:
            if not np.all(np.isfinite(grads[p])):
                self._diverged(iteration, "the gradient of %r is not finite (loss %f)" % (p, loss))
        if self.grad_clip is not None:
            grads, _ = clip_grad_norm({p: grads[p] for p in self.model.params}, self.grad_clip)

        new_params, new_configs = self._updates(grads)
        for p in new_params:
            if not np.all(np.isfinite(new_params[p])):
                self._diverged(iteration, "the update made %r non-finite (loss %f)" % (p, loss))
        # Commit only once everything is finite, so a diverged step leaves the model as it was.
        self._commit(iteration, loss, new_params, new_configs)

    def _check_gradient_names(self, grads):
        missing = [p for p in self.model.params if p not in grads]
        if missing:
            raise ValueError(f"model.loss returned no gradient for parameters {missing}")

    def _updates(self, grads):
        """The new parameters and optimizer configs of one update, not yet committed."""
        new_params, new_configs = {}, {}
        for p, w in self.model.params.items():
            # A shallow copy suffices: the rules store new state arrays instead of writing into the old.
            new_params[p], new_configs[p] = self.update_rule(w, grads[p], dict(self.optim_configs[p]))
        return new_params, new_configs

    def _commit(self, iteration, loss, new_params, new_configs):
        self.model.params.update(new_params)
        self.optim_configs.update(new_configs)
        self.loss_history.append(loss)
        self.iteration = iteration

    def _step_on_device(self):
        """``_step`` for a model on the GPU: the same update, checks and errors, with one sync.

        The minibatch is copied to the device once; clipping and the update run there; then the loss
        and every finiteness flag (loss, each gradient, each updated weight) come back to the host in
        one transfer, and only then is the update committed (or the run stopped, as on the host).
        """
        iteration = self.iteration + 1
        args = tree_to_device(tuple(self._sample_batch()), "gpu")      # the minibatch crosses once
        xp = get_array_module(*self.model.params.values())
        with deferred_checks() as checks, matmul_precision(xp, self.precision):
            loss, grads = self.model.loss(*args)  # (the value checks are read back with the loss)
        names = list(self.model.params)
        self._check_gradient_names(grads)
        # Flags computed on the device as the step goes; read back together below.
        flags = [xp.asarray(loss, dtype=np.float64)] + [ok.astype(np.float64) for ok in checks.flags]
        fused = gpu_kernels.fused(xp)
        if not fused:
            flags += [xp.all(xp.isfinite(grads[p])).astype(np.float64) for p in names]  # before clipping
        checked_grads = grads
        flat = fused and optim.flat_update_applies(self.update_rule_name, self.model.params, self.optim_configs)
        if flat:  # every parameter in one launch of the rule's kernel, checked in one more
            g_flat = xp.concatenate([grads[p].ravel() for p in names])
            g_update = g_flat
            if self.grad_clip is not None:
                g_update = _clip_on_device({"all": g_flat}, self.grad_clip)[0]["all"]
            new_params, new_configs, flats = optim.update_flat(
                self.update_rule_name, self.model.params, g_update, self.optim_configs, self._reusable_flats())
            flags.append(gpu_kernels.nonfinite_code(g_flat, flats["w"]))
        else:
            if self.grad_clip is not None:
                grads, _ = _clip_on_device({p: grads[p] for p in names}, self.grad_clip)
            new_params, new_configs = self._updates(grads)
            if fused:  # one kernel per parameter checks its gradient (before clipping) and its new value
                flags += [gpu_kernels.nonfinite_code(checked_grads[p], new_params[p]) for p in names]
            else:
                flags += [xp.all(xp.isfinite(new_params[p])).astype(np.float64) for p in names]
        host = to_numpy(xp.stack(flags))  # the iteration's one device -> host sync: loss and flags together
        loss = float(host[0])
        checks.raise_failed(host[1:1 + len(checks.flags)])  # bad input: the model's own error
        host = host[1 + len(checks.flags):]
        if flat and host[0] != 0:  # something is not finite: which parameter (a second read, then stop)
            host = to_numpy(xp.stack([gpu_kernels.nonfinite_code(checked_grads[p], new_params[p]) for p in names]))
        if fused:
            codes = host.astype(np.int64) if not flat or host.size == len(names) else np.zeros(len(names), np.int64)
            grads_finite, params_finite = (codes & 1) == 0, (codes & 2) == 0
        else:
            grads_finite, params_finite = host[:len(names)], host[len(names):]
        if not math.isfinite(loss):
            self._diverged(iteration, "the loss is %r" % loss)
        self._check_blowup(iteration, loss)
        for p, ok in zip(names, grads_finite):
            if not ok:
                self._diverged(iteration, "the gradient of %r is not finite (loss %f)" % (p, loss))
        for p, ok in zip(names, params_finite):
            if not ok:
                self._diverged(iteration, "the update made %r non-finite (loss %f)" % (p, loss))
        self._commit(iteration, loss, new_params, new_configs)
        self._flats = (flats, new_params, new_configs) if flat else None

    def _reusable_flats(self):
        """The flat buffers of the last flat update when the model's parameters and the optimizer state
        are still their views (nothing replaced them since), else None (update_flat concatenates)."""
        last = getattr(self, "_flats", None)
        if last is None:
            return None
        flats, params, configs = last
        state_keys = [k for k in flats if k != "w"]
        if any(self.model.params.get(p) is not a for p, a in params.items()) or len(params) != len(self.model.params):
            return None
        if any(self.optim_configs[p].get(k) is not configs[p][k] for p in params for k in state_keys):
            return None
        return flats

    def _check_blowup(self, iteration, loss):
        """With ``divergence_factor``: stop once the loss has stayed far above the run's first loss.

        Reads only ``loss_history`` (restored on resume), so it holds no state of its own.
        """
        if self.divergence_factor is None or not self.loss_history:
            return
        limit = self.divergence_factor * self.loss_history[0]
        recent = self.loss_history[-(self.divergence_patience - 1):] if self.divergence_patience > 1 else []
        if limit > 0 and loss > limit and len(recent) == self.divergence_patience - 1 \
                and all(x > limit for x in recent):
            self._diverged(iteration, "the loss has been above %g x its first value (%g) for %d iterations "
                                      "in a row (now %g); the learning rate is probably too high"
                           % (self.divergence_factor, self.loss_history[0], self.divergence_patience, loss))

    def _diverged(self, iteration, what):
        where = ""
        if self.last_checkpoint is not None:
            where = (" The last checkpoint, %s (iteration %d), is intact; resume from it with "
                     "resume_from=%r, perhaps with a lower learning rate or grad_clip."
                     % (self.last_checkpoint[0], self.last_checkpoint[1], self.last_checkpoint[0]))
        raise TrainingDivergedError(
            "Training diverged at iteration %d (epoch %d): %s. The parameters were not updated "
            "with it.%s" % (iteration, self.epoch + 1, what, where),
            iteration, None if self.last_checkpoint is None else self.last_checkpoint[0])

    def _start_rng(self):
        if self._rng_to_restore is not None:
            np.random.set_state(self._rng_to_restore)
            self._rng_to_restore = None
        elif self.seed is not None and self.iteration == 0:
            np.random.seed(self.seed)

    def train(self):
        """Run the remaining iterations of ``num_epochs * iterations_per_epoch``.

        A fresh solver runs them all; a resumed one continues from its checkpoint; once the run is
        complete, calling ``train()`` again warns and returns (raise ``num_epochs`` to go on).
        """
        num_iterations = self.num_epochs * self.iterations_per_epoch
        if self.iteration >= num_iterations:
            warnings.warn("train(): nothing to do, %d of %d iterations (%d epochs) are done; raise "
                          "num_epochs to train further" % (self.iteration, num_iterations, self.num_epochs),
                          stacklevel=2)
            return
        self._start_rng()
        self.stopped_early = False
        self._bar = None
        if self.verbose and self.progress == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                warnings.warn("progress='bar' needs tqdm, which is not installed; printing lines instead",
                              stacklevel=2)
            else:
                self._bar = tqdm(total=num_iterations, initial=self.iteration, unit="it",
                                 dynamic_ncols=True)
        start, done = time.perf_counter(), 0
        interrupt = _DeferredInterrupt() if self.checkpoint_name is not None else None
        if interrupt is not None:
            interrupt.__enter__()
        try:
            while self.iteration < num_iterations:
                t = self.iteration  # 0-based index of this step, as in cs231n's loop
                # Overflow to inf and the NaN it makes are found by the step's own checks, which stop
                # the run with TrainingDivergedError; numpy's warnings about them would only be noise.
                with np.errstate(over="ignore", invalid="ignore"):
                    self._step()
                done += 1
                self.seconds_per_iteration = (time.perf_counter() - start) / done
                self._report(t, num_iterations)

                epoch_end = self.iteration % self.iterations_per_epoch == 0
                stop = False
                if epoch_end:
                    self.epoch += 1
                    for config in self.optim_configs.values():
                        if "learning_rate" in config:
                            config["learning_rate"] *= self.lr_decay
                    stop = bool(self._epoch_end())
                if self.checkpoint_name is not None and (
                        stop or epoch_end or self.iteration == num_iterations
                        or (self.checkpoint_every is not None
                            and self.iteration % self.checkpoint_every == 0)):
                    self.save_checkpoint()
                if interrupt is not None and interrupt.requested:
                    self._interrupted()
                if stop:
                    self.stopped_early = True
                    break
        finally:
            if interrupt is not None:
                interrupt.__exit__(None, None, None)
            if self._bar is not None:
                self._bar.close()
            self._bar = None

    def _interrupted(self):
        """Checkpoint the last finished iteration (unless just done) and raise TrainingInterrupted."""
        if self.last_checkpoint != (self.checkpoint_path, self.iteration):
            self.save_checkpoint()
        raise TrainingInterrupted("training interrupted after iteration %d (epoch %d); checkpoint %s"
                                  % (self.iteration, self.epoch, self.checkpoint_path),
                                  self.iteration, self.checkpoint_path)

    def _report(self, t, num_iterations):
        if not self.verbose:
            return
        loss = self.loss_history[-1]
        if self._bar is not None:
            self._bar.set_postfix(loss="%.4f" % loss, refresh=False)
            self._bar.update(1)
        elif t % self.print_every == 0:
            line = "(Iteration %d / %d) loss: %f" % (t + 1, num_iterations, loss)
            if self.progress == "eta":
                eta = self.seconds_per_iteration * (num_iterations - self.iteration)
                line += "  (%.3g s/it, ETA %s)" % (self.seconds_per_iteration, _format_duration(eta))
            print(line)
            sys.stdout.flush()

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self):
        """The checkpoint file of this solver, or None without ``checkpoint_name``."""
        return None if self.checkpoint_name is None else checkpoint_path(self.checkpoint_name)

    def save_checkpoint(self, path=None):
        """Write the complete training state to ``path`` (default: ``checkpoint_path``) atomically.

        Returns the path written.
        """
        path = self.checkpoint_path if path is None else os.fspath(path)
        if path is None:
            raise ValueError("save_checkpoint: no path given and the solver has no checkpoint_name")
        arrays = {}
        for name, w in self.model.params.items():
            arrays["param/" + name] = w
        optim_scalars = {}
        for name, config in self.optim_configs.items():
            scalars = {}
            for key, value in config.items():
                if isinstance(value, np.ndarray) or is_device_array(value):
                    arrays["optim/%s/%s" % (name, key)] = value  # copied to the host by save_archive
                else:
                    scalars[key] = _json_scalar("optim_configs[%r][%r]" % (name, key), value)
            optim_scalars[name] = scalars
        for name, w in self.best_params.items():
            arrays["best/" + name] = w
        for name, a in self._extra_arrays().items():
            arrays["extra/" + name] = a
        rng_state = self._rng_to_restore if self._rng_to_restore is not None else np.random.get_state()
        algorithm, keys, pos, has_gauss, cached_gaussian = rng_state
        arrays["rng/keys"] = np.asarray(keys, dtype=np.uint32)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "solver": type(self).__name__,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "optim": optim_scalars,
            "config": self._config(),
            "model_config": self._model_config(),
            "loss_history": [float(x) for x in self.loss_history],
            "val_history": _json_normal(self.val_history),
            "best_val_score": self.best_val_score,
            "rng": {"algorithm": algorithm, "pos": int(pos), "has_gauss": int(has_gauss),
                    "cached_gaussian": float(cached_gaussian)},
            "generator_state": (None if self.rng is None
                                else _json_normal(self.rng.bit_generator.state)),
            "extra": self._extra_meta(),
        }
        save_archive(path, arrays, meta)
        self.last_checkpoint = (path, self.iteration)
        return path

    def _check_params_match(self, params, path, exact_dtype):
        """Raise ValueError unless ``params`` has the model's names, shapes (and dtypes)."""
        mine = self.model.params
        problems = []
        missing = sorted(set(mine) - set(params))
        unknown = sorted(set(params) - set(mine))
        if missing:
            problems.append("missing parameters %s" % missing)
        if unknown:
            problems.append("parameters the model does not have %s" % unknown)
        for name in sorted(set(mine) & set(params)):
            a, b = params[name], mine[name]  # arrays (host or GPU): only shapes and dtypes are read
            if a.shape != b.shape:
                problems.append("%s has shape %s in the file, %s in the model" % (name, a.shape, b.shape))
            elif exact_dtype and a.dtype != b.dtype:
                problems.append("%s has dtype %s in the file, %s in the model" % (name, a.dtype, b.dtype))
        if problems:
            raise ValueError("%s does not fit this model: %s" % (path, "; ".join(problems)))

    def _config_differences(self, saved):
        current = self._model_config()
        if saved is None or current is None:
            return []
        keys = sorted(set(saved) | set(current))
        return [k for k in keys if saved.get(k) != current.get(k)]

    def _resume(self, path):
        ckpt = load_checkpoint(path)
        meta = ckpt["meta"]
        # The model's configuration first: it names what differs in the user's terms (hidden_dim 256 in
        # the checkpoint, 64 here), where the parameters' shapes would list every array.
        saved_model = meta.get("model_config")
        differences = self._config_differences(saved_model)
        if differences:
            current = self._model_config()
            raise ValueError("%s was written for a different model: %s"
                             % (path, "; ".join(_difference(k, saved_model.get(k), current.get(k))
                                                for k in differences)))
        self._check_params_match(ckpt["params"], path, exact_dtype=True)
        saved = meta["config"]
        for key in ("update_rule", "batch_size", "iterations_per_epoch"):
            mine = self._config()[key]
            if saved.get(key) != mine:
                raise ValueError("cannot resume from %s: it was trained with %s=%r, this solver has %r"
                                 % (path, key, saved.get(key), mine))
        changed = [k for k in ("lr_decay", "grad_clip", "optim_config")
                   if saved.get(k) != self._config()[k]]
        if changed:
            warnings.warn("resuming %s with different %s than the original run; the result will not "
                          "match an uninterrupted run (the checkpoint's optimizer state is used)"
                          % (path, ", ".join(changed)), stacklevel=3)
        # The file holds host arrays; they go where the model is (parameters, optimizer state, best).
        device = params_device(self.model.params)
        for name, w in ckpt["params"].items():
            self.model.params[name] = tree_to_device(w, device)
        self.optim_configs = {p: tree_to_device(ckpt["optim_configs"].get(p, {}), device)
                              for p in self.model.params}
        self.best_params = tree_to_device(ckpt["best_params"], device)
        self.best_val_score = meta["best_val_score"]
        self.epoch = meta["epoch"]
        self.iteration = meta["iteration"]
        self.loss_history = list(meta["loss_history"])
        self.val_history = list(meta["val_history"])
        self._rng_to_restore = ckpt["rng_state"]
        if meta.get("generator_state") is not None:
            if self.rng is None:
                raise ValueError("%s holds the state of a np.random.Generator, but this solver has none"
                                 % path)
            self.rng.bit_generator.state = meta["generator_state"]
        self._restore_extra(ckpt["extra"], meta.get("extra", {}))
        self.last_checkpoint = (path, self.iteration)

    def init_params(self, path):
        """Copy the parameters stored at ``path`` into the model; nothing else changes.

        ``path`` is a checkpoint (its ``param/`` arrays are used) or any archive of
        :mod:`cs231n.archive` whose array names are the parameter names. Shapes must match; arrays
        are cast to the model's dtypes. A different model config (when both sides have one) gives
        a warning naming the keys that differ.
        """
        arrays, meta = load_archive(path)
        params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
        if not params:
            params = {k: v for k, v in arrays.items() if "/" not in k}
        self._check_params_match(params, path, exact_dtype=False)
        # A checkpoint keeps the model's config under 'model_config'; a model archive under 'config'.
        saved_config = meta.get("model_config" if meta.get("format") == CHECKPOINT_FORMAT else "config")
        differences = self._config_differences(saved_config) if isinstance(saved_config, dict) else []
        if differences:
            warnings.warn("init_from %s: the saved model config differs in %s"
                          % (path, ", ".join(differences)), stacklevel=3)
        device = params_device(self.model.params)
        for name, w in params.items():
            self.model.params[name] = tree_to_device(w.astype(self.model.params[name].dtype, copy=True), device)
