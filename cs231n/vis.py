"""Figures for training runs and captions: loss/metric curves and a grid of images with captions.

Used by the command line and the notebooks so neither carries its own plotting code. Functions return
the matplotlib Figure and, given ``path``, also write a PNG; matplotlib picks its non-interactive Agg
backend by itself on machines without a display.
"""
import textwrap

import numpy as np


def _pyplot():
    # Imported lazily: matplotlib is slow to import and falls back to Agg by itself without a display.
    import matplotlib.pyplot as plt
    return plt


def plot_training_curves(loss_history, val_history=(), path=None, title=None):
    """Plot the training loss per iteration and, when present, validation loss and scores per epoch.

    Inputs:
    - loss_history: sequence of floats, one per iteration.
    - val_history: sequence of dicts with an ``epoch`` key and any of ``val_loss``, ``Bleu_1``,
      ``Bleu_4``, ``CIDEr`` (as the captioning solver records them), ``val_accuracy``, ``val_mcc``,
      ``train_eval_accuracy`` (as the classification solver records them).
    - path: if given, the PNG file to write.
    - title: optional figure title.

    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    val_history = list(val_history)
    ncols = 2 if val_history else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(np.arange(1, len(loss_history) + 1), loss_history, lw=0.8, label="training loss")
    if val_history and any("val_loss" in v for v in val_history):
        its = [v.get("iteration", v["epoch"]) for v in val_history if "val_loss" in v]
        ax.plot(its, [v["val_loss"] for v in val_history if "val_loss" in v], "o-", label="val loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if val_history:
        ax = axes[0, 1]
        epochs = [v["epoch"] for v in val_history]
        for key in ("Bleu_1", "Bleu_4", "CIDEr", "train_eval_accuracy", "val_accuracy", "val_mcc"):
            if all(key in v for v in val_history):
                ax.plot(epochs, [v[key] for v in val_history], "o-", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation score")
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def caption_grid(images, generated, references=None, path=None, ncols=4, width=40):
    """Show images in a grid with their generated (and optionally reference) captions underneath.

    Inputs:
    - images: list of HxWx3 uint8 arrays (None entries are drawn as a grey placeholder).
    - generated: list of strings, one per image.
    - references: optional list of strings (or lists of strings; the first is shown), one per image.
    - path: if given, the PNG file to write.
    - ncols: images per row.
    - width: characters per caption line.

    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    n = len(images)
    if len(generated) != n or (references is not None and len(references) != n):
        raise ValueError(f"caption_grid: got {n} images, {len(generated)} generated captions and "
                         f"{'no' if references is None else len(references)} references; they must match")
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 4.1 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        ax.imshow(img if img is not None else np.full((64, 64, 3), 200, np.uint8))
        lines = ["gen: " + generated[k]]
        if references is not None:
            ref = references[k]
            lines.append("ref: " + (ref[0] if isinstance(ref, (list, tuple)) else ref))
        text = "\n".join(textwrap.fill(line, width) for line in lines)
        ax.set_title(text, fontsize=7, loc="left")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
