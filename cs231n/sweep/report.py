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


def _trial_row(result, settings, trial_status):
    metric, mode = settings["metric"], settings["mode"]
    df = result.metrics_dataframe
    last = result.metrics or {}
    row = {"trial": last.get("trial_id") or Path(result.path).name,
           "config": {k: result.config[k] for k in settings["space"] if k in result.config
                      and not (k == "hidden_dim" and result.config.get("model") == "transformer")},
           "epochs": 0, "best_epoch": None, "score": None, "CIDEr": None, "Bleu_4": None,
           "resumed_at": [], "path": result.path}
    if df is not None and metric in df.columns:
        scored = df[df[metric].notna()] if "diverged" not in df.columns else df[(df["diverged"] == 0)]
        scored = scored[scored[metric].notna()]
        row["epochs"] = int(df["epoch"].max())
        if len(scored):
            best = scored.loc[scored[metric].idxmax() if mode == "max" else scored[metric].idxmin()]
            row.update(best_epoch=int(best["epoch"]), score=float(best[metric]),
                       CIDEr=float(best["CIDEr"]) if "CIDEr" in best else None,
                       Bleu_4=float(best["Bleu_4"]) if "Bleu_4" in best else None)
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


def _export_best(result, row, out, settings):
    """Write the best trial's parameters at its best epoch as out/model.npz; returns the path."""
    from cs231n.solver import load_checkpoint

    metric = settings["metric"]
    kept = [(ckpt, m) for ckpt, m in result.best_checkpoints if m.get("epoch") == row["best_epoch"]]
    if not kept:
        raise RuntimeError(f"the checkpoint of trial {row['trial']} at its best epoch {row['best_epoch']} "
                           f"is missing from {result.path}")
    ckpt, metrics = kept[0]
    with ckpt.as_directory() as d:
        saved = load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    meta = saved["meta"]
    if meta["epoch"] != row["best_epoch"] or meta["val_history"][-1].get(metric) != metrics[metric]:
        raise RuntimeError(f"the checkpoint of trial {row['trial']} does not hold epoch {row['best_epoch']}'s "
                           f"model; not exporting it")
    model = MODEL_KINDS[row["config"]["model"]][1](meta["model_config"])
    model.params.update(saved["params"])
    model.identity = settings["data_identity"]  # the project's rule: a model file records its data
    return model.save(out / "model.npz")


def _table(rows, settings):
    """The trials as a fixed-width text table (keys that vary across trials get columns)."""
    keys = [k for k in settings["space"] if len({json.dumps(r["config"].get(k)) for r in rows}) > 1]
    fixed = {k: rows[0]["config"].get(k) for k in settings["space"] if k not in keys} if rows else {}
    metric = settings["metric"]
    header = ["trial"] + keys + ["epochs", "best@", metric] + [m for m in ("CIDEr", "Bleu_4") if m != metric]
    header += ["status"]
    lines = []
    for r in rows:
        cells = [r["trial"]] + [("%.2e" % r["config"][k]) if k == "lr" else _fmt(r["config"].get(k))
                                for k in keys]
        cells += [str(r["epochs"]), "-" if r["best_epoch"] is None else str(r["best_epoch"])]
        for m in [metric] + [m for m in ("CIDEr", "Bleu_4") if m != metric]:
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


def write_report(out, grid, settings, data, wall_seconds=None, verbose=True):
    """Summarize a finished sweep: table, best model, figure; write them to ``out``.

    Inputs:
    - out: the sweep directory (Path).
    - grid: the ``ray.tune.ResultGrid`` of the sweep.
    - settings: the sweep's settings (``sweep.json``).
    - data: the dataset (for the figure's title).
    - wall_seconds: the time ``fit`` took, reported as is.

    Writes ``trials.json``, ``report.md``, ``sweep.png`` and (when a trial has a score) ``model.npz``,
    ``best.json``. Returns a dict with 'rows' (one dict per trial, best first: trial, config, epochs,
    best_epoch, score, CIDEr, Bleu_4 (at the best epoch), status, resumed_at, path), 'best' (the best
    row or None), 'model_path' (or None), 'figure', 'table' (text) and 'wall_seconds'.
    """
    from cs231n.archive import atomic_write_text
    from cs231n.vis import plot_sweep

    metric, mode = settings["metric"], settings["mode"]
    results = list(grid)
    # Tune's saved state says which trials ended (a result's own 'done' flag is not reliable after a resume).
    status = {Path(t.path).name: t.status for t in require_ray().ExperimentAnalysis(str(out)).trials}
    rows = [_trial_row(r, settings, status.get(Path(r.path).name)) for r in results]
    unfinished = settings["num_trials"] - sum(r["status"] != "unfinished" for r in rows)
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["score"] is None,
                                                    -sign * (rows[i]["score"] or 0.0), rows[i]["trial"]))
    rows = [rows[i] for i in order]
    results = [results[i] for i in order]
    best = rows[0] if rows and rows[0]["score"] is not None and not unfinished else None
    model_path = None
    if best is not None:
        model_path = str(_export_best(results[0], best, out, settings))
        atomic_write_text(out / "best.json", json.dumps(best, indent=2) + "\n")
    table, fixed = _table(rows, settings)
    import matplotlib.pyplot as plt
    title = (f"{metric} of {len(rows)} trials on {Path(settings['data_dir']).name} "
             f"({data['train_captions'].shape[0]} train captions)")
    plt.close(plot_sweep(rows, metric, path=out / "sweep.png", title=title))
    atomic_write_text(out / "trials.json", json.dumps(
        {"settings": settings, "wall_seconds": wall_seconds, "trials": rows}, indent=2) + "\n")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "stopped early", "diverged", "failed")}
    counts["unfinished or not started"] = unfinished
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    interrupted = (f"INTERRUPTED: {unfinished} of {settings['num_trials']} trials have not finished; this "
                   f"table is partial and no best model was exported. Continue with: python -m cs231n sweep "
                   f"--resume --out {out}") if unfinished else ""
    lines = [f"# Sweep {out.name}", ""] + ([interrupted, ""] if interrupted else []) + [ f"{settings['num_trials']} trials ({summary}); val {metric} ({mode}) on "
             f"{settings['num_val_images']} val images after each epoch; up to {settings['num_epochs']} epochs"
             + (f"; this run of the sweep took {wall_seconds:.0f} s" if wall_seconds is not None else "") + ".", ""]
    if fixed:
        lines += [fixed, ""]
    lines += ["```", table, "```", ""]
    if best is not None:
        lines += [f"Best: trial {best['trial']} at epoch {best['best_epoch']}: {metric} {best['score']:.4f} "
                  f"({describe_config(best['config'])}); its model: model.npz", ""]
    lines += ["![score against learning rate and size](sweep.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    if verbose:
        print()
        if fixed:
            print(fixed)
        print(table)
        if best is not None:
            print(f"\nbest: trial {best['trial']}, epoch {best['best_epoch']}: {metric} {best['score']:.4f} "
                  f"({describe_config(best['config'])})")
        if interrupted:
            print("\n" + interrupted)
        print(f"wrote {out}/model.npz, best.json, trials.json, report.md, sweep.png"
              if best is not None else f"wrote {out}/trials.json, report.md, sweep.png")
        sys.stdout.flush()
    return {"rows": rows, "best": best, "model_path": model_path, "figure": str(out / "sweep.png"),
            "table": table, "wall_seconds": wall_seconds, "complete": not unfinished}
