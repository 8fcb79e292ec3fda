"""Build the cs231n COCO captioning on-disk format from raw caption JSON and your own image features.

Each split (train, val) comes as a COCO-style captions JSON file,
``{"images": [{"id": ..., "file_name": ..., "coco_url": ...}, ...],
"annotations": [{"image_id": ..., "caption": "..."}, ...]}``, plus a features array that you extracted
with any CNN: one row per entry of ``images``, in that order (a ``.npy`` file, an ``.h5`` file with a
dataset named ``features`` by default, or an array in memory). From them :func:`build_dataset` writes
the eight files of SPEC section 5:

- captions are tokenized (:func:`tokenize_caption`: lower case, punctuation and symbols removed, split
  on whitespace) and encoded with the train vocabulary as ``<START> w1 .. wk <END> <NULL> ..``, each row
  exactly `max_length` (17) long, keeping at most ``max_length - 2`` (15) words;
- the vocabulary (:func:`build_vocab`) is ``<NULL> <START> <END> <UNK>`` followed by every train word
  seen at least `min_count` times, most frequent first, ties in alphabetical order; other words become
  ``<UNK>``;
- ``{split}_image_idxs`` holds the row of each caption's image in its split's ``images`` list;
- ``*_vgg16_fc7.h5`` hold the features as given, cast to float32, whatever network made them (the
  file names are the format's; loaders look for them), and ``*_vgg16_fc7_pca.h5`` their projection
  (after subtracting the train mean) on the top `pca_dim` principal axes of the float32 train
  features (:func:`fit_pca`, no whitening);
- ``{split}2014_urls.txt`` lists each image's ``url``, ``coco_url`` or ``flickr_url`` field (first
  present), else its ``file_name`` joined to `image_base_url`, else the ``file_name`` as given.

Optionally, region features for the models that attend (SPEC section 10): ``train_regions`` and
``val_regions``, one row per image again, of shape (M, R, D), or a CNN's grid (M, D, h, w) (stored as
R = h * w row-major regions with the grid's boxes), from a ``.npy``, an ``.h5`` (dataset ``features``;
its ``boxes`` dataset and ``grid`` attribute are carried over, so a file in the region format itself
works) or an array; they are written as ``{split}2014_regions.h5`` unchanged (no PCA).
``datasets/extract_coco_regions.py`` makes them from COCO images with a torchvision CNN.

The output is written into a temporary directory beside `out_dir`, checked with
:func:`cs231n.data.download.verify_coco_dir`, and moved into place in one step.

Command-line flags the CLI maps onto :func:`build_dataset` keyword arguments: ``--train-json``,
``--val-json``, ``--train-features``, ``--val-features``, ``--out`` (`out_dir`), ``--min-count``,
``--max-length``, ``--pca-dim``, ``--features-key``, ``--image-base-url``, ``--force``, ``--train-regions``,
``--val-regions``.
"""
import contextlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from cs231n.coco_utils import (CAPTIONS_FILE, SPECIAL_TOKENS, SPLITS, VOCAB_FILE, features_file, regions_file,
                               urls_file, write_regions)
from cs231n.data.download import move_into_place, verify_coco_dir

_CHUNK_ROWS = 4096
_NOT_WORD = re.compile(r"[^\w\s]|_")
_URL_FIELDS = ("url", "coco_url", "flickr_url")


def tokenize_caption(caption):
    """Split a caption into words: NFC-normalized, lower case, every character that is not a letter,
    digit or whitespace removed (so ``"dog's"`` gives ``"dogs"``), split on whitespace.

    Inputs:
    - caption: str.

    Returns a list of str.
    """
    if not isinstance(caption, str):
        raise TypeError(f"tokenize_caption: caption must be a str, got {type(caption).__name__}")
    text = unicodedata.normalize("NFC", caption).lower()
    return _NOT_WORD.sub("", text).split()


def build_vocab(token_lists, min_count=5):
    """Make the vocabulary: the four special tokens, then every word seen at least `min_count` times.

    Words are ordered by descending count, ties alphabetically, so the result does not depend on the
    order of the captions.

    Inputs:
    - token_lists: iterable of lists of words (train captions, tokenized).
    - min_count: int >= 1.

    Returns a tuple of:
    - idx_to_word: list of V words, ``<NULL> <START> <END> <UNK>`` at indices 0..3.
    - word_to_idx: dict mapping each word to its index.
    """
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise ValueError(f"build_vocab: min_count must be an integer >= 1, got {min_count!r}")
    counts = Counter(word for tokens in token_lists for word in tokens)
    kept = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                  key=lambda w: (-counts[w], w))
    idx_to_word = list(SPECIAL_TOKENS) + kept
    return idx_to_word, {w: i for i, w in enumerate(idx_to_word)}


def encode_captions(token_lists, word_to_idx, max_length=17):
    """Encode tokenized captions as ``<START> w1 .. wk <END> <NULL> ..`` rows of word indices.

    Words beyond ``max_length - 2`` are dropped; words missing from `word_to_idx` become ``<UNK>``.

    Inputs:
    - token_lists: sequence of N lists of words.
    - word_to_idx: dict holding at least the four special tokens.
    - max_length: int >= 3, the length T of every row, START and END included.

    Returns captions, of shape (N, T), int32.
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 3:
        raise ValueError(f"encode_captions: max_length must be an integer >= 3, got {max_length!r}")
    missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
    if missing:
        raise ValueError(f"encode_captions: word_to_idx lacks the special tokens {missing}")
    null, start, end, unk = (word_to_idx[t] for t in SPECIAL_TOKENS)
    captions = np.full((len(token_lists), max_length), null, dtype=np.int32)  # (N, T)
    for n, tokens in enumerate(token_lists):
        words = [word_to_idx.get(w, unk) for w in tokens[:max_length - 2]]
        captions[n, :len(words) + 2] = [start, *words, end]
    return captions


def fit_pca(features, dim):
    """Principal axes of a features array: mean and the top `dim` eigenvectors of its covariance.

    The scatter matrix is accumulated in float64 over chunks of rows (after subtracting the mean, in a
    second pass), so arrays larger than memory (h5py datasets, memory-mapped .npy) work. Each axis is
    signed so that its entry of largest magnitude is positive, which makes the result deterministic.

    Inputs:
    - features: array-like of shape (N, D) with N > dim and D >= dim.
    - dim: number M of axes to keep.

    Returns a tuple of:
    - mean: float64 array of shape (D,).
    - components: float64 array of shape (D, M), orthonormal columns by decreasing variance.
    """
    N, D = features.shape
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"fit_pca: dim must be an integer >= 1, got {dim!r}")
    if dim > D or dim > N - 1:
        raise ValueError(f"fit_pca: dim={dim} needs at least dim+1 rows and dim columns, got features "
                         f"of shape {(N, D)}; lower pca_dim to at most {min(D, N - 1)}")
    total = np.zeros(D)
    for lo in range(0, N, _CHUNK_ROWS):
        total += np.asarray(features[lo:lo + _CHUNK_ROWS], dtype=np.float64).sum(axis=0)
    mean = total / N  # (D,)
    scatter = np.zeros((D, D))
    for lo in range(0, N, _CHUNK_ROWS):
        centered = np.asarray(features[lo:lo + _CHUNK_ROWS], dtype=np.float64) - mean
        scatter += centered.T @ centered  # (D, D)
    _, eigvecs = np.linalg.eigh(scatter)  # ascending eigenvalues
    components = eigvecs[:, ::-1][:, :dim].copy()  # (D, M)
    peaks = np.abs(components).argmax(axis=0)
    components *= np.sign(components[peaks, np.arange(dim)])
    return mean, components


def build_dataset(train_json, val_json, train_features, val_features, out_dir, *, min_count=5,
                  max_length=17, pca_dim=512, features_key="features", image_base_url=None, force=False,
                  train_regions=None, val_regions=None):
    """Write a dataset in the cs231n COCO captioning format from caption JSON and extracted features.

    See the module docstring for what each file holds. Let N be the number of captions, M the number
    of images and D the features width of a split.

    Inputs:
    - train_json, val_json: COCO-style captions, a path to a JSON file or the loaded dict.
    - train_features, val_features: features of shape (M, D), rows aligned with that split's
      ``images`` list: a path to a ``.npy`` or ``.h5``/``.hdf5`` file, or a numpy array.
    - out_dir: directory to create (str or os.PathLike).
    - min_count: a train word needs at least this many occurrences to enter the vocabulary.
    - max_length: length of each encoded caption, START and END included (17 in the release).
    - pca_dim: width of the ``*_pca.h5`` features (512 in the release). It must not exceed D nor the
      number of train images minus one; lower it explicitly for small data (nothing is zero-padded).
    - features_key: dataset name inside ``.h5`` feature files.
    - image_base_url: prefix for images that have only a ``file_name``.
    - force: replace an existing `out_dir`.
    - train_regions, val_regions: optional region features (both or neither), of shape (M, R, D) or a
      grid (M, D, h, w), rows aligned like the features: a ``.npy`` or ``.h5``/``.hdf5`` path (dataset
      ``features``, optional ``boxes`` and attribute ``grid``) or a numpy array.

    Returns `out_dir` as a ``pathlib.Path``.

    Raises ValueError for malformed JSON, a caption whose image id is not in ``images``, a features
    row count different from the number of images, non-finite features, or a `pca_dim` too large;
    FileExistsError when `out_dir` exists and `force` is False.
    """
    for name, value, low in (("min_count", min_count, 1), ("max_length", max_length, 3), ("pca_dim", pca_dim, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"build_dataset: {name} must be an integer >= {low}, got {value!r}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"build_dataset: out_dir must be a str or os.PathLike, got {type(out_dir).__name__}")
    if image_base_url is not None and not isinstance(image_base_url, str):
        raise TypeError(f"build_dataset: image_base_url must be a str or None, got {type(image_base_url).__name__}")
    if (train_regions is None) != (val_regions is None):
        raise ValueError("build_dataset: give both train_regions and val_regions, or neither")
    out_dir = Path(out_dir).expanduser().absolute()
    if (out_dir.exists() or out_dir.is_symlink()) and not force:
        raise FileExistsError(f"build_dataset: {out_dir} already exists; pass force=True (--force) to replace it")

    splits = {
        "train": _read_split(train_json, "train_json", image_base_url),
        "val": _read_split(val_json, "val_json", image_base_url),
    }
    idx_to_word, word_to_idx = build_vocab(splits["train"]["tokens"], min_count=min_count)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        features = {
            "train": stack.enter_context(_open_features(train_features, "train_features", features_key)),
            "val": stack.enter_context(_open_features(val_features, "val_features", features_key)),
        }
        for split in SPLITS:
            rows, num_images = features[split].shape[0], len(splits[split]["urls"])
            if rows != num_images:
                raise ValueError(f"build_dataset: {split}_features has {rows} rows but {split}_json lists "
                                 f"{num_images} images; row i must hold the features of images[i]")
        if features["train"].shape[1] != features["val"].shape[1]:
            raise ValueError(f"build_dataset: train_features has {features['train'].shape[1]} columns but "
                             f"val_features has {features['val'].shape[1]}")
        D = features["train"].shape[1]
        if pca_dim > D or pca_dim > features["train"].shape[0] - 1:
            raise ValueError(f"build_dataset: pca_dim={pca_dim} needs features with at least {pca_dim} columns "
                             f"and {pca_dim + 1} train images, got {D} columns and {features['train'].shape[0]} "
                             f"images; pass a smaller pca_dim (at most {min(D, features['train'].shape[0] - 1)})")

        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-build-", dir=out_dir.parent))
        try:
            for split in SPLITS:
                _write_features(staging / features_file(split, False), features[split], split)
            # PCA is fitted on, and applied to, the float32 values just written, so the _pca files are
            # a function of the fc7 files alone.
            with h5py.File(staging / features_file("train", False), "r") as f:
                mean, components = fit_pca(f["features"], pca_dim)
            for split in SPLITS:
                with h5py.File(staging / features_file(split, False), "r") as f:
                    _write_projection(staging / features_file(split, True), f["features"], mean, components)
                with open(staging / urls_file(split), "w", encoding="utf-8", newline="\n") as f:
                    f.writelines(url + "\n" for url in splits[split]["urls"])
            with h5py.File(staging / CAPTIONS_FILE, "w") as f:
                for split in SPLITS:
                    f.create_dataset(f"{split}_captions",
                                     data=encode_captions(splits[split]["tokens"], word_to_idx, max_length))
                    f.create_dataset(f"{split}_image_idxs",
                                     data=np.asarray(splits[split]["image_idxs"], dtype=np.int32))
            with open(staging / VOCAB_FILE, "w", encoding="utf-8") as f:
                json.dump({"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}, f)
            if train_regions is not None:
                _write_regions(staging, {"train": train_regions, "val": val_regions},
                               {split: len(splits[split]["urls"]) for split in SPLITS})
            verify_coco_dir(staging, feature_dim=D, pca_dim=pca_dim, caption_length=max_length)
            move_into_place(staging, out_dir, force=force)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _read_split(source, name, image_base_url):
    """Parse one captions JSON into tokens, image_idxs (row in ``images``) and one URL per image."""
    if isinstance(source, dict):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"build_dataset: {name} ({source}) is not valid JSON: {e}") from e
        except UnicodeDecodeError as e:
            raise ValueError(f"build_dataset: {name} ({source}) is not JSON: it is not even UTF-8 text (byte "
                             f"{e.start} is {e.object[e.start:e.start + 1]!r}), e.g. a .npy or image file; "
                             f"pass the COCO-style captions JSON") from e
    else:
        raise TypeError(f"build_dataset: {name} must be a path or a dict, got {type(source).__name__}")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"build_dataset: {name} must be an object with lists 'images' and 'annotations'")
    images, annotations = data["images"], data["annotations"]
    if not images or not annotations:
        raise ValueError(f"build_dataset: {name} needs at least one image and one caption, got "
                         f"{len(images)} images and {len(annotations)} annotations")

    row_of, urls = {}, []
    for row, image in enumerate(images):
        image_id = image.get("id") if isinstance(image, dict) else None
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise ValueError(f"build_dataset: {name} images[{row}] needs an integer or string 'id', got {image!r}")
        if image_id in row_of:
            raise ValueError(f"build_dataset: {name} lists image id {image_id!r} twice "
                             f"(images[{row_of[image_id]}] and images[{row}])")
        row_of[image_id] = row
        urls.append(_image_url(image, image_base_url, f"{name} images[{row}]"))

    tokens, image_idxs, unknown = [], [], []
    for k, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str) \
                or "image_id" not in annotation:
            raise ValueError(f"build_dataset: {name} annotations[{k}] needs 'image_id' and a string "
                             f"'caption', got {annotation!r}")
        image_id = annotation["image_id"]
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool) or image_id not in row_of:
            unknown.append(image_id)
            continue
        tokens.append(tokenize_caption(annotation["caption"]))
        image_idxs.append(row_of[image_id])
    if unknown:
        raise ValueError(f"build_dataset: {name} has {len(unknown)} captions whose image_id is not in "
                         f"'images', e.g. {unknown[:5]}")
    return {"tokens": tokens, "image_idxs": image_idxs, "urls": urls}


def _image_url(image, base_url, where):
    """The URL of one image entry: its url/coco_url/flickr_url field, else file_name (joined to base_url)."""
    url = next((image[k] for k in _URL_FIELDS if isinstance(image.get(k), str) and image[k].strip()), None)
    if url is None:
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise ValueError(f"build_dataset: {where} has none of the fields {list(_URL_FIELDS)} or 'file_name'")
        url = file_name if base_url is None else base_url.rstrip("/") + "/" + file_name.lstrip("/")
    url = url.strip()
    if any(ch in url for ch in "\r\n"):
        raise ValueError(f"build_dataset: {where} has a URL with a line break: {url!r}")
    return url


@contextlib.contextmanager
def _open_features(source, name, key, ndims=(2,)):
    """Yield a numeric array-like (ndarray, memory-mapped .npy, or h5py dataset) for `source`, of a number
    of dimensions in `ndims` (features: 2)."""
    with contextlib.ExitStack() as stack:
        if isinstance(source, np.ndarray):
            array = source
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            suffix = path.suffix.lower()
            if suffix == ".npy":
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            elif suffix in (".h5", ".hdf5"):
                f = stack.enter_context(h5py.File(path, "r"))
                array = f.get(key)
                if not isinstance(array, h5py.Dataset):
                    raise ValueError(f"build_dataset: {name} ({path}) has no dataset {key!r} "
                                     f"(keys: {sorted(f.keys())}); pass features_key")
            else:
                raise ValueError(f"build_dataset: {name} must be a .npy, .h5 or .hdf5 file, got {path}")
        else:
            raise TypeError(f"build_dataset: {name} must be a path or a numpy array, got {type(source).__name__}")
        if ndims == (2,) and (len(array.shape) != 2 or array.shape[1] == 0):
            raise ValueError(f"build_dataset: {name} must have shape (M, D) with D >= 1, got {array.shape}")
        if ndims != (2,) and (len(array.shape) not in ndims or 0 in array.shape[1:]):
            raise ValueError(f"build_dataset: {name} must have shape (M, R, D), or (M, D, h, w) for a grid, "
                             f"got {array.shape}")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"build_dataset: {name} must hold real numbers, got dtype {array.dtype}")
        yield array


def _write_regions(staging, sources, num_images):
    """Write ``{split}2014_regions.h5`` for both splits, checking rows and that (R, D) and grid agree."""
    layouts = {}
    for split in SPLITS:
        name = f"{split}_regions"
        with contextlib.ExitStack() as stack:
            boxes, grid = None, None
            source = sources[split]
            if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in (".h5", ".hdf5"):
                f = stack.enter_context(h5py.File(source, "r"))
                boxes = np.asarray(f["boxes"]) if "boxes" in f else None
                grid = tuple(int(v) for v in f.attrs["grid"]) if "grid" in f.attrs else None
            array = stack.enter_context(_open_features(source, name, "features", ndims=(3, 4)))
            if array.shape[0] != num_images[split]:
                raise ValueError(f"build_dataset: {name} has {array.shape[0]} rows but {split}_json lists "
                                 f"{num_images[split]} images; row i must hold the regions of images[i]")
            try:
                write_regions(staging / regions_file(split), array, boxes=boxes, grid=grid)
            except ValueError as e:
                raise ValueError(f"build_dataset: {name}: {e}") from e
        with h5py.File(staging / regions_file(split), "r") as f:
            layouts[split] = (f["features"].shape[1:], tuple(f.attrs["grid"]) if "grid" in f.attrs else None)
    if layouts["train"] != layouts["val"]:
        raise ValueError(f"build_dataset: train_regions and val_regions differ: (R, D) and grid "
                         f"{layouts['train']} vs {layouts['val']}")


def _write_features(path, features, split):
    """Copy features (M, D) into ``path`` as float32 dataset ``features``, chunk by chunk, checking finiteness."""
    M, D = features.shape
    with h5py.File(path, "w") as f:
        out = f.create_dataset("features", shape=(M, D), dtype=np.float32)
        for lo in range(0, M, _CHUNK_ROWS):
            chunk = np.asarray(features[lo:lo + _CHUNK_ROWS], dtype=np.float32)  # (chunk, D)
            bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            if bad.size:
                raise ValueError(f"build_dataset: {split}_features row {lo + bad[0]} holds NaN or inf")
            out[lo:lo + len(chunk)] = chunk


def _write_projection(path, features, mean, components):
    """Write ``(features - mean) @ components`` (M, pca_dim) into ``path`` as float32 dataset ``features``."""
    M = features.shape[0]
    with h5py.File(path, "w") as f:
        out = f.create_dataset("features", shape=(M, components.shape[1]), dtype=np.float32)
        for lo in range(0, M, _CHUNK_ROWS):
            chunk = np.asarray(features[lo:lo + _CHUNK_ROWS], dtype=np.float64) - mean  # (chunk, D)
            out[lo:lo + len(chunk)] = (chunk @ components).astype(np.float32)  # (chunk, pca_dim)
