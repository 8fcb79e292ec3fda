"""Hyperparameter sweeps on Ray Tune: many CaptioningSolver runs, early stopping, resume, a report.

Ray (https://docs.ray.io) is an optional extra, ``pip install -e '.[sweep]'``; this is the only module
of the package that imports it. The same code runs on a laptop (Ray starts a local cluster sized to
the machine) and on an existing Ray cluster (``address``).

What a sweep is:

- A search space (:data:`DEFAULT_SPACE`, a JSON file or a dict; see :func:`make_space`): each key is a
  hyperparameter of one trial, each value a constant or a distribution. The model kind is just another
  value (``"model": {"choice": ["rnn", "lstm", "gru"]}``).
- Each trial is the project's own :class:`cs231n.captioning_solver.CaptioningSolver` run, on the
  training captions minus those of ``holdout`` training images (as ``train --holdout``; the same images
  for every trial). At the end of every epoch (the solver's ``_epoch_end`` hook) the trial reports the
  scores of those held-out images to Tune, with a checkpoint in the solver's own format
  (``checkpoint.npz``, no pickle) written by ``Solver.save_checkpoint``. With ``holdout`` 0 the trials
  are judged on ``num_val_images`` val images instead (as sweeps were before holdout existed).
- ASHA (asynchronous successive halving) stops trials whose score at an epoch milestone (1, 2, 4, ...
  with the default grace period 1 and reduction factor 2) is below the median of the trials that
  reached it before; the score is ``metric`` (the held-out CIDEr by default; any numeric key of the
  solver's per-epoch validation entry can be used, e.g. ``val_loss`` with mode 'min').
- A trial that fails (a crash, a lost node) is restarted up to ``max_failures`` times and resumes from
  its last checkpoint, bit for bit as if it had not failed (the solver's resume). A trial whose loss
  diverges (NaN) ends as 'diverged'; retrying it would only diverge again.
- A whole sweep that was interrupted (Ctrl-C, a crash of the driver) continues with
  :func:`resume_sweep` (``python -m cs231n sweep --resume --out DIR``): finished trials are kept as they are,
  unfinished ones resume from their checkpoints.
- The report (:func:`write_report`): a table of the trials, ``model.npz`` of the best trial at its
  best epoch (a normal :class:`cs231n.classifiers.rnn.CaptioningRNN` archive that ``evaluate`` and
  ``caption`` load) and its one score on all val images (greedy), made after every choice,
  ``sweep.png`` (score against learning rate and hidden size, early-stopped trials marked),
  ``trials.json`` and ``report.md``.

The dataset is loaded once by the driver and shipped to the trials through Ray's object store
(``tune.with_parameters``), so on a cluster only the machine that starts the sweep needs the data
files. The output directory must be one that every node can write (a shared filesystem) when trials
run on more than one machine, because Tune stores the trials' checkpoints there.

Each trial runs with ``cpus_per_trial`` BLAS threads (OPENBLAS/OMP/MKL_NUM_THREADS in the trial's
environment, and numpy's OpenBLAS told directly), so concurrent trials do not oversubscribe the cores.
Numpy trains one model per process; a sweep runs many such processes side by side.

The package, one job a module: :mod:`~cs231n.sweep.space` (the search space), :mod:`~cs231n.sweep.models`
(model kinds), :mod:`~cs231n.sweep.trial` (inside a trial), :mod:`~cs231n.sweep.progress` (progress
lines), :mod:`~cs231n.sweep.session` (starting or joining Ray), :mod:`~cs231n.sweep.run` (running and
resuming) and :mod:`~cs231n.sweep.report` (the report). The names below are its public interface.
"""
from cs231n.sweep.models import MODEL_KINDS
from cs231n.sweep.progress import sweep_progress_class
from cs231n.sweep.report import REPORT_FILES, write_report
from cs231n.sweep.run import (SETTINGS_FILE, SETTINGS_FORMAT, check_max_train, load_settings, resume_sweep,
                              run_sweep, sweep_outputs)
from cs231n.sweep.session import (BLAS_THREAD_VARIABLES, INSTALL_HINT, check_request, ray_session, require_ray,
                                  start_ray)
from cs231n.sweep.space import DEFAULT_SPACE, describe_config, make_space, parse_option
from cs231n.sweep.trial import (CHECKPOINT_FILE, InjectedFailure, SweepCaptioningSolver, limit_blas_threads,
                                solver_options)

__all__ = ["BLAS_THREAD_VARIABLES", "CHECKPOINT_FILE", "DEFAULT_SPACE", "INSTALL_HINT", "InjectedFailure",
           "MODEL_KINDS", "REPORT_FILES", "SETTINGS_FILE", "SETTINGS_FORMAT", "SweepCaptioningSolver",
           "check_max_train", "check_request", "describe_config", "limit_blas_threads", "load_settings", "make_space", "parse_option",
           "ray_session", "require_ray", "resume_sweep", "run_sweep", "solver_options", "start_ray",
           "sweep_outputs", "write_report"]


def __getattr__(name):
    # SweepProgress subclasses ray.tune.Callback, so it is made when first asked for (PEP 562); Tune
    # pickles it with the sweep and finds it again here by name on resume.
    if name == "SweepProgress":
        return sweep_progress_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
