"""Inside a trial: one CaptioningSolver run in a Ray worker that reports each epoch's scores and a
checkpoint to Tune, with its BLAS threads limited so concurrent trials do not oversubscribe the cores."""
import ctypes
import os
import tempfile

import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.sweep.models import MODEL_KINDS
from cs231n.sweep.session import BLAS_THREAD_VARIABLES, require_ray
from cs231n.sweep.space import _is_number

CHECKPOINT_FILE = "checkpoint.npz"


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


def val_options(settings):
    """The validation options of a trial of a sweep with holdout 0 (made with ``num_val_images``, or before
    ``holdout`` existed): ``num_val_images`` val images, judged against their scenes on a shapes dataset."""
    options = {"num_val_images": settings["num_val_images"]}
    if settings.get("scene_dir"):
        options["scene_dir"] = settings["scene_dir"]
    return options


def solver_options(config, settings, validation=None):
    """The CaptioningSolver options of one trial (what ``python -m cs231n train`` would pass).

    ``validation``: the solver's validation options, e.g. those of
    :func:`cs231n.holdout.held_out_selection` (the held-out training images); None: :func:`val_options`.
    On a shapes dataset validation also judges the captions against the scenes (``scene_right``, ...).
    """
    options = dict(update_rule="adam", optim_config={"learning_rate": config["lr"]}, lr_decay=config["lr_decay"],
                   batch_size=config["batch_size"], num_epochs=settings["num_epochs"],
                   grad_clip=config["grad_clip"] or None, seed=config["seed"], verbose=False)
    options.update(val_options(settings) if validation is None else validation)
    return options


def trial_device(settings):
    """Where a trial's model trains: 'gpu' when the sweep gives each trial a GPU, else 'cpu'."""
    return "gpu" if settings.get("gpus_per_trial", 0) > 0 else "cpu"


def trial_model(config, data, settings):
    """A trial's new model, its weights drawn as ``train`` draws them, on the trial's device."""
    np.random.seed(config["seed"])
    return MODEL_KINDS[config["model"]][0](config, data).to(trial_device(settings))


def _trial(config, data=None, settings=None, validation=None):
    """One trial: a CaptioningSolver run that reports to Tune each epoch (runs in a Ray worker); ``data``
    and ``validation`` as :func:`solver_options` takes them (its "val" split: what the trial is judged on)."""
    from cs231n.solver import TrainingDivergedError

    tune = require_ray()
    threads = limit_blas_threads(settings["cpus_per_trial"])
    checkpoint = tune.get_checkpoint()
    model = trial_model(config, data, settings)
    options = solver_options(config, settings, validation)
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


def trial_resources(settings):
    """The Ray resources one trial asks for."""
    resources = {"cpu": settings["cpus_per_trial"]}
    if settings.get("gpus_per_trial", 0) > 0:
        resources["gpu"] = settings["gpus_per_trial"]
    return resources


def _trainable(data, settings, validation=None):
    tune = require_ray()
    return tune.with_resources(tune.with_parameters(_trial, data=data, settings=settings, validation=validation),
                               trial_resources(settings))
