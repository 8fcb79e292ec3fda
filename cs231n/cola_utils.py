"""Load the CoLA sentence-classification data of CS 4803/7643 (or any folder in the same format).

The on-disk format (``../shared/data/cola/README.md``), all in one directory:

- ``word_to_ix.csv``: one ``word,index`` line per vocabulary word, no header; the indices are 0..V-1,
  each once. The special words are ``UNK`` (unknown word), ``CLS`` (the classification token) and
  ``PAD`` (padding).
- ``train_inxs.npy``, ``val_inxs.npy``: (N, T) integer word indices. Each row is the sentence's words,
  then ``CLS``, then ``PAD`` up to T: the CLS token sits at the END of the sentence, not at the start
  (the classic model nevertheless reads its prediction at position 0, the first word).
- ``train_labels.npy``, ``val_labels.npy``: (N,) integers, 1 = acceptable, 0 = not.

:func:`load_cola_data` reads and checks everything (indices inside the vocabulary, one CLS per row with
only PAD after it, labels in {0, 1}, one label per row, no empty split) and raises a ValueError naming
the file, row and value on the first problem.

Letters: N sentences, T positions per row, V vocabulary size.
"""
import os
from pathlib import Path

import numpy as np

from cs231n.backend import check_on_device, get_array_module, to_numpy

WORD_TO_IX_FILE = "word_to_ix.csv"
SPLITS = ("train", "val")
UNK, CLS, PAD = "UNK", "CLS", "PAD"


def default_cola_dir():
    """The default CoLA folder: ``$CS231N_COLA_DIR``, else ``../shared/data/cola`` beside the repository.

    Read at call time, so setting the environment variable after import works.
    """
    override = os.environ.get("CS231N_COLA_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cola"


def inputs_file(split):
    """Name of a split's word-index file, e.g. ``train_inxs.npy``."""
    return f"{split}_inxs.npy"


def labels_file(split):
    """Name of a split's label file, e.g. ``train_labels.npy``."""
    return f"{split}_labels.npy"


def read_word_to_ix(path):
    """Read ``word_to_ix.csv`` into a dict word -> int index.

    Inputs:
    - path: the CSV file: ``word,index`` lines, no header.

    Returns:
    - word_to_ix: dict of str -> int whose values are exactly 0..V-1.

    Raises FileNotFoundError when the file is missing and ValueError naming the file and line for a
    malformed line, a repeated word or index, or indices that are not 0..V-1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_word_to_ix: no such file: {path}")
    word_to_ix = {}
    owner = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            word, sep, index = line.rpartition(",")
            if not sep or not word:
                raise ValueError(f"{path}, line {lineno}: expected 'word,index', got {line!r}")
            try:
                ix = int(index)
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: the index {index!r} is not an integer") from None
            if word in word_to_ix:
                raise ValueError(f"{path}, line {lineno}: the word {word!r} appears twice")
            if ix in owner:
                raise ValueError(f"{path}, line {lineno}: index {ix} is given to both {owner[ix]!r} and {word!r}")
            word_to_ix[word] = ix
            owner[ix] = word
    if not word_to_ix:
        raise ValueError(f"{path} holds no words")
    V = len(word_to_ix)
    outside = sorted(ix for ix in owner if not 0 <= ix < V)
    if outside:
        raise ValueError(f"{path}: the {V} indices must be 0..{V - 1}, each once; found {outside[:5]}")
    return word_to_ix


def check_cola_rows(inputs, vocab_size, cls_index, pad_index, where):
    """Raise ValueError unless every row of ``inputs`` is ``words + [CLS] + [PAD]*k`` with indices < V.

    Inputs:
    - inputs: (N, T) integer array.
    - vocab_size: V.
    - cls_index, pad_index: the indices of CLS and PAD.
    - where: how to name the array in messages (e.g. the file).

    Returns:
    - cls_positions: (N,) int array, the position of CLS in each row.
    """
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.dtype.kind not in "iu":
        raise ValueError(f"{where} must be a 2-D integer array (N, T), got shape {inputs.shape} "
                         f"dtype {inputs.dtype}")
    bad = (inputs < 0) | (inputs >= vocab_size)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{where}: row {r}, position {c} holds word index {inputs[r, c]}, outside the "
                         f"vocabulary [0, {vocab_size})")
    is_cls = inputs == cls_index
    counts = is_cls.sum(axis=1)                                          # (N,)
    if np.any(counts != 1):
        r = int(np.flatnonzero(counts != 1)[0])
        raise ValueError(f"{where}: row {r} holds {counts[r]} CLS tokens (index {cls_index}); each row must "
                         f"be the sentence's words, one CLS, then PAD")
    cls_positions = np.argmax(is_cls, axis=1)                            # (N,)
    T = inputs.shape[1]
    after = np.arange(T)[None, :] > cls_positions[:, None]               # (N, T)
    misplaced = (after & (inputs != pad_index)) | (~after & (inputs == pad_index))
    if misplaced.any():
        r, c = np.argwhere(misplaced)[0]
        what = "a word after CLS" if after[r, c] else "PAD before CLS"
        raise ValueError(f"{where}: row {r} has {what} at position {c}; each row must be the sentence's "
                         f"words, one CLS, then PAD")
    return cls_positions


def check_binary_labels(labels, num_rows, where, rows_where):
    """Return ``labels`` as an int64 (N,) array of 0/1 (GPU labels stay on the GPU), or raise ValueError
    naming ``where``."""
    labels = get_array_module(labels).asarray(labels)
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "biu"):
        raise ValueError(f"{where} must be a 1-D integer array of 0/1 labels, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    if labels.shape[0] != num_rows:
        raise ValueError(f"{where} holds {labels.shape[0]} labels but {rows_where} has {num_rows} rows")
    bad = (labels != 0) & (labels != 1)

    def fail():
        host = to_numpy(labels)
        i = int(np.flatnonzero(to_numpy(bad))[0])
        raise ValueError(f"{where}: label {i} is {host[i]}; labels must be 0 (unacceptable) or 1 (acceptable)")
    check_on_device(~bad.any(), fail)
    return labels.astype(np.int64)


def load_cola_data(base_dir=None, max_train=None, seed=0):
    """Load and check a CoLA-format folder.

    Inputs:
    - base_dir: the folder (default: :func:`default_cola_dir`).
    - max_train: if given, keep only this many training sentences, drawn without replacement with
      ``np.random.default_rng(seed)`` (the val split is always complete).
    - seed: seed of that draw.

    Returns a dict with:
    - 'train_inxs' (N, T) int64, 'train_labels' (N,) int64, likewise 'val_inxs', 'val_labels';
    - 'train_cls_positions', 'val_cls_positions': (N,) int64, where each row's CLS sits;
    - 'word_to_ix': dict word -> int, 'ix_to_word': list of the V words;
    - 'max_length': T; 'cls_index', 'pad_index', 'unk_index': ints;
    - 'base_dir': str.
    """
    base = Path(default_cola_dir() if base_dir is None else os.fspath(base_dir))
    if not base.is_dir():
        raise FileNotFoundError(f"load_cola_data: {base} is not a directory (expected a CoLA-format folder "
                                f"with {WORD_TO_IX_FILE}, train/val _inxs.npy and _labels.npy)")
    required = [WORD_TO_IX_FILE] + [f(s) for s in SPLITS for f in (inputs_file, labels_file)]
    missing = [name for name in required if not (base / name).is_file()]
    if missing:
        raise FileNotFoundError(f"load_cola_data: {base} lacks {', '.join(missing)}")
    word_to_ix = read_word_to_ix(base / WORD_TO_IX_FILE)
    for token in (UNK, CLS, PAD):
        if token not in word_to_ix:
            raise ValueError(f"load_cola_data: {base / WORD_TO_IX_FILE} has no {token!r} entry; the format "
                             f"needs UNK, CLS and PAD")
    V = len(word_to_ix)
    ix_to_word = [None] * V
    for word, ix in word_to_ix.items():
        ix_to_word[ix] = word
    data = {"word_to_ix": word_to_ix, "ix_to_word": ix_to_word, "cls_index": word_to_ix[CLS],
            "pad_index": word_to_ix[PAD], "unk_index": word_to_ix[UNK], "base_dir": str(base)}
    widths = {}
    for split in SPLITS:
        x_path, y_path = base / inputs_file(split), base / labels_file(split)
        inputs = _load_npy(x_path)
        if inputs.ndim == 2 and inputs.shape[0] == 0:
            raise ValueError(f"load_cola_data: {x_path} is empty (shape {inputs.shape}); the {split} split "
                             f"needs at least one sentence")
        cls_positions = check_cola_rows(inputs, V, data["cls_index"], data["pad_index"], str(x_path))
        labels = check_binary_labels(_load_npy(y_path), inputs.shape[0], str(y_path), x_path.name)
        widths[split] = inputs.shape[1]
        data[f"{split}_inxs"] = inputs.astype(np.int64)
        data[f"{split}_labels"] = labels
        data[f"{split}_cls_positions"] = cls_positions.astype(np.int64)
    if widths["train"] != widths["val"]:
        raise ValueError(f"load_cola_data: {inputs_file('train')} has rows of {widths['train']} positions but "
                         f"{inputs_file('val')} of {widths['val']}; both splits must have the same T")
    data["max_length"] = widths["train"]
    if max_train is not None:
        if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1:
            raise ValueError(f"load_cola_data: max_train must be None or an int >= 1, got {max_train!r}")
        num_train = data["train_inxs"].shape[0]
        if max_train < num_train:
            keep = np.sort(np.random.default_rng(seed).choice(num_train, size=int(max_train), replace=False))
            for key in ("train_inxs", "train_labels", "train_cls_positions"):
                data[key] = data[key][keep]
    return data


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"load_cola_data: {path} is not a numeric .npy array ({e})") from e


def decode_sentence(row, ix_to_word, cls_index=None, pad_index=None):
    """The words of one encoded row as a str, without CLS and PAD.

    Inputs:
    - row: (T,) int word indices.
    - ix_to_word: list of the V words.
    - cls_index, pad_index: indices to drop (default: those of 'CLS' and 'PAD' in ix_to_word).

    Returns a str, the words joined by spaces (unknown words show as UNK).
    """
    if cls_index is None:
        cls_index = ix_to_word.index(CLS) if CLS in ix_to_word else -1
    if pad_index is None:
        pad_index = ix_to_word.index(PAD) if PAD in ix_to_word else -1
    return " ".join(ix_to_word[int(i)] for i in np.asarray(row) if i != cls_index and i != pad_index)
