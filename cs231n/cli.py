"""The command line: ``python -m cs231n <command>`` (also installed as the ``cs231n`` script).

Commands:
  train          train a captioning model (default: LSTM on the synthetic shapes dataset, made on first use)
  evaluate       multi-reference BLEU-1..4 and CIDEr of a saved model on a split (greedy or beam search)
  caption        caption image files with a model trained on the shapes dataset
  download       fetch the real cs231n COCO captioning release (needs the internet)
  build-dataset  write the COCO on-disk format from COCO-style caption JSON and your own CNN features
  lm-train       train a word-level language model on a text file
  lm-sample      generate text from a language-model checkpoint

This module only parses arguments and wires the library's pieces together; the work is done by
cs231n.coco_utils, cs231n.data, cs231n.classifiers, cs231n.captioning_solver, cs231n.metrics and
cs231n.vis.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

# Defaults of `train`: chosen so the default run finishes in a few minutes on a 2-core laptop
# (measured by benchmarks/bench_train.py; see the README for the figures).
TRAIN_DEFAULTS = dict(
    cell_type="lstm",
    wordvec_dim=256,
    hidden_dim=512,
    epochs=5,
    lr=5e-3,
    lr_decay=0.7,
    batch_size=100,
    seed=0,
    beam_size=1,
    num_val_images=200,
    grad_clip=5.0,
)


def _add_train(sub):
    d = TRAIN_DEFAULTS
    p = sub.add_parser("train", help="train a captioning model",
                       description="Train a CaptioningRNN and write its checkpoint, config, curves and a "
                                   "caption grid to --out. Without --data-dir it uses the synthetic shapes "
                                   "dataset, generated on first use into datasets/shapes.")
    p.add_argument("--data-dir", help="a dataset in the cs231n COCO format (default: the shapes dataset; "
                                      "$CS231N_COCO_DIR is not used unless you pass it here)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru"], default=d["cell_type"])
    p.add_argument("--wordvec-dim", type=int, default=d["wordvec_dim"])
    p.add_argument("--hidden-dim", type=int, default=d["hidden_dim"])
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=d["lr_decay"], help="learning-rate factor per epoch")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--grad-clip", type=float, default=d["grad_clip"], help="global gradient-norm limit (0: off)")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--beam-size", type=int, default=d["beam_size"], help="for the final evaluation and grid")
    p.add_argument("--max-train", type=int, help="use this many training captions (drawn with replacement)")
    p.add_argument("--num-val-images", type=int, default=d["num_val_images"],
                   help="val images scored after every epoch (0: no per-epoch validation)")
    p.add_argument("--zero-features", action="store_true",
                   help="replace every image feature by zeros (the image-blind baseline)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    p.add_argument("--out", default="runs/train", help="output directory (default: runs/train)")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a saved model on a split")
    p.add_argument("--checkpoint", required=True, help="model.npz from train (or a solver checkpoint.npz)")
    p.add_argument("--data-dir", help="dataset directory (default: the shapes dataset)")
    p.add_argument("--split", choices=["train", "val"], default="val")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--length-penalty", type=float, default=0.0)
    p.add_argument("--max-length", type=int, default=30)
    p.add_argument("--num-images", type=int, help="score only the first N images of the split")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_evaluate)


def _add_caption(sub):
    p = sub.add_parser("caption", help="caption image files (shapes-dataset models)",
                       description="Featurize the images with the shapes dataset's featurizer, then caption "
                                   "them. A model trained on COCO needs COCO's VGG16 fc7 + PCA features, "
                                   "which this command cannot compute.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir", help="the shapes dataset the model was trained on (for its featurizer)")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--max-length", type=int, default=30)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or URLs")
    p.set_defaults(func=cmd_caption)


def _add_download(sub):
    p = sub.add_parser("download", help="download a dataset (coco, or the full Alice text)")
    p.add_argument("what", choices=["coco", "alice"])
    p.add_argument("--url", help="a mirror of the file")
    p.add_argument("--dest", help="destination (default: datasets/coco_captioning or $CS231N_COCO_DIR for "
                                  "coco, datasets/alice.txt for alice)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset")
    p.add_argument("--retries", type=int, default=5)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_download)


def _add_build(sub):
    p = sub.add_parser("build-dataset", help="build the COCO format from caption JSON and features")
    p.add_argument("--train-json", required=True)
    p.add_argument("--val-json", required=True)
    p.add_argument("--train-features", required=True, help=".npy or .h5, rows aligned to the JSON's images")
    p.add_argument("--val-features", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--max-length", type=int, default=17)
    p.add_argument("--pca-dim", type=int, default=512)
    p.add_argument("--features-key", default="features")
    p.add_argument("--image-base-url")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_build)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cs231n", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_caption(sub)
    _add_download(sub)
    _add_build(sub)
    _add_lm(sub)
    return parser


# ----------------------------------------------------------------------------------------------------


def _load_data(data_dir, max_train=None):
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.shapes import ensure_shapes_dataset

    base = Path(data_dir) if data_dir else ensure_shapes_dataset()
    return base, load_coco_data(base_dir=str(base), max_train=max_train)


def _load_model(path):
    """A CaptioningRNN from model.npz (CaptioningRNN.save) or from a solver checkpoint."""
    from cs231n.archive import load_archive
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.solver import load_checkpoint

    _, meta = load_archive(path)
    if meta.get("format") == "cs231n-captioning-model":
        return CaptioningRNN.load(path)
    ckpt = load_checkpoint(path)
    model = CaptioningRNN.from_config(ckpt["meta"]["model_config"])
    params = ckpt["best_params"] or ckpt["params"]
    model.params.update({k: v.astype(model.dtype) for k, v in params.items()})
    return model


def _val_images(data, split, idxs):
    from cs231n.image_utils import image_from_url

    return [image_from_url(data[f"{split}_urls"][i], placeholder=True) for i in idxs]


def cmd_train(a):
    import numpy as np

    from cs231n.archive import atomic_write_text
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import strip_framing
    from cs231n.metrics import references_from_data, score_model
    from cs231n.vis import caption_grid, plot_training_curves

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    np.random.seed(a.seed)  # before loading: --max-train draws its captions with np.random (classic API)
    base, data = _load_data(a.data_dir, a.max_train)
    if a.zero_features:
        for split in ("train", "val"):
            data[f"{split}_features"] = np.zeros_like(data[f"{split}_features"])
    config = {k: v for k, v in vars(a).items() if k != "func"}
    config["data_dir"] = str(base)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    print(f"data: {base} ({data['train_captions'].shape[0]} train captions, "
          f"{data['train_features'].shape[0]} train images, {data['val_features'].shape[0]} val images, "
          f"vocabulary {len(data['idx_to_word'])})")

    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                          wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim, cell_type=a.cell_type)
    ckpt = out / "checkpoint"
    solver = CaptioningSolver(
        model, data, update_rule="adam", optim_config={"learning_rate": a.lr}, lr_decay=a.lr_decay,
        batch_size=a.batch_size, num_epochs=a.epochs, print_every=50,
        verbose=not a.quiet, seed=a.seed, num_val_images=a.num_val_images,
        grad_clip=a.grad_clip or None, checkpoint_name=str(ckpt),
        resume_from=str(ckpt) + ".npz" if a.resume else None)
    t0 = time.time()
    solver.train()
    train_seconds = time.time() - t0
    if solver.best_params:
        model.params.update(solver.best_params)  # keep the epoch with the best val CIDEr
    model.save(out / "model.npz")

    import matplotlib.pyplot as plt
    plt.close(plot_training_curves(solver.loss_history, solver.val_history, path=out / "curves.png",
                                   title=f"{a.cell_type} on {base.name}"))

    scores, captions = score_model(model, data, split="val", beam_size=a.beam_size, return_captions=True)
    distinct = len(set(captions.values())) / max(1, len(captions))
    refs = references_from_data(data, "val")
    ids = list(captions)[:12]
    plt.close(caption_grid(_val_images(data, "val", ids), [strip_framing(captions[i]) for i in ids],
                           [strip_framing(refs[i][0]) for i in ids], path=out / "captions.png"))
    summary = {"val_scores": scores, "distinct_caption_fraction": distinct, "train_seconds": train_seconds,
               "beam_size": a.beam_size, "epochs_run": solver.epoch}
    atomic_write_text(out / "scores.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nval ({len(captions)} images, {'greedy' if a.beam_size == 1 else f'beam {a.beam_size}'}): "
          + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
          + f"  distinct captions {distinct:.0%}")
    print(f"trained in {train_seconds:.0f} s; wrote {out}/model.npz, checkpoint.npz, config.json, "
          f"curves.png, captions.png, scores.json")
    return 0


def cmd_evaluate(a):
    from cs231n.metrics import score_model

    model = _load_model(a.checkpoint)
    base, data = _load_data(a.data_dir)
    scores = score_model(model, data, split=a.split, num_images=a.num_images, beam_size=a.beam_size,
                         length_penalty=a.length_penalty, max_length=a.max_length)
    if a.json:
        print(json.dumps(scores))
    else:
        mode = "greedy" if a.beam_size == 1 else f"beam {a.beam_size}"
        print(f"{a.split} of {base} ({mode}):")
        for k, v in scores.items():
            print(f"  {k:7} {v:.4f}")
    return 0


def cmd_caption(a):
    from cs231n.data.shapes import default_shapes_dir, featurize_for_dataset
    from cs231n.image_utils import image_from_url

    model = _load_model(a.checkpoint)
    base = Path(a.data_dir) if a.data_dir else default_shapes_dir()
    if not (base / "shapes_featurizer.npz").is_file():
        print(f"error: {base} has no shapes featurizer (shapes_featurizer.npz). `caption` featurizes images "
              f"with the shapes dataset's featurizer; a model trained on COCO needs COCO's VGG16 fc7 + PCA "
              f"features, which this command cannot compute.", file=sys.stderr)
        return 2
    images, names = [], []
    for name in a.images:
        img = image_from_url(name)
        if img is None:
            print(f"{name}: could not be read (see the reason above)", file=sys.stderr)
            continue
        images.append(img)
        names.append(name)
    if not images:
        return 1
    feats = featurize_for_dataset(images, base)
    if feats.shape[1] != model.params["W_proj"].shape[0]:
        print(f"error: the model expects {model.params['W_proj'].shape[0]} features per image, the featurizer "
              f"of {base} gives {feats.shape[1]}", file=sys.stderr)
        return 2
    for name, caption in zip(names, model.caption_features(feats, max_length=a.max_length,
                                                            beam_size=a.beam_size)):
        print(f"{name}: {caption}")
    return 0


def cmd_download(a):
    if a.what == "alice":
        from cs231n.text_utils import download_gutenberg_alice
        kwargs = {"url": a.url} if a.url else {}
        print(download_gutenberg_alice(a.dest or "datasets/alice.txt", timeout=a.timeout, **kwargs))
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
    p = sub.add_parser("lm-train", help="train a word-level language model on a text file")
    p.add_argument("--text", required=True, help="a UTF-8 text file (e.g. ../shared/data/alice.txt)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru"], default="lstm")
    p.add_argument("--wordvec-dim", type=int, default=15)
    p.add_argument("--hidden-dim", type=int, default=100)
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=30)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", choices=["classic", "words"], default="classic")
    p.add_argument("--out", default="runs/lm")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_lm_train)

    p = sub.add_parser("lm-sample", help="generate text from a language-model checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--start", required=True, help="the first word")
    p.add_argument("--length", type=int, default=40)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = always the most likely word")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_lm_sample)


def cmd_lm_train(a):
    from cs231n.lm_solver import train_language_model

    train_language_model(a.text, cell_type=a.cell_type, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
                         seq_len=a.seq_len, batch_size=a.batch_size, num_epochs=a.epochs,
                         learning_rate=a.lr, seed=a.seed, out_dir=a.out, tokenizer=a.tokenizer,
                         verbose=not a.quiet)
    return 0


def cmd_lm_sample(a):
    from cs231n.lm_solver import sample_text

    print(sample_text(a.checkpoint, a.start, length=a.length, temperature=a.temperature, seed=a.seed))
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        if os.environ.get("CS231N_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
