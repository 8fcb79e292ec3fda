"""Sentence classifiers by kind for CoLA: each kind's defaults (:data:`MODEL_DEFAULTS`), building and
fitting one (:func:`build_classifier`, :func:`fit_classifier`), and the classic table of the majority
class and the bag-of-words and LSTM baselines measured in one run (:func:`baseline_table`).
"""
import time

import numpy as np

from cs231n import metrics
from cs231n.classification_solver import ClassificationSolver

# Defaults per model kind: constructor options and solver options (measured on CoLA; see the README).
MODEL_DEFAULTS = {
    # Smaller than the classic sizes (H 128, F 2048, heads of 96): on CoLA it scored val MCC 0.083 against
    # 0.045 for the classic sizes (padding mask, CLS readout, dropout 0.1, lr 1e-4), in 1/8 of the time.
    "transformer": dict(model=dict(hidden_dim=64, dim_feedforward=256, dim_k=32, dim_v=32, dim_q=32,
                                   pad_mask=True, readout="mean", dropout=0.2),
                        lr=5e-4, epochs=8, batch_size=32, lr_decay=0.9),
    "lstm": dict(model=dict(wordvec_dim=64, hidden_dim=128), lr=2e-3, epochs=8, batch_size=50, lr_decay=0.9),
    "bow": dict(model=dict(reg=1e-3), lr=1e-2, epochs=10, batch_size=100, lr_decay=0.9),
}


def classifier_class(kind):
    """The class of the sentence classifier ``kind`` ('transformer', 'lstm', 'bow', 'ngram')."""
    from cs231n.classifiers.sentence import BagOfWordsClassifier, LSTMClassifier

    if kind == "ngram":
        from cs231n.classifiers.ngram import NgramClassifier
        return NgramClassifier
    if kind not in MODEL_DEFAULTS:
        raise ValueError(f"model kind must be one of {sorted(MODEL_DEFAULTS)} or 'ngram', got {kind!r}")
    if kind == "bow":
        return BagOfWordsClassifier
    if kind == "lstm":
        return LSTMClassifier
    from cs231n.classifiers.classification_transformer import ClassificationTransformer
    return ClassificationTransformer


def model_options(kind):
    """The constructor options of ``kind`` that a caller may set (those :func:`build_classifier` does not)."""
    import inspect

    fixed = {"self", "word_to_ix", "max_length", "seed", "ngrams"}  # set by the builder, or fitted (ngrams)
    return [name for name in inspect.signature(classifier_class(kind).__init__).parameters if name not in fixed]


def build_classifier(kind, data, seed=0, **options):
    """A fresh sentence classifier of ``kind`` ('transformer', 'lstm', 'bow') for a CoLA data dict.

    ``options`` are constructor options (see :func:`model_options`); an unknown one is a ValueError
    naming it and the valid ones.
    """
    if kind not in MODEL_DEFAULTS:
        raise ValueError(f"model kind must be one of {sorted(MODEL_DEFAULTS)}, got {kind!r}")
    cls = classifier_class(kind)
    valid = model_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"the {kind} classifier has no option {unknown[0]!r}; its options are "
                         f"{', '.join(valid)}")
    kwargs = dict(MODEL_DEFAULTS[kind]["model"])
    kwargs.update(options)
    return cls(data["word_to_ix"], max_length=data["max_length"], seed=seed, **kwargs)


def fit_classifier(model, data, lr, epochs, batch_size, lr_decay=1.0, seed=0, class_weight=None,
                   grad_clip=None, checkpoint=None, resume=False, verbose=True, print_every=50,
                   progress="eta", divergence_factor=None):
    """Train ``model`` with Adam on ``data``; return the solver (its ``best_params`` not yet applied)."""
    solver = ClassificationSolver(model, data, update_rule="adam", optim_config={"learning_rate": lr},
                                  lr_decay=lr_decay, batch_size=batch_size, num_epochs=epochs, seed=seed,
                                  class_weight=class_weight, grad_clip=grad_clip,
                                  checkpoint_name=checkpoint, resume_from=checkpoint if resume else None,
                                  verbose=verbose, print_every=print_every, progress=progress,
                                  divergence_factor=divergence_factor)
    solver.train()
    return solver


def majority_scores(data):
    """Val scores of always predicting the training split's majority label."""
    majority = int(np.mean(data["train_labels"]) >= 0.5)
    labels = data["val_labels"]
    pred = np.full(labels.shape, majority, dtype=np.int64)
    return {"accuracy": metrics.accuracy(labels, pred), "mcc": metrics.matthews_corrcoef(labels, pred),
            "positive_rate": float(pred.mean())}


def baseline_table(data, kinds=("majority", "bow", "lstm"), seed=0, verbose=False, class_weight=None):
    """Val accuracy and MCC of the baselines, each trained with its defaults in this call.

    Inputs:
    - data: a CoLA data dict (:func:`cs231n.cola_utils.load_cola_data`).
    - kinds: which rows: 'majority' (the training majority label for every sentence), 'bow', 'lstm'
      trained with :data:`MODEL_DEFAULTS`, scored with their best-val-MCC epoch.
    - seed: initialization and minibatch seed.
    - class_weight: None or 'balanced' (see :class:`ClassificationSolver`).

    Returns a list of dict rows: 'model', 'val_accuracy', 'val_mcc', 'val_positive_rate',
    'train_seconds', 'epochs'.
    """
    rows = []
    for kind in kinds:
        t0 = time.perf_counter()
        if kind == "majority":
            s = majority_scores(data)
            rows.append({"model": "majority class", "val_accuracy": s["accuracy"], "val_mcc": s["mcc"],
                         "val_positive_rate": s["positive_rate"], "train_seconds": 0.0, "epochs": 0})
            continue
        d = MODEL_DEFAULTS[kind]
        model = build_classifier(kind, data, seed=seed)
        solver = fit_classifier(model, data, d["lr"], d["epochs"], d["batch_size"], d["lr_decay"], seed=seed,
                                class_weight=class_weight, verbose=verbose)
        seconds = time.perf_counter() - t0
        if solver.best_params:
            model.params.update(solver.best_params)
        s = model.evaluate(data["val_inxs"], data["val_labels"])
        rows.append({"model": kind, "val_accuracy": s["accuracy"], "val_mcc": s["mcc"],
                     "val_positive_rate": s["positive_rate"], "train_seconds": seconds, "epochs": solver.epoch})
    return rows


def format_table(rows):
    """The rows of :func:`baseline_table` as a Markdown table."""
    lines = ["| model | val accuracy | val MCC | predicted acceptable | train s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %.3f | %.3f | %.0f%% | %.0f |" % (r["model"], r["val_accuracy"], r["val_mcc"],
                                                            100 * r["val_positive_rate"], r["train_seconds"]))
    return "\n".join(lines)
