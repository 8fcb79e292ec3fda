"""The report of a sweep: a table of the trials, the best trial's model, a figure, trials.json and report.md."""
import json
import os
import sys
from pathlib import Path

from cs231n.sweep.models import MODEL_KINDS
from cs231n.sweep.session import require_ray
from cs231n.sweep.space import _fmt, describe_config
from cs231n.sweep.trial import CHECKPOINT_FILE

REPORT_FILES = ("model.npz", "best.json", "trials.json", "report.md", "sweep.png")


SCORES = ("CIDEr", "Bleu_4", "scene_right")  # shown beside the sweep's metric when the trials report them


def judged_on(settings):
    """What the trials' scores are of: 'held-out' (training images held out of training) or 'val' (a
    sweep with holdout 0, or one made before holdout existed)."""
    return "held-out" if settings.get("holdout") else "val"


def _judged_images(settings):
    """'the 6 held-out training images' or '20 val images': what each trial scored after every epoch."""
    if settings.get("holdout"):
        return f"the {settings['holdout']} training images held out of training"
    return f"{settings['num_val_images']} val images"


def score_on_val(model, data, base):
    """The scores of ``model`` on all of ``data``'s val images, greedy: BLEU, CIDEr and, on a shapes
    dataset in ``base``, the fraction of captions entirely right (scene_right); and num_images."""
    from cs231n.data.shapes.accuracy import judge_dataset_captions
    from cs231n.metrics import score_model

    scores, captions = score_model(model, data, split="val", return_captions=True)
    val = {k: float(v) for k, v in scores.items()}
    scene, _ = judge_dataset_captions(base, "val", captions)  # (None, None) unless a shapes dataset
    if scene is not None:
        val["scene_right"] = float(scene["scene_right"])
    val["num_images"] = len(captions)
    return val


def _val_line(val_scores, settings):
    """The report's line of the best model's one val score, saying what was chosen on what."""
    shown = "  ".join(f"{k} {val_scores[k]:.4f}" for k in ("CIDEr", "Bleu_4", "scene_right") if k in val_scores)
    if settings.get("holdout"):
        why = "the trial and its epoch were chosen on held-out training images, not on this"
    else:
        why = (f"not independent of the choice: the trial and its epoch were chosen on "
               f"{min(settings['num_val_images'], val_scores['num_images'])} of these val images")
    return (f"Val score of the best model, scored once after the sweep (all {val_scores['num_images']} val "
            f"images, greedy; {why}): {shown}")


def _trial_row(result, settings, trial):
    """One trial's line of the report from its Tune result and Tune's saved trial (``trial``, or None).

    A trial that was created but reported nothing yet (the sweep was interrupted) has no config in its
    result; Tune's saved trial still has it.
    """
    metric, mode = settings["metric"], settings["mode"]
    df = result.metrics_dataframe
    last = result.metrics or {}
    config = result.config or (trial.config if trial is not None else None) or {}
    trial_status = trial.status if trial is not None else None
    row = {"trial": last.get("trial_id") or (trial.trial_id if trial is not None else Path(result.path).name),
           "config": {k: config[k] for k in settings["space"] if k in config
                      and not (k == "hidden_dim" and config.get("model") == "transformer")},
           "epochs": 0, "best_epoch": None, "score": None, **dict.fromkeys(SCORES),
           "resumed_at": [], "path": result.path}
    if df is not None and metric in df.columns:
        scored = df[df[metric].notna()] if "diverged" not in df.columns else df[(df["diverged"] == 0)]
        scored = scored[scored[metric].notna()]
        row["epochs"] = int(df["epoch"].max())
        if len(scored):
            # Of epochs tied for the best score, the last: the one whose checkpoint Tune keeps (with
            # checkpoint_score_order it ranks a later checkpoint above an equal earlier one).
            top = scored[metric].max() if mode == "max" else scored[metric].min()
            row.update(_epoch_scores(scored[scored[metric] == top].iloc[-1], metric))
        row["resumed_at"] = sorted({int(e) for e in df.get("resumed_from_epoch", []) if e > 0})
    if result.error is not None or trial_status == "ERROR":
        row["status"] = "failed"
        row["error"] = (str(result.error).strip() or "error").splitlines()[-1]
    elif trial_status != "TERMINATED":
        row["status"] = "unfinished"
    elif last.get("diverged"):
        row["status"] = "diverged"
    elif row["epochs"] < settings["num_epochs"]:
        row["status"] = "stopped early"
    else:
        row["status"] = "finished"
    return row


def _epoch_scores(entry, metric):
    """best_epoch, score and the SCORES of one epoch's reported results (a mapping)."""
    scores = {"best_epoch": int(entry["epoch"]), "score": float(entry[metric])}
    scores.update({k: float(entry[k]) if k in entry and entry[k] == entry[k] else None for k in SCORES})
    return scores


def _export_best(result, row, out, settings):
    """Write the best trial's parameters at its best epoch as out/model.npz; returns the path.

    The checkpoint kept for that epoch is used; when Tune kept another epoch of the same score instead
    (a tie), that epoch is exported and ``row`` is updated to report it, so the report and the model
    always agree.
    """
    from cs231n.solver import load_checkpoint

    metric = settings["metric"]
    kept = sorted(((ckpt, m) for ckpt, m in result.best_checkpoints if m.get(metric) == row["score"]),
                  key=lambda pair: (pair[1].get("epoch") != row["best_epoch"], -pair[1].get("epoch", 0)))
    if not kept:
        raise RuntimeError(f"no checkpoint of trial {row['trial']} with its best {metric} "
                           f"({row['score']}) is left in {result.path}; not exporting a model")
    ckpt, metrics = kept[0]
    row.update(_epoch_scores(metrics, metric))
    with ckpt.as_directory() as d:
        saved = load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    meta = saved["meta"]
    if meta["epoch"] != row["best_epoch"] or meta["val_history"][-1].get(metric) != metrics[metric]:
        raise RuntimeError(f"the checkpoint of trial {row['trial']} does not hold epoch {row['best_epoch']}'s "
                           f"model; not exporting it")
    model = MODEL_KINDS[row["config"]["model"]][1](meta["model_config"])
    model.params.update(saved["params"])
    model.identity = settings["data_identity"]  # the project's rule: a model file records its data
    return model.save(out / "model.npz"), model


def _table(rows, settings):
    """The trials as a fixed-width text table (keys that vary across trials get columns)."""
    keys = [k for k in settings["space"] if len({json.dumps(r["config"].get(k)) for r in rows}) > 1]
    fixed = {k: rows[0]["config"].get(k) for k in settings["space"]  # a key no trial has (H of Transformers): left out
             if k not in keys and any(k in r["config"] for r in rows)} if rows else {}
    metric = settings["metric"]
    shown = [metric] + [m for m in SCORES if m != metric and any(r[m] is not None for r in rows)]
    header = ["trial"] + keys + ["epochs", "best@"] + [f"{judged_on(settings)} {m}" for m in shown]
    header += ["status"]
    lines = []
    for r in rows:
        cells = [r["trial"]] + [("%.2e" % r["config"][k]) if k == "lr" else _fmt(r["config"].get(k))
                                for k in keys]
        cells += [str(r["epochs"]), "-" if r["best_epoch"] is None else str(r["best_epoch"])]
        for m in shown:
            value = r["score"] if m == metric else r[m]
            cells.append("-" if value is None else "%.4f" % value)
        status = r["status"] + (" (resumed at epoch %s)" % ",".join(map(str, r["resumed_at"]))
                                if r["resumed_at"] else "")
        cells.append(status)
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + lines]
    fixed_line = "fixed: " + ", ".join(f"{k}={_fmt(v)}" for k, v in fixed.items()) if fixed else ""
    return "\n".join(text), fixed_line


def write_report(out, grid, settings, data, run_seconds=None, verbose=True):
    """Summarize a finished sweep: table, best model, figure; write them to ``out``.

    Inputs:
    - out: the sweep directory (Path).
    - grid: the ``ray.tune.ResultGrid`` of the sweep.
    - settings: the sweep's settings (``sweep.json``).
    - data: the dataset, its val split whole (the best model is scored on all of it, once).
    - run_seconds: the seconds each run of the sweep took (its start, then each resume that ran
      trials), or None; the report gives their sum.

    Writes ``trials.json``, ``report.md``, ``sweep.png`` and (when a trial has a score) ``model.npz``,
    ``best.json``. Returns a dict with 'rows' (one dict per trial, best first: trial, config, epochs,
    best_epoch, score, CIDEr, Bleu_4 (at the best epoch; scores of the held-out training images, or of
    val images with holdout 0), status, resumed_at, path), 'best' (the best row or None), 'model_path'
    (or None), 'val_scores' (the best model's scores on all val images, greedy, or None: see
    :func:`score_on_val`), 'figure', 'table' (text), 'wall_seconds' (the sum of
    run_seconds, or None) and 'complete' (False when trials have not finished; the notice that says so,
    with the command that continues the sweep, is also printed to stderr, verbose or not).
    """
    from cs231n.archive import atomic_write_text
    from cs231n.vis import plot_sweep

    metric, mode = settings["metric"], settings["mode"]
    results = list(grid)
    # Tune's saved state says which trials ended (a result's own 'done' flag is not reliable after a
    # resume) and has the config of a trial that reported nothing yet.
    trials = {Path(t.path).name: t for t in require_ray().ExperimentAnalysis(str(out)).trials}
    rows = [_trial_row(r, settings, trials.get(Path(r.path).name)) for r in results]
    unfinished = settings["num_trials"] - sum(r["status"] != "unfinished" for r in rows)
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["score"] is None,
                                                    -sign * (rows[i]["score"] or 0.0), rows[i]["trial"]))
    rows = [rows[i] for i in order]
    results = [results[i] for i in order]
    best = rows[0] if rows and rows[0]["score"] is not None and not unfinished else None
    model_path = val_scores = None
    if best is not None:
        model_path, model = _export_best(results[0], best, out, settings)
        model_path = str(model_path)
        # The one score of val: after every choice was made, on the held-out training images.
        val_scores = score_on_val(model, data, settings["data_dir"])
        atomic_write_text(out / "best.json", json.dumps(dict(best, val_scores=val_scores), indent=2) + "\n")
    table, fixed = _table(rows, settings)
    import matplotlib.pyplot as plt
    title = (f"{judged_on(settings)} {metric} of {len(rows)} trials on {Path(settings['data_dir']).name} "
             f"({data['train_captions'].shape[0]} train captions)")
    plt.close(plot_sweep(rows, f"{judged_on(settings)} {metric}", path=out / "sweep.png", title=title))
    wall_seconds = None if run_seconds is None else float(sum(run_seconds))
    atomic_write_text(out / "trials.json", json.dumps(
        {"settings": settings, "wall_seconds": wall_seconds, "run_seconds": run_seconds, "trials": rows,
         "val_scores": val_scores},
        indent=2) + "\n")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "stopped early", "diverged", "failed")}
    counts["unfinished or not started"] = unfinished
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    interrupted = (f"INTERRUPTED: {unfinished} of {settings['num_trials']} trials have not finished; this "
                   f"table is partial and no best model was exported. Continue with: python -m cs231n sweep "
                   f"--resume --out {out}") if unfinished else ""
    took = ""
    if wall_seconds is not None:
        took = f"; the sweep took {wall_seconds:.0f} s" + (f" in {len(run_seconds)} runs (started, then resumed)"
                                                            if len(run_seconds) > 1 else "")
    lines = [f"# Sweep {out.name}", ""] + ([interrupted, ""] if interrupted else []) + [
        f"{settings['num_trials']} trials ({summary}); {judged_on(settings)} {metric} ({mode}) on "
        f"{_judged_images(settings)} after each epoch; up to {settings['num_epochs']} epochs{took}. The "
        f"table's scores are of those images.", ""]
    if fixed:
        lines += [fixed, ""]
    lines += ["```", table, "```", ""]
    if best is not None:
        lines += [f"Best: trial {best['trial']} at epoch {best['best_epoch']}: {judged_on(settings)} {metric} "
                  f"{best['score']:.4f} ({describe_config(best['config'])}); its model: model.npz", "",
                  _val_line(val_scores, settings), ""]
    lines += ["![score against learning rate and size](sweep.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    if verbose:
        print()
        if fixed:
            print(fixed)
        print(table)
        if best is not None:
            print(f"\nbest: trial {best['trial']}, epoch {best['best_epoch']}: {judged_on(settings)} {metric} "
                  f"{best['score']:.4f} ({describe_config(best['config'])})")
            print(_val_line(val_scores, settings))
        print(f"wrote {out}/model.npz, best.json, trials.json, report.md, sweep.png"
              if best is not None else f"wrote {out}/trials.json, report.md, sweep.png")
        sys.stdout.flush()
    if interrupted:  # a diagnostic, not progress: printed even when quiet
        print(interrupted, file=sys.stderr)
        sys.stderr.flush()
    return {"rows": rows, "best": best, "model_path": model_path, "val_scores": val_scores,
            "figure": str(out / "sweep.png"),
            "table": table, "wall_seconds": wall_seconds, "complete": not unfinished}
