"""Word n-gram logistic regression for sentence classification, with a sparse n-gram index in numpy.

Each sentence (a row of word indices as :mod:`cs231n.classifiers.sentence` reads them: words, CLS,
PAD) becomes the token sequence ``<s> w_1 ... w_L </s>`` (the boundary tokens let the model see which
words start and end a sentence) and the set of its n-grams, n = 1..max_n. An n-gram of tokens
``t_1..t_n`` is one int64 key, ``sum_i (t_i + 1) * D**(n - i)`` with digits ``t + 1`` in ``1..V+2``
(``D = V + 3``; ``<s>`` = V, ``</s>`` = V + 1), so n-grams of different lengths never share a key.

:class:`NgramIndex` holds the sorted keys seen in training (at least ``min_count`` times) and turns
rows into a compressed sparse row (CSR) matrix (:class:`SparseRows`: ``indptr``, ``indices``,
``values``), one feature per distinct n-gram of the sentence (value 1, or ``1 / sqrt(count of the
sentence's n-grams)`` with ``normalize``). Products with a weight vector are ``np.bincount`` sums over
the stored entries, in both directions.

:class:`NgramClassifier` is logistic regression on those features, ``z = X w + b``, with
``0.5 * reg * |w|^2`` added to the loss; :meth:`NgramClassifier.fit` builds the index from the
training rows and minimises the (optionally class-balanced) loss with full-batch Adam of
:mod:`cs231n.optim`.

Letters: N sentences, T positions, V vocabulary size, F n-gram features, E stored entries.
"""
import numpy as np

from cs231n.classifiers.sentence import SentenceClassifier, _positive_int
from cs231n.cola_utils import check_binary_labels
from cs231n.optim import adam


class SparseRows:
    """An (N, F) sparse matrix in CSR form: row i's entries are ``indices[indptr[i]:indptr[i+1]]``
    (column ids, int64) with ``values`` at the same places."""

    def __init__(self, indptr, indices, values, num_features):
        self.indptr, self.indices, self.values = indptr, indices, values
        self.shape = (indptr.shape[0] - 1, int(num_features))
        self.rows = np.repeat(np.arange(self.shape[0]), np.diff(indptr))  # (E,) row of each entry

    def dot(self, w):
        """X w for w of shape (F,): (N,)."""
        return np.bincount(self.rows, weights=self.values * w[self.indices], minlength=self.shape[0])

    def tdot(self, d):
        """X^T d for d of shape (N,): (F,)."""
        return np.bincount(self.indices, weights=self.values * d[self.rows], minlength=self.shape[1])

    def toarray(self):
        """The dense (N, F) matrix (for tests and small inputs)."""
        out = np.zeros(self.shape)
        np.add.at(out, (self.rows, self.indices), self.values)
        return out


def sentence_tokens(inputs, vocab_size, special):
    """(N, T + 2) int64: ``<s>`` (V), the row's words (``special`` indices, e.g. CLS and PAD, left out),
    ``</s>`` (V + 1), then -1."""
    inputs = np.asarray(inputs)
    N, T = inputs.shape
    keep = np.ones(inputs.shape, dtype=bool)
    for s in special:
        if s is not None:
            keep &= inputs != s
    lengths = keep.sum(axis=1)                                           # (N,)
    seq = np.full((N, T + 2), -1, dtype=np.int64)
    seq[:, 0] = vocab_size
    rows, cols = np.nonzero(keep)
    seq[rows, 1 + np.cumsum(keep, axis=1)[rows, cols] - 1] = inputs[rows, cols]
    seq[np.arange(N), lengths + 1] = vocab_size + 1
    return seq


def ngram_keys(seq, vocab_size, max_n):
    """Every n-gram (n = 1..max_n) of the token rows ``seq`` (-1 = none) as (row ids, int64 keys)."""
    D = vocab_size + 3
    if D ** max_n >= 2 ** 63:
        raise ValueError(f"ngram_keys: a vocabulary of {vocab_size} words is too large for {max_n}-gram keys")
    N, L = seq.shape
    all_rows, all_keys = [], []
    for n in range(1, max_n + 1):
        if n > L:
            break
        width = L - n + 1
        key = np.zeros((N, width), dtype=np.int64)
        valid = np.ones((N, width), dtype=bool)
        for i in range(n):
            part = seq[:, i:i + width]
            valid &= part >= 0
            key = key * D + (part + 1)
        r, c = np.nonzero(valid)
        all_rows.append(r)
        all_keys.append(key[r, c])
    return np.concatenate(all_rows), np.concatenate(all_keys)


class NgramIndex:
    """The n-grams seen in training and the CSR features of any rows (see the module docstring)."""

    def __init__(self, keys, vocab_size, max_n, special):
        self.keys = np.asarray(keys, dtype=np.int64)                     # (F,) sorted
        self.vocab_size, self.max_n, self.special = int(vocab_size), int(max_n), tuple(special)

    @classmethod
    def fit(cls, inputs, vocab_size, max_n=3, special=(), min_count=1):
        """The index of the n-grams occurring in at least ``min_count`` of the rows ``inputs``."""
        rows, keys = ngram_keys(sentence_tokens(inputs, vocab_size, special), vocab_size, max_n)
        pairs = np.unique(np.stack([keys, rows]), axis=1)                # one per (n-gram, row)
        uniq, counts = np.unique(pairs[0], return_counts=True)
        return cls(uniq[counts >= min_count], vocab_size, max_n, special)

    @property
    def num_features(self):
        return int(self.keys.shape[0])

    def transform(self, inputs, normalize=False, dtype=np.float64):
        """:class:`SparseRows` (N, F) of ``inputs``: 1 for each distinct known n-gram of a row (n-grams
        outside the index are dropped), divided by the square root of the row's count with ``normalize``."""
        inputs = np.asarray(inputs)
        rows, keys = ngram_keys(sentence_tokens(inputs, self.vocab_size, self.special), self.vocab_size,
                                self.max_n)
        F = self.num_features
        pos = np.minimum(np.searchsorted(self.keys, keys), max(F - 1, 0))
        known = (self.keys[pos] == keys) if F else np.zeros(keys.shape, dtype=bool)
        flat = np.unique(rows[known] * max(F, 1) + pos[known])           # sorted by row, then feature
        N = inputs.shape[0]
        r, f = flat // max(F, 1), flat % max(F, 1)
        indptr = np.zeros(N + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(r, minlength=N))
        values = np.ones(f.shape[0], dtype=dtype)
        if normalize:
            per_row = np.diff(indptr)
            values /= np.sqrt(np.maximum(per_row, 1))[r]
        return SparseRows(indptr, f.astype(np.int64), values, F)


class NgramClassifier(SentenceClassifier):
    """Logistic regression on word 1..max_n-grams with sentence-boundary tokens (module docstring).

    Parameters: ``W`` (F, 1) and ``b`` (1,), zero at the start (the loss is convex). The n-gram keys
    (the index) are part of the configuration, so a saved model carries them; a model made without
    ``ngrams`` has no features until :meth:`fit` builds them.
    """

    def __init__(self, word_to_ix, max_length=43, max_n=3, ngrams=None, reg=1e-3, normalize=True,
                 dtype=np.float32, seed=None):
        fn = "NgramClassifier"
        self._init_common(fn, word_to_ix, max_length, dtype)
        self.max_n = _positive_int(fn, "max_n", max_n)
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
            raise ValueError(f"{fn}: reg must be a number >= 0, got {reg!r}")
        self.reg = float(reg)
        self.normalize = bool(normalize)
        keys = np.zeros(0, dtype=np.int64) if ngrams is None else np.asarray(ngrams, dtype=np.int64)
        if keys.ndim != 1 or np.any(np.diff(keys) <= 0):
            raise ValueError(f"{fn}: ngrams must be a sorted list of distinct int keys")
        self._set_index(NgramIndex(keys, self.vocab_size, self.max_n, (self.cls_index, self.pad_index)))

    def _set_index(self, index):
        self.index = index
        self.params = {"W": np.zeros((index.num_features, 1), dtype=self.dtype),
                       "b": np.zeros(1, dtype=self.dtype)}

    def _own_config(self):
        return {"max_n": self.max_n, "ngrams": self.index.keys.tolist(), "reg": self.reg,
                "normalize": self.normalize}

    def features(self, inputs):
        """The CSR n-gram features (:class:`SparseRows`) of rows of word indices."""
        return self.index.transform(inputs, self.normalize, self.dtype)

    def _forward(self, inputs, training):
        X = self.features(inputs)
        return self._forward_features(X), X

    def _forward_features(self, X):
        return (X.dot(self.params["W"][:, 0]) + self.params["b"][0]).astype(self.dtype)

    def _backward(self, dz, X):
        return {"W": X.tdot(dz)[:, None].astype(self.dtype), "b": np.array([dz.sum()], dtype=self.dtype)}

    def _penalty(self):
        W = self.params["W"]
        return 0.5 * self.reg * float((W * W).sum()), {"W": self.reg * W}

    def fit(self, inputs, labels, class_weight="balanced", iterations=300, learning_rate=0.05, min_count=1):
        """Build the n-gram index from ``inputs`` (n-grams in at least ``min_count`` rows) and fit W, b
        by full-batch Adam (``iterations`` steps of ``learning_rate``) from zero.

        ``class_weight='balanced'`` weighs each sentence ``N / (2 * count of its class)``, as
        :class:`cs231n.classification_solver.ClassificationSolver` does; None weighs each 1.

        Returns the list of the losses (one per iteration, before its step).
        """
        from cs231n.layers import sigmoid_cross_entropy_loss

        fn = "NgramClassifier.fit"
        inputs = self.check_inputs(fn, inputs)
        labels = check_binary_labels(labels, inputs.shape[0], f"{fn}: labels", "inputs")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"{fn}: class_weight must be None or 'balanced', got {class_weight!r}")
        _positive_int(fn, "iterations", iterations)
        self._set_index(NgramIndex.fit(inputs, self.vocab_size, self.max_n, (self.cls_index, self.pad_index),
                                       _positive_int(fn, "min_count", min_count)))
        weights = None
        if class_weight == "balanced":
            counts = np.bincount(labels, minlength=2)
            if np.any(counts == 0):
                raise ValueError(f"{fn}: class_weight='balanced' needs both classes, got counts {counts.tolist()}")
            weights = (labels.shape[0] / (2.0 * counts))[labels].astype(self.dtype)
        X = self.features(inputs)
        configs = {name: {"learning_rate": learning_rate} for name in self.params}
        history = []
        for _ in range(iterations):
            z = self._forward_features(X)
            loss, dz = sigmoid_cross_entropy_loss(z, labels, weights)
            grads = self._backward(dz, X)
            penalty, dpenalty = self._penalty()
            grads["W"] = grads["W"] + dpenalty["W"]
            history.append(float(loss + penalty))
            for name in self.params:
                self.params[name], configs[name] = adam(self.params[name], grads[name], configs[name])
        return history
