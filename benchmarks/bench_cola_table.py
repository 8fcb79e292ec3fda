"""CoLA from scratch, chosen honestly: one table per data folder, and what moves the neural models.

Every model chooses everything (epoch, regularisation, combination weights) on the same seeded 10%
holdout of the training sentences; each report set (CoLA's two public dev sets, or the course's val
split) is scored once, with bootstrap 95% intervals of MCC and accuracy.

    python benchmarks/bench_cola_table.py --table              # both folders: majority, bag of words,
                                                               # n-gram LR, LSTM, Transformer
    python benchmarks/bench_cola_table.py --improve            # Transformer/LSTM variants on cola_public
    python benchmarks/bench_cola_table.py --improve --which hybrid   # Transformer + jointly trained n-gram term
    python benchmarks/bench_cola_table.py --table --json out.json

Times are wall-clock seconds of training (with the holdout scoring), on whatever else the machine runs.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header, reexec_without_openblas_overrides  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDERS = {"cola_public (CoLA's public train and dev sets)": SHARED / "cola_public",
           "cola (the course's split: first 7,000 / last 1,551 of train)": SHARED / "cola"}


def _print_rows(rows):
    from cs231n.cola_selection import format_holdout_table
    print(format_holdout_table(rows), flush=True)


def run_table(seed, kinds, options):
    from cs231n.cola_selection import KIND_NAMES, holdout_table
    from cs231n.cola_tsv import load_classification_data

    out = {}
    for title, folder in FOLDERS.items():
        if not folder.is_dir():
            print(f"\n{title}: {folder} is absent, skipped")
            continue
        data = load_classification_data(folder)
        print(f"\n### {title}\n")
        rows = []
        for kind in kinds:
            kw = dict(options.get(kind, {}), label=KIND_NAMES[kind])
            rows += holdout_table(data, kinds=[kind], seed=seed, options={kind: kw})
            print(f"  done {kind} in {rows[-1]['train_seconds']:.0f} s", flush=True)
        _print_rows(rows)
        out[str(folder)] = rows
    return out


# The jointly trained hybrid (ClassificationTransformer's n-gram term): word 1-3-grams, and a small grid of
# the term's step scale and L2 strength (on its effective weights, as the n-gram LR's reg) chosen on the holdout.
HYBRID = {"ngram_n": 3}
HYBRID_GRID = [{"ngram_scale": 10.0, "ngram_reg": 1e-4}, {"ngram_scale": 30.0, "ngram_reg": 1e-4},
               {"ngram_scale": 30.0, "ngram_reg": 1e-3}, {"ngram_scale": 30.0, "ngram_reg": 0.0}]


def _print_hybrid_parts(result, data, seed, holdout=0.1):
    """Holdout only: the chosen hybrid's logit split into its n-gram term and the rest (the Transformer)."""
    import numpy as np

    from cs231n import metrics
    from cs231n.backend import to_numpy
    from cs231n.cola_selection import holdout_split

    m = result["model"]
    _, hold = holdout_split(len(data["train_labels"]), holdout, seed)
    X, y = data["train_inxs"][hold], data["train_labels"][hold]
    z = np.asarray(to_numpy(m.scores(X)), dtype=np.float64)
    W = np.asarray(to_numpy(m.params["W_ngram"])[:, 0], dtype=np.float64)
    parts = {"n-gram term": m.ngram_scale * m.ngram_index.transform(X, normalize=True).dot(W)}
    parts["Transformer part"] = z - parts["n-gram term"]
    rate = float((z >= result["threshold"]).mean())
    print(f"    holdout MCC of the hybrid {result['holdout_mcc']:.3f}; its parts alone, each at the hybrid's "
          f"rate of 'acceptable' ({100 * rate:.0f}%):")
    for name, part in parts.items():
        pred = (part >= np.quantile(part, 1 - rate)).astype(np.int64)
        print(f"      {name}: MCC {metrics.matthews_corrcoef(y, pred):.3f}, std {part.std():.3f}, "
              f"correlation with the hybrid's logit {np.corrcoef(part, z)[0, 1]:.2f}", flush=True)


def run_improve(seed, folder, epochs, which, pretrain=(10,)):
    """Variants of the Transformer (and LSTM), each chosen on the holdout, scored once on the dev sets."""
    from cs231n.cola_selection import (choose_combination, report_scores, seed_ensemble, select_on_holdout,
                                       table_row)
    from cs231n.cola_tsv import load_classification_data

    data = load_classification_data(folder)
    rows, done = [], {}

    def add(label, kind, result):
        rows.append(table_row(kind, result, report_scores(result["model"], data, result["threshold"], seed=seed),
                               label))
        print(f"  {label}: holdout MCC {result['holdout_mcc']:.3f}, chosen {result['chosen']}, "
              f"{result['train_seconds']:.0f} s", flush=True)

    def fit(kind, seed_=seed, **kw):
        return select_on_holdout(kind, data, seed=seed_, holdout_seed=seed, verbose=False, **kw)

    ngram = fit("ngram")
    add("word 1-3-gram LR", "ngram", ngram)
    base = dict(epochs=epochs)
    if "transformer" in which:
        tr = fit("transformer", **base)
        add(f"Transformer, {epochs} epochs", "transformer", tr)
        wd = fit("transformer", candidates=[{"word_dropout": 0.1}], **base)
        add(f"Transformer, {epochs} epochs, word dropout 0.1", "transformer", wd)
        seeds = [tr] + [fit("transformer", seed_=seed + k, **base) for k in (1, 2)]
        add("Transformer, 3 seeds averaged", "transformer", seed_ensemble(seeds, data, seed=seed))
        best_tr = max([tr, wd], key=lambda r: r["holdout_mcc"])
        add("Transformer + a x n-gram LR logits (a on the holdout)", "transformer",
            choose_combination(best_tr, ngram, data, seed=seed))
        add("3-seed Transformer + a x n-gram LR logits", "transformer",
            choose_combination(seed_ensemble(seeds, data, seed=seed), ngram, data, seed=seed))
    if "pretrain" in which:
        for n in pretrain:
            pre = fit("transformer", candidates=[{"pretrain_epochs": n}], **base)
            add(f"Transformer, {n} epochs of masked-word pre-training, then {epochs}", "transformer", pre)
            add(f"the same + a x n-gram LR logits", "transformer", choose_combination(pre, ngram, data, seed=seed))
    if "grid" in which:
        grid = [{"lr": 1e-3}, {"lr": 2e-4}, {"num_layers": 2}, {"dropout": 0.4}]
        chosen = fit("transformer", candidates=grid, **base)
        for e in chosen["selection"]:
            print(f"    candidate {e['options']}: holdout MCC {e['holdout_mcc']:.3f} at epoch {e['epoch']}")
        add("Transformer, best on the holdout of lr 1e-3 / lr 2e-4 / 2 layers / dropout 0.4", "transformer", chosen)
    if "hybrid" in which:
        if "transformer" not in which:  # the plain Transformer of this run, for the comparison
            add(f"Transformer, {epochs} epochs", "transformer", fit("transformer", **base))
        grid = [dict(HYBRID, **c) for c in HYBRID_GRID]
        hy = fit("transformer", candidates=grid, **base)
        for e in hy["selection"]:
            print(f"    candidate scale {e['options']['ngram_scale']:g}, reg {e['options']['ngram_reg']:g}: "
                  f"holdout MCC {e['holdout_mcc']:.3f} at epoch {e['epoch']}", flush=True)
        add("Transformer + word 1-3-gram term trained jointly, best of scale/reg on the holdout", "transformer", hy)
        _print_hybrid_parts(hy, data, seed)
        if "hybrid-pretrain" in which:
            chosen = {k: hy["chosen"][k] for k in ("ngram_scale", "ngram_reg")}
            pre = fit("transformer", candidates=[dict(HYBRID, pretrain_epochs=pretrain[0], **chosen)], **base)
            add(f"the same hybrid after {pretrain[0]} epochs of masked-word pre-training", "transformer", pre)
    if "lstm" in which:
        lstm = fit("lstm", **base)
        add(f"LSTM, {epochs} epochs", "lstm", lstm)
        wd = fit("lstm", candidates=[{"word_dropout": 0.1}], **base)
        add(f"LSTM, {epochs} epochs, word dropout 0.1", "lstm", wd)
        add("LSTM + a x n-gram LR logits", "lstm",
            choose_combination(max([lstm, wd], key=lambda r: r["holdout_mcc"]), ngram, data, seed=seed))
    print(f"\n### What moves the neural models ({folder.name}, one run, seed {seed})\n")
    _print_rows(rows)
    return {str(folder): rows}


def main():
    unset = reexec_without_openblas_overrides()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="the baseline table on both folders")
    p.add_argument("--improve", action="store_true", help="the Transformer/LSTM variants on cola_public")
    p.add_argument("--kinds", default="majority,bow,ngram,lstm,transformer", help="the table's rows")
    p.add_argument("--which", default="transformer,lstm,pretrain",
                   help="--improve: which variants (transformer, lstm, pretrain: masked-word pre-training, grid: a "
                        "Transformer grid of lr, layers and dropout, hybrid: the Transformer with a jointly trained "
                        "n-gram term, hybrid-pretrain: with hybrid, the chosen hybrid after pre-training)")
    p.add_argument("--pretrain", default="10", help="--improve: epochs of pre-training to try, comma-separated")
    p.add_argument("--folder", choices=["public", "course"], default="public",
                   help="--improve: on cola_public (default) or on the course's split (../shared/data/cola)")
    p.add_argument("--epochs", type=int, default=12, help="--improve: epoch budget (the best is chosen)")
    p.add_argument("--seed", type=int, default=0, help="the holdout's and the models' seed")
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    if not (a.table or a.improve):
        p.error("say --table and/or --improve")
    machine_header(unset)
    print("command: python " + " ".join(sys.argv))
    t0 = time.perf_counter()
    result = {}
    if a.table:
        result.update(run_table(a.seed, a.kinds.split(","), {}))
    if a.improve:
        result.update(run_improve(a.seed, list(FOLDERS.values())[a.folder == "course"], a.epochs, a.which.split(","),
                                  [int(n) for n in a.pretrain.split(",")]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        for rows in result.values():
            for r in rows:
                r["chosen"] = {k: (v if not isinstance(v, float) or v == v else None) for k, v in r["chosen"].items()}
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
