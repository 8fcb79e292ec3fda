"""``sweep``: search hyperparameters with Ray Tune (:mod:`cs231n.sweep`; the optional extra)."""
import argparse
import sys

from cs231n.cli.options import (OptionError, add_command, add_run_dir_options, claim_run_dir, existing_dir,
                                existing_file, nonnegative_int, positive_float, positive_int)
from cs231n.cli.train import TRAIN_DEFAULTS
from cs231n.holdout import holdout_size


def _add_sweep(sub):
    p = add_command(
        sub, "sweep", "search hyperparameters with Ray Tune (pip install -e '.[sweep]')",
        "Train many captioning models with different hyperparameters on Ray Tune (a local Ray by default), "
        "stop weak ones early with ASHA, and write a table, a figure and the best model to a run directory. "
        "Search-space options take a value, a comma-separated list (a choice) or, for --lr and --lr-decay, "
        "LOW:HIGH (log-uniform / uniform); what you leave out comes from --space or the default space "
        "(cs231n/sweep/space.py).")
    p.add_argument("--space", type=existing_file,
                   help='JSON file of the search space, e.g. {"lr": {"loguniform": [1e-3, 2e-2]}, '
                        '"model": {"choice": ["lstm", "gru"]}}')
    for key, help_text in (("model", "model kinds, e.g. rnn,lstm,gru,transformer"), ("lr", "Adam learning rate, e.g. 1e-3:2e-2"),
                           ("hidden-dim", "e.g. 128,256,512"), ("wordvec-dim", "e.g. 128,256"),
                           ("batch-size", "e.g. 50,100"), ("lr-decay", "per epoch, e.g. 0.7,1.0 or 0.6:1.0"),
                           ("grad-clip", "global norm limit, 0 = off, e.g. 0,5"), ("seed", "e.g. 0 or 0,1,2"),
                           ("num-heads", "the Transformer's attention heads, e.g. 2,4"),
                           ("num-layers", "the Transformer's decoder layers, e.g. 1,2")):
        p.add_argument("--" + key, dest="space_" + key.replace("-", "_"), type=_space_option(key),
                       metavar="SPEC", help=help_text)
    p.add_argument("--num-samples", type=positive_int, default=8, help="trials drawn from the space")
    p.add_argument("--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"],
                   help="epochs of a trial that is not stopped early")
    p.add_argument("--data-dir", type=existing_dir,
                   help="a dataset in the cs231n COCO format (default: the shapes dataset)")
    p.add_argument("--max-train", type=positive_int, help="use this many training captions (drawn with --data-seed)")
    p.add_argument("--data-seed", type=nonnegative_int, default=0,
                   help="seed of the --max-train subsample and of the --holdout images")
    p.add_argument("--holdout", type=nonnegative_int,
                   help=f"training images (with all their captions) held out of every trial's training: each "
                        f"trial scores them after every epoch, and --metric on them ranks the trials and drives "
                        f"early stopping; the best trial's kept model is then scored once on all val images "
                        f"(default: {TRAIN_DEFAULTS['holdout']}, at most a tenth of the training images, as "
                        f"train; 0: judge the trials on --num-val-images val images instead)")
    p.add_argument("--num-val-images", type=positive_int,
                   help="with --holdout 0: val images scored after every epoch, which then rank the trials "
                        "(default: 200; the final val score is then not independent of the choice)")
    p.add_argument("--metric", default="CIDEr",
                   help="score of the held-out images (or, with --holdout 0, of the val images) that ranks "
                        "trials and drives early stopping (CIDEr, Bleu_4, val_loss, ...; on the shapes dataset "
                        "also scene_right, the fraction of captions entirely right)")
    p.add_argument("--mode", choices=["max", "min"], help="whether a higher metric is better (default: min for a "
                                                          "loss, else max)")
    p.add_argument("--no-early-stop", action="store_true", help="run every trial to the end (no ASHA)")
    p.add_argument("--grace-period", type=positive_int, default=1, help="epochs before ASHA's first decision")
    p.add_argument("--reduction-factor", type=positive_float, default=2.0,
                   help="ASHA keeps the best 1/this of the trials at each milestone (> 1)")
    p.add_argument("--max-concurrent", type=positive_int, help="most trials at once (default: as the CPUs allow)")
    p.add_argument("--cpus-per-trial", type=positive_int, default=1, help="CPUs and BLAS threads per trial")
    p.add_argument("--gpus-per-trial", type=nonnegative_int, default=0,
                   help="GPUs per trial; a trial with one trains on it (as train --device gpu; needs CuPy)")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray (default: all of this machine's)")
    p.add_argument("--address", help="join a running Ray cluster instead of starting a local one: HOST:PORT of "
                                     "its head, or 'auto' (default: $RAY_ADDRESS if set); a token for Ray's token "
                                     "authentication is taken from $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or "
                                     "~/.ray/auth_token")
    p.add_argument("--max-failures", type=nonnegative_int, default=2,
                   help="restarts of a failed trial, each from its last checkpoint")
    add_run_dir_options(p, "runs/sweep", "sweep", resume_file="sweep.json")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_sweep)


def _space_option(key):
    """argparse type for a search-space option (see cs231n.sweep.parse_option)."""
    def parse(text):
        from cs231n.sweep import parse_option
        try:
            return parse_option(key.replace("-", "_"), text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _check_options(a, sweep):
    """Combinations of options that cannot run, and a --max-train or --holdout the data cannot hold
    (OptionError: exit 2), before anything is written; what a cluster can hold is checked once Ray runs
    (exit 1)."""
    if a.holdout and a.num_val_images:
        raise OptionError(f"--holdout {a.holdout} and --num-val-images {a.num_val_images} both say what the trials "
                          f"are judged on; give one (--holdout judges them on training images held out, so val "
                          f"stays unseen until the best model's one val score)")
    try:
        sweep.check_request(a.address, a.num_cpus, 1 if a.resume else a.cpus_per_trial, a.gpus_per_trial)
        if (a.max_train is not None or a.holdout) and not a.resume:
            from pathlib import Path

            from cs231n.coco_utils import coco_data_sizes
            from cs231n.data.shapes import ensure_shapes_dataset

            base = Path(a.data_dir) if a.data_dir else ensure_shapes_dataset()
            sweep.check_max_train(base, a.max_train)
            num_images = coco_data_sizes(base)["train_images"]
            try:
                holdout_size(a.holdout, num_images)
            except ValueError:
                raise ValueError(f"--holdout {a.holdout} holds out every training image ({base} has {num_images}); "
                                 f"hold out fewer (a tenth is usual) or 0 to judge the trials on val images") from None
    except ValueError as e:
        raise OptionError(str(e)) from None


def cmd_sweep(a):
    from cs231n import sweep

    try:
        sweep.require_ray()
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    _check_options(a, sweep)
    out = claim_run_dir(a, sweep.sweep_outputs(a.out) if a.out else (), what="sweep")
    if a.resume:
        report = sweep.resume_sweep(out, address=a.address, num_cpus=a.num_cpus, verbose=not a.quiet)
    else:
        options = {k[len("space_"):]: v for k, v in vars(a).items() if k.startswith("space_") and v is not None}
        report = sweep.run_sweep(
            out, space=sweep.make_space(a.space, **options), num_samples=a.num_samples, num_epochs=a.epochs,
            data_dir=a.data_dir, max_train=a.max_train, data_seed=a.data_seed, holdout=a.holdout,
            num_val_images=a.num_val_images,
            metric=a.metric, mode=a.mode, early_stop=not a.no_early_stop, grace_period=a.grace_period,
            reduction_factor=a.reduction_factor, max_concurrent=a.max_concurrent,
            cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial, address=a.address, num_cpus=a.num_cpus,
            max_failures=a.max_failures, verbose=not a.quiet)
    if not report["complete"]:
        return 130  # interrupted: the report (and stderr) says how to resume
    if report["best"] is None:
        counts = ", ".join(f"{sum(r['status'] == s for r in report['rows'])} {s}" for s in ("failed", "diverged"))
        print(f"error: no trial of the sweep got a score ({counts}); see {out}/report.md and each trial's "
              f"error.txt", file=sys.stderr)
        return 1
    return 0
