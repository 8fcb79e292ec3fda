"""Download the cs231n COCO captioning release, and check that a directory holds a complete dataset.

The release is one zip archive (about 1 GB) whose top-level folder ``coco_captioning/`` holds the eight
files of the on-disk format (SPEC section 5). :func:`download_coco` fetches it into ``<dest>.zip.part``
beside the destination with a progress bar, resumes with an HTTP ``Range`` request after a dropped
connection, tests the archive, extracts it into a temporary directory beside the destination, checks
every file with :func:`verify_coco_dir`, and only then moves the directory into place with one
``os.replace``. Whatever fails, nothing is left at the destination and the temporary directories are
removed; the ``.part`` file is kept only when the transfer itself was cut short, so that the next call
resumes from it (it is removed once the archive turns out corrupt, and after a successful install).

Command-line flags the CLI maps onto :func:`download_coco` keyword arguments:
``--url URL`` (a mirror), ``--dest DIR``, ``--force`` (replace an existing dataset), ``--retries N``,
``--timeout SECONDS``, ``--quiet``.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import numpy as np
import requests
from tqdm import tqdm

from cs231n.archive import remove_stale_temp_files
from cs231n.coco_utils import (
    CAPTION_LENGTH,
    CAPTIONS_FILE,
    PCA_FEATURE_DIM,
    RAW_FEATURE_DIM,
    SPECIAL_TOKENS,
    SPLITS,
    VOCAB_FILE,
    default_coco_dir,
    features_file,
    urls_file,
)

DEFAULT_URL = "http://cs231n.stanford.edu/coco_captioning.zip"

_CHUNK_BYTES = 1 << 16  # a dropped connection loses at most the chunk being read
_RETRY_STATUSES = (500, 502, 503, 504)


EXPECTED_FILES = (
    CAPTIONS_FILE,
    VOCAB_FILE,
    *(features_file(split, pca) for split in SPLITS for pca in (False, True)),
    *(urls_file(split) for split in SPLITS),
)


class DownloadError(RuntimeError):
    """The dataset could not be fetched or installed; the message says why and what was left behind."""


class _TransferCut(Exception):
    """One HTTP attempt ended early in a way that a retry (resuming where it stopped) may fix."""


def verify_coco_dir(path, feature_dim=RAW_FEATURE_DIM, pca_dim=PCA_FEATURE_DIM, caption_length=CAPTION_LENGTH):
    """Check that a directory holds a complete dataset in the on-disk format of SPEC section 5.

    Every file must open: the captions file with ``{split}_captions`` (N, T) int32 (T = 17 in the release) and
    ``{split}_image_idxs`` (N,) int32 whose values index the images of that split; each features file
    with a ``features`` dataset (M, D) float32; the vocabulary JSON with ``idx_to_word`` and a matching
    ``word_to_idx`` whose first four words are ``<NULL> <START> <END> <UNK>``, caption values being
    valid word indices; and each URL list with one line per image (M lines).

    Inputs:
    - path: directory to check (str or os.PathLike).
    - feature_dim: expected width D of the raw ``*_fc7.h5`` features (4096 for the release), or None
      to accept any width (datasets made by :func:`cs231n.data.build_dataset.build_dataset`).
    - pca_dim: expected width of the ``*_fc7_pca.h5`` features (512), or None for any width.
    - caption_length: expected length T of the caption rows (17 in the release; ``build_dataset``
      writes its ``max_length``), or None for any length >= 3 (``<START>``, a word, ``<END>``).

    Returns a dict with ``num_train_captions``, ``num_val_captions``, ``num_train_images``,
    ``num_val_images`` and ``vocab_size``.

    Raises ValueError listing every problem found, one per line, each starting with the file name.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"verify_coco_dir: path must be a str or os.PathLike, got {type(path).__name__}")
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"verify_coco_dir: {root} is not a directory")
    problems = [f"{name}: missing" for name in EXPECTED_FILES if not (root / name).is_file()]
    present = {name for name in EXPECTED_FILES if (root / name).is_file()}

    vocab_size = None
    if VOCAB_FILE in present:
        vocab_size = _check_vocab(root / VOCAB_FILE, problems)

    num_images = {}
    for split in SPLITS:
        rows = {}
        for pca, width in ((False, feature_dim), (True, pca_dim)):
            name = features_file(split, pca)
            if name in present:
                rows[pca] = _check_features(root / name, width, problems)
        if rows.get(False) is not None and rows.get(True) is not None and rows[False] != rows[True]:
            problems.append(f"{features_file(split, True)}: {rows[True]} rows but "
                            f"{features_file(split, False)} has {rows[False]}")
        known = [n for n in (rows.get(False), rows.get(True)) if n is not None]
        num_images[split] = known[0] if known else None

    num_captions = {split: None for split in SPLITS}
    if CAPTIONS_FILE in present:
        num_captions = _check_captions(root / CAPTIONS_FILE, vocab_size, num_images, problems, caption_length)

    for split in SPLITS:
        name = urls_file(split)
        if name in present and num_images[split] is not None:
            lines = _count_lines(root / name, problems)
            if lines is not None and lines != num_images[split]:
                problems.append(f"{name}: {lines} lines but the {split} features have {num_images[split]} rows")

    if problems:
        raise ValueError(f"{root} is not a complete COCO captioning dataset:\n  " + "\n  ".join(problems))
    return {
        "num_train_captions": num_captions["train"],
        "num_val_captions": num_captions["val"],
        "num_train_images": num_images["train"],
        "num_val_images": num_images["val"],
        "vocab_size": vocab_size,
    }


def _check_vocab(path, problems):
    """Append the vocabulary file's problems to `problems`; return its size V, or None when unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: cannot be read as JSON ({e})")
        return None
    if not isinstance(vocab, dict) or not {"idx_to_word", "word_to_idx"} <= vocab.keys():
        problems.append(f"{path.name}: expected an object with keys 'idx_to_word' and 'word_to_idx'")
        return None
    idx_to_word, word_to_idx = vocab["idx_to_word"], vocab["word_to_idx"]
    if not isinstance(idx_to_word, list) or not isinstance(word_to_idx, dict):
        problems.append(f"{path.name}: idx_to_word must be a list and word_to_idx an object, got "
                        f"{type(idx_to_word).__name__} and {type(word_to_idx).__name__}")
        return None
    if tuple(idx_to_word[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        problems.append(f"{path.name}: the first words must be {list(SPECIAL_TOKENS)}, "
                        f"got {idx_to_word[:len(SPECIAL_TOKENS)]}")
    mismatched = [w for i, w in enumerate(idx_to_word) if word_to_idx.get(w) != i]
    if mismatched or len(word_to_idx) != len(idx_to_word):
        problems.append(f"{path.name}: word_to_idx ({len(word_to_idx)} words) is not the inverse of "
                        f"idx_to_word ({len(idx_to_word)} words); first mismatches: {mismatched[:5]}")
    return len(idx_to_word)


def _check_features(path, width, problems):
    """Append the features file's problems to `problems`; return its row count M, or None when unusable."""
    try:
        with h5py.File(path, "r") as f:
            ds = f.get("features")
            if not isinstance(ds, h5py.Dataset):
                problems.append(f"{path.name}: no dataset 'features' (keys: {sorted(f.keys())})")
                return None
            shape, dtype = ds.shape, ds.dtype
    except OSError as e:
        problems.append(f"{path.name}: cannot be opened with h5py ({e})")
        return None
    if len(shape) != 2:
        problems.append(f"{path.name}: features must have 2 dimensions (M, D), got shape {shape}")
        return None
    if dtype != np.float32:
        problems.append(f"{path.name}: features must be float32, got {dtype}")
    if width is not None and shape[1] != width:
        problems.append(f"{path.name}: features must have {width} columns, got shape {shape}")
    return shape[0]


def _check_captions(path, vocab_size, num_images, problems, caption_length=CAPTION_LENGTH):
    """Append the captions file's problems to `problems`; return the number of captions per split."""
    counts = {split: None for split in SPLITS}
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        problems.append(f"{path.name}: cannot be opened with h5py ({e})")
        return counts
    with f:
        for split in SPLITS:
            captions, idxs = f.get(f"{split}_captions"), f.get(f"{split}_image_idxs")
            missing = [k for k, ds in ((f"{split}_captions", captions), (f"{split}_image_idxs", idxs))
                       if not isinstance(ds, h5py.Dataset)]
            if missing:
                problems.append(f"{path.name}: no dataset {' or '.join(missing)} (keys: {sorted(f.keys())})")
                continue
            length_ok = len(captions.shape) == 2 and (captions.shape[1] == caption_length if caption_length
                                                      else captions.shape[1] >= 3)
            if not length_ok or captions.dtype != np.int32:
                T = caption_length or "T >= 3"
                problems.append(f"{path.name}: {split}_captions must be (N, {T}) int32, "
                                f"got {captions.shape} {captions.dtype}")
                continue
            if idxs.shape != (captions.shape[0],) or idxs.dtype != np.int32:
                problems.append(f"{path.name}: {split}_image_idxs must be ({captions.shape[0]},) int32, "
                                f"got {idxs.shape} {idxs.dtype}")
                continue
            counts[split] = captions.shape[0]
            if captions.shape[0] == 0:
                continue
            words, images = captions[()], idxs[()]
            if vocab_size is not None and (words.min() < 0 or words.max() >= vocab_size):
                problems.append(f"{path.name}: {split}_captions holds values in [{words.min()}, {words.max()}], "
                                f"outside the vocabulary [0, {vocab_size})")
            if num_images[split] is not None and (images.min() < 0 or images.max() >= num_images[split]):
                problems.append(f"{path.name}: {split}_image_idxs holds values in [{images.min()}, "
                                f"{images.max()}], outside the {num_images[split]} {split} images")
    return counts


def _count_lines(path, problems):
    """Number of lines in a text file, ignoring blank lines at its end; None (with a problem) if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path.name}: cannot be read as UTF-8 text ({e})")
        return None
    while lines and not lines[-1].strip():
        lines.pop()
    return len(lines)


def download_coco(dest=None, url=DEFAULT_URL, *, force=False, retries=5, timeout=30.0, backoff=1.0, quiet=False):
    """Fetch the cs231n COCO captioning release and install it, checked, at `dest`.

    The archive is downloaded into ``<dest>.zip.part`` (beside `dest`), tested with
    ``zipfile.testzip``, extracted into a temporary directory beside `dest`, checked file by file with
    :func:`verify_coco_dir`, and moved into place with ``os.replace``. A dropped connection is retried
    with ``Range: bytes=<bytes already here>-``; the bytes are appended when the server answers 206 and
    the download restarts from zero when it answers 200.

    Inputs:
    - dest: directory to create (str or os.PathLike); default :func:`default_coco_dir`
      (``$CS231N_COCO_DIR`` or ``datasets/coco_captioning`` at the repository root).
    - url: http(s) address of the release zip, e.g. a mirror.
    - force: replace an existing `dest`. Without it an existing `dest` that holds a complete dataset in
      the on-disk format (:func:`verify_coco_dir`, any sizes) is left alone and returned, and any other
      existing directory is refused (FileExistsError naming what is missing); an existing file is
      refused even with `force`.
    - retries: how many failed attempts in a row (dropped connections, timeouts, HTTP 5xx) are retried;
      the count starts again whenever an attempt brought new bytes.
    - timeout: seconds to wait for the server to connect or to send the next bytes.
    - backoff: seconds to wait before the first retry, doubled for each further retry in a row.
    - quiet: no progress bar and no messages (the bar is also off when stderr is not a terminal).

    Returns the destination directory as a ``pathlib.Path``.

    Raises DownloadError when the server refuses (e.g. HTTP 404), the retries run out (the ``.part``
    file is kept, and the next call resumes from it), the archive is corrupt, or its contents are not a
    complete dataset (the message lists the problems, e.g. the missing files).
    """
    dest = default_coco_dir() if dest is None else dest
    if not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"download_coco: dest must be a str or os.PathLike, got {type(dest).__name__}")
    dest = Path(dest).expanduser().absolute()
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ValueError(f"download_coco: url must be an http:// or https:// address, got {url!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"download_coco: retries must be an integer >= 0, got {retries!r}")
    for name, value, low in (("timeout", timeout, 0.0), ("backoff", backoff, 0.0)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= low:
            raise ValueError(f"download_coco: {name} must be a number >= {low}, got {value!r}")
    if timeout == 0:
        raise ValueError("download_coco: timeout must be > 0, got 0")

    if (dest.exists() or dest.is_symlink()) and not dest.is_dir():
        raise FileExistsError(f"dest (--dest) {dest} is an existing file, not a dataset directory; nothing was "
                              f"downloaded. Choose another --dest, or move that file away")
    if dest.is_dir() and not force:
        try:
            verify_coco_dir(dest, feature_dim=None, pca_dim=None, caption_length=None)
        except ValueError as e:
            problems = str(e).split("\n", 1)[-1].strip()
            raise FileExistsError(f"dest (--dest) {dest} already exists but is not a complete COCO captioning "
                                  f"dataset; nothing was downloaded or changed. What is wrong there: "
                                  f"{'; '.join(line.strip() for line in problems.splitlines())}. Choose another "
                                  f"--dest, or pass force=True (--force) to replace it with the download") from e
        _say(quiet, f"{dest} already holds a complete dataset; left as it is (pass force=True / --force to "
                    f"download again)")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Folders that an earlier, killed download left while extracting (the .zip.part is kept: it resumes).
    remove_stale_temp_files(dest.parent, prefix=f".{dest.name}-extract-")
    part = dest.parent / f"{dest.name}.zip.part"

    _fetch(url, part, retries=retries, timeout=timeout, backoff=backoff, quiet=quiet)
    try:
        _test_zip(part, url)
        _install_zip(part, dest, url, force=force)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.unlink(missing_ok=True)
    _say(quiet, f"COCO captioning dataset installed in {dest}")
    return dest


def _say(quiet, message):
    """Print a status line on stderr unless `quiet`."""
    if not quiet:
        print(message, file=sys.stderr)


def _fetch(url, part, retries, timeout, backoff, quiet):
    """Bring `part` to the complete content at `url`, resuming after dropped connections."""
    failures = 0
    while True:
        size_before = part.stat().st_size if part.exists() else 0
        try:
            _fetch_once(url, part, timeout=timeout, quiet=quiet)
            return
        except _TransferCut as e:
            size_after = part.stat().st_size if part.exists() else 0
            failures = 0 if size_after > size_before else failures + 1
            if failures > retries:
                if not size_after:
                    part.unlink(missing_ok=True)
                kept = f"; {size_after} bytes are kept in {part} and the next call resumes from them" \
                    if size_after else ""
                raise DownloadError(f"could not download {url}: {e} ({failures} failed attempts in a row){kept}") from e
            delay = backoff * 2 ** max(failures - 1, 0)
            _say(quiet, f"download interrupted ({e}); resuming from byte {size_after} in {delay:g} s")
            time.sleep(delay)


def _fetch_once(url, part, timeout, quiet):
    """One GET of `url`, appending to `part` when the server resumes (206) or rewriting it (200)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as e:
        raise _TransferCut(f"cannot reach the server ({e})") from e
    with response:
        status = response.status_code
        if status == 416 and have:
            if _content_range(response.headers.get("Content-Range"))[2] == have:
                return
            part.unlink()
            raise _TransferCut(f"the server cannot resume at byte {have}; starting again from zero")
        if status in _RETRY_STATUSES:
            raise _TransferCut(f"HTTP {status} {response.reason}")
        if status == 206 and have:
            start = _content_range(response.headers.get("Content-Range"))[0]
            if start != have:
                part.unlink()
                raise _TransferCut(f"the server resumed at byte {start} instead of {have}; starting again from zero")
            mode = "ab"
        elif status == 200:
            mode, have = "wb", 0
        else:
            raise DownloadError(f"could not download {url}: the server answered HTTP {status} {response.reason}")

        length = response.headers.get("Content-Length", "")
        total = have + int(length) if length.isdigit() else None
        written = 0
        bar_off = quiet or not sys.stderr.isatty()
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=part.name, disable=bar_off) as bar:
            try:
                for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                raise _TransferCut(f"connection lost after {have + written} bytes ({e})") from e
    if total is not None and have + written != total:
        raise _TransferCut(f"connection closed after {have + written} of {total} bytes")


def _content_range(value):
    """Parse ``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) into (start, end, total); unknown parts are None."""
    start = end = total = None
    if value and value.startswith("bytes "):
        span, _, size = value[len("bytes "):].partition("/")
        if size.strip().isdigit():
            total = int(size)
        first, _, last = span.partition("-")
        if first.strip().isdigit() and last.strip().isdigit():
            start, end = int(first), int(last)
    return start, end, total


def _test_zip(part, url):
    """Raise DownloadError unless `part` is a readable zip whose members all pass their CRC check."""
    try:
        with zipfile.ZipFile(part) as archive:
            bad_member = archive.testzip()
        reason = f"member {bad_member} fails its CRC check" if bad_member else None
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as e:
        reason = str(e) or type(e).__name__
    if reason:
        raise DownloadError(f"the archive downloaded from {url} is corrupt ({reason}); it was deleted, "
                            f"run the download again")


def _install_zip(part, dest, url, force):
    """Extract the archive beside `dest`, check it with verify_coco_dir, and move it into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-extract-{os.getpid()}-", dir=dest.parent))
    try:
        with zipfile.ZipFile(part) as archive:
            archive.extractall(staging)
        root = _find_dataset_root(staging)
        try:
            verify_coco_dir(root)
        except ValueError as e:
            raise DownloadError(f"the archive downloaded from {url} does not hold a complete dataset; "
                                f"nothing was installed.\n{e}") from e
        move_into_place(root, dest, force=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _find_dataset_root(top):
    """The directory of an extracted archive that holds the most expected files (the top or a subfolder)."""
    candidates = [top] + sorted(p for p in top.iterdir() if p.is_dir() and p.name != "__MACOSX")
    return max(candidates, key=lambda d: sum((d / name).is_file() for name in EXPECTED_FILES))


def move_into_place(src, dest, force=False):
    """Move the directory `src` to `dest` with ``os.replace`` (same filesystem), so `dest` appears whole.

    An existing `dest` is an error unless `force`; then it is first moved aside, put back if the
    move of `src` fails, and deleted once `src` is in place.

    Inputs:
    - src: a directory beside `dest` (str or os.PathLike).
    - dest: the final path.
    - force: replace an existing `dest`.

    Raises FileExistsError when `dest` exists and `force` is False.
    """
    src, dest = Path(src), Path(dest)
    if not (dest.exists() or dest.is_symlink()):
        os.replace(src, dest)
        return
    if not force:
        raise FileExistsError(f"{dest} already exists; pass force=True (--force) to replace it")
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-{os.getpid()}-", dir=dest.parent))
    try:
        os.replace(dest, aside / dest.name)
        try:
            os.replace(src, dest)
        except BaseException:
            os.replace(aside / dest.name, dest)
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
