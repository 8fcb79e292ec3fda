"""``classify-train``'s run directories: train one sentence classifier on a CoLA folder (the course's
preprocessed arrays or CoLA/GLUE TSVs) and write its model, checkpoint, history, scores and curves.

:func:`train_sentence_classifier` is the command's entry point: with a holdout it hands over to
:func:`train_with_holdout` (every choice on held-out training sentences, :mod:`cs231n.cola_selection`),
without one it trains as the classic solver does (the best val epoch kept) and can add the classic
baseline table (:func:`cs231n.cola_models.baseline_table`).
"""
import json
import os
import time
from pathlib import Path

from cs231n.archive import atomic_write_json
from cs231n.cola_models import (
    MODEL_DEFAULTS,
    baseline_table,
    build_classifier,
    fit_classifier,
    format_table,
)
from cs231n.cola_selection import (
    KIND_NAMES,
    _fit_ngrams,
    describe_data,
    format_holdout_table,
    format_score,
    holdout_table,
    report_scores,
    select_on_holdout,
    table_row,
    take_train,
)

MODEL_FILE = "model.npz"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.json"
SCORES_FILE = "scores.json"
CURVES_FILE = "curves.png"
OUTPUTS = (MODEL_FILE, CHECKPOINT_FILE, HISTORY_FILE, SCORES_FILE, CURVES_FILE)  # what a run writes


def _prepare_out(out_dir, resume, overwrite):
    """The run directory as a Path (created) and its checkpoint's path, after the rules of
    :func:`train_sentence_classifier` (no overwriting without ``overwrite``, no resume without a checkpoint)."""
    out = Path(out_dir)
    checkpoint = str(out / CHECKPOINT_FILE)
    if resume and not os.path.exists(checkpoint):
        raise FileNotFoundError(f"resume: there is no checkpoint at {checkpoint}")
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not (resume or overwrite):
        raise FileExistsError(f"{out} already holds {', '.join(existing)} of an earlier run; choose another "
                              f"output directory, or resume it (--resume) or replace it (--overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    return out, checkpoint


def train_sentence_classifier(data_dir, out_dir, kind="transformer", lr=None, epochs=None, batch_size=None,
                              lr_decay=None, seed=0, class_weight=None, grad_clip=None, max_train=None,
                              baselines=False, resume=False, overwrite=False, verbose=True, model_options=None,
                              device="cpu", holdout=None, refit=False, eval_files=None, min_count=2,
                              tune_threshold=False, divergence_factor=None):
    """Train a sentence classifier on a CoLA-format folder and write its files to ``out_dir``.

    Writes ``model.npz`` (the parameters of the best val MCC), ``checkpoint.npz`` (the solver state,
    for ``resume``), ``history.json`` (per-epoch scores), ``curves.png`` and ``scores.json`` (final val
    scores, the data folder and the fingerprints of its files (:func:`cs231n.runs.dataset_identity`),
    the options, and the baseline table when ``baselines``).

    Inputs:
    - data_dir: the CoLA-format folder.
    - out_dir: output directory.
    - kind: 'transformer', 'lstm' or 'bow'.
    - lr, epochs, batch_size, lr_decay: solver options (None: the kind's defaults in MODEL_DEFAULTS).
    - seed, class_weight, grad_clip: see :class:`ClassificationSolver`.
    - max_train: train on this many training sentences only (a seeded subset; for quick runs).
    - baselines: also train and score the majority, bag-of-words and LSTM baselines (those not being
      trained here, with their defaults and this run's seed and class weighting).
    - resume: continue from ``out_dir``'s checkpoint.
    - overwrite: replace the files of an earlier run in ``out_dir`` (without it, and without
      ``resume``, an ``out_dir`` holding any of them is refused with FileExistsError).
    - model_options: extra constructor options of the model (e.g. dropout, readout).
    - device: 'cpu' or 'gpu': where the model trains (the baselines train on the CPU).
    - divergence_factor: stop when the loss has stayed above this many times its first value (see
      :class:`cs231n.solver.Solver`; None: only at NaN/inf).
    - holdout: None (the classic behaviour above: epoch chosen and scores reported on val), or the
      share of train held out for every choice, with the report sets scored once
      (:func:`train_with_holdout`, which also reads TSV folders; ``refit``, ``eval_files``,
      ``min_count`` and ``tune_threshold`` are its options).

    Returns the summary dict written to ``scores.json``.
    """
    if holdout is not None:
        return train_with_holdout(data_dir, out_dir, kind=kind, holdout=holdout, refit=refit, eval_files=eval_files,
                                  min_count=min_count, tune_threshold=tune_threshold, lr=lr, epochs=epochs,
                                  batch_size=batch_size, lr_decay=lr_decay, seed=seed, class_weight=class_weight,
                                  grad_clip=grad_clip, max_train=max_train, baselines=baselines, resume=resume,
                                  overwrite=overwrite, verbose=verbose, model_options=model_options, device=device,
                                  divergence_factor=divergence_factor)
    if refit or eval_files is not None or tune_threshold:
        raise ValueError("refit, eval_files and tune_threshold need a holdout (holdout=0.1, --holdout 0.1)")
    from cs231n.cola_utils import inputs_file, labels_file, load_cola_data
    from cs231n.runs import dataset_identity
    from cs231n.vis import plot_training_curves

    data = load_cola_data(data_dir, max_train=max_train, seed=seed)
    d = MODEL_DEFAULTS.get(kind)
    if d is None:
        raise ValueError(f"kind must be one of {sorted(MODEL_DEFAULTS)}, got {kind!r}")
    lr = d["lr"] if lr is None else lr
    epochs = d["epochs"] if epochs is None else epochs
    batch_size = d["batch_size"] if batch_size is None else batch_size
    lr_decay = d["lr_decay"] if lr_decay is None else lr_decay
    model = build_classifier(kind, data, seed=seed, **(model_options or {})).to(device)
    _fit_ngrams(model, data["train_inxs"])
    out, checkpoint = _prepare_out(out_dir, resume, overwrite)
    if verbose:
        print("data: %s (%d train, %d val sentences, %.1f%% / %.1f%% acceptable, vocabulary %d, T = %d)"
              % (data["base_dir"], len(data["train_labels"]), len(data["val_labels"]),
                 100 * data["train_labels"].mean(), 100 * data["val_labels"].mean(), len(data["word_to_ix"]),
                 data["max_length"]))
        config = {k: v for k, v in model.get_config().items() if k not in ("word_to_ix", "max_length", "dtype")}
        print("model: %s %s, %d parameters" % (kind, json.dumps(config), sum(p.size for p in model.params.values())))
    t0 = time.perf_counter()
    solver = fit_classifier(model, data, lr, epochs, batch_size, lr_decay, seed=seed, class_weight=class_weight,
                            grad_clip=grad_clip, checkpoint=checkpoint, resume=resume, verbose=verbose,
                            divergence_factor=divergence_factor)
    seconds = time.perf_counter() - t0
    if solver.best_params:
        model.params.update(solver.best_params)
    model.save(out / MODEL_FILE)
    atomic_write_json(out / HISTORY_FILE, solver.val_history)
    import matplotlib.pyplot as plt
    plt.close(plot_training_curves(solver.loss_history, solver.val_history, path=out / CURVES_FILE,
                                         title=f"{kind} on {Path(data['base_dir']).name}"))
    val = model.evaluate(data["val_inxs"], data["val_labels"])
    best_epoch = None
    if solver.val_history:
        best_epoch = int(max(solver.val_history, key=lambda e: e["val_mcc"])["epoch"])
    summary = {"model": kind, "model_config": {k: v for k, v in model.get_config().items() if k != "word_to_ix"},
               "data_dir": data["base_dir"], "num_train": int(len(data["train_labels"])),
               "options": {"lr": lr, "epochs": epochs, "batch_size": batch_size, "lr_decay": lr_decay,
                           "seed": seed, "class_weight": class_weight, "grad_clip": grad_clip,
                           "max_train": max_train},
               "data_identity": dataset_identity(data["base_dir"], data["word_to_ix"],
                                                 [f(sp) for sp in ("train", "val") for f in (inputs_file, labels_file)]),
               "best_epoch": best_epoch, "val": val, "train_seconds": seconds}
    if baselines:
        rows = baseline_table(data, kinds=[k for k in ("majority", "bow", "lstm") if k != kind], seed=seed,
                              class_weight=class_weight)
        rows.append({"model": kind + " (this run)", "val_accuracy": val["accuracy"], "val_mcc": val["mcc"],
                     "val_positive_rate": val["positive_rate"], "train_seconds": seconds, "epochs": solver.epoch})
        summary["table"] = rows
    atomic_write_json(out / SCORES_FILE, summary)
    if verbose:
        print("\nval (%d sentences, epoch %s of %d): accuracy %.3f, MCC %.3f, %.0f%% predicted acceptable"
              % (val["num"], best_epoch, solver.epoch, val["accuracy"], val["mcc"], 100 * val["positive_rate"]))
        if baselines:
            print(format_table(summary["table"]))
        print(f"trained in {seconds:.0f} s; wrote {out}/{MODEL_FILE}, {CHECKPOINT_FILE}, {HISTORY_FILE}, "
              f"{CURVES_FILE}, {SCORES_FILE}")
    return summary


def train_with_holdout(data_dir, out_dir, kind="transformer", holdout=0.1, refit=False, eval_files=None,
                       min_count=2, tune_threshold=False, lr=None, epochs=None, batch_size=None, lr_decay=None,
                       seed=0, class_weight="balanced", grad_clip=None, max_train=None, baselines=False,
                       resume=False, overwrite=False, verbose=True, model_options=None, device="cpu",
                       candidates=None, divergence_factor=None):
    """Train a sentence classifier with every choice made on held-out training sentences, score the
    report sets once, and write the run's files to ``out_dir``.

    ``data_dir`` is a TSV folder or a preprocessed-array folder
    (:func:`cs231n.cola_tsv.load_classification_data` with ``eval_files`` and ``min_count``); ``kind``
    is 'ngram' or a kind of :data:`MODEL_DEFAULTS`; the choice is :func:`select_on_holdout`'s (with
    ``holdout``, ``refit``, ``tune_threshold``, ``candidates`` and the solver options). ``baselines``
    adds a table of the other kinds (:func:`holdout_table`) measured in this run.

    Writes ``model.npz`` (the final model), ``history.json`` (per-epoch holdout scores, or the
    n-gram's candidates), ``curves.png`` and ``checkpoint.npz`` (the solver's models; ``resume``
    continues the selection run), and ``scores.json``: the data description, the holdout, what was
    chosen, the refit, and for each report set accuracy and MCC with bootstrap 95% intervals (under
    'eval' and under the set's own name). Returns that summary.
    """
    from cs231n.cola_tsv import TRAIN_FILE, load_classification_data
    from cs231n.cola_utils import inputs_file, labels_file
    from cs231n.runs import dataset_identity

    if kind not in ("ngram",) + tuple(MODEL_DEFAULTS):
        raise ValueError(f"kind must be 'ngram' or one of {sorted(MODEL_DEFAULTS)}, got {kind!r}")
    if kind == "ngram" and resume:
        raise ValueError("the n-gram model trains in seconds and writes no checkpoint; there is nothing to resume")
    data = take_train(load_classification_data(data_dir, eval_files, min_count), max_train, seed)
    out, checkpoint = _prepare_out(out_dir, resume, overwrite)
    say = print if verbose else (lambda *args: None)
    for line in describe_data(data, holdout, seed):
        say(line)
    result = select_on_holdout(kind, data, holdout=holdout, seed=seed, refit=refit, candidates=candidates,
                               class_weight=class_weight, tune_threshold=tune_threshold, model_options=model_options,
                               lr=lr, epochs=epochs, batch_size=batch_size, lr_decay=lr_decay, grad_clip=grad_clip,
                               device=device, checkpoint=None if kind == "ngram" else checkpoint, resume=resume,
                               verbose=verbose, divergence_factor=divergence_factor)
    model = result["model"]
    model.save(out / MODEL_FILE)
    atomic_write_json(out / HISTORY_FILE, result["history"] if result["history"] else result["selection"])
    if result.get("loss_history"):
        import matplotlib.pyplot as plt

        from cs231n.vis import plot_training_curves

        plt.close(plot_training_curves(result["loss_history"], result["history"], path=out / CURVES_FILE,
                                       title=f"{kind} on {Path(data['base_dir']).name} (val = holdout)"))
    scores = report_scores(model, data, result["threshold"], seed=seed)
    files = ([TRAIN_FILE] + [Path(ev["file"]).name for ev in data["eval_sets"].values()]
             if data["format"] == "tsv" else [f(sp) for sp in ("train", "val") for f in (inputs_file, labels_file)])
    config = {k: v for k, v in model.get_config().items() if k not in ("word_to_ix", "ngrams")}
    summary = {"model": kind, "model_config": config, "data_dir": data["base_dir"], "format": data["format"],
               "layout": data.get("layout"), "tokenization": data.get("tokenization"),
               "min_count": data.get("min_count"), "num_train": int(len(data["train_labels"])),
               "holdout": {"fraction": holdout, "seed": seed, "num_fit": result["num_fit"],
                           "num_holdout": result["num_holdout"]},
               "chosen": result["chosen"], "holdout_mcc": result["holdout_mcc"], "threshold": result["threshold"],
               "selection": result["selection"], "refit": result["refit"],
               "options": {"lr": lr, "epochs": epochs, "batch_size": batch_size, "lr_decay": lr_decay, "seed": seed,
                           "class_weight": class_weight, "grad_clip": grad_clip, "max_train": max_train,
                           "tune_threshold": tune_threshold},
               "data_identity": dataset_identity(data["base_dir"], data["word_to_ix"], files),
               "train_seconds": result["train_seconds"], "eval": scores}
    summary.update(scores)
    if baselines:
        rows = holdout_table(data, kinds=[k for k in ("majority", "bow", "ngram", "lstm") if k != kind],
                             holdout=holdout, seed=seed, refit=refit, class_weight=class_weight)
        rows.append(table_row(kind, result, scores, label=KIND_NAMES[kind] + " (this run)"))
        summary["table"] = rows
    atomic_write_json(out / SCORES_FILE, summary)
    chosen = ", ".join(f"{k} {v}" for k, v in result["chosen"].items()) or "nothing to choose"
    say(f"\nchosen on the holdout ({result['num_holdout']} sentences): {chosen}; holdout MCC "
        f"{result['holdout_mcc']:.3f} at logit threshold {result['threshold']:.2f}")
    if refit:
        what = f" for {result['chosen']['epoch']} epochs" if "epoch" in result["chosen"] else ""
        say(f"final model: refit on all {len(data['train_labels'])} training sentences{what}")
    else:
        say(f"final model: the one fit on {result['num_fit']} sentences (the holdout left out; refit to use all)")
    for name, sc in scores.items():
        say(f"{name} ({sc['num']} sentences, scored once): {format_score(sc)}, "
            f"{100 * sc['positive_rate']:.0f}% predicted acceptable")
    if baselines:
        say(format_holdout_table(summary["table"]))
    say(f"trained in {result['train_seconds']:.0f} s; wrote {out}/{MODEL_FILE}, {HISTORY_FILE}, {SCORES_FILE}")
    return summary
