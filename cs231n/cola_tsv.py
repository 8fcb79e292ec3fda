"""Read CoLA/GLUE sentence-acceptability TSV files as NLP users have them, into the classifiers' rows.

A TSV folder holds ``train.tsv`` and one or more dev files (e.g. ``dev_in_domain.tsv`` and
``dev_out_of_domain.tsv`` of ``../shared/data/cola_public``, or GLUE's ``dev.tsv``). Two layouts are
recognised, each with or without a header line (:func:`detect_tsv_layout` says which it found):

- ``sentence<TAB>label`` (2 columns), as in ``cola_public``;
- GLUE's raw CoLA layout, 4 columns ``source<TAB>label<TAB>original judgement<TAB>sentence``
  (the third column is ``*`` or empty).

A first line whose label column is not 0 or 1 is a header. Labels: 1 acceptable, 0 not.

Tokenization follows the files (:func:`detect_tokenization`): text that is already tokenized (as the
public files are: lower-cased, punctuation and clitics split off, ``wo n't``) is split on whitespace
only; raw text (punctuation attached to words, as in GLUE's ``raw/`` files) has punctuation and the
clitics ``n't 's 're 've 'll 'd 'm`` split off first. Both are lower-cased.

The vocabulary comes from train only (:func:`build_vocabulary`): words seen at least ``min_count``
times, most frequent first, with ``UNK`` = 0 and ``CLS``, ``PAD`` last, as in the course's
preprocessed folder; rows are ``words + [CLS] + [PAD]*k`` (:func:`encode_sentences`), so every
classifier of :mod:`cs231n.classifiers.sentence` reads them as it reads the preprocessed arrays.

:func:`load_classification_data` reads either a TSV folder or the preprocessed-array folder of
:mod:`cs231n.cola_utils` and returns one kind of dict, with the report sets under ``'eval_sets'``.
"""
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from cs231n.cola_utils import CLS, PAD, UNK, WORD_TO_IX_FILE, load_cola_data

TRAIN_FILE = "train.tsv"
LAYOUTS = ("sentence-label", "glue-raw")
_LAYOUT_NAMES = {"sentence-label": "sentence<TAB>label (2 columns)",
                 "glue-raw": "GLUE raw (source, label, judgement, sentence: 4 columns)"}
_CLITICS = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_PUNCT = re.compile(r"([^\w\s'])")
_ATTACHED = re.compile(r"\w[.,!?;:]$")


def detect_tsv_layout(lines, where="the file"):
    """Which layout the (non-empty) ``lines`` of a TSV file have, and whether the first is a header.

    Returns a tuple (layout, has_header): layout is 'sentence-label' or 'glue-raw'. Raises ValueError
    naming ``where`` for a column count other than 2 or 4.
    """
    if not lines:
        raise ValueError(f"{where} holds no lines")
    columns = lines[0].split("\t")
    if len(columns) == 2:
        layout, label = "sentence-label", columns[1]
    elif len(columns) == 4:
        layout, label = "glue-raw", columns[1]
    else:
        raise ValueError(f"{where}, line 1: {len(columns)} tab-separated columns; expected 2 "
                         f"(sentence, label) or 4 (GLUE's source, label, judgement, sentence)")
    return layout, label.strip() not in ("0", "1")


def read_tsv(path):
    """Sentences and labels of one CoLA/GLUE TSV file, and how it was laid out.

    Returns a tuple (sentences, labels, info): sentences a list of str (as written), labels an (N,)
    int64 array of 0/1, info a dict with 'layout', 'header' (bool) and 'description' (str). Raises
    ValueError naming the file and line for a wrong column count, a label other than 0/1 or an empty
    sentence, and FileNotFoundError for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_tsv: no such file: {path}")
    with open(path, encoding="utf-8") as f:
        numbered = [(i, line.rstrip("\r\n")) for i, line in enumerate(f, start=1)]
    numbered = [(i, line) for i, line in numbered if line.strip()]
    layout, header = detect_tsv_layout([line for _, line in numbered], str(path))
    width = 2 if layout == "sentence-label" else 4
    sentences, labels = [], []
    for lineno, line in numbered[1 if header else 0:]:
        columns = line.split("\t")
        if len(columns) != width:
            raise ValueError(f"{path}, line {lineno}: {len(columns)} columns, but the file's layout is "
                             f"{_LAYOUT_NAMES[layout]}")
        sentence, label = (columns[0], columns[1]) if width == 2 else (columns[3], columns[1])
        if label.strip() not in ("0", "1"):
            raise ValueError(f"{path}, line {lineno}: the label {label!r} is not 0 or 1")
        if not sentence.strip():
            raise ValueError(f"{path}, line {lineno}: the sentence is empty")
        sentences.append(sentence)
        labels.append(int(label))
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    description = _LAYOUT_NAMES[layout] + (", with a header line" if header else ", no header")
    return sentences, np.array(labels, dtype=np.int64), {"layout": layout, "header": header,
                                                         "description": description}


def detect_tokenization(sentences):
    """'whitespace' when the sentences look tokenized already, 'split-punctuation' for raw text.

    Raw text is recognised by punctuation attached to the last word (``propose.``): in more than half
    of the sentences of raw CoLA it is, in none of the tokenized files' sentences.
    """
    attached = sum(1 for s in sentences if s.split() and _ATTACHED.search(s.split()[-1]))
    return "split-punctuation" if attached > len(sentences) / 2 else "whitespace"


def tokenize(sentence, mode="whitespace"):
    """The lower-cased tokens of one sentence: split on whitespace ('whitespace'), or with punctuation
    and clitics split off words first ('split-punctuation')."""
    if mode not in ("whitespace", "split-punctuation"):
        raise ValueError(f"tokenize: mode must be 'whitespace' or 'split-punctuation', got {mode!r}")
    words = sentence.lower().split()
    if mode == "whitespace":
        return words
    tokens = []
    for word in words:
        for piece in _PUNCT.sub(r" \1 ", word).split():
            m = _CLITICS.search(piece)
            if m and m.start() > 0:
                tokens += [piece[:m.start()], piece[m.start():]]
            else:
                tokens.append(piece)
    return tokens


def build_vocabulary(token_lists, min_count=1):
    """word -> index from training sentences: UNK = 0, the words seen at least ``min_count`` times
    (most frequent first, ties alphabetical), then CLS and PAD."""
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"build_vocabulary: min_count must be an int >= 1, got {min_count!r}")
    counts = Counter(t for tokens in token_lists for t in tokens)
    for special in (UNK, CLS, PAD):
        counts.pop(special, None)  # a literal 'UNK' in the text is the unknown word anyway
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = {UNK: 0}
    for w in words:
        vocab[w] = len(vocab)
    vocab[CLS] = len(vocab)
    vocab[PAD] = len(vocab)
    return vocab


def encode_sentences(token_lists, word_to_ix, max_length):
    """(N, max_length) int64 rows ``words + [CLS] + [PAD]*k`` (unknown words UNK), and the number of
    sentences cut to their first ``max_length - 1`` words to fit."""
    unk, cls, pad = word_to_ix[UNK], word_to_ix[CLS], word_to_ix[PAD]
    rows = np.full((len(token_lists), max_length), pad, dtype=np.int64)
    cut = 0
    for i, tokens in enumerate(token_lists):
        ids = [word_to_ix.get(t, unk) for t in tokens][:max_length - 1]
        cut += len(tokens) > max_length - 1
        rows[i, :len(ids)] = ids
        rows[i, len(ids)] = cls
    return rows, cut


def is_tsv_folder(path):
    """True when ``path`` is a folder holding ``train.tsv``."""
    return (Path(path) / TRAIN_FILE).is_file()


def dev_files(path):
    """The report files of a TSV folder: every ``*.tsv`` but train.tsv and test files, sorted by name."""
    return sorted(p.name for p in Path(path).glob("*.tsv")
                  if p.name != TRAIN_FILE and not p.name.startswith("test"))


def load_tsv_folder(path, eval_files=None, min_count=2, tokenization="auto"):
    """Read a folder of CoLA/GLUE TSV files into a data dict.

    Inputs:
    - path: the folder, holding ``train.tsv``.
    - eval_files: names (in the folder) or paths of the files to report on; None: every dev file
      (:func:`dev_files`).
    - min_count: vocabulary words must occur this often in train.tsv (rarer ones become UNK).
    - tokenization: 'auto' (:func:`detect_tokenization` on train.tsv), 'whitespace' or
      'split-punctuation'.

    Returns a dict with the keys of :func:`cs231n.cola_utils.load_cola_data` for the training split
    ('train_inxs', 'train_labels', 'train_cls_positions', 'word_to_ix', 'ix_to_word', 'max_length',
    'cls_index', 'pad_index', 'unk_index', 'base_dir'), and 'format' ('tsv'), 'layout' (file name ->
    description), 'tokenization', 'min_count', 'train_sentences' (the token lists), and 'eval_sets':
    name -> dict with 'inxs', 'labels', 'cls_positions', 'truncated' (sentences cut to fit
    max_length = the longest training sentence + 1) and 'unk_rate' (share of tokens that are UNK).
    """
    base = Path(os.fspath(path))
    if not is_tsv_folder(base):
        raise FileNotFoundError(f"load_tsv_folder: {base} has no {TRAIN_FILE}")
    if tokenization not in ("auto", "whitespace", "split-punctuation"):
        raise ValueError(f"load_tsv_folder: tokenization must be 'auto', 'whitespace' or 'split-punctuation', "
                         f"got {tokenization!r}")
    names = dev_files(base) if eval_files is None else list(eval_files)
    if not names:
        raise ValueError(f"load_tsv_folder: {base} has no dev file besides {TRAIN_FILE}; name one with eval_files")
    sentences, labels, info = read_tsv(base / TRAIN_FILE)
    mode = detect_tokenization(sentences) if tokenization == "auto" else tokenization
    tokens = [tokenize(s, mode) for s in sentences]
    vocab = build_vocabulary(tokens, min_count)
    max_length = max(len(t) for t in tokens) + 1
    inxs, _ = encode_sentences(tokens, vocab, max_length)
    ix_to_word = [None] * len(vocab)
    for w, i in vocab.items():
        ix_to_word[i] = w
    data = {"format": "tsv", "base_dir": str(base), "word_to_ix": vocab, "ix_to_word": ix_to_word,
            "max_length": max_length, "cls_index": vocab[CLS], "pad_index": vocab[PAD], "unk_index": vocab[UNK],
            "train_inxs": inxs, "train_labels": labels, "train_cls_positions": _cls_positions(inxs, vocab[CLS]),
            "train_sentences": tokens, "layout": {TRAIN_FILE: info["description"]}, "tokenization": mode,
            "min_count": int(min_count), "eval_sets": {}}
    for name in names:
        file = Path(name) if os.sep in str(name) or Path(name).is_absolute() else base / name
        ev_sentences, ev_labels, ev_info = read_tsv(file)
        ev_tokens = [tokenize(s, mode) for s in ev_sentences]
        ev_inxs, cut = encode_sentences(ev_tokens, vocab, max_length)
        num_tokens = sum(len(t) for t in ev_tokens)
        unk = sum(1 for t in ev_tokens for w in t if w not in vocab)
        data["layout"][file.name] = ev_info["description"]
        data["eval_sets"][file.stem] = {"inxs": ev_inxs, "labels": ev_labels,
                                        "cls_positions": _cls_positions(ev_inxs, vocab[CLS]),
                                        "truncated": int(cut), "unk_rate": unk / max(num_tokens, 1),
                                        "file": str(file)}
    return data


def _cls_positions(inxs, cls_index):
    return np.argmax(inxs == cls_index, axis=1).astype(np.int64)


def load_classification_data(path, eval_files=None, min_count=2, tokenization="auto"):
    """A TSV folder (:func:`load_tsv_folder`) or a preprocessed-array folder
    (:func:`cs231n.cola_utils.load_cola_data`, whose val split becomes the one eval set 'val'), as one
    kind of data dict with 'format' ('tsv' or 'arrays') and 'eval_sets'.

    ``min_count`` and ``tokenization`` apply to TSV folders only (the arrays come with their
    vocabulary); ``eval_files`` must be None for an array folder.
    """
    base = Path(os.fspath(path))
    if is_tsv_folder(base):
        return load_tsv_folder(base, eval_files, min_count, tokenization)
    if not (base / WORD_TO_IX_FILE).is_file():
        raise FileNotFoundError(f"{base} is neither a TSV folder (with {TRAIN_FILE}) nor a preprocessed CoLA "
                                f"folder (with {WORD_TO_IX_FILE}, train/val _inxs.npy and _labels.npy)")
    if eval_files is not None:
        raise ValueError(f"eval files can only be named for a TSV folder; {base} is a preprocessed folder, "
                         f"whose val split is reported")
    data = load_cola_data(base)
    data["format"] = "arrays"
    words = data["val_inxs"][data["val_inxs"] != data["pad_index"]]
    data["eval_sets"] = {"val": {"inxs": data["val_inxs"], "labels": data["val_labels"],
                                 "cls_positions": data["val_cls_positions"], "truncated": 0,
                                 "unk_rate": float(np.mean(words[words != data["cls_index"]] == data["unk_index"])),
                                 "file": str(base / "val_inxs.npy")}}
    return data
