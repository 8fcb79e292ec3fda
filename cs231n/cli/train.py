"""``train``: train a captioning model and write its run directory (model, checkpoint, config, curves,
caption grid, scores)."""
import time

from cs231n.cli.models import _identity, _load_data, _val_images
from cs231n.cli.options import (add_command, add_device_option, add_run_dir_options, claim_run_dir, existing_dir,
                                learning_rate, nonnegative_float, nonnegative_int, positive_float, positive_int)


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
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru", "attention"], default=d["cell_type"],
                   help="recurrent cell (--model rnn); attention: an LSTM that attends over the image's "
                        "region features at every word (the dataset's *_regions.h5)")
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
        return CaptioningTransformer(data["word_to_idx"], D, a.wordvec_dim, num_heads=a.num_heads,
                                     num_layers=a.num_layers, regions=a.regions)
    from cs231n.classifiers.rnn import CaptioningRNN
    return CaptioningRNN(data["word_to_idx"], input_dim=D, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
                         cell_type=a.cell_type)


def cmd_train(a):
    import numpy as np

    if a.lr is None:
        a.lr = TRAIN_DEFAULTS["transformer_lr" if a.model == "transformer" else "lr"]
    if a.precision != "float32" and a.device != "gpu":
        raise ValueError(f"--precision {a.precision} changes the GPU's matrix products; it needs --device gpu")
    if a.model == "transformer" and a.wordvec_dim % a.num_heads:
        raise ValueError(f"--num-heads {a.num_heads} must divide --wordvec-dim {a.wordvec_dim} (the Transformer's "
                         f"model size, shared by its heads)")
    if a.regions and a.model != "transformer":
        raise ValueError("--regions is an option of --model transformer; the recurrent model attends over "
                         "regions with --cell-type attention")
    from cs231n._alloc import keep_freed_memory

    keep_freed_memory()  # this command owns its process: freed blocks stay mapped (cs231n/_alloc.py)

    from cs231n.archive import atomic_write_json
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.coco_utils import strip_framing
    from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions
    from cs231n.metrics import references_from_data, score_model
    from cs231n.vis import caption_grid, plot_training_curves

    out = claim_run_dir(a, TRAIN_OUTPUTS, "training run")
    np.random.seed(a.seed)  # before loading: --max-train draws its captions with np.random (classic API)
    regions = _uses_regions(a)
    base, data = _load_data(a.data_dir, a.max_train, regions=regions)
    identity = _identity(base, data, regions=regions)
    if a.zero_features:
        identity["zero_features"] = True  # evaluate/caption must feed this model zeros too
        for split in ("train", "val"):
            data[f"{split}_features"] = np.zeros_like(data[f"{split}_features"])
    config = {k: v for k, v in vars(a).items() if k != "func" and not k.startswith("run_")}
    config["data_dir"] = str(base)
    atomic_write_json(out / "config.json", config)
    print(f"data: {base} ({data['train_captions'].shape[0]} train captions, "
          f"{data['train_features'].shape[0]} train images, {data['val_features'].shape[0]} val images, "
          f"vocabulary {len(data['idx_to_word'])}"
          + (f", {data['train_features'].shape[1]} regions of {data['train_features'].shape[2]} values"
             if regions else "") + f"); writing to {out}")

    model = _new_model(a, data).to(a.device)
    model.identity = identity
    ckpt = out / "checkpoint"
    solver = CaptioningSolver(
        model, data, update_rule="adam", optim_config={"learning_rate": a.lr}, lr_decay=a.lr_decay,
        batch_size=a.batch_size, num_epochs=a.epochs, print_every=50,
        verbose=not a.quiet, progress="eta", seed=a.seed, num_val_images=a.num_val_images,
        grad_clip=a.grad_clip or None, checkpoint_name=str(ckpt), checkpoint_every=a.checkpoint_every,
        precision=a.precision,
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
