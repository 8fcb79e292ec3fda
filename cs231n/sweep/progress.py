"""Progress lines of a running sweep, as a ``ray.tune.Callback`` made when Ray is first needed."""
import math
import os
import sys
import time

from cs231n.sweep.session import require_ray
from cs231n.sweep.space import describe_config


def sweep_progress_class():
    """The ``ray.tune.Callback`` subclass ``SweepProgress`` (made once; it needs Ray, imported on first use).

    Its ``__module__`` is ``cs231n.sweep``: Tune pickles it with the sweep and finds it again there by
    name on resume (the package's ``__getattr__``), as it did when the sweep was one module.
    """
    global _SWEEP_PROGRESS
    if _SWEEP_PROGRESS is None:
        _SWEEP_PROGRESS = type("SweepProgress", (_Progress, require_ray().Callback),
                               {"__module__": "cs231n.sweep", "__doc__": _Progress.__doc__})
    return _SWEEP_PROGRESS


_SWEEP_PROGRESS = None


class _Progress:
    """Progress lines of a running sweep (used as the ``ray.tune.Callback`` ``SweepProgress``).

    A line when a trial ends or fails, and a status line: trials done/running/pending/failed and the best
    score so far with its configuration.

    Inputs:
    - metric, mode: the score and 'max' or 'min'.
    - num_epochs: epochs of a full trial (fewer means stopped early).
    - total: the number of trials of the sweep (Tune creates them as it goes).
    - every_s: seconds between status lines while nothing ends.
    - where: what the scores are of, 'held-out' or 'val' (shown before the metric).
    """

    def __init__(self, metric, mode, num_epochs, total, every_s=30.0, where=""):
        self.metric, self.mode, self.num_epochs, self.every_s = metric, mode, num_epochs, every_s
        self.where = where
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
            # getattr: a progress object pickled with a sweep made before `where` existed has none
            name = " ".join(w for w in (getattr(self, "where", ""), self.metric) if w)
            line += " | best %s %.4f (trial %s, epoch %d: %s)" % (name, value, trial_id, epoch,
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
