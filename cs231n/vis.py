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


def _log_axis(axis):
    """A log scale labelled in plain numbers at 1, 2, 3 and 5 times powers of ten (5, 10, 20, 30, 50)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.axes.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(plain)
    axis.set_minor_locator(NullLocator())


# Legend names of the per-epoch keys the solvers record (others are shown as they are).
_SCORE_LABELS = {"train_eval_accuracy": "train accuracy (subset)", "val_accuracy": "val accuracy",
                 "train_eval_mcc": "train MCC (subset)", "val_mcc": "val MCC", "scene_right": "entirely right"}


def _epoch_axis(ax, epochs):
    """Whole epochs on the x axis: every epoch ticked for short runs, integer ticks for long ones."""
    from matplotlib.ticker import MaxNLocator

    if epochs and max(epochs) <= 12:
        ax.set_xticks(range(1, max(epochs) + 1))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _score_limits(values, low, high):
    """Y limits of a score panel: ``low``/``high`` where fixed (None: from the data), with headroom so
    that no point is cut by the frame; a negative value (an MCC) always shows."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return low, high
    top = max(values) * 1.08 if high is None else high
    bottom = low
    if bottom is None:
        bottom = min(0.0, min(values)) - 0.05 * (top - min(0.0, min(values)))
    if top <= bottom:
        top = bottom + 1.0
    return bottom, top


def plot_training_curves(loss_history, val_history=(), path=None, title=None, best_epoch="auto", final=None,
                         val_name="val"):
    """Plot the training loss per iteration and, when present, validation loss and scores per epoch.

    One panel for the losses, on a log axis when they span more than a factor of 3 (so the first
    iterations' large values do not flatten the rest), then one per kind of score against whole
    epochs (every epoch ticked in short runs), each on its own axis with room above its highest point:
    BLEU (0 to 1), CIDEr (from 0), accuracy and MCC (from 0, or from below the lowest value when an
    MCC is negative, to 1). The epoch whose weights were kept is marked in every panel. When the
    entries say on how many val images they were scored (``num_val_images``), the axis says so, since
    a subset's scores differ from the final ones on every image (given as ``final``).

    Inputs:
    - loss_history: sequence of floats, one per iteration.
    - val_history: sequence of dicts with an ``epoch`` key and any of ``iteration``, ``val_loss``,
      ``Bleu_1``, ``Bleu_4``, ``CIDEr``, ``num_val_images`` (as the captioning solver records them),
      ``val_accuracy``, ``val_mcc``, ``train_eval_accuracy``, ``train_eval_mcc`` (as the
      classification solver records them; the legend names them 'val accuracy', 'train MCC (subset)',
      ...).
    - path: if given, the PNG file to write.
    - title: optional figure title.
    - best_epoch: the epoch whose weights were kept, to mark; 'auto' (default) takes the first epoch
      with the highest CIDEr, else the highest ``val_mcc`` (what the captioning and classification
      solvers keep); None marks nothing.
    - final: optional dict of the kept weights' final scores (e.g. ``{'CIDEr': 4.644, 'Bleu_4': ...}``)
      with ``num_images``, the number of val images they were computed on (and ``beam_size`` when
      not greedy); each is drawn as a star at the kept epoch, labelled with that number.
    - val_name: what the per-epoch scores were computed on, for the labels ('val'; 'held-out' when they
      come from training images held out to choose the epoch: the final stars are still val's).

    Returns the matplotlib Figure.
    """
    plt = _pyplot()

    val_history = list(val_history)
    if best_epoch == "auto":
        best_epoch = None
        for key in ("CIDEr", "val_mcc"):
            scored = [v for v in val_history if key in v and np.isfinite(v[key])]
            if scored:
                best_epoch = max(scored, key=lambda v: v[key])["epoch"]  # the first of equal maxima
                break
    best = next((v for v in val_history if v["epoch"] == best_epoch), None)
    groups = ((("Bleu_1", "Bleu_4"), f"{val_name} BLEU", (0, 1)), (("CIDEr",), f"{val_name} CIDEr", (0, None)),
              (("scene_right",), f"{val_name} entirely right", (0, 1.05)),
              (("train_eval_accuracy", "val_accuracy", "train_eval_mcc", "val_mcc"), "accuracy / MCC",
               (None, 1.05)))
    score_keys = [(keys, label, ylim) for keys, label, ylim in groups
                  if val_history and any(all(k in v for v in val_history) for k in keys)]
    subset = {v.get("num_val_images") for v in val_history} - {None}
    ncols = 1 + len(score_keys)
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    losses = np.asarray(loss_history, dtype=np.float64)  # (num_iterations,)
    ax.plot(np.arange(1, losses.size + 1), losses, lw=0.8, label="training loss")
    with_val_loss = [v for v in val_history if "val_loss" in v]
    if with_val_loss:
        its = [v.get("iteration", v["epoch"]) for v in with_val_loss]
        ax.plot(its, [v["val_loss"] for v in with_val_loss], "o-", label=f"{val_name} loss (end of epoch)")
    values = np.concatenate([losses, [v["val_loss"] for v in with_val_loss]])
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() >= 3 * values.min():
        _log_axis(ax.yaxis)
    if best is not None and "iteration" in best:
        ax.axvline(best["iteration"], color="tab:green", ls="--", lw=1, label=f"kept: epoch {best_epoch}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (log scale)" if ax.get_yscale() == "log" else "loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    epochs = [int(v["epoch"]) for v in val_history]
    beam = f", beam {final['beam_size']}" if final is not None and final.get("beam_size", 1) > 1 else ""
    for col, (keys, label, (low, high)) in enumerate(score_keys, start=1):
        ax = axes[0, col]
        shown, colors = [], {}
        for key in keys:
            if all(key in v for v in val_history):
                ys = [v[key] for v in val_history]
                shown += ys
                line, = ax.plot(epochs, ys, "o-", label=_SCORE_LABELS.get(key, key), clip_on=False)
                colors[key] = line.get_color()
        for key in keys:
            if final is not None and key in final and best is not None:
                shown.append(final[key])
                ax.plot([best_epoch], [final[key]], "*", ms=12, mec="black", mew=0.6, clip_on=False,
                        color=colors.get(key),
                        label=f"final {_SCORE_LABELS.get(key, key)}: {final[key]:.3f} "
                              f"(all {final.get('num_images', '?')} val images{beam})")
        if best is not None:
            ax.axvline(best_epoch, color="tab:green", ls="--", lw=1, label=f"kept: epoch {best_epoch}")
        _epoch_axis(ax, epochs)
        ax.set_xlabel("epoch")
        if len(subset) == 1 and label.startswith(val_name):
            label += f" (per epoch: {next(iter(subset))} images)"
        ax.set_ylabel(label)
        ax.set_ylim(*_score_limits(shown, low, high))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def caption_grid(images, generated, references=None, path=None, ncols=4, width=40, wrong_words=None):
    """Show images in a grid with their generated (and optionally reference) captions underneath.

    Inputs:
    - images: list of HxWx3 uint8 arrays (None entries are drawn as a grey placeholder).
    - generated: list of strings, one per image.
    - references: optional list of strings (or lists of strings; the first is shown), one per image.
    - path: if given, the PNG file to write.
    - ncols: images per row.
    - width: characters per caption line.
    - wrong_words: optional list of lists of bools, one per word of each generated caption; the words
      marked True are drawn in red (e.g. ``judge_caption``'s verdict on a shapes caption), and the
      caption gets a green check or a red cross.

    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    n = len(images)
    if len(generated) != n or (references is not None and len(references) != n):
        raise ValueError(f"caption_grid: got {n} images, {len(generated)} generated captions and "
                         f"{'no' if references is None else len(references)} references; they must match")
    if wrong_words is not None:
        if len(wrong_words) != n or any(len(m) != len(g.split()) for m, g in zip(wrong_words, generated)):
            raise ValueError("caption_grid: wrong_words must hold one list per image with one bool per word "
                             "of its generated caption")
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 4.1 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        ax.imshow(img if img is not None else np.full((64, 64, 3), 200, np.uint8))
        lines = [] if wrong_words is not None else ["gen: " + generated[k]]
        if references is not None:
            ref = references[k]
            lines.append("ref: " + (ref[0] if isinstance(ref, (list, tuple)) else ref))
        text = "\n".join(textwrap.fill(line, width) for line in lines)
        ax.set_title(text, fontsize=7, loc="left")
        if wrong_words is not None:
            _marked_caption(ax, generated[k].split(), wrong_words[k], width)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def attention_maps(images, words, weights, boxes, path=None, max_words=16, panel=1.6):
    """Show where a captioning model looked: for each generated word, the image with its attention weights.

    Each panel is one word: the image lit by a heat map whose value at a pixel is the summed weight of
    the regions covering it (a grid's cells cover each pixel once; the shapes dataset's whole-image
    region covers all of them, each object's box its object), scaled to the panel's largest value, so
    what the word looked at keeps its colors and the rest fades to black; each region's box is drawn
    with a line as thick as its weight and the weight written in its corner.

    Inputs:
    - images: N images (H, W, 3), uint8 or floats in [0, 1].
    - words: N lists of words, the generated words of each image (``<END>`` included if it was emitted).
    - weights: N arrays (T_i, R), the attention weights with which each word was chosen (rows sum to 1).
    - boxes: array-like (N, R, 4), each region's (x0, y0, x1, y1) as fractions of the image (zero-area
      boxes, such as absent objects, are not drawn).
    - path: also write the figure there as a PNG.
    - max_words: draw at most this many words per image.
    - panel: size of a panel in inches.

    Returns the matplotlib Figure: one row per image.
    """
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    boxes = np.asarray(boxes, dtype=np.float64)
    if len(images) != len(words) or len(words) != len(weights) or boxes.shape[:1] != (len(images),):
        raise ValueError(f"attention_maps: images ({len(images)}), words ({len(words)}), weights ({len(weights)}) "
                         f"and boxes ({boxes.shape[0] if boxes.ndim else 0}) must describe the same images")
    cols = max(1, min(max_words, max(len(w) for w in words)))
    fig, axes = plt.subplots(len(images), cols, figsize=(panel * cols, panel * 1.15 * len(images)), squeeze=False)
    for row, (image, ws, att, bx) in enumerate(zip(images, words, weights, boxes)):
        img = np.asarray(image, dtype=np.float64)
        img = img / 255.0 if img.max() > 1.0 else img
        Hpx, Wpx = img.shape[:2]
        att = np.asarray(att, dtype=np.float64)
        if att.shape != (len(ws), bx.shape[0]):
            raise ValueError(f"attention_maps: image {row} has {len(ws)} words and {bx.shape[0]} regions, so its "
                             f"weights should have shape {(len(ws), bx.shape[0])}, got {att.shape}")
        ys = (np.arange(Hpx) + 0.5) / Hpx
        xs = (np.arange(Wpx) + 0.5) / Wpx
        inside = ((xs[None, None, :] >= bx[:, 0, None, None]) & (xs[None, None, :] < bx[:, 2, None, None])
                  & (ys[None, :, None] >= bx[:, 1, None, None]) & (ys[None, :, None] < bx[:, 3, None, None]))
        for col in range(cols):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(ws):
                continue
            heat = np.tensordot(att[col], inside.astype(np.float64), axes=1)  # (H, W)
            light = heat / max(1e-9, heat.max())                              # (H, W) in [0, 1]
            ax.imshow(img * (0.15 + 0.85 * light[:, :, None]))
            for r, (x0, y0, x1, y1) in enumerate(bx):
                if x1 <= x0 or y1 <= y0:
                    continue
                ax.add_patch(Rectangle((x0 * Wpx, y0 * Hpx), (x1 - x0) * Wpx, (y1 - y0) * Hpx, fill=False,
                                       edgecolor="cyan", linewidth=0.3 + 3.0 * att[col, r]))
                ax.text(x0 * Wpx + 1, y0 * Hpx + 1, f"{att[col, r]:.2f}", color="white", fontsize=6, va="top",
                        ha="left", bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "linewidth": 0})
            ax.set_xlim(0, Wpx)
            ax.set_ylim(Hpx, 0)
            ax.set_title(ws[col], fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


# The size a sweep's second panel shows: the first of these that its scored trials have, preferring one
# that varies (a Transformer has no hidden_dim; its width is wordvec_dim).
_SWEEP_SIZES = (("hidden_dim", "hidden size H"), ("wordvec_dim", "word vector size W (the Transformer's width)"),
                ("num_layers", "layers (Transformer)"), ("num_heads", "attention heads (Transformer)"))


_TRANSFORMER_ONLY = ("num_layers", "num_heads")


def _sweep_value(r, key):
    """A trial's value of a searched key, None where the key does not apply to its model kind."""
    if key in _TRANSFORMER_ONLY and r["config"].get("model") != "transformer":
        return None
    return r["config"].get(key)


def _sweep_size_key(scored):
    """(key, label) of the size to plot against, or None when the trials have none."""
    present = [(k, label) for k, label in _SWEEP_SIZES if any(_sweep_value(r, k) is not None for r in scored)]
    varying = [(k, label) for k, label in present
               if len({_sweep_value(r, k) for r in scored} - {None}) > 1]
    return (varying or present or [None])[0]


def _log_ticks(low, high):
    """Tick values for a log axis from low to high: 1, 2 and 5 times powers of ten, or 1..9 times them
    when that gives fewer than three (a range narrower than a decade), at most eight."""
    import math

    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for mantissas in ((1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in decades for m in mantissas if low <= m * 10.0 ** e <= high]
        if len(ticks) >= 3:
            break
    step = max(1, math.ceil(len(ticks) / 8))
    return ticks[::step] if len(ticks) >= 2 else [low, high]


def plot_sweep(rows, metric, path=None, title=None):
    """Plot each trial's best score against its learning rate and its size.

    Inputs:
    - rows: sequence of dicts, one per trial (as :func:`cs231n.sweep.write_report` makes them), with
      'config' (a dict with 'lr', 'hidden_dim', 'wordvec_dim', 'model', ... as they were searched),
      'score' (float or None) and 'status' ('finished', 'stopped early', 'diverged' or 'failed'). The
      first row with a score is marked as the best.
    - metric: the score's name, for the axis label, with what it is of (e.g. 'held-out CIDEr').
    - path: if given, the PNG file to write.
    - title: optional figure title.

    The second panel shows the hidden size H, or, when the trials have none (all Transformers) or it
    does not vary, the first of the word vector size, layers and heads that varies; it is left out when
    the trials have no size at all. Finished trials are dots, early-stopped ones crosses, one color per
    model kind; trials without a score (diverged or failed before their first epoch) are counted in the
    legend.

    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    rows = list(rows)
    scored = [r for r in rows if r.get("score") is not None]
    kinds = sorted({str(r["config"].get("model", "?")) for r in scored})
    colors = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(kinds)}
    panels = [("lr", "learning rate (log scale)")]
    size = _sweep_size_key(scored)
    if size is not None:
        panels.append(size)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        sizes = sorted({_sweep_value(r, key) for r in scored} - {None})

        def where(r):
            x = _sweep_value(r, key)
            if x is None or key == "lr":
                return x
            # categorical: evenly spaced, nudged apart by model kind
            return sizes.index(x) + 0.12 * (kinds.index(str(r["config"].get("model", "?"))) - (len(kinds) - 1) / 2)

        for r in scored:
            x = where(r)
            if x is None:
                continue
            early = r["status"] != "finished"
            ax.scatter([x], [r["score"]], marker="x" if early else "o", s=50 if early else 40,
                       color=colors[str(r["config"].get("model", "?"))], alpha=0.9, linewidths=1.8)
        if scored and where(scored[0]) is not None:
            # The ring is drawn over the frame if it must be (clip_on=False), and the y range leaves room for it.
            ax.scatter([where(scored[0])], [scored[0]["score"]], marker="o", s=260, facecolors="none",
                       edgecolors="black", linewidths=1.2, clip_on=False, zorder=5)
        ax.margins(y=0.15)
        absent = sorted({str(r["config"].get("model", "?")) for r in scored if where(r) is None})
        if absent:
            ax.text(0.99, 0.02, f"not shown: {', '.join(absent)} (no {key})", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="gray")
        if key == "lr":
            from matplotlib.ticker import NullLocator
            ax.set_xscale("log")
            ax.margins(x=0.12)
            ax.set_xticks(_log_ticks(*ax.get_xlim()))
            ax.set_xticklabels(["%g" % v for v in ax.get_xticks()])
            ax.xaxis.set_minor_locator(NullLocator())
        else:
            ax.set_xticks(range(len(sizes)))
            ax.set_xticklabels([str(s) for s in sizes])
            ax.set_xlim(-0.6, len(sizes) - 0.4)
        ax.set_xlabel(label)
        ax.set_ylabel(f"best {metric} over its epochs")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[k], label=k) for k in kinds]
    handles.append(plt.Line2D([], [], marker="o", ls="", color="gray", label="ran all epochs"))
    handles.append(plt.Line2D([], [], marker="x", ls="", color="gray", mew=1.8, label="stopped early"))
    handles.append(plt.Line2D([], [], marker="o", ls="", ms=12, mfc="none", mec="black", label="best"))
    unscored = len(rows) - len(scored)
    if unscored:
        handles.append(plt.Line2D([], [], ls="", label=f"{unscored} without a score (not shown)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4 if len(panels) == 1 else 8),
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11 if len(panels) > 1 else 9)
    fig.tight_layout(rect=(0, 0.07 if len(panels) > 1 or len(handles) <= 4 else 0.12, 1, 1))
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _marked_caption(ax, words, wrong, width):
    """Write ``gen: <words>`` under an image, wrapped at `width` characters, wrong words in red."""
    mark = ("\u2717 ", "red") if any(wrong) or not words else ("\u2713 ", "green")
    lines, line = [[(mark[0] + "gen:", mark[1])]], len(mark[0]) + 4
    for word, bad in zip(words, wrong):
        if line + 1 + len(word) > width:
            lines.append([])
            line = 0
        lines[-1].append((word, "red" if bad else "black"))
        line += 1 + len(word)
    for row, pieces in enumerate(lines):
        anchor, xy = ax.transAxes, (0.0, -0.03 - 0.075 * row)
        for text, color in pieces:
            # Each word is placed right after the previous one (annotations chained by their boxes).
            anchor = ax.annotate(text + " ", xy=xy, xycoords=anchor, va="top", ha="left", fontsize=7,
                                 color=color, fontweight="bold" if color == "red" else "normal",
                                 annotation_clip=False)
            xy = (1.0, 1.0)
