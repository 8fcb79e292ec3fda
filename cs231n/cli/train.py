"""``train``: train a captioning model and write its run directory (model, checkpoint, config, curves,
caption grid, scores)."""
import time

from cs231n.cli.limits import DIVERGENCE_FACTOR
from cs231n.cli.models import _identity, _load_data, _val_images
from cs231n.cli.options import (OptionError, add_command, add_device_option, add_run_dir_options, claim_run_dir,
                                existing_dir, learning_rate, nonnegative_float, nonnegative_int, positive_float,
                                positive_int)
from cs231n.holdout import DEFAULT_HOLDOUT, held_out_selection, holdout_size


# Defaults of `train`: chosen so the default run finishes in a few minutes on a 2-core laptop
# (measured by benchmarks/bench_train.py; see the README for the figures).
TRAIN_DEFAULTS = dict(
    model="rnn",
    cell_type="attention",  # on a dataset without region features: fallback_cell_type
    fallback_cell_type="lstm",
    num_heads=4,
    num_layers=2,
    wordvec_dim=128,
    hidden_dim=256,
    epochs=8,
    lr=5e-3,
    transformer_lr=1e-3,  # --lr of --model transformer (Adam at 5e-3 is too fast for it)
    lr_decay=0.8,
    batch_size=100,
    seed=0,
    beam_size=1,
    num_val_images=0,
    holdout=DEFAULT_HOLDOUT,  # training images held out to choose the epoch (at most a tenth of them)
    grad_clip=5.0,
    checkpoint_every=1000,
)


def _add_train(sub):
    d = TRAIN_DEFAULTS
    p = add_command(sub, "train", "train a captioning model",
                    "Train a CaptioningRNN (by default an LSTM that attends over the image's regions; with --model "
                    "transformer, a CaptioningTransformer) and write its model, checkpoint, config, curves and a "
                    "caption grid to a run directory. The epoch kept is chosen on training images held out "
                    "(--holdout), so the final val scores are of data nothing was chosen on. Without --data-dir it "
                    "uses the synthetic shapes dataset, generated on first use into datasets/shapes.")
    p.add_argument("--data-dir", type=existing_dir,
                   help="a dataset in the cs231n COCO format (default: the shapes dataset; $CS231N_COCO_DIR "
                        "is not used unless you pass it here)")
    p.add_argument("--model", choices=["rnn", "transformer"], default=d["model"],
                   help="rnn: the recurrent model of --cell-type; transformer: cs231n's Transformer decoder "
                        "(--num-heads, --num-layers; --wordvec-dim is its model size)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru", "attention"],
                   help=f"recurrent cell (--model rnn); attention: an LSTM that attends over the image's "
                        f"region features at every word (the dataset's *_regions.h5) (default: "
                        f"{d['cell_type']}, or {d['fallback_cell_type']} on a dataset without region features)")
    p.add_argument("--regions", action="store_true",
                   help="--model transformer: attend over the image's region features (*_regions.h5), one "
                        "memory token each, instead of one token for the whole image")
    p.add_argument("--num-heads", type=positive_int, default=d["num_heads"],
                   help="attention heads (--model transformer; must divide --wordvec-dim)")
    p.add_argument("--num-layers", type=positive_int, default=d["num_layers"],
                   help="decoder layers (--model transformer)")
    p.add_argument("--wordvec-dim", type=positive_int, default=d["wordvec_dim"], help="word-vector size")
    p.add_argument("--hidden-dim", type=positive_int, default=d["hidden_dim"],
                   help="hidden-state size (--model rnn)")
    p.add_argument("--epochs", type=positive_int, default=d["epochs"],
                   help="passes over the training captions (to score a saved model, use evaluate)")
    p.add_argument("--lr", type=learning_rate,
                   help=f"Adam learning rate (default: {d['lr']} for rnn, {d['transformer_lr']} for transformer)")
    p.add_argument("--lr-decay", type=positive_float, default=d["lr_decay"],
                   help="learning-rate factor per epoch")
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"], help="captions per update")
    p.add_argument("--grad-clip", type=nonnegative_float, default=d["grad_clip"],
                   help="global gradient-norm limit (0: off)")
    p.add_argument("--seed", type=nonnegative_int, default=d["seed"],
                   help="seeds the weights, the minibatches, --max-train's draw and --holdout's images")
    p.add_argument("--beam-size", type=positive_int, default=d["beam_size"],
                   help="beam width of the final evaluation and caption grid (1: greedy)")
    p.add_argument("--max-train", type=positive_int,
                   help="use this many training captions (drawn with replacement; default: all)")
    p.add_argument("--holdout", type=nonnegative_int,
                   help=f"training images (with all their captions) held out of training: after every epoch "
                        f"the model captions them, and the epoch that does best on them is kept (scene "
                        f"accuracy on the shapes dataset, else CIDEr); val is scored once, at the end "
                        f"(default: {d['holdout']}, at most a tenth of the training images; 0 with "
                        f"--num-val-images; 0: keep the last epoch)")
    p.add_argument("--num-val-images", type=nonnegative_int, default=d["num_val_images"],
                   help="instead of --holdout: val images scored after every epoch, the epoch with the best "
                        "val CIDEr kept (the final val scores are then not independent of that choice)")
    p.add_argument("--zero-features", action="store_true",
                   help="replace every image feature by zeros (the image-blind baseline)")
    p.add_argument("--checkpoint-every", type=positive_int, default=d["checkpoint_every"],
                   help="also write checkpoint.npz every this many iterations (about a minute of "
                        "the default model on 2 cores; besides every epoch end), so a crash loses at most that")
    add_run_dir_options(p, "runs/train", "training run")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    add_device_option(p)
    p.add_argument("--precision", choices=["float32", "tf32"], default="float32",
                   help="float32 matrix products on the GPU: float32 (exact, the default) or tf32 (tensor cores "
                        "of NVIDIA Ampere and newer: faster, about 3 significant digits per product's inputs); "
                        "needs --device gpu")
    p.set_defaults(func=cmd_train)


TRAIN_OUTPUTS = ("model.npz", "checkpoint.npz", "config.json", "curves.png", "captions.png", "scores.json")


def _model_name(a):
    if a.model == "rnn":
        return "attention lstm" if a.cell_type == "attention" else a.cell_type
    return f"transformer ({a.num_layers} layers, {a.num_heads} heads{', regions' if a.regions else ''})"


def _uses_regions(a):
    """Whether train's options describe a model that reads region features."""
    return a.cell_type == "attention" if a.model == "rnn" else a.regions


def _new_model(a, data):
    """The model that train's options describe, for the dataset's vocabulary and feature size."""
    D = data["train_features"].shape[-1]  # (images, D), or (images, R, D) region features
    if a.model == "transformer":
        from cs231n.classifiers.transformer import CaptioningTransformer
        T = data["train_captions"].shape[1]  # a table of max(50, T - 1) positions: captions of any length
        return CaptioningTransformer(data["word_to_idx"], D, a.wordvec_dim, num_heads=a.num_heads,
                                     num_layers=a.num_layers, regions=a.regions, max_length=max(50, T - 1))
    from cs231n.classifiers.rnn import CaptioningRNN
    return CaptioningRNN(data["word_to_idx"], input_dim=D, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
                         cell_type=a.cell_type)


# Options that may differ when a run is resumed: they do not change what the run computes (--epochs
# may extend it). Every other option must be the run's own (see _resume_options).
RESUME_FREE = ("epochs", "checkpoint_every", "quiet", "device", "precision", "out", "resume", "overwrite",
               "command")


def _check_options(a):
    """Combinations of options that cannot work, whatever the data (OptionError: exit 2)."""
    if a.precision != "float32" and a.device != "gpu":
        raise OptionError(f"--precision {a.precision} changes the GPU's matrix products; it needs --device gpu")
    if a.model == "transformer" and a.wordvec_dim % a.num_heads:
        raise OptionError(f"--num-heads {a.num_heads} must divide --wordvec-dim {a.wordvec_dim} (the "
                          f"Transformer's model size, shared by its heads)")
    if a.holdout and a.num_val_images:
        raise OptionError(f"--holdout {a.holdout} and --num-val-images {a.num_val_images} both choose the epoch to "
                          f"keep; give one (--holdout chooses on training images held out, so val stays unseen)")
    if a.regions and a.model != "transformer":
        raise OptionError("--regions is an option of --model transformer; the recurrent model attends over "
                          "regions with --cell-type attention")


def _describe_checkpoint(meta):
    """'an lstm captioning model (input_dim 512, wordvec_dim 8, hidden_dim 8, 49 words) at iteration 30'."""
    config = dict(meta.get("model_config") or {})
    vocab = config.pop("word_to_idx", None)
    config.pop("dtype", None)
    kind = config.pop("cell_type", None) or "transformer"
    sizes = ", ".join(f"{k} {v}" for k, v in sorted(config.items()))
    words = f", {len(vocab)} words" if vocab is not None else ""
    article = "an" if kind in ("rnn", "lstm") or kind[0] in "aeiou" else "a"  # read "an el-es-tee-em"
    return (f"{article} {kind} captioning model ({sizes}{words}) at iteration {meta.get('iteration')} "
            f"(epoch {meta.get('epoch')})")


def _resume_options(a):
    """With --resume: take the run's own options from its config.json and refuse any that changes it.

    Options not given on the command line take the run's values; one given with another value than
    the run's is an OptionError naming the option, both values and the checkpoint's kind and sizes
    (a resumed run must be the run the checkpoint belongs to: another seed, subset, model or
    optimizer would silently make a different one). Only reads files.

    Returns the run's recorded options (the dict of its config.json).
    """
    import json
    from pathlib import Path

    from cs231n.archive import load_archive

    out = Path(a.out)
    record_path, ckpt_path = out / "config.json", out / "checkpoint.npz"
    if not ckpt_path.is_file():
        return None  # claim_run_dir says there is nothing to resume
    if not record_path.is_file():
        raise FileNotFoundError(f"cannot resume {out}: its config.json (the options the run was started with) "
                                f"is missing, so nothing says which run {ckpt_path} belongs to; start a new run")
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    _, meta = load_archive(ckpt_path)
    given = getattr(a, "given_options", set(vars(a)))
    for key, value in vars(a).items():
        if key in RESUME_FREE or key == "func" or key == "given_options" or key.startswith("run_"):
            continue
        flag = "--" + key.replace("_", "-")
        if key not in record:
            if key in given:
                raise OptionError(f"--resume: {out} recorded no {flag} (the run was started by an older version "
                                  f"without it); leave {flag} out to resume it")
            continue
        saved = record[key]
        same = saved == value or (key == "data_dir" and value is not None
                                  and Path(value).resolve() == Path(saved).resolve())
        if key in given and not same:
            raise OptionError(f"--resume: {flag} {_shown(value)} differs from the run in {out}, which used "
                              f"{flag} {_shown(saved)}; its checkpoint is {_describe_checkpoint(meta)}. A resumed "
                              f"run must be that run: leave {flag} out (the run's value is used), or start a "
                              f"new run with another --out")
        setattr(a, key, saved)
    if "holdout" not in record:  # a run of a version without --holdout held nothing out
        a.holdout = 0
    if "epochs" not in given:
        a.epochs = record.get("epochs", a.epochs)
    if "checkpoint_every" not in given:
        a.checkpoint_every = record.get("checkpoint_every", a.checkpoint_every)
    return record


def _shown(value):
    return "(not given)" if value is None else ("(on)" if value is True else "(off)" if value is False else value)


def _data_dir(a):
    """The dataset directory of train (the shapes dataset, made on first use, unless --data-dir)."""
    from pathlib import Path

    from cs231n.data.shapes import ensure_shapes_dataset

    return Path(a.data_dir) if a.data_dir else ensure_shapes_dataset()


def _resolve_model(a, base):
    """--cell-type's default: the attention LSTM where the dataset has region features, else the LSTM
    (with a note on stderr)."""
    import sys

    from cs231n.coco_utils import has_region_files, regions_file

    if a.cell_type is not None:
        return
    if a.model != "rnn":
        a.cell_type = TRAIN_DEFAULTS["fallback_cell_type"]  # unused by the Transformer; recorded as before
    elif has_region_files(base):
        a.cell_type = TRAIN_DEFAULTS["cell_type"]
    else:
        a.cell_type = TRAIN_DEFAULTS["fallback_cell_type"]
        print(f"note: {base} has no region features ({regions_file('train')}, {regions_file('val')}), so "
              f"train uses --cell-type {a.cell_type} (the default attention LSTM reads regions)", file=sys.stderr)


def _check_sizes(a, base):
    """Bounds from the data and the machine, from the dataset's sizes only (OptionError: exit 2)."""
    from cs231n.cli.limits import captioning_train_bytes, check_fits
    from cs231n.coco_utils import coco_data_sizes

    sizes = coco_data_sizes(base, regions=_uses_regions(a))
    num_train = a.max_train if a.max_train is not None else sizes["train_captions"][0]
    if a.batch_size > num_train:
        where = f"--max-train {a.max_train}" if a.max_train is not None else f"all of {base}"
        raise OptionError(f"--batch-size {a.batch_size} is larger than the training set ({num_train} captions: "
                          f"{where}); an epoch would be one batch drawn with repeats. Use --batch-size "
                          f"{num_train} or less")
    parts = captioning_train_bytes(sizes, a.model, a.batch_size, a.wordvec_dim, a.hidden_dim, a.cell_type,
                                   a.num_heads, a.num_layers, max_train=a.max_train,
                                   zero_features=a.zero_features)
    check_fits(parts, "this training run")
    return sizes


def _resolve_holdout(a, num_images, base):
    """--holdout's value (:func:`holdout_size`; OptionError: exit 2)."""
    try:
        a.holdout = holdout_size(a.holdout, num_images, a.num_val_images)
    except ValueError:
        raise OptionError(f"--holdout {a.holdout} holds out every training image ({base} has {num_images}); "
                          f"hold out fewer (a tenth is usual) or 0 to keep the last epoch") from None


_SELECTED_BY = {"scene_right": "captions entirely right", "CIDEr": "CIDEr"}


def _epoch_selection(a, base, data):
    """(the data the solver trains and validates on, its validation options).

    --holdout N: the solver's "val" split is N training images held out (coco_utils.hold_out_images),
    judged by the captions entirely right on a shapes dataset (its train scenes), else by CIDEr;
    --num-val-images M: M val images, by CIDEr; neither: no per-epoch validation, the last epoch is kept.
    """
    if not a.holdout:
        return data, {"num_val_images": a.num_val_images}
    try:
        return held_out_selection(base, data, a.holdout, a.seed)
    except ValueError as e:  # --max-train drew captions of fewer images than --holdout
        raise OptionError(f"--holdout {a.holdout}: {str(e).split(': ', 1)[-1]}") from e


def _kept_epoch(solver):
    """The epoch whose weights the solver kept (its first best score), or None without validation."""
    if not solver.best_params:
        return None
    return next((entry["epoch"] for entry in solver.val_history
                 if entry.get(solver.select_on) == solver.best_val_score), None)


def cmd_train(a):
    import numpy as np

    claim_run_dir(a, TRAIN_OUTPUTS, "training run", create=False)  # checks only: nothing is written yet
    record = _resume_options(a) if a.resume else None
    _check_options(a)  # after --resume filled in the run's own options
    if a.lr is None:
        a.lr = TRAIN_DEFAULTS["transformer_lr" if a.model == "transformer" else "lr"]
    from cs231n._alloc import keep_freed_memory

    keep_freed_memory()  # this command owns its process: freed blocks stay mapped (cs231n/_alloc.py)

    from cs231n.archive import atomic_write_json
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.coco_utils import strip_framing
    from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions
    from cs231n.metrics import references_from_data, score_model
    from cs231n.vis import caption_grid, plot_training_curves

    base = _data_dir(a)
    _resolve_model(a, base)
    sizes = _check_sizes(a, base)
    _resolve_holdout(a, sizes["train_images"], base)
    np.random.seed(a.seed)  # before loading: --max-train draws its captions with np.random (classic API)
    regions = _uses_regions(a)
    base, data = _load_data(base, a.max_train, regions=regions)
    out = claim_run_dir(a, TRAIN_OUTPUTS, "training run")  # after the data: a bad dataset leaves nothing
    identity = _identity(base, data, regions=regions)
    if a.zero_features:
        identity["zero_features"] = True  # evaluate/caption must feed this model zeros too
        for split in ("train", "val"):
            data[f"{split}_features"] = np.zeros_like(data[f"{split}_features"])
    config = {k: v for k, v in vars(a).items() if k not in ("func", "given_options") and not k.startswith("run_")}
    config["data_dir"] = str(base)
    if record is None:
        atomic_write_json(out / "config.json", config)
    train_data, selection = _epoch_selection(a, base, data)
    print(f"data: {base} ({data['train_captions'].shape[0]} train captions, "
          f"{data['train_features'].shape[0]} train images, {data['val_features'].shape[0]} val images, "
          f"vocabulary {len(data['idx_to_word'])}"
          + (f", {data['train_features'].shape[1]} regions of {data['train_features'].shape[2]} values"
             if regions else "") + f"); writing to {out}")
    if a.holdout:
        print(f"held out of training: {a.holdout} images and their {train_data['val_captions'].shape[0]} captions, "
              f"to choose the epoch to keep by {_SELECTED_BY[selection['select_on']]}; val is scored once, at the end")

    model = _new_model(a, data).to(a.device)
    model.identity = identity
    ckpt = out / "checkpoint"
    solver = CaptioningSolver(
        model, train_data, update_rule="adam", optim_config={"learning_rate": a.lr}, lr_decay=a.lr_decay,
        batch_size=a.batch_size, num_epochs=a.epochs, print_every=50,
        verbose=not a.quiet, progress="eta", seed=a.seed, grad_clip=a.grad_clip or None,
        checkpoint_name=str(ckpt), checkpoint_every=a.checkpoint_every, precision=a.precision,
        resume_from=str(ckpt) + ".npz" if a.resume else None, divergence_factor=DIVERGENCE_FACTOR,
        **selection)
    if record is not None:  # the checkpoint was accepted: record what this part of the run uses
        atomic_write_json(out / "config.json", dict(record, epochs=a.epochs, checkpoint_every=a.checkpoint_every))
    t0 = time.time()
    solver.train()
    train_seconds = time.time() - t0
    kept = _kept_epoch(solver)
    if solver.best_params:
        model.params.update(solver.best_params)  # keep the epoch that did best on the held-out images (or val)
    model.save(out / "model.npz")
    if kept is not None:
        where = f"the {a.holdout} held-out training images" if a.holdout else f"{a.num_val_images} val images"
        print(f"kept epoch {kept} of {solver.epoch}: the best {_SELECTED_BY[solver.select_on]} on {where} "
              f"({solver.best_val_score:.4g})")

    import matplotlib.pyplot as plt

    scores, captions = score_model(model, data, split="val", beam_size=a.beam_size, return_captions=True)
    distinct = len(set(captions.values())) / max(1, len(captions))
    scene, verdicts = judge_dataset_captions(base, "val", captions)  # (None, None) unless a shapes dataset
    final = dict(scores, num_images=len(captions), beam_size=a.beam_size)
    if scene is not None:
        final["scene_right"] = scene["scene_right"]
    plt.close(plot_training_curves(solver.loss_history, solver.val_history, path=out / "curves.png",
                                   title=f"{_model_name(a)} on {base.name}", final=final,
                                   best_epoch=kept if solver.val_history else None,
                                   val_name="held-out" if a.holdout else "val"))
    refs = references_from_data(data, "val")
    ids = list(captions)[:12]
    plt.close(caption_grid(_val_images(data, "val", ids), [strip_framing(captions[i]) for i in ids],
                           [strip_framing(refs[i][0]) for i in ids], path=out / "captions.png",
                           wrong_words=[verdicts[i]["wrong_words"] for i in ids] if verdicts else None))
    summary = {"val_scores": scores, "distinct_caption_fraction": distinct, "train_seconds": train_seconds,
               "beam_size": a.beam_size, "epochs_run": solver.epoch, "kept_epoch": kept or solver.epoch,
               "chosen_on": ("held-out" if a.holdout else "val" if a.num_val_images else "last epoch"),
               "per_epoch": solver.val_history}
    if scene is not None:
        summary["val_scene_accuracy"] = scene
    atomic_write_json(out / "scores.json", summary)
    print(f"\nval ({len(captions)} images, {'greedy' if a.beam_size == 1 else f'beam {a.beam_size}'}): "
          + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
          + f"  distinct captions {distinct:.0%}")
    if scene is not None:
        print(format_scene_accuracy(scene))
    written = [name for name in TRAIN_OUTPUTS if (out / name).is_file()]
    print(f"trained in {train_seconds:.0f} s; wrote {out}/: {', '.join(written)}")
    return 0
