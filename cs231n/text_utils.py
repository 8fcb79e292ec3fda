"""Text for the word-level language model: tokenizers, a vocabulary with ``<UNK>``, (N, T) windows.

Two tokenizers turn a string into a list of words:

- :func:`classic_tokenize` is the classic assignment's split: lower-case, newlines become spaces, split
  on every single space. Empty strings are kept (two spaces or a blank line give one); they are tokens
  like any other, and on Chapter I of *Alice* the blank lines between paragraphs make ``''`` act as a
  paragraph mark. Chapter I then has 2,170 tokens and 778 distinct ones. Punctuation stays glued to
  its word (``'alice,'`` and ``'alice'`` are different words).
- :func:`word_tokenize` is better for modelling: lower-case words (letters and digits, with inner
  apostrophes and hyphens kept, as in ``alice's`` or ``daisy-chain``) and every other visible
  character as a token of its own, so ``'alice,'`` becomes ``['alice', ',']``.

:func:`build_vocab` numbers the distinct tokens (``<UNK>`` first, then by decreasing count);
:func:`encode` maps tokens to int32 indices; :func:`make_windows` cuts an index stream into inputs and
next-word targets of shape (N, T). Letters: N windows, T timesteps, L stream length.

The shared test text is found by :func:`default_alice_path`; :func:`download_gutenberg_alice` fetches
the whole book from Project Gutenberg for users who want more text.
"""
import collections
import os
import re

import numpy as np
import requests

from cs231n.archive import atomic_write_text

UNK = "<UNK>"

# Plain-text UTF-8 edition of "Alice's Adventures in Wonderland", Project Gutenberg eBook #11.
GUTENBERG_ALICE_URL = "https://www.gutenberg.org/cache/epub/11/pg11.txt"

# Environment variable naming the Alice text, overriding the default ../shared/data/alice.txt.
ALICE_ENV = "CS231N_ALICE_TXT"

TOKENIZERS = ("classic", "words")

# A word: letters/digits, optionally joined by apostrophes (straight or curly) or hyphens to more
# letters/digits. Anything else that is not whitespace is one punctuation token per character.
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*|[^\w\s]|_", re.UNICODE)

# Tokens that attach to the word before them (no space) or to the word after them, when joining.
_NO_SPACE_BEFORE = set(".,;:!?)]}\u2019\u201d%")
_NO_SPACE_AFTER = set("([{\u2018\u201c")


def classic_tokenize(text):
    """Split text as the classic assignment does: lower-case, newlines to spaces, split on ``' '``.

    Every single space separates two tokens, so runs of spaces and blank lines give empty-string tokens,
    and they are kept (the classic code keeps them; a trailing newline gives a final ``''``).

    Inputs:
    - text: str.

    Returns:
    - tokens: list of str.
    """
    if not isinstance(text, str):
        raise TypeError(f"classic_tokenize: text must be a str, got {type(text).__name__}")
    return text.lower().replace("\n", " ").split(" ")


def word_tokenize(text):
    """Split text into lower-case words and single punctuation characters, dropping whitespace.

    Words keep inner apostrophes and hyphens (``alice's``, ``daisy-chain``, curly ``’`` included);
    every other non-space character is a token of its own.

    Inputs:
    - text: str.

    Returns:
    - tokens: list of str, none of them empty.
    """
    if not isinstance(text, str):
        raise TypeError(f"word_tokenize: text must be a str, got {type(text).__name__}")
    return _WORD_RE.findall(text.lower())


def tokenize(text, tokenizer="classic"):
    """Tokenize with the named tokenizer: ``'classic'`` (:func:`classic_tokenize`) or ``'words'``."""
    if tokenizer == "classic":
        return classic_tokenize(text)
    if tokenizer == "words":
        return word_tokenize(text)
    raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")


def join_tokens(tokens, tokenizer="classic"):
    """Turn tokens back into readable text.

    ``'classic'`` tokens are joined with single spaces, which inverts :func:`classic_tokenize` up to
    case and newlines. ``'words'`` tokens are joined with spaces except before closing punctuation
    (``. , ; : ! ? ) ’ ”``) and after opening brackets and quotes (``( ‘ “``).

    Inputs:
    - tokens: iterable of str.
    - tokenizer: ``'classic'`` or ``'words'``.

    Returns a str.
    """
    tokens = list(tokens)
    if tokenizer == "classic":
        return " ".join(tokens)
    if tokenizer != "words":
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    pieces = []
    for i, tok in enumerate(tokens):
        if i > 0 and tok not in _NO_SPACE_BEFORE and tokens[i - 1] not in _NO_SPACE_AFTER:
            pieces.append(" ")
        pieces.append(tok)
    return "".join(pieces)


def build_vocab(tokens, min_count=1, max_size=None):
    """Number the distinct tokens, most frequent first, with ``<UNK>`` at index 0.

    Ties in count are broken by first appearance in ``tokens``, so the vocabulary is deterministic.
    Tokens seen fewer than ``min_count`` times, and those beyond the ``max_size`` most frequent, are
    left out and will be encoded as ``<UNK>``. If the text itself contains the string ``<UNK>`` it
    shares that index.

    Inputs:
    - tokens: list of str.
    - min_count: int >= 1, the fewest occurrences a token needs to get its own index.
    - max_size: int >= 1 or None, the largest vocabulary size V, ``<UNK>`` included.

    Returns a tuple of:
    - word_to_idx: dict str -> int.
    - idx_to_word: list of str of length V, ``idx_to_word[word_to_idx[w]] == w``.
    """
    if isinstance(tokens, str):
        raise TypeError("build_vocab: tokens must be a list of str, got a str (tokenize it first)")
    if not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"build_vocab: min_count must be an int >= 1, got {min_count!r}")
    if max_size is not None and (not isinstance(max_size, (int, np.integer)) or max_size < 1):
        raise ValueError(f"build_vocab: max_size must be None or an int >= 1, got {max_size!r}")
    counts = collections.Counter()
    first = {}
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"build_vocab: tokens[{i}] is a {type(tok).__name__}, expected str")
        counts[tok] += 1
        first.setdefault(tok, i)
    kept = [w for w in counts if w != UNK and counts[w] >= min_count]
    kept.sort(key=lambda w: (-counts[w], first[w]))
    if max_size is not None:
        kept = kept[:max_size - 1]
    idx_to_word = [UNK] + kept
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    return word_to_idx, idx_to_word


def encode(tokens, word_to_idx):
    """Map tokens to their indices; tokens not in the vocabulary get the index of ``<UNK>``.

    Inputs:
    - tokens: list of str, length L.
    - word_to_idx: dict str -> int holding ``<UNK>``.

    Returns:
    - idx: int32 array of shape (L,).
    """
    if UNK not in word_to_idx:
        raise ValueError(f"encode: word_to_idx has no {UNK!r} entry for unknown words")
    unk = word_to_idx[UNK]
    return np.array([word_to_idx.get(t, unk) for t in tokens], dtype=np.int32)


def decode(idx, idx_to_word):
    """Map indices back to tokens.

    Inputs:
    - idx: integer array of shape (L,) (or any iterable of ints) with values in [0, V).
    - idx_to_word: list of str of length V.

    Returns a list of L str.
    """
    idx = np.asarray(idx)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"decode: idx must be a 1-D integer array, got shape {idx.shape} dtype {idx.dtype}")
    V = len(idx_to_word)
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        raise ValueError(f"decode: idx holds values outside [0, {V}) (min {idx.min()}, max {idx.max()})")
    return [idx_to_word[i] for i in idx.tolist()]


def make_windows(stream, T, stride=1):
    """Cut a token-index stream into inputs and their next-token targets, shape (N, T) each.

    Window k starts at ``s = k * stride``: ``inputs[k] = stream[s:s + T]`` and
    ``targets[k] = stream[s + 1:s + T + 1]``, for every k whose targets fit in the stream, so
    ``N = (L - 1 - T) // stride + 1``. ``stride = T`` gives non-overlapping windows, in which every
    token after the first is a target exactly once (the stream's last ``(L - 1) % T`` targets are
    dropped); ``stride = 1`` gives every window, which is what makes a short text like one chapter
    trainable in few epochs (Chapter I of *Alice* has 43 windows of 50 words at stride 50 but 2,120
    at stride 1).

    Inputs:
    - stream: 1-D integer array of length L >= T + 1.
    - T: int >= 1, the window length.
    - stride: int >= 1, the distance between window starts.

    Returns a tuple of:
    - inputs: int32 array of shape (N, T).
    - targets: int32 array of shape (N, T), ``targets[:, :-1] == inputs[:, 1:]``.
    """
    stream = np.asarray(stream)
    if stream.ndim != 1 or (stream.size and stream.dtype.kind not in "iu"):
        raise ValueError(f"make_windows: stream must be a 1-D integer array, got shape {stream.shape} "
                         f"dtype {stream.dtype}")
    for name, value in (("T", T), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"make_windows: {name} must be an int >= 1, got {value!r}")
    L = stream.shape[0]
    if L < T + 1:
        raise ValueError(f"make_windows: the stream has {L} tokens, fewer than T + 1 = {T + 1} "
                         f"needed for one window")
    N = (L - 1 - T) // stride + 1
    starts = np.arange(N) * stride                     # (N,)
    cols = starts[:, None] + np.arange(T)[None, :]     # (N, T)
    s = stream.astype(np.int32, copy=False)
    return s[cols], s[cols + 1]


def prepare_text_data(text, seq_len, tokenizer="classic", stride=1, val_fraction=0.0, min_count=1,
                      max_vocab=None):
    """Tokenize a text, build its vocabulary and cut it into training windows for a language model.

    The token stream is split in two contiguous parts: the first ``1 - val_fraction`` trains, the rest
    validates. The vocabulary comes from the training part only (validation words it lacks become
    ``<UNK>``). Training windows are taken every ``stride`` tokens (:func:`make_windows`); the windows
    used to *measure* training accuracy, loss and perplexity are the non-overlapping ones
    (stride = seq_len), so every training token after the first is scored exactly once per
    evaluation; validation windows are non-overlapping too.

    Inputs:
    - text: str.
    - seq_len: T, int >= 1.
    - tokenizer: ``'classic'`` or ``'words'`` (see :func:`tokenize`).
    - stride: int >= 1, distance between training window starts.
    - val_fraction: float in [0, 1), the share of the stream held out at its end.
    - min_count, max_vocab: passed to :func:`build_vocab` (as ``min_count`` and ``max_size``).

    Returns a dict with:
    - 'train_inputs', 'train_targets': int32 arrays (N, T) of training windows.
    - 'train_eval_inputs', 'train_eval_targets': int32 (N_eval, T), non-overlapping training windows.
    - 'val_inputs', 'val_targets': int32 (N_val, T), empty (0, T) without validation.
    - 'word_to_idx', 'idx_to_word': the vocabulary.
    - 'tokenizer', 'seq_len', 'stride': the arguments; 'num_tokens', 'num_train_tokens': stream sizes.
    """
    if not isinstance(text, str):
        raise TypeError(f"prepare_text_data: text must be a str, got {type(text).__name__}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0 <= val_fraction < 1:
        raise ValueError(f"prepare_text_data: val_fraction must be a number in [0, 1), got {val_fraction!r}")
    for name, value in (("seq_len", seq_len), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"prepare_text_data: {name} must be an int >= 1, got {value!r}")
    tokens = tokenize(text, tokenizer)
    num_val = int(round(len(tokens) * val_fraction))
    train_tokens = tokens[:len(tokens) - num_val]
    if len(train_tokens) < seq_len + 1:
        raise ValueError(f"prepare_text_data: the training text has {len(train_tokens)} tokens, fewer "
                         f"than seq_len + 1 = {seq_len + 1}; use a longer text or a shorter seq_len")
    word_to_idx, idx_to_word = build_vocab(train_tokens, min_count=min_count, max_size=max_vocab)
    train_stream = encode(train_tokens, word_to_idx)
    train_inputs, train_targets = make_windows(train_stream, seq_len, stride)
    eval_inputs, eval_targets = make_windows(train_stream, seq_len, seq_len)
    empty = np.zeros((0, seq_len), dtype=np.int32)
    val_inputs, val_targets = empty, empty.copy()
    if num_val:
        if num_val < seq_len + 1:
            raise ValueError(f"prepare_text_data: val_fraction={val_fraction} leaves {num_val} validation "
                             f"tokens, fewer than seq_len + 1 = {seq_len + 1}")
        val_inputs, val_targets = make_windows(encode(tokens[len(train_tokens):], word_to_idx),
                                               seq_len, seq_len)
    return {"train_inputs": train_inputs, "train_targets": train_targets,
            "train_eval_inputs": eval_inputs, "train_eval_targets": eval_targets,
            "val_inputs": val_inputs, "val_targets": val_targets,
            "word_to_idx": word_to_idx, "idx_to_word": idx_to_word,
            "tokenizer": tokenizer, "seq_len": int(seq_len), "stride": int(stride),
            "num_tokens": len(tokens), "num_train_tokens": len(train_tokens)}


def default_alice_path():
    """Where the shared Alice text is expected: ``$CS231N_ALICE_TXT`` or ``<repo>/../shared/data/alice.txt``.

    ``<repo>`` is the directory holding the ``cs231n`` package. The file need not exist.
    """
    env = os.environ.get(ALICE_ENV)
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(repo, "..", "shared", "data", "alice.txt"))


def read_text(path):
    """Read a UTF-8 text file (a byte-order mark is dropped, line endings normalized to ``\\n``).

    Raises FileNotFoundError for a missing file and ValueError naming the file when it is not UTF-8.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such text file: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (it holds bytes such as {e.object[e.start]:#04x} "
                         f"that UTF-8 does not allow); give a plain-text file, or convert it to UTF-8") from None


def strip_gutenberg_boilerplate(text):
    """Keep only the book between Project Gutenberg's ``*** START OF`` and ``*** END OF`` lines.

    Text without those marker lines is returned unchanged.
    """
    start = re.search(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    end = re.search(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    if start is None or end is None or end.start() <= start.end():
        return text
    return text[start.end():end.start()].strip("\r\n") + "\n"


def download_gutenberg_alice(dest, url=GUTENBERG_ALICE_URL, timeout=60, strip_boilerplate=True):
    """Download the whole of *Alice's Adventures in Wonderland* (Project Gutenberg eBook #11).

    The file is written atomically (temporary file in the destination directory, then renamed), so an
    interrupted download never leaves a partial ``dest``. Needs the internet; the book is public
    domain in the USA (see the Project Gutenberg licence for elsewhere).

    Inputs:
    - dest: path of the text file to write (parent directories are created).
    - url: where to fetch the plain-text UTF-8 edition from.
    - timeout: seconds to wait for the server (connect and each read).
    - strip_boilerplate: keep only the book, without the Project Gutenberg header and licence.

    Returns the path written. Raises ``RuntimeError`` naming the URL when the download fails.
    """
    dest = os.fspath(dest)
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as e:
        raise RuntimeError(f"could not download {url}: {e}") from e
    text = response.content.decode("utf-8-sig", errors="replace").replace("\r\n", "\n")
    if strip_boilerplate:
        text = strip_gutenberg_boilerplate(text)
    atomic_write_text(dest, text)
    return dest
