"""Honest selection on CoLA: every choice on a held-out slice of the training sentences.

:func:`select_on_holdout` makes every choice (epoch, learning rate, regularisation, threshold,
combination weights) on a seeded held-out slice of train (:func:`holdout_split`), optionally refits on
all of train, and :func:`report_scores` scores each report set once with bootstrap 95% intervals;
:func:`holdout_table` is the table of majority, bag of words, n-gram LR, LSTM and Transformer measured in
one run; :func:`choose_combination` and :func:`seed_ensemble` combine models' logits with weights
chosen on the holdout.
"""
import time

import numpy as np

from cs231n import metrics
from cs231n.backend import to_numpy
from cs231n.classification_solver import ClassificationSolver
from cs231n.cola_models import MODEL_DEFAULTS, build_classifier

# Regularisation strengths the n-gram logistic regression chooses from on the holdout (its features are
# normalised per sentence, so useful strengths are small).
NGRAM_REGS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
HONEST_KINDS = ("majority", "ngram") + tuple(MODEL_DEFAULTS)
# Candidates' keys that are training options, not model constructor options ('pretrain_epochs': epochs of
# masked-word pre-training of a Transformer's encoder on the fitting sentences, cs231n.classifiers.pretraining).
SOLVER_OPTIONS = ("lr", "epochs", "batch_size", "lr_decay", "word_dropout", "pretrain_epochs")


def holdout_split(num, fraction=0.1, seed=0):
    """Split ``range(num)`` into a fitting part and a held-out part.

    Inputs:
    - num: number of training sentences (>= 2).
    - fraction: share held out, in (0, 1); the holdout has ``round(fraction * num)`` sentences, at least
      1 and at most num - 1.
    - seed: seed of the permutation (``np.random.default_rng(seed)``).

    Returns (fit_ids, holdout_ids): sorted int64 arrays, disjoint, together every index once.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
        raise ValueError(f"holdout_split: num must be an int >= 2, got {num!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"holdout_split: holdout must be a fraction in (0, 1), got {fraction!r}")
    size = min(max(int(round(fraction * num)), 1), num - 1)
    order = np.random.default_rng(seed).permutation(num)
    return np.sort(order[size:]).astype(np.int64), np.sort(order[:size]).astype(np.int64)


def choose_threshold(scores, labels):
    """The logit threshold with the best MCC of ``scores >= threshold`` against ``labels``.

    Candidates are 0 and the midpoints between consecutive distinct scores; ties go to the candidate
    closest to 0 (the class-weighted models' natural threshold). Returns (threshold, mcc).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    s = np.unique(scores)
    candidates = np.concatenate([[0.0], (s[1:] + s[:-1]) / 2])
    best = (-np.inf, 0.0)
    for t in candidates[np.argsort(np.abs(candidates), kind="stable")]:
        mcc = metrics.matthews_corrcoef(labels, (scores >= t).astype(np.int64))
        if mcc > best[0]:
            best = (mcc, float(t))
    return best[1], best[0]


class MajorityClassifier:
    """Predicts the training majority label for every sentence (logit +-1), for tables."""

    def __init__(self, labels):
        self.label = int(np.mean(labels) >= 0.5)

    def scores(self, inputs, batch_size=500):
        return np.full(np.asarray(inputs).shape[0], 1.0 if self.label else -1.0)


def _subset(data, ids, val_ids=None):
    """A data dict for the solver: train = rows ``ids`` of train, val = rows ``val_ids`` (or none)."""
    out = {k: data[k] for k in ("word_to_ix", "max_length")}
    out["train_inxs"], out["train_labels"] = data["train_inxs"][ids], data["train_labels"][ids]
    if val_ids is not None:
        out["val_inxs"], out["val_labels"] = data["train_inxs"][val_ids], data["train_labels"][val_ids]
    return out


def _mcc_at(model, inputs, labels, threshold=0.0):
    z = np.asarray(to_numpy(model.scores(inputs)), dtype=np.float64)
    return metrics.matthews_corrcoef(labels, (z >= threshold).astype(np.int64))


def select_on_holdout(kind, data, holdout=0.1, seed=0, refit=False, candidates=None, class_weight="balanced",
                      tune_threshold=False, model_options=None, lr=None, epochs=None, batch_size=None,
                      lr_decay=None, grad_clip=None, device="cpu", checkpoint=None, resume=False, verbose=True,
                      log=print, holdout_seed=None, divergence_factor=None):
    """Train a classifier choosing everything on a held-out slice of train; the report sets are not read.

    Inputs:
    - kind: 'majority', 'ngram' (:class:`cs231n.classifiers.ngram.NgramClassifier`, its ``reg`` chosen
      from :data:`NGRAM_REGS`) or a kind of :data:`MODEL_DEFAULTS` (its epoch chosen).
    - data: a data dict (:func:`cs231n.cola_tsv.load_classification_data`); only its train split is used.
    - holdout: the share of train held out (:func:`holdout_split` with ``holdout_seed``, by default
      ``seed``, which also seeds the weights and minibatches).
    - refit: after choosing, train a fresh model on all of train with the chosen options (for the
      solver's models: for the chosen number of epochs) instead of keeping the model fit without the
      holdout.
    - candidates: list of dicts of options to choose between (for 'ngram' model options such as
      ``{'reg': 1e-4}``; for the solver's models any of :data:`SOLVER_OPTIONS` ('word_dropout': see
      :class:`ClassificationSolver`) and model constructor options); None: the defaults (for 'ngram'
      one per NGRAM_REGS).
    - class_weight: None or 'balanced'.
    - tune_threshold: also choose the logit threshold on the holdout (:func:`choose_threshold`); else 0.
    - model_options, lr, epochs, batch_size, lr_decay: the defaults every candidate starts from.
    - grad_clip: the solver's gradient-norm limit. device: where the solver's models train.
    - checkpoint, resume: the solver's checkpoint file for the selection run (one candidate only), and
      whether to continue it.
    - divergence_factor: the solvers stop when the loss stays above this many times its first value
      (:class:`cs231n.solver.Solver`; None: only at NaN/inf).

    Returns a dict: 'model' (the final model, with ``scores``), 'threshold', 'chosen' (the options,
    'epoch' for the solver's models), 'holdout_mcc' (of the chosen candidate, at its threshold),
    'selection' (one entry per candidate: options, epoch, holdout MCC), 'refit' (bool), 'num_fit',
    'num_holdout', 'train_seconds', 'history' (per-epoch entries of the chosen candidate) and for the
    solver's models 'loss_history' (its per-iteration losses).
    """
    if kind not in HONEST_KINDS:
        raise ValueError(f"kind must be one of {HONEST_KINDS}, got {kind!r}")
    t0 = time.perf_counter()
    X, y = data["train_inxs"], data["train_labels"]
    fit_ids, hold_ids = holdout_split(X.shape[0], holdout, seed if holdout_seed is None else holdout_seed)
    result = {"refit": bool(refit), "num_fit": int(fit_ids.size), "num_holdout": int(hold_ids.size),
              "selection": [], "history": []}
    if kind == "majority":
        model = MajorityClassifier(y if refit else y[fit_ids])
        result.update(model=model, threshold=0.0, chosen={}, holdout_mcc=_mcc_at(model, X[hold_ids], y[hold_ids]),
                      train_seconds=time.perf_counter() - t0)
        return result
    best = None
    if kind == "ngram":
        from cs231n.classifiers.ngram import NgramClassifier

        base = dict(model_options or {})
        for cand in candidates or [{"reg": r} for r in NGRAM_REGS]:
            options = dict(base, **cand)
            model = NgramClassifier(data["word_to_ix"], max_length=data["max_length"], **options)
            model.fit(X[fit_ids], y[fit_ids], class_weight=class_weight)
            entry = _score_candidate(model, X[hold_ids], y[hold_ids], tune_threshold, options, None)
            result["selection"].append({k: v for k, v in entry.items() if k != "model"})
            if verbose:
                log("  holdout MCC %.3f (threshold %.2f) for %s" % (entry["holdout_mcc"], entry["threshold"], options))
            if best is None or entry["holdout_mcc"] > best["holdout_mcc"]:
                best = entry
        model = best["model"]
        if refit:
            model = NgramClassifier(data["word_to_ix"], max_length=data["max_length"], **best["options"])
            model.fit(X, y, class_weight=class_weight)
    else:
        d = MODEL_DEFAULTS[kind]
        base = {"lr": d["lr"] if lr is None else lr, "epochs": d["epochs"] if epochs is None else epochs,
                "batch_size": d["batch_size"] if batch_size is None else batch_size,
                "lr_decay": d["lr_decay"] if lr_decay is None else lr_decay, "word_dropout": 0.0,
                "pretrain_epochs": 0}
        if checkpoint is not None and candidates is not None and len(candidates) > 1:
            raise ValueError("a checkpoint can follow one candidate only; give one or none")
        for cand in candidates or [{}]:
            options = dict(base, **(model_options or {}))
            options.update(cand)
            solver_opts = {k: options.pop(k) for k in SOLVER_OPTIONS}
            model = build_classifier(kind, data, seed=seed, **options).to(device)
            _fit_ngrams(model, X[fit_ids])
            _pretrain(model, X[fit_ids], solver_opts, seed)
            solver = ClassificationSolver(model, _subset(data, fit_ids, hold_ids), update_rule="adam",
                                          optim_config={"learning_rate": solver_opts["lr"]},
                                          lr_decay=solver_opts["lr_decay"], batch_size=solver_opts["batch_size"],
                                          num_epochs=solver_opts["epochs"], seed=seed, class_weight=class_weight,
                                          word_dropout=solver_opts["word_dropout"],
                                          grad_clip=grad_clip, num_train_eval=0, val_name="holdout",
                                          checkpoint_name=checkpoint, resume_from=checkpoint if resume else None,
                                          verbose=verbose, print_every=10 ** 9, progress="lines",
                                          divergence_factor=divergence_factor)
            solver.train()
            model.params.update(solver.best_params)
            epoch = int(max(solver.val_history, key=lambda e: e["val_mcc"])["epoch"])  # first best wins
            entry = _score_candidate(model, X[hold_ids], y[hold_ids], tune_threshold, dict(options, **solver_opts),
                                     epoch)
            entry["history"], entry["loss_history"] = solver.val_history, solver.loss_history
            result["selection"].append({k: v for k, v in entry.items()
                                        if k not in ("model", "history", "loss_history")})
            if verbose:
                log("  holdout MCC %.3f (threshold %.2f) at epoch %d of %s" % (
                    entry["holdout_mcc"], entry["threshold"], epoch, entry["options"]))
            if best is None or entry["holdout_mcc"] > best["holdout_mcc"]:
                best = entry
        model = best["model"]
        result["history"], result["loss_history"] = best["history"], best["loss_history"]
        if refit:
            options = dict(best["options"])
            solver_opts = {k: options.pop(k) for k in SOLVER_OPTIONS}
            model = build_classifier(kind, data, seed=seed, **options).to(device)
            _fit_ngrams(model, X)
            _pretrain(model, X, solver_opts, seed)
            ClassificationSolver(model, _subset(data, np.arange(X.shape[0])), update_rule="adam",
                                 optim_config={"learning_rate": solver_opts["lr"]}, lr_decay=solver_opts["lr_decay"],
                                 batch_size=solver_opts["batch_size"], num_epochs=best["epoch"], seed=seed,
                                 word_dropout=solver_opts["word_dropout"],
                                 class_weight=class_weight, grad_clip=grad_clip, num_train_eval=0, verbose=False,
                                 progress="lines", divergence_factor=divergence_factor).train()
    chosen = dict(best["options"])
    if best["epoch"] is not None:
        chosen["epoch"] = best["epoch"]
    result.update(model=model, threshold=best["threshold"], chosen=chosen, holdout_mcc=best["holdout_mcc"],
                  train_seconds=time.perf_counter() - t0)
    return result


def _fit_ngrams(model, inputs):
    """A Transformer with an n-gram term (``ngram_n`` > 0) gets its n-grams from the rows it trains on."""
    if getattr(model, "ngram_n", 0):
        model.fit_ngrams(inputs)


def _pretrain(model, inputs, options, seed):
    """Masked-word pre-training of a Transformer for ``options['pretrain_epochs']`` epochs (0: none)."""
    if not options["pretrain_epochs"]:
        return
    from cs231n.classifiers.classification_transformer import ClassificationTransformer
    from cs231n.classifiers.pretraining import masked_word_pretrain

    if not isinstance(model, ClassificationTransformer):
        raise ValueError(f"pretrain_epochs: only the Transformer is pre-trained, not a {type(model).__name__}")
    masked_word_pretrain(model, inputs, epochs=int(options["pretrain_epochs"]), batch_size=options["batch_size"],
                         seed=seed)


def _score_candidate(model, inputs, labels, tune_threshold, options, epoch):
    z = np.asarray(to_numpy(model.scores(inputs)), dtype=np.float64)
    if tune_threshold:
        threshold, mcc = choose_threshold(z, labels)
    else:
        threshold, mcc = 0.0, metrics.matthews_corrcoef(labels, (z >= 0).astype(np.int64))
    return {"model": model, "options": options, "epoch": epoch, "threshold": threshold, "holdout_mcc": mcc}


def report_scores(model, data, threshold=0.0, num_samples=1000, seed=0):
    """Scores of ``model`` on every report set of ``data['eval_sets']`` (each read once), with bootstrap
    95% intervals: dict set name -> :func:`cs231n.metrics.scores_with_intervals`."""
    out = {}
    for name, ev in data["eval_sets"].items():
        z = np.asarray(to_numpy(model.scores(ev["inxs"])), dtype=np.float64)
        out[name] = metrics.scores_with_intervals(ev["labels"], (z >= threshold).astype(np.int64),
                                                  num_samples=num_samples, seed=seed)
    return out


def format_score(s):
    """'MCC 0.123 [0.050, 0.190], accuracy 0.650 [0.610, 0.690]' for one set's scores."""
    return "MCC %.3f [%.3f, %.3f], accuracy %.3f [%.3f, %.3f]" % (
        s["mcc"], s["mcc_ci"][0], s["mcc_ci"][1], s["accuracy"], s["accuracy_ci"][0], s["accuracy_ci"][1])


KIND_NAMES = {"majority": "majority class", "bow": "bag of words (LR on counts)",
              "ngram": "word 1-3-gram LR", "lstm": "LSTM", "transformer": "Transformer"}


def take_train(data, max_train, seed):
    """``data`` with only ``max_train`` training sentences (a seeded draw), or unchanged for None."""
    if max_train is None or max_train >= len(data["train_labels"]):
        return data
    if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 2:
        raise ValueError(f"max_train must be None or an int >= 2, got {max_train!r}")
    keep = np.sort(np.random.default_rng(seed).choice(len(data["train_labels"]), size=int(max_train), replace=False))
    data = dict(data)
    for key in ("train_inxs", "train_labels", "train_cls_positions"):
        data[key] = data[key][keep]
    if "train_sentences" in data:
        data["train_sentences"] = [data["train_sentences"][i] for i in keep]
    return data


def describe_data(data, holdout, seed):
    """Lines that say what was read and how: format, layouts, tokenization, vocabulary, splits."""
    n = len(data["train_labels"])
    lines = [f"data: {data['base_dir']} ({n} training sentences, {100 * data['train_labels'].mean():.1f}% "
             f"acceptable, vocabulary {len(data['word_to_ix'])} with UNK/CLS/PAD, rows of T = {data['max_length']})"]
    if data.get("format") == "tsv":
        for name, layout in data["layout"].items():
            lines.append(f"  {name}: {layout}")
        lines.append(f"  tokenization: {data['tokenization']}, lower-cased; vocabulary: training words seen "
                     f">= {data['min_count']} times")
    size = holdout_split(n, holdout, seed)[1].size
    lines.append(f"every choice is made on a held-out {size} of the training sentences ({100 * holdout:g}%, "
                 f"seed {seed}); the report sets are scored once at the end:")
    for name, ev in data["eval_sets"].items():
        lines.append(f"  {name}: {len(ev['labels'])} sentences, {100 * np.mean(ev['labels']):.1f}% acceptable, "
                     f"{100 * ev['unk_rate']:.1f}% of tokens UNK" + (f", {ev['truncated']} cut to T" if ev["truncated"] else ""))
    return lines


def table_row(kind, result, scores, label=None):
    """One row of :func:`holdout_table` from a :func:`select_on_holdout` result and its report scores."""
    return {"model": label or KIND_NAMES[kind], "kind": kind, "holdout_mcc": result["holdout_mcc"],
            "chosen": result["chosen"], "threshold": result["threshold"], "refit": result["refit"],
            "train_seconds": result["train_seconds"], "eval": scores}


def holdout_table(data, kinds=("majority", "bow", "ngram", "lstm", "transformer"), holdout=0.1, seed=0, refit=False,
                  class_weight="balanced", options=None, verbose=False):
    """One table, measured in this call: each kind chosen on the holdout (:func:`select_on_holdout`) and
    scored once on every report set of ``data``.

    ``options`` maps a kind to keyword arguments of :func:`select_on_holdout` (e.g. ``{'lstm':
    {'epochs': 4}}``). Returns a list of rows: 'model', 'kind', 'holdout_mcc', 'chosen', 'threshold',
    'refit', 'train_seconds' and 'eval' (set name -> :func:`cs231n.metrics.scores_with_intervals`).
    """
    rows = []
    for kind in kinds:
        kw = dict((options or {}).get(kind, {}))
        label = kw.pop("label", None)
        result = select_on_holdout(kind, data, holdout=holdout, seed=seed, refit=refit, class_weight=class_weight,
                                   verbose=verbose, **kw)
        rows.append(table_row(kind, result, report_scores(result["model"], data, result["threshold"], seed=seed),
                               label))
    return rows


def format_holdout_table(rows):
    """The rows of :func:`holdout_table` as a Markdown table: per report set MCC [95% CI] and accuracy."""
    names = list(rows[0]["eval"])
    head = "| model | holdout MCC | " + " | ".join(f"{n} MCC [95% CI] | {n} accuracy" for n in names) + " | train s |"
    lines = [head, "|" + "---|" * (3 + 2 * len(names))]
    for r in rows:
        cells = []
        for n in names:
            s = r["eval"][n]
            cells += ["%.3f [%.3f, %.3f]" % (s["mcc"], s["mcc_ci"][0], s["mcc_ci"][1]), "%.3f" % s["accuracy"]]
        lines.append("| %s | %.3f | %s | %.0f |" % (r["model"], r["holdout_mcc"], " | ".join(cells), r["train_seconds"]))
    return "\n".join(lines)


class EnsembleClassifier:
    """Scores ``sum_i weights[i] * models[i].scores(inputs)``: seed ensembles (equal weights) and
    combinations of different models (weights chosen on the holdout by :func:`choose_combination`)."""

    def __init__(self, models, weights=None):
        if not models:
            raise ValueError("EnsembleClassifier needs at least one model")
        self.models = list(models)
        self.weights = [1.0 / len(models)] * len(models) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.models):
            raise ValueError(f"EnsembleClassifier: {len(self.models)} models but {len(self.weights)} weights")

    def scores(self, inputs, batch_size=500):
        return sum(w * np.asarray(to_numpy(m.scores(inputs, batch_size)), dtype=np.float64)
                   for w, m in zip(self.weights, self.models))


def choose_combination(first, second, data, holdout=0.1, seed=0, weights=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0, np.inf)):
    """Combine two models chosen on the same holdout, ``z = z_first + a * z_second``, with ``a`` chosen
    from ``weights`` by holdout MCC at threshold 0 (``inf``: the second alone).

    Inputs:
    - first, second: results of :func:`select_on_holdout` with this ``holdout`` and ``seed`` and
      without refit (their models never saw the holdout).
    - data: the data dict they were trained on.

    Returns a result dict like :func:`select_on_holdout`'s ('model' an :class:`EnsembleClassifier`,
    'chosen' {'weight': a}, 'holdout_mcc', 'threshold' 0, 'selection', 'train_seconds' the sum).
    """
    for r in (first, second):
        if r["refit"]:
            raise ValueError("choose_combination needs models fit without the holdout (refit=False)")
    X, y = data["train_inxs"], data["train_labels"]
    _, hold = holdout_split(X.shape[0], holdout, seed)
    if hold.size != first["num_holdout"] or hold.size != second["num_holdout"]:
        raise ValueError("choose_combination: the two models were not chosen on this holdout")
    z1 = np.asarray(to_numpy(first["model"].scores(X[hold])), dtype=np.float64)
    z2 = np.asarray(to_numpy(second["model"].scores(X[hold])), dtype=np.float64)
    best, selection = None, []
    for a in weights:
        z = z2 if np.isinf(a) else z1 + a * z2
        mcc = metrics.matthews_corrcoef(y[hold], (z >= 0).astype(np.int64))
        selection.append({"weight": float(a), "holdout_mcc": mcc})
        if best is None or mcc > best[1]:
            best = (a, mcc)
    a = best[0]
    pair = ([second["model"]], [1.0]) if np.isinf(a) else ([first["model"], second["model"]], [1.0, a])
    return {"model": EnsembleClassifier(*pair), "chosen": {"weight": float(a)}, "holdout_mcc": best[1],
            "threshold": 0.0, "selection": selection, "refit": False, "num_fit": first["num_fit"],
            "num_holdout": first["num_holdout"], "history": [],
            "train_seconds": first["train_seconds"] + second["train_seconds"]}


def seed_ensemble(results, data, holdout=0.1, seed=0):
    """The equal-weight average of the logits of models chosen on one holdout (``holdout``, ``seed``;
    e.g. models of several initialisation seeds), as a result dict; its holdout MCC is the ensemble's at
    threshold 0 (meaningful when no member was refit)."""
    model = EnsembleClassifier([r["model"] for r in results])
    X, y = data["train_inxs"], data["train_labels"]
    _, hold = holdout_split(X.shape[0], holdout, seed)
    return {"model": model, "chosen": {"members": len(results)}, "threshold": 0.0,
            "refit": any(r["refit"] for r in results), "selection": [], "history": [],
            "num_fit": results[0]["num_fit"], "num_holdout": results[0]["num_holdout"],
            "holdout_mcc": _mcc_at(model, X[hold], y[hold]),
            "train_seconds": sum(r["train_seconds"] for r in results)}
