"""Training of sentence classifiers on the generic :class:`cs231n.solver.Solver`, and the CoLA entry points.

:class:`ClassificationSolver` supplies the Solver's hooks for labelled sentences: every epoch visits
the training sentences in a fresh random order (drawn from the solver's own ``np.random.Generator``,
whose state goes into checkpoints), and ends with the val loss, accuracy and Matthews correlation
coefficient (MCC); the parameters of the best val MCC are kept. Update rules, learning-rate decay,
gradient clipping, the stop on NaN, atomic checkpoints and bit-exact resume come from the Solver.

For the command line:

- :func:`train_sentence_classifier` loads a CoLA-format folder, trains one model (Transformer, LSTM or
  bag of words) and writes its files;
- :func:`baseline_table` scores the majority class and trains the bag-of-words and LSTM baselines, for
  one table measured in one run.

Honest selection (what ``classify-train`` does by default): :func:`select_on_holdout` makes every
choice (epoch, learning rate, regularisation, threshold, combination weights) on a seeded held-out
slice of the training sentences (:func:`holdout_split`), optionally refits on all of train, and
:func:`report_scores` scores each report set once with bootstrap 95% intervals;
:func:`train_with_holdout` is the command's entry point and :func:`holdout_table` the table of
majority, bag of words, n-gram LR, LSTM and Transformer measured in one run.

Letters: N sentences, T positions, V vocabulary size.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

from cs231n import metrics
from cs231n.archive import atomic_write_json
from cs231n.backend import to_numpy
from cs231n.cola_utils import check_binary_labels
from cs231n.solver import Solver

_CLASS_WEIGHTS = (None, "balanced")


def _split(data, split):
    """``data[split + '_inxs']`` (N, T) and ``data[split + '_labels']`` (N,), checked."""
    inputs = np.asarray(data[f"{split}_inxs"])
    if inputs.ndim != 2 or (inputs.size and inputs.dtype.kind not in "iu"):
        raise ValueError(f"data['{split}_inxs'] must be an (N, T) integer array, got shape {inputs.shape} "
                         f"dtype {inputs.dtype}")
    labels = check_binary_labels(data[f"{split}_labels"], inputs.shape[0], f"data['{split}_labels']",
                                 f"data['{split}_inxs']")
    return inputs, labels


class ClassificationSolver(Solver):
    """Trains a sentence classifier (``loss(inputs, labels[, weights])``, ``evaluate``).

    Options: everything of :class:`cs231n.solver.Solver` (``update_rule``, ``optim_config``,
    ``lr_decay``, ``batch_size``, ``num_epochs``, ``grad_clip``, ``seed``, ``checkpoint_name``,
    ``resume_from``, ``init_from``, ``progress``, ...), and:

    - ``class_weight`` (None): ``'balanced'`` weighs each training example by
      ``N / (2 * count of its class)`` in the loss, so both classes weigh the same in total (the
      weights average 1); None weighs every example 1.
    - ``eval_batch_size`` (500): sentences per forward pass in the end-of-epoch evaluation.
    - ``num_train_eval`` (1000): training sentences scored after every epoch (a fixed subset drawn
      with ``np.random.default_rng(seed)``; 0 for none), to compare training and val accuracy.
    - ``val_name`` ('val'): what the per-epoch lines call the val split (e.g. 'holdout' when it is
      a held-out slice of train).
    - ``word_dropout`` (0): the probability with which each word of a training minibatch is replaced
      by UNK (CLS and PAD never are), drawn from the solver's generator; 0 draws nothing.

    A model with a ``np.random.Generator`` in ``model.rng`` (for dropout masks) has its state saved in
    checkpoints and restored on resume, so resumed runs with dropout are bit-exact too.

    An epoch is ``max(N // batch_size, 1)`` iterations; each visits ``batch_size`` sentences of a random
    permutation of the N training sentences made at the start of the epoch (the last N mod batch_size
    sentences of the permutation are skipped in that epoch).

    Attributes (besides those of Solver):
    - val_history: list of dict, one per epoch: 'epoch', 'iteration', 'train_loss' (mean of the
      epoch's iteration losses), 'val_loss', 'val_accuracy', 'val_mcc', 'val_confusion',
      'val_positive_rate' (when there is a val split) and 'train_eval_accuracy', 'train_eval_mcc'
      (when ``num_train_eval`` > 0).
    - best_params / best_val_score: the parameters of the best val MCC and that MCC (the first epoch
      wins ties).
    """

    def __init__(self, model, data, **kwargs):
        """Construct a ClassificationSolver.

        Inputs:
        - model: a sentence classifier with ``params``, ``loss(inputs, labels, weights)`` and
          ``evaluate(inputs, labels, batch_size)``, e.g. from :mod:`cs231n.classifiers.sentence`.
        - data: dict with 'train_inxs' (N, T) int and 'train_labels' (N,) in {0, 1}; optionally
          'val_inxs' and 'val_labels' (as :func:`cs231n.cola_utils.load_cola_data` returns).
        - kwargs: options, see the class docstring.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict (as load_cola_data returns), got {type(data).__name__}")
        missing = [k for k in ("train_inxs", "train_labels") if k not in data]
        if missing:
            raise ValueError(f"data has no key(s) {missing}; it needs 'train_inxs' and 'train_labels'")
        if not callable(getattr(model, "evaluate", None)):
            raise TypeError(f"model must have a method evaluate(inputs, labels, batch_size), "
                            f"{type(model).__name__} has none")
        self.data = data
        self.train_inputs, self.train_labels = _split(data, "train")
        self.val_inputs = self.val_labels = None
        if "val_inxs" in data:
            self.val_inputs, self.val_labels = _split(data, "val")
            if self.val_inputs.shape[0] == 0:
                raise ValueError("data['val_inxs'] is empty; leave the val keys out to train without "
                                 "validation")
        self.class_weight = kwargs.pop("class_weight", None)
        if self.class_weight not in _CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {_CLASS_WEIGHTS}, got {self.class_weight!r}")
        self.eval_batch_size = kwargs.pop("eval_batch_size", 500)
        self.num_train_eval = kwargs.pop("num_train_eval", 1000)
        self.val_name = str(kwargs.pop("val_name", "val"))
        self.word_dropout = kwargs.pop("word_dropout", 0.0)
        if isinstance(self.word_dropout, bool) or not isinstance(self.word_dropout, (int, float)) \
                or not 0 <= self.word_dropout < 1:
            raise ValueError(f"word_dropout must be a number in [0, 1), got {self.word_dropout!r}")
        self._unk_index = None
        if self.word_dropout:
            vocab = data.get("word_to_ix", {})
            if "UNK" not in vocab:
                raise ValueError("word_dropout needs an 'UNK' word in data['word_to_ix'] to replace words with")
            self._unk_index = int(vocab["UNK"])
            self._special = [int(vocab[w]) for w in ("CLS", "PAD") if w in vocab]
        for name in ("eval_batch_size", "num_train_eval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name == "eval_batch_size"):
                raise ValueError(f"{name} must be an int >= {int(name == 'eval_batch_size')}, got {value!r}")
        self.example_weights = None
        if self.class_weight == "balanced":
            counts = np.bincount(self.train_labels, minlength=2)         # (2,)
            if np.any(counts == 0):
                raise ValueError(f"class_weight='balanced' needs both classes in the training labels, "
                                 f"got counts {counts.tolist()}")
            per_class = self.train_labels.shape[0] / (2.0 * counts)
            self.example_weights = per_class[self.train_labels]          # (N,)
        super().__init__(model, **kwargs)

    @property
    def best_val_mcc(self):
        """The best val MCC so far (None before the first validation)."""
        return self.best_val_score

    # ------------------------------------------------------------------ Solver hooks

    def _num_train(self):
        return int(self.train_inputs.shape[0])

    def _setup(self):
        self.rng = np.random.default_rng(self.seed)
        self._order = np.zeros(0, dtype=np.int64)
        num = min(int(self.num_train_eval), self._num_train())
        # A separate generator, so the subset is the same in every run and self.rng is untouched.
        pick = np.random.default_rng(0 if self.seed is None else self.seed)
        self.train_eval_ids = np.sort(pick.choice(self._num_train(), size=num, replace=False))

    def _sample_batch(self):
        k = self.iteration % self.iterations_per_epoch
        if k == 0 or self._order.size == 0:
            self._order = self.rng.permutation(self._num_train())        # (N,)
        idx = self._order[k * self.batch_size:(k + 1) * self.batch_size]
        if idx.size == 0:  # batch_size > N: one iteration per epoch over everything
            idx = self._order
        inputs = self.train_inputs[idx]
        if self.word_dropout:
            drop = self.rng.random(inputs.shape) < self.word_dropout      # (B, T)
            drop &= ~np.isin(inputs, self._special)
            inputs = np.where(drop, self._unk_index, inputs)
        args = (inputs, self.train_labels[idx])
        if self.example_weights is not None:
            args += (self.example_weights[idx],)
        return args

    def _extra_arrays(self):
        return {"order": self._order}

    def _model_rng(self):
        rng = getattr(self.model, "rng", None)
        return rng if isinstance(rng, np.random.Generator) else None

    def _extra_meta(self):
        # A model that draws dropout masks keeps its generator in ``model.rng``; resuming must continue
        # its stream, or the masks (and so the run) would differ from an uninterrupted one.
        rng = self._model_rng()
        return {} if rng is None else {"model_rng": rng.bit_generator.state}

    def _restore_extra(self, arrays, meta):
        if "order" in arrays:
            self._order = arrays["order"].astype(np.int64)
        rng = self._model_rng()
        if "model_rng" in meta and rng is not None:
            rng.bit_generator.state = meta["model_rng"]

    def _config(self):
        config = super()._config()
        config.update(class_weight=self.class_weight, eval_batch_size=int(self.eval_batch_size),
                      num_train_eval=int(self.num_train_eval))
        if self.word_dropout:
            config["word_dropout"] = float(self.word_dropout)
        return config

    def _epoch_end(self):
        recent = self.loss_history[-self.iterations_per_epoch:]
        entry = {"epoch": self.epoch, "iteration": self.iteration, "train_loss": float(np.mean(recent))}
        entry.update(self.evaluate())
        self.val_history.append(entry)
        line = "(Epoch %d / %d) train loss: %.4f" % (self.epoch, self.num_epochs, entry["train_loss"])
        if "train_eval_accuracy" in entry:
            line += ", train acc %.1f%% MCC %.3f" % (100 * entry["train_eval_accuracy"], entry["train_eval_mcc"])
        if "val_mcc" in entry:
            best = self._track_best(entry["val_mcc"])
            line += ", %s loss %.4f acc %.1f%% MCC %.3f (%.0f%% predicted acceptable)%s" % (
                self.val_name, entry["val_loss"], 100 * entry["val_accuracy"], entry["val_mcc"],
                100 * entry["val_positive_rate"], "  *best" if best else "")
        self._log(line)
        return False

    # ------------------------------------------------------------------ evaluation

    def evaluate(self):
        """Scores of the current model: val loss/accuracy/MCC and the training-subset accuracy/MCC."""
        result = {}
        if self.val_inputs is not None:
            scores = self.model.evaluate(self.val_inputs, self.val_labels, batch_size=self.eval_batch_size)
            result.update({"val_" + k: scores[k] for k in ("loss", "accuracy", "mcc", "confusion",
                                                          "positive_rate")})
        if self.train_eval_ids.size:
            ids = self.train_eval_ids
            scores = self.model.evaluate(self.train_inputs[ids], self.train_labels[ids],
                                         batch_size=self.eval_batch_size)
            result.update(train_eval_accuracy=scores["accuracy"], train_eval_mcc=scores["mcc"])
        return result


# ----------------------------------------------------------------------------------------------------
# Entry points for the command line
# ----------------------------------------------------------------------------------------------------

MODEL_FILE = "model.npz"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_FILE = "history.json"
SCORES_FILE = "scores.json"
CURVES_FILE = "curves.png"
OUTPUTS = (MODEL_FILE, CHECKPOINT_FILE, HISTORY_FILE, SCORES_FILE, CURVES_FILE)  # what a run writes

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


# ----------------------------------------------------------------------------------------------------
# Honest selection: every choice on a held-out slice of train, the report sets scored once
# ----------------------------------------------------------------------------------------------------

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
