"""The command line: ``python -m cs231n <command>`` (also installed as the ``cs231n`` script).

Shared rules, with the helpers every command uses (see the README's "Rules of the command line"):

- options are checked when they are parsed, before any data is loaded (argparse ``type=`` functions
  :func:`positive_int`, :func:`nonnegative_int`, :func:`learning_rate`, :func:`existing_file`, ...);
  a bad one ends with argparse's usage line and exit status 2;
- a run directory is claimed with :func:`claim_run_dir` (options from :func:`add_run_dir_options`):
  never overwritten without ``--overwrite``, a fresh ``runs/<command>-N`` without ``--out``;
- an expected failure (a bad file, a mismatched dataset, a diverged run) prints one ``error:`` line on
  stderr and exits 1 (:func:`main`); Ctrl-C exits 130 after saying how to resume;
- subcommands are made with :func:`add_command`, which shows every option's default in ``--help``;
- commands that compute take ``--device cpu|gpu`` (:func:`add_device_option`): with ``gpu``, CuPy and a
  CUDA device are checked before any work (:func:`main`), and their absence is one ``error:`` line,
  exit 1.

Commands:
  train          train a captioning model (default: LSTM on the synthetic shapes dataset, made on first use)
  evaluate       multi-reference BLEU-1..4 and CIDEr of a saved model on a split (greedy or beam search)
  caption        caption image files with a model trained on the shapes dataset
  download       fetch the real cs231n COCO captioning release (needs the internet)
  build-dataset  write the COCO on-disk format from COCO-style caption JSON and your own CNN features
  lm-train       train a word-level language model on a text file
  lm-sample      generate text from a language-model checkpoint
  classify-train train a sentence classifier (Transformer, LSTM, bag of words) on CoLA-format data
  sweep          search hyperparameters with Ray Tune (the optional extra: pip install -e '.[sweep]')

This module only parses arguments and wires the library's pieces together; the work is done by
cs231n.coco_utils, cs231n.data, cs231n.classifiers, cs231n.captioning_solver, cs231n.metrics and
cs231n.vis.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time
import zipfile
from pathlib import Path

DESCRIPTION = ("Train and use image-captioning models (RNN, LSTM, GRU, Transformer) on a built-in synthetic "
               "dataset or on the real COCO captions, score them with BLEU and CIDEr, caption your own images, "
               "train word-level language models on a text file and sentence classifiers on CoLA, and search "
               "hyperparameters with Ray Tune.")
EPILOG = ("Exit status: 0 success, 1 an error (one 'error:' line on stderr says what to do), 2 a bad option, "
          "130 interrupted with Ctrl-C (a checkpoint is kept; the message says how to resume). "
          "Run 'python -m cs231n COMMAND --help' for a command's options.")


# ----------------------------------------------------------------------------------------------------
# Shared helpers for every subcommand: help format, option types, run directories


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``error:`` line (plus where to find help), exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n(see: {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; leaves out '(default: None)' and the defaults of flags."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name, help, description=None):
    """A subcommand parser whose ``--help`` shows every option's default; every option needs a help text."""
    return sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                          formatter_class=_HelpFormatter)


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def nonnegative_float(text):
    """argparse type: a finite number >= 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


LR_WARN_ABOVE = 0.1  # learning rates above this rarely train anything with Adam or SGD here


def learning_rate(text):
    """argparse type: a finite learning rate > 0; above LR_WARN_ABOVE a warning goes to stderr."""
    value = positive_float(text)
    if value > LR_WARN_ABOVE:
        print(f"warning: learning rate {text} is far above the usual range (1e-4 to 1e-2); training will "
              f"probably diverge or learn nothing", file=sys.stderr)
    return value


def existing_file(text):
    """argparse type: the path of a readable regular file."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be read (permission denied)")
    return text


def existing_dir(text):
    """argparse type: the path of an existing directory."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text}" if not os.path.exists(text)
                                         else f"{text} is not a directory")
    return text


def add_device_option(p):
    """``--device cpu|gpu``: where the model computes (checked by :func:`main` before the command runs)."""
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="where the model computes: cpu (numpy) or gpu (an NVIDIA GPU through CuPy, which "
                        "must be installed: pip install cupy-cuda12x, or the build for your CUDA)")


def add_run_dir_options(p, default, what="run", resume_file="checkpoint.npz"):
    """``--out``, ``--resume`` and ``--overwrite`` with the run-directory rule (see :func:`claim_run_dir`).

    ``resume_file`` is the checkpoint's name in the run directory (what ``--resume`` continues from).
    """
    p.add_argument("--out", help=f"directory for the {what}'s files (default: {default}, or the first free "
                                 f"{default}-2, {default}-3, ...); an existing non-empty one is refused")
    p.add_argument("--resume", action="store_true", help=f"continue the interrupted {what} in --out from "
                                                         f"its checkpoint")
    p.add_argument("--overwrite", action="store_true", help=f"start a new {what} in an --out that holds an "
                                                            f"old one, deleting the old one's files")
    p.set_defaults(run_dir_default=default, run_resume_file=resume_file)


def claim_run_dir(a, outputs, what="run"):
    """The run directory of a command made with :func:`add_run_dir_options`, checked and created.

    Sets ``a.out`` to the directory chosen (so a fresh default is reported and recorded) and returns it
    as a Path. Raises FileExistsError/FileNotFoundError/ValueError with a message for the user.
    """
    from cs231n.runs import prepare_run_dir

    out = prepare_run_dir(a.out, a.run_dir_default, resume=a.resume, overwrite=a.overwrite,
                          outputs=outputs, resume_file=a.run_resume_file, what=what)
    a.out = str(out)
    return out


# Defaults of `train`: chosen so the default run finishes in a few minutes on a 2-core laptop
# (measured by benchmarks/bench_train.py; see the README for the figures).
TRAIN_DEFAULTS = dict(
    model="rnn",
    cell_type="lstm",
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
    num_val_images=200,
    grad_clip=5.0,
    checkpoint_every=1000,
)


def _add_train(sub):
    d = TRAIN_DEFAULTS
    p = add_command(sub, "train", "train a captioning model",
                    "Train a CaptioningRNN (or, with --model transformer, a CaptioningTransformer) and write its model, checkpoint, config, curves and a caption grid "
                    "to a run directory. Without --data-dir it uses the synthetic shapes dataset, generated "
                    "on first use into datasets/shapes.")
    p.add_argument("--data-dir", type=existing_dir,
                   help="a dataset in the cs231n COCO format (default: the shapes dataset; $CS231N_COCO_DIR "
                        "is not used unless you pass it here)")
    p.add_argument("--model", choices=["rnn", "transformer"], default=d["model"],
                   help="rnn: the recurrent model of --cell-type; transformer: cs231n's Transformer decoder "
                        "(--num-heads, --num-layers; --wordvec-dim is its model size)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru"], default=d["cell_type"],
                   help="recurrent cell (--model rnn)")
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
                   help="seeds the weights, the minibatches and --max-train's draw")
    p.add_argument("--beam-size", type=positive_int, default=d["beam_size"],
                   help="beam width of the final evaluation and caption grid (1: greedy)")
    p.add_argument("--max-train", type=positive_int,
                   help="use this many training captions (drawn with replacement; default: all)")
    p.add_argument("--num-val-images", type=nonnegative_int, default=d["num_val_images"],
                   help="val images scored after every epoch (0: no per-epoch validation)")
    p.add_argument("--zero-features", action="store_true",
                   help="replace every image feature by zeros (the image-blind baseline)")
    p.add_argument("--checkpoint-every", type=positive_int, default=d["checkpoint_every"],
                   help="also write checkpoint.npz every this many iterations (about a minute and a half of "
                        "the default model on 2 cores; besides every epoch end), so a crash loses at most that")
    add_run_dir_options(p, "runs/train", "training run")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    add_device_option(p)
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub):
    p = add_command(sub, "evaluate", "score a saved model on a split",
                    "Caption every image of a split with a saved model and print multi-reference BLEU-1..4 "
                    "and CIDEr. The dataset must be the one the model was trained on (same vocabulary and "
                    "features); by default it is the one recorded in the model file.")
    p.add_argument("--checkpoint", required=True, type=existing_file,
                   help="model.npz from train (or its checkpoint.npz)")
    p.add_argument("--data-dir", type=existing_dir,
                   help="dataset directory (default: the one the model was trained on)")
    p.add_argument("--split", choices=["train", "val"], default="val", help="which split to score")
    p.add_argument("--beam-size", type=positive_int, default=1, help="beam width (1: greedy)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=0.0,
                   help="beam search: divide log-probabilities by length ** this")
    p.add_argument("--max-length", type=positive_int, default=30, help="longest caption generated")
    p.add_argument("--num-images", type=positive_int, help="score only the first N images of the split")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_device_option(p)
    p.set_defaults(func=cmd_evaluate)


def _add_caption(sub):
    p = add_command(sub, "caption", "caption image files (shapes-dataset models)",
                    "Featurize the images with the featurizer of the shapes dataset the model was trained "
                    "on, then caption them. A model trained on COCO needs COCO's VGG16 fc7 + PCA features, "
                    "which this command cannot compute.")
    p.add_argument("--checkpoint", required=True, type=existing_file, help="model.npz from train")
    p.add_argument("--data-dir", type=existing_dir,
                   help="the shapes dataset the model was trained on, for its featurizer (default: the "
                        "one recorded in the model file)")
    p.add_argument("--beam-size", type=positive_int, default=1, help="beam width (1: greedy)")
    p.add_argument("--max-length", type=positive_int, default=30, help="longest caption generated")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or URLs")
    add_device_option(p)
    p.set_defaults(func=cmd_caption)


def _add_download(sub):
    p = add_command(sub, "download", "download a dataset (coco, or the full Alice text)")
    p.add_argument("what", choices=["coco", "alice"], help="which dataset")
    p.add_argument("--url", help="a mirror of the file (default: the official address)")
    p.add_argument("--dest", help="destination (default: datasets/coco_captioning or $CS231N_COCO_DIR for "
                                  "coco, datasets/alice.txt for alice)")
    p.add_argument("--force", action="store_true", help="replace an existing destination")
    p.add_argument("--retries", type=nonnegative_int, default=5, help="retries after a dropped connection")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for the server")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=cmd_download)


def _add_build(sub):
    p = add_command(sub, "build-dataset", "build the COCO format from caption JSON and features")
    p.add_argument("--train-json", required=True, type=existing_file, help="COCO-style captions of the "
                                                                           "training images")
    p.add_argument("--val-json", required=True, type=existing_file, help="COCO-style captions of the val images")
    p.add_argument("--train-features", required=True, type=existing_file,
                   help=".npy or .h5, rows aligned to the JSON's images")
    p.add_argument("--val-features", required=True, type=existing_file, help="the same for the val images")
    p.add_argument("--out", required=True, help="directory to write the dataset to")
    p.add_argument("--min-count", type=positive_int, default=5, help="rarer words become <UNK>")
    p.add_argument("--max-length", type=positive_int, default=17, help="caption length with <START>/<END>")
    p.add_argument("--pca-dim", type=positive_int, default=512, help="size of the PCA features")
    p.add_argument("--features-key", default="features", help="dataset name inside .h5 feature files")
    p.add_argument("--image-base-url", help="prefix of the image URLs written to the URL lists")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_build)


def build_parser():
    parser = _Parser(prog="python -m cs231n", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_caption(sub)
    _add_download(sub)
    _add_build(sub)
    _add_lm(sub)
    _add_classify(sub)
    _add_sweep(sub)
    return parser


# ----------------------------------------------------------------------------------------------------


TRAIN_OUTPUTS = ("model.npz", "checkpoint.npz", "config.json", "curves.png", "captions.png", "scores.json")


def _featurizer_files():
    """Names of the files that featurize new images for a dataset (the shapes featurizer)."""
    from cs231n.data import shapes

    return (shapes.FEATURIZER_FILE,)


def _load_data(data_dir, max_train=None):
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.shapes import ensure_shapes_dataset

    base = Path(data_dir) if data_dir else ensure_shapes_dataset()
    return base, load_coco_data(base_dir=str(base), max_train=max_train)


def _identity(base, data):
    """The identity of a loaded dataset (see cs231n.runs.dataset_identity): what a model records."""
    from cs231n.runs import captioning_data_identity

    return captioning_data_identity(base, data["word_to_idx"])


def _load_model(path):
    """A CaptioningRNN or CaptioningTransformer from model.npz (its ``save``) or from a solver checkpoint.

    The model's ``identity`` is the record of its training data (None for files of older versions).
    """
    from cs231n.archive import load_archive
    from cs231n.classifiers.captioning import CaptioningModel, model_formats
    from cs231n.solver import CHECKPOINT_FORMAT, load_checkpoint

    _, meta = load_archive(path)
    if meta.get("format") in model_formats():
        return CaptioningModel.load(path)
    if meta.get("kind") == "LanguageModelRNN" or meta.get("solver") == "LanguageModelSolver":
        raise ValueError(f"{path} is a language-model file (from lm-train); this command needs a captioning "
                         f"model (model.npz from train). Use lm-sample for language models.")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is neither a captioning model nor a training checkpoint (format "
                         f"{meta.get('format')!r}); use the model.npz that train wrote")
    ckpt = load_checkpoint(path)
    model = CaptioningModel.from_config(ckpt["meta"]["model_config"])
    params = ckpt["best_params"] or ckpt["params"]
    model.params.update({k: v.astype(model.dtype) for k, v in params.items()})
    model.identity = ckpt["meta"].get("extra", {}).get("identity")
    return model


def _data_dir_of(a, model):
    """--data-dir, else the dataset recorded in the model file, else the default shapes dataset (None)."""
    if a.data_dir:
        return a.data_dir
    recorded = (model.identity or {}).get("dataset")
    if recorded and not os.path.isdir(recorded):
        raise FileNotFoundError(f"{a.checkpoint} was trained on {recorded}, which is not there any more; pass "
                                f"that dataset's new location with --data-dir")
    return recorded


def _check_identity(model, checkpoint, base, current, parts):
    """Refuse a dataset that is not the model's (ValueError); warn when the model has no record of it."""
    from cs231n.runs import identity_problems

    if model.identity is None:
        print(f"warning: {checkpoint} was saved by an older version and does not record the data it was "
              f"trained on; the results assume {base} is that dataset", file=sys.stderr)
        return
    problems = identity_problems(model.identity, current, parts)
    if problems:
        raise ValueError(f"{base} is not the dataset {checkpoint} was trained on ({model.identity['dataset']}): "
                         f"{'; '.join(problems)}. Its results would be meaningless; pass the model's own "
                         f"dataset with --data-dir")


def _val_images(data, split, idxs):
    from cs231n.image_utils import image_from_url

    return [image_from_url(data[f"{split}_urls"][i], placeholder=True) for i in idxs]


def _model_name(a):
    return a.cell_type if a.model == "rnn" else f"transformer ({a.num_layers} layers, {a.num_heads} heads)"


def _new_model(a, data):
    """The model that train's options describe, for the dataset's vocabulary and feature size."""
    D = data["train_features"].shape[1]
    if a.model == "transformer":
        from cs231n.classifiers.transformer import CaptioningTransformer
        return CaptioningTransformer(data["word_to_idx"], D, a.wordvec_dim, num_heads=a.num_heads,
                                     num_layers=a.num_layers)
    from cs231n.classifiers.rnn import CaptioningRNN
    return CaptioningRNN(data["word_to_idx"], input_dim=D, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
                         cell_type=a.cell_type)


def cmd_train(a):
    import numpy as np

    if a.lr is None:
        a.lr = TRAIN_DEFAULTS["transformer_lr" if a.model == "transformer" else "lr"]
    if a.model == "transformer" and a.wordvec_dim % a.num_heads:
        raise ValueError(f"--num-heads {a.num_heads} must divide --wordvec-dim {a.wordvec_dim} (the Transformer's "
                         f"model size, shared by its heads)")

    from cs231n.archive import atomic_write_json
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.coco_utils import strip_framing
    from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions
    from cs231n.metrics import references_from_data, score_model
    from cs231n.vis import caption_grid, plot_training_curves

    out = claim_run_dir(a, TRAIN_OUTPUTS, "training run")
    np.random.seed(a.seed)  # before loading: --max-train draws its captions with np.random (classic API)
    base, data = _load_data(a.data_dir, a.max_train)
    identity = _identity(base, data)
    if a.zero_features:
        identity["zero_features"] = True  # evaluate/caption must feed this model zeros too
        for split in ("train", "val"):
            data[f"{split}_features"] = np.zeros_like(data[f"{split}_features"])
    config = {k: v for k, v in vars(a).items() if k != "func" and not k.startswith("run_")}
    config["data_dir"] = str(base)
    atomic_write_json(out / "config.json", config)
    print(f"data: {base} ({data['train_captions'].shape[0]} train captions, "
          f"{data['train_features'].shape[0]} train images, {data['val_features'].shape[0]} val images, "
          f"vocabulary {len(data['idx_to_word'])}); writing to {out}")

    model = _new_model(a, data).to(a.device)
    model.identity = identity
    ckpt = out / "checkpoint"
    solver = CaptioningSolver(
        model, data, update_rule="adam", optim_config={"learning_rate": a.lr}, lr_decay=a.lr_decay,
        batch_size=a.batch_size, num_epochs=a.epochs, print_every=50,
        verbose=not a.quiet, progress="eta", seed=a.seed, num_val_images=a.num_val_images,
        grad_clip=a.grad_clip or None, checkpoint_name=str(ckpt), checkpoint_every=a.checkpoint_every,
        resume_from=str(ckpt) + ".npz" if a.resume else None)
    t0 = time.time()
    solver.train()
    train_seconds = time.time() - t0
    if solver.best_params:
        model.params.update(solver.best_params)  # keep the epoch with the best val CIDEr
    model.save(out / "model.npz")

    import matplotlib.pyplot as plt
    plt.close(plot_training_curves(solver.loss_history, solver.val_history, path=out / "curves.png",
                                   title=f"{_model_name(a)} on {base.name}"))

    scores, captions = score_model(model, data, split="val", beam_size=a.beam_size, return_captions=True)
    distinct = len(set(captions.values())) / max(1, len(captions))
    scene, verdicts = judge_dataset_captions(base, "val", captions)  # (None, None) unless a shapes dataset
    refs = references_from_data(data, "val")
    ids = list(captions)[:12]
    plt.close(caption_grid(_val_images(data, "val", ids), [strip_framing(captions[i]) for i in ids],
                           [strip_framing(refs[i][0]) for i in ids], path=out / "captions.png",
                           wrong_words=[verdicts[i]["wrong_words"] for i in ids] if verdicts else None))
    summary = {"val_scores": scores, "distinct_caption_fraction": distinct, "train_seconds": train_seconds,
               "beam_size": a.beam_size, "epochs_run": solver.epoch}
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


def cmd_evaluate(a):
    import numpy as np

    from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions
    from cs231n.metrics import score_model

    model = _load_model(a.checkpoint).to(a.device)
    base, data = _load_data(_data_dir_of(a, model))
    if data["word_to_idx"] != model.word_to_idx:
        from cs231n.classifiers.captioning import _vocab_difference

        raise ValueError(f"the vocabulary of {base} differs from the one {a.checkpoint} was trained with "
                         f"({_vocab_difference(model.word_to_idx, data['word_to_idx'])}); captions would be "
                         f"decoded into the wrong words. Pass the model's own dataset with --data-dir")
    _check_identity(model, a.checkpoint, base, _identity(base, data), ("vocabulary", "features"))
    # Decode with the model's own vocabulary (equal to the dataset's, checked above).
    data = dict(data, idx_to_word=[model.idx_to_word[i] for i in range(model.vocab_size)])
    if (model.identity or {}).get("zero_features"):
        print("note: this model was trained with --zero-features (image-blind); it is scored on zero "
              "features as well", file=sys.stderr)
        data[f"{a.split}_features"] = np.zeros_like(data[f"{a.split}_features"])
    scores, captions = score_model(model, data, split=a.split, num_images=a.num_images, beam_size=a.beam_size,
                                   length_penalty=a.length_penalty, max_length=a.max_length, return_captions=True)
    scene, _ = judge_dataset_captions(base, a.split, captions)  # None unless a shapes dataset
    if a.json:
        print(json.dumps({**scores, **(scene or {})}))
    else:
        mode = "greedy" if a.beam_size == 1 else f"beam {a.beam_size}"
        print(f"{a.split} of {base} ({mode}):")
        for k, v in scores.items():
            print(f"  {k:7} {v:.4f}")
        if scene is not None:
            print("  " + format_scene_accuracy(scene))
    return 0


def cmd_caption(a):
    import numpy as np

    from cs231n.data.shapes import default_shapes_dir, featurize_for_dataset
    from cs231n.image_utils import image_from_url
    from cs231n.runs import dataset_identity

    model = _load_model(a.checkpoint).to(a.device)
    base = Path(_data_dir_of(a, model) or default_shapes_dir())
    featurizer = _featurizer_files()[0]
    if not (base / featurizer).is_file():
        print(f"error: {base} has no shapes featurizer ({featurizer}). `caption` featurizes images "
              f"with the shapes dataset's featurizer; a model trained on COCO needs COCO's VGG16 fc7 + PCA "
              f"features, which this command cannot compute.", file=sys.stderr)
        return 2
    if model.identity is not None and not model.identity.get("featurizer"):
        raise ValueError(f"{a.checkpoint} was trained on {model.identity['dataset']}, which has no shapes "
                         f"featurizer: its features come from elsewhere (e.g. COCO's VGG16), so `caption` "
                         f"cannot make them")
    current = dataset_identity(base, model.word_to_idx, (), _featurizer_files())
    _check_identity(model, a.checkpoint, base, current, ("featurizer",))
    images, names, failed = [], [], []
    for name in a.images:
        with contextlib.redirect_stdout(sys.stderr):  # image_from_url prints its reason (classic API)
            img = image_from_url(name)
        if img is None:
            failed.append(name)
            continue
        images.append(img)
        names.append(name)
    if images:
        try:
            feats, distances, limit = featurize_for_dataset(images, base, return_distance=True)
        except (zipfile.BadZipFile, EOFError, KeyError, OSError, ValueError) as e:
            raise ValueError(f"{base / featurizer} is damaged or truncated ({e}); make the dataset again "
                             f"(delete {base} and run train)") from e
        if (model.identity or {}).get("zero_features"):
            print("note: this model was trained with --zero-features (image-blind); its captions do not "
                  "depend on the image", file=sys.stderr)
            feats = np.zeros_like(feats)
        if feats.shape[1] != model.params["W_proj"].shape[0]:
            raise ValueError(f"the model expects {model.params['W_proj'].shape[0]} features per image, the "
                             f"featurizer of {base} gives {feats.shape[1]}")
        for name, caption, distance in zip(names, model.caption_features(feats, max_length=a.max_length,
                                                                          beam_size=a.beam_size), distances):
            print(f"{name}: {caption}")
            if distance > limit:
                print(f"  warning: this image is unlike the training images (feature distance {distance:.1f} > "
                      f"{limit:.1f}, the limit calibrated on the val images); do not trust this caption")
    if failed:
        print(f"error: {len(failed)} of {len(a.images)} images could not be read ({', '.join(failed)}); "
              f"see the reasons above", file=sys.stderr)
        return 1
    return 0


def cmd_download(a):
    if a.what == "alice":
        from cs231n.text_utils import download_gutenberg_alice
        dest = a.dest or "datasets/alice.txt"
        if os.path.exists(dest) and not a.force:
            raise FileExistsError(f"--dest {dest} already exists; nothing was downloaded. Choose another "
                                  f"--dest, or pass --force to replace it")
        if os.path.isdir(dest):
            raise ValueError(f"--dest {dest} is a directory; alice is one text file")
        kwargs = {"url": a.url} if a.url else {}
        print(download_gutenberg_alice(dest, timeout=a.timeout, **kwargs))
        return 0
    from cs231n.data.download import DEFAULT_URL, download_coco

    path = download_coco(a.dest, a.url or DEFAULT_URL, force=a.force, retries=a.retries, timeout=a.timeout,
                         quiet=a.quiet)
    print(path)
    return 0


def cmd_build(a):
    from cs231n.data.build_dataset import build_dataset

    out = build_dataset(a.train_json, a.val_json, a.train_features, a.val_features, a.out,
                        min_count=a.min_count, max_length=a.max_length, pca_dim=a.pca_dim,
                        features_key=a.features_key, image_base_url=a.image_base_url, force=a.force)
    print(out)
    return 0


# ----------------------------------------------------------------------------------------------------
# Language model


def _add_lm(sub):
    p = add_command(sub, "lm-train", "train a word-level language model on a text file",
                    "Train a word-level language model on a UTF-8 text file and write lm_checkpoint.npz "
                    "(the training state; lm-sample reads it) and lm_history.json (per-epoch metrics) to a "
                    "run directory.")
    p.add_argument("--text", required=True, type=existing_file,
                   help="a UTF-8 text file (e.g. ../shared/data/alice.txt)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru"], default="lstm", help="recurrent cell")
    p.add_argument("--wordvec-dim", type=positive_int, default=15, help="word-vector size")
    p.add_argument("--hidden-dim", type=positive_int, default=100, help="hidden-state size")
    p.add_argument("--seq-len", type=positive_int, default=50, help="words per training window")
    p.add_argument("--batch-size", type=positive_int, default=30, help="windows per update")
    p.add_argument("--epochs", type=positive_int, default=50, help="passes over the training windows")
    p.add_argument("--lr", type=learning_rate, default=5e-4, help="Adam learning rate")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the weights and the minibatches")
    p.add_argument("--tokenizer", choices=["classic", "words"], default="classic",
                   help="classic: lower-case, split on spaces; words: words and punctuation")
    p.add_argument("--checkpoint-every", type=positive_int, default=1000,
                   help="also write the checkpoint every this many iterations (besides every epoch end)")
    add_run_dir_options(p, "runs/lm", "language-model run", resume_file=LM_CHECKPOINT)
    p.add_argument("--quiet", action="store_true", help="no per-epoch output")
    add_device_option(p)
    p.set_defaults(func=cmd_lm_train)

    p = add_command(sub, "lm-sample", "generate text from a language-model checkpoint")
    p.add_argument("--checkpoint", required=True, type=existing_file, help="lm_checkpoint.npz from lm-train")
    p.add_argument("--start", required=True, help="the first word")
    p.add_argument("--length", type=positive_int, default=40, help="words generated after --start")
    p.add_argument("--temperature", type=nonnegative_float, default=1.0,
                   help="0 = always the most likely word; higher = more varied")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the sampling")
    p.add_argument("--best", action="store_true",
                   help="use the weights of the epoch with the best accuracy instead of the last ones")
    add_device_option(p)
    p.set_defaults(func=cmd_lm_sample)


LM_CHECKPOINT = "lm_checkpoint.npz"
LM_OUTPUTS = (LM_CHECKPOINT, "lm_history.json")


def cmd_lm_train(a):
    from cs231n.lm_solver import train_language_model

    out = claim_run_dir(a, LM_OUTPUTS, "language-model run")
    _, history = train_language_model(
        a.text, cell_type=a.cell_type, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
        seq_len=a.seq_len, batch_size=a.batch_size, num_epochs=a.epochs, learning_rate=a.lr, seed=a.seed,
        out_dir=str(out), tokenizer=a.tokenizer, verbose=not a.quiet, resume=a.resume,
        checkpoint_every=a.checkpoint_every, device=a.device)
    written = [name for name in LM_OUTPUTS if (out / name).is_file()]
    print(f"wrote {out}/: {', '.join(written)} ({len(history)} epochs); sample with: python -m cs231n "
          f"lm-sample --checkpoint {out / LM_CHECKPOINT} --start WORD")
    return 0


def cmd_lm_sample(a):
    from cs231n.lm_solver import sample_text

    print(sample_text(a.checkpoint, a.start, length=a.length, temperature=a.temperature, seed=a.seed,
                      best=a.best, device=a.device))
    return 0


# ----------------------------------------------------------------------------------------------------
# Sentence classification (CoLA)


def _add_classify(sub):
    p = add_command(sub, "classify-train", "train a sentence classifier on CoLA-format data",
                    "Train a sentence-acceptability classifier on a folder in the CoLA format (word_to_ix.csv, "
                    "train/val _inxs.npy and _labels.npy) and write model.npz, checkpoint.npz, history.json, "
                    "curves.png and scores.json (val accuracy and Matthews correlation) to a run directory.")
    p.add_argument("--data", required=True, type=existing_dir,
                   help="the CoLA-format folder, e.g. ../shared/data/cola")
    p.add_argument("--model", choices=["transformer", "lstm", "bow"], default="transformer",
                   help="which classifier (the Transformer's defaults: H 64, F 256, 2 heads of 32, padding "
                        "mask, mean readout, dropout 0.2; --option changes them)")
    p.add_argument("--epochs", type=positive_int, help="passes over the training sentences (default: per model)")
    p.add_argument("--lr", type=learning_rate, help="Adam learning rate (default: per model)")
    p.add_argument("--lr-decay", type=positive_float, help="learning-rate factor per epoch (default: per model)")
    p.add_argument("--batch-size", type=positive_int, help="sentences per update (default: per model)")
    p.add_argument("--grad-clip", type=positive_float, help="global gradient-norm limit (default: off)")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced",
                   help="balanced: weigh both classes equally in the loss (71%% of CoLA is acceptable; "
                        "unweighted models answer 'acceptable' almost always); none: every sentence weighs 1")
    p.add_argument("--max-train", type=positive_int, help="train on this many sentences only (a seeded subset)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the weights and the minibatch order")
    p.add_argument("--baselines", action="store_true",
                   help="also score the majority class and train the bag-of-words and LSTM baselines, "
                        "and print one table of val accuracy and MCC")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model constructor option, e.g. readout=mean or dropout=0.2 (repeatable; values are "
                        "read as JSON when they parse, else as text)")
    add_run_dir_options(p, "runs/classify", "classification run", resume_file="checkpoint.npz")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    add_device_option(p)
    p.set_defaults(func=cmd_classify_train)


def _model_options(pairs):
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must be KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def cmd_classify_train(a):
    from cs231n.classification_solver import OUTPUTS, train_sentence_classifier

    options = _model_options(a.option)
    out = claim_run_dir(a, OUTPUTS, "classification run")
    train_sentence_classifier(a.data, out, kind=a.model, lr=a.lr, epochs=a.epochs, batch_size=a.batch_size,
                              lr_decay=a.lr_decay, seed=a.seed,
                              class_weight=None if a.class_weight == "none" else a.class_weight,
                              grad_clip=a.grad_clip, max_train=a.max_train, baselines=a.baselines,
                              resume=a.resume, overwrite=True, verbose=not a.quiet, model_options=options,
                              device=a.device)
    return 0


# ----------------------------------------------------------------------------------------------------
# Running a command: expected failures and interrupts


# Failures a user can cause and fix (bad files, mismatched data, divergence): one `error:` line, exit 1.
EXPECTED_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ArithmeticError, EOFError,
                   zipfile.BadZipFile)


def _interrupted(a, argv, exc):
    """Say what Ctrl-C left behind and how to continue; the exit status is 130 (128 + SIGINT)."""
    from cs231n.runs import resume_command

    lines = ["interrupted"]
    checkpoint = getattr(exc, "checkpoint", None)
    if checkpoint:
        lines[0] += (f" after iteration {exc.iteration}; every finished iteration is saved in "
                     f"{checkpoint}")
    resume_file = getattr(a, "run_resume_file", None)
    out = getattr(a, "out", None)
    if resume_file and out and (Path(out) / resume_file).is_file():
        lines.append(f"continue with: {resume_command(argv, out)}")
    print("\n".join(lines), file=sys.stderr)
    return 130


# ----------------------------------------------------------------------------------------------------
# Hyperparameter sweeps (cs231n.sweep; needs Ray Tune)


def _add_sweep(sub):
    p = add_command(
        sub, "sweep", "search hyperparameters with Ray Tune (pip install -e '.[sweep]')",
        "Train many captioning models with different hyperparameters on Ray Tune (a local Ray by default), "
        "stop weak ones early with ASHA, and write a table, a figure and the best model to a run directory. "
        "Search-space options take a value, a comma-separated list (a choice) or, for --lr and --lr-decay, "
        "LOW:HIGH (log-uniform / uniform); what you leave out comes from --space or the default space "
        "(cs231n/sweep.py).")
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
    p.add_argument("--data-seed", type=nonnegative_int, default=0, help="seed of the --max-train subsample")
    p.add_argument("--num-val-images", type=positive_int, default=TRAIN_DEFAULTS["num_val_images"],
                   help="val images scored after every epoch")
    p.add_argument("--metric", default="CIDEr",
                   help="val score that ranks trials and drives early stopping (CIDEr, Bleu_4, val_loss, ...)")
    p.add_argument("--mode", choices=["max", "min"], help="whether a higher metric is better (default: min for a "
                                                          "loss, else max)")
    p.add_argument("--no-early-stop", action="store_true", help="run every trial to the end (no ASHA)")
    p.add_argument("--grace-period", type=positive_int, default=1, help="epochs before ASHA's first decision")
    p.add_argument("--reduction-factor", type=positive_float, default=2.0,
                   help="ASHA keeps the best 1/this of the trials at each milestone (> 1)")
    p.add_argument("--max-concurrent", type=positive_int, help="most trials at once (default: as the CPUs allow)")
    p.add_argument("--cpus-per-trial", type=positive_int, default=1, help="CPUs and BLAS threads per trial")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray (default: all of this machine's)")
    p.add_argument("--address", help="join a running Ray cluster instead: host:port of its head, or 'auto'")
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


def cmd_sweep(a):
    from cs231n import sweep

    try:
        sweep.require_ray()
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = claim_run_dir(a, sweep.sweep_outputs(a.out) if a.out else (), what="sweep")
    if a.resume:
        report = sweep.resume_sweep(out, address=a.address, num_cpus=a.num_cpus, verbose=not a.quiet)
    else:
        options = {k[len("space_"):]: v for k, v in vars(a).items() if k.startswith("space_") and v is not None}
        report = sweep.run_sweep(
            out, space=sweep.make_space(a.space, **options), num_samples=a.num_samples, num_epochs=a.epochs,
            data_dir=a.data_dir, max_train=a.max_train, data_seed=a.data_seed, num_val_images=a.num_val_images,
            metric=a.metric, mode=a.mode, early_stop=not a.no_early_stop, grace_period=a.grace_period,
            reduction_factor=a.reduction_factor, max_concurrent=a.max_concurrent,
            cpus_per_trial=a.cpus_per_trial, address=a.address, num_cpus=a.num_cpus,
            max_failures=a.max_failures, verbose=not a.quiet)
    return 0 if report["complete"] else 130  # interrupted: the report says how to resume


def main(argv=None):
    """Run one command; returns its exit status (0; 1 an expected failure; 2 a bad option; 130 Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else [str(x) for x in argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad option (2): returned, so callers in Python see it too
        return e.code
    try:
        if getattr(args, "device", "cpu") == "gpu":
            from cs231n.backend import import_cupy
            import_cupy()  # BackendError (a RuntimeError) says what is missing, before any work
        return args.func(args)
    except KeyboardInterrupt as e:
        return _interrupted(args, argv, e)
    except EXPECTED_ERRORS as e:
        if os.environ.get("CS231N_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
