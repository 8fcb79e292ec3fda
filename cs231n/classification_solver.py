"""Training of sentence classifiers on the generic :class:`cs231n.solver.Solver`.

:class:`ClassificationSolver` supplies the Solver's hooks for labelled sentences: every epoch visits
the training sentences in a fresh random order (drawn from the solver's own ``np.random.Generator``,
whose state goes into checkpoints), and ends with the val loss, accuracy and Matthews correlation
coefficient (MCC); the parameters of the best val MCC are kept. Update rules, learning-rate decay,
gradient clipping, the stop on NaN, atomic checkpoints and bit-exact resume come from the Solver.

What is built on it lives beside it: :mod:`cs231n.cola_models` (the classifiers by kind, their defaults
and the classic baseline table), :mod:`cs231n.cola_selection` (every choice on a held-out slice of
train, scores with bootstrap intervals, the table of every model) and :mod:`cs231n.cola_training`
(``classify-train``'s run directories).

Letters: N sentences, T positions, V vocabulary size.
"""

import numpy as np

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
