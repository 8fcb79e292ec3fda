"""Load the cs231n COCO captioning data (or the synthetic shapes dataset in the same format).

The on-disk format (SPEC section 5), all in one directory:

- ``coco2014_captions.h5``: ``train_captions`` (N, 17) int32, ``train_image_idxs`` (N,) int32, and the
  same for ``val``. Each caption row is ``<START> w1 .. wk <END> <NULL> ..``; its image index is a row
  of that split's features and a line of its URL list.
- ``train2014_vgg16_fc7.h5``, ``val2014_vgg16_fc7.h5``: dataset ``features`` (num_images, 4096) float32.
- ``train2014_vgg16_fc7_pca.h5``, ``val2014_vgg16_fc7_pca.h5``: ``features`` (num_images, 512) float32.
- ``coco2014_vocab.json``: ``{"idx_to_word": [...], "word_to_idx": {...}}``, indices 0..3 being
  ``<NULL> <START> <END> <UNK>``.
- ``train2014_urls.txt``, ``val2014_urls.txt``: one image URL per line, line i for image i.
- optional, for the models that attend over image regions (SPEC section 10): ``train2014_regions.h5``,
  ``val2014_regions.h5``: dataset ``features`` (num_images, R, D) float32 in the same image order, an
  optional dataset ``boxes`` (num_images, R, 4) float32 (x0, y0, x1, y1 as fractions of the image, for
  drawing) and, when the regions are a row-major grid, an attribute ``grid`` = (h, w). Loaded only with
  ``load_coco_data(..., regions=True)``; written by :func:`write_regions`.

The real release comes from ``python -m cs231n download coco``; the synthetic shapes dataset
(:mod:`cs231n.data.shapes`) is written in the same format and loads with the same function.
"""
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np

# The on-disk format, owned here and imported by the downloader, the builder and the shapes generator.
CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>", "<UNK>")
SPLITS = ("train", "val")
CAPTION_LENGTH = 17  # <START>, at most 15 words, <END>, <NULL> padding
RAW_FEATURE_DIM = 4096
PCA_FEATURE_DIM = 512
_FINITE_CHECK_ROWS = 8192  # rows checked at a time, so the 4096-wide features need no big temporary


def default_coco_dir():
    """Where ``python -m cs231n download coco`` puts the data: ``$CS231N_COCO_DIR``, else the repo's ``datasets/``.

    That is ``datasets/coco_captioning`` at the repository root. Read at call time, so setting the
    environment variable after import works.
    """
    override = os.environ.get("CS231N_COCO_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "datasets" / "coco_captioning"


def coco_dir_candidates():
    """The directories ``load_coco_data()`` looks in when given no ``base_dir``, in order.

    Returns a list of (path, where) pairs, ``where`` saying in words why the path is looked at:
    ``$CS231N_COCO_DIR`` alone when it is set; otherwise ``cs231n/datasets/coco_captioning`` under the
    working directory (the 2017-2019 assignments' place, beside the notebook), then
    ``datasets/coco_captioning`` inside the imported ``cs231n`` package (the 2021+ assignments' place),
    then ``datasets/coco_captioning`` at the repository root (where ``python -m cs231n download coco``
    puts it). A path reached twice is listed once.
    """
    override = os.environ.get("CS231N_COCO_DIR")
    if override:
        return [(Path(override).expanduser(), "$CS231N_COCO_DIR")]
    package = Path(__file__).resolve().parent
    candidates = [
        (Path.cwd() / "cs231n" / "datasets" / "coco_captioning",
         "cs231n/datasets/coco_captioning under the working directory"),
        (package / "datasets" / "coco_captioning", "datasets/coco_captioning in the cs231n package"),
        (default_coco_dir(), "where python -m cs231n download coco puts it"),
    ]
    unique, seen = [], set()
    for path, where in candidates:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            unique.append((path, where))
    return unique


def features_file(split, pca_features):
    """Name of the features file of one split: ``train2014_vgg16_fc7.h5`` or ``..._pca.h5``."""
    return f"{split}2014_vgg16_fc7{'_pca' if pca_features else ''}.h5"


def regions_file(split):
    """Name of the region-features file of one split, e.g. ``train2014_regions.h5`` (SPEC section 10)."""
    return f"{split}2014_regions.h5"


def write_regions(path, features, boxes=None, grid=None):
    """Write a region-features file (SPEC section 10): ``features``, optional ``boxes``, attribute ``grid``.

    Copied in chunks of images, so a memory-mapped ``.npy`` or an h5py dataset larger than memory works.

    Inputs:
    - path: the file to write (usually ``<dir>/`` + :func:`regions_file`).
    - features: array-like of shape (M, R, D), one row per image in the split's order, or a grid of
      shape (M, D, h, w) (channels first, as a CNN gives it), stored as R = h * w regions, row-major.
    - boxes: None, or an array of shape (M, R, 4): each region's (x0, y0, x1, y1) as fractions of the
      image. For a grid, None stores the grid cells' boxes.
    - grid: None, or (h, w) when the (M, R, D) regions are a row-major h x w grid (R = h * w).

    Raises ValueError for other shapes, non-finite values or boxes outside [0, 1].
    """
    fn = "write_regions"
    shape = tuple(getattr(features, "shape", np.shape(features)))
    dtype = np.dtype(getattr(features, "dtype", np.asarray(features).dtype))
    if dtype.kind not in "fiu":
        raise ValueError(f"{fn}: features must hold real numbers, got dtype {dtype}")
    if len(shape) == 4:
        M, D, h, w = shape
        if grid is not None and tuple(grid) != (h, w):
            raise ValueError(f"{fn}: grid {tuple(grid)} disagrees with the grid features' (h, w) = {(h, w)}")
        grid = (h, w)
        R = h * w
        if boxes is None:
            boxes = np.broadcast_to(grid_boxes(h, w), (M, R, 4))
    elif len(shape) == 3:
        M, R, D = shape
    else:
        raise ValueError(f"{fn}: features must have shape (M, R, D), or (M, D, h, w) for a grid, got {shape}")
    if R < 1 or D < 1:
        raise ValueError(f"{fn}: features must have at least one region and one value, got {shape}")
    if grid is not None and (len(tuple(grid)) != 2 or min(grid) < 1 or int(grid[0]) * int(grid[1]) != R):
        raise ValueError(f"{fn}: grid must be (h, w) with h * w = R = {R}, got {grid!r}")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.shape != (M, R, 4):
            raise ValueError(f"{fn}: boxes should have shape (M, R, 4) = {(M, R, 4)}, got {boxes.shape}")
        if not (np.isfinite(boxes).all() and boxes.min(initial=0) >= 0 and boxes.max(initial=0) <= 1):
            raise ValueError(f"{fn}: boxes must be fractions of the image, in [0, 1]")
    rows = max(1, _FINITE_CHECK_ROWS * 512 // (R * D))  # images per chunk: about 16 MB of float32
    with h5py.File(path, "w") as f:
        out = f.create_dataset("features", shape=(M, R, D), dtype=np.float32)
        for lo in range(0, M, rows):
            chunk = np.asarray(features[lo:lo + rows], dtype=np.float32)
            if chunk.ndim == 4:
                chunk = chunk.reshape(chunk.shape[0], D, R).transpose(0, 2, 1)  # (m, h*w, D), row-major cells
            if not np.isfinite(chunk).all():
                raise ValueError(f"{fn}: features hold NaN or inf (first at image "
                                 f"{lo + int(np.argwhere(~np.isfinite(chunk))[0][0])})")
            out[lo:lo + chunk.shape[0]] = chunk
        if boxes is not None:
            f.create_dataset("boxes", data=np.ascontiguousarray(boxes))
        if grid is not None:
            f.attrs["grid"] = np.asarray(grid, dtype=np.int64)


def grid_boxes(h, w):
    """The boxes (x0, y0, x1, y1, fractions of the image) of a row-major h x w grid: shape (h * w, 4)."""
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (h, w) each
    return np.stack([xs / w, ys / h, (xs + 1) / w, (ys + 1) / h], axis=-1).reshape(h * w, 4).astype(np.float32)


def has_region_files(base_dir):
    """Whether the dataset directory holds the region files of both splits (SPEC section 10)."""
    return all((Path(base_dir) / regions_file(split)).is_file() for split in SPLITS)


def urls_file(split):
    """Name of the image-URL list of one split, e.g. ``train2014_urls.txt``."""
    return f"{split}2014_urls.txt"


def _required_files(pca_features):
    return [CAPTIONS_FILE, VOCAB_FILE] + [features_file(s, pca_features) for s in SPLITS] + [
        urls_file(s) for s in SPLITS]


_HOW_TO_GET_DATA = (
    "Get the real COCO data (about 1 GB, needs the internet) with:  python -m cs231n download coco\n"
    "or make the synthetic shapes dataset in the same format (no internet) with:  python -m cs231n "
    "train  (or from Python: cs231n.data.shapes.ensure_shapes_dataset()), then pass its directory as "
    "base_dir or set CS231N_COCO_DIR to it.")


def _missing_files(base_dir, pca_features):
    """The names of the dataset files not in `base_dir` (empty when it holds a whole dataset)."""
    return [name for name in _required_files(pca_features) if not (base_dir / name).is_file()]


def _describe_missing(base_dir, missing):
    """`base_dir` does not exist / is incomplete, with the missing file names."""
    where = f"{base_dir} does not exist" if not base_dir.exists() else f"{base_dir} is incomplete"
    return f"{where}; missing {len(missing)} file(s): {', '.join(missing)}"


def _missing_files_error(base_dir, missing, pca_features):
    """The error raised for a missing or partial dataset directory that was named explicitly."""
    kind = "PCA (512)" if pca_features else "raw fc7 (4096)"
    return FileNotFoundError(
        f"load_coco_data: {_describe_missing(base_dir, missing)} "
        f"(files of the COCO captioning dataset with {kind} features).\n" + _HOW_TO_GET_DATA)


def _dataset_dir(base_dir, pca_features):
    """``base_dir`` as a Path when it holds every file of the dataset, else the FileNotFoundError of
    :func:`_missing_files_error` (what ``load_coco_data`` and ``coco_data_sizes`` both check first)."""
    base = Path(base_dir).expanduser()
    missing = _missing_files(base, pca_features)
    if missing:
        raise _missing_files_error(base, missing, pca_features)
    return base


def find_coco_dir(pca_features=True, verbose=True):
    """The dataset directory ``load_coco_data()`` uses when given no ``base_dir``.

    Looks in the directories of :func:`coco_dir_candidates`, in order, and returns the first that holds
    every file of the dataset (with PCA features if `pca_features`, else raw ones) as a Path, printing
    ``base dir <path>`` (as the 2021+ assignments' ``load_coco_data`` does) if `verbose`. Raises
    FileNotFoundError naming every directory looked at and what it lacks, and the two ways to get data.
    """
    candidates = coco_dir_candidates()
    found = []
    for path, _ in candidates:
        missing = _missing_files(path, pca_features)
        if not missing:
            if verbose:
                print("base dir ", path)
            return path
        found.append(missing)
    kind = "PCA (512)" if pca_features else "raw fc7 (4096)"
    looked = "\n".join(
        f"  {k + 1}. {where}: {path} " + ("does not exist" if not path.exists() else
                                          f"is incomplete (missing {', '.join(missing)})")
        for k, ((path, where), missing) in enumerate(zip(candidates, found)))
    hint = "" if len(candidates) == 1 else " (or set CS231N_COCO_DIR to a dataset directory)"
    raise FileNotFoundError(
        f"load_coco_data: no COCO captioning dataset (with {kind} features) found; looked in:\n{looked}\n"
        f"Pass base_dir=<dataset directory>{hint}.\n" + _HOW_TO_GET_DATA)


def coco_data_sizes(base_dir, pca_features=True, regions=False):
    """The sizes of a dataset, read without loading it: h5 shapes and the vocabulary's length.

    For checks that must come before the (possibly large) load, e.g. whether a batch is larger than
    the training set or whether the data fits in memory.

    Inputs:
    - base_dir: dataset directory (str or os.PathLike).
    - pca_features: read the shapes of the PCA features (as ``load_coco_data``) or the raw ones.

    - regions: also read the region files' (R, D) as ``regions`` (absent when a file is missing:
      ``load_coco_data`` says so).

    Returns a dict with ``train_captions`` and ``val_captions`` (N, T) shapes, ``train_images`` and
    ``val_images`` (feature rows), ``feature_dim`` D and ``vocab_size`` V.

    Raises FileNotFoundError (as ``load_coco_data``) for a missing or partial directory, and
    ValueError when a file lacks the datasets or keys of the format.
    """
    base = _dataset_dir(base_dir, pca_features)
    sizes = {}
    with h5py.File(base / CAPTIONS_FILE, "r") as f:
        for split in SPLITS:
            if f"{split}_captions" not in f:
                raise ValueError(f"{base / CAPTIONS_FILE} has no dataset '{split}_captions' (found {sorted(f.keys())})")
            sizes[f"{split}_captions"] = tuple(f[f"{split}_captions"].shape)
    for split in SPLITS:
        path = base / features_file(split, pca_features)
        with h5py.File(path, "r") as f:
            if "features" not in f or len(f["features"].shape) != 2:
                raise ValueError(f"{path} has no 2-D dataset 'features' (found {sorted(f.keys())})")
            sizes[f"{split}_images"], sizes["feature_dim"] = f["features"].shape
    with open(base / VOCAB_FILE, encoding="utf-8") as f:
        vocab = json.load(f)
    if not isinstance(vocab, dict) or not isinstance(vocab.get("idx_to_word"), list):
        raise ValueError(f"{base / VOCAB_FILE} must hold an object with the list 'idx_to_word'")
    sizes["vocab_size"] = len(vocab["idx_to_word"])
    if regions and has_region_files(base):
        with h5py.File(base / regions_file("train"), "r") as f:
            if "features" in f and len(f["features"].shape) == 3:
                sizes["regions"] = tuple(f["features"].shape[1:])
    return sizes


def load_coco_data(base_dir=None, max_train=None, pca_features=True, regions=False):
    """Load the captioning dataset into a dict of arrays.

    Inputs:
    - base_dir: dataset directory (str or os.PathLike). If None (the classic call), the first of these
      that holds the whole dataset, printing ``base dir <path>`` (see :func:`find_coco_dir`):
      ``$CS231N_COCO_DIR`` if set (then only it); else ``cs231n/datasets/coco_captioning`` under the
      working directory (the 2017-2019 assignments' place), ``datasets/coco_captioning`` in the
      ``cs231n`` package (the 2021+ place), ``datasets/coco_captioning`` at the repository root (where
      ``python -m cs231n download coco`` puts it).
    - max_train: if not None, keep that many training captions drawn with replacement by
      ``np.random.randint`` (seed ``np.random`` for reproducibility); the images are untouched.
    - pca_features: load the 512 PCA features (``*_vgg16_fc7_pca.h5``) if True, else the raw 4096
      fc7 features (``*_vgg16_fc7.h5``).
    - regions: also load the region features (``*_regions.h5``, SPEC section 10). Without it the dict is
      exactly the classic one.

    Returns a dict with:
    - train_captions: (N, T) int32; train_image_idxs: (N,) int32; val_captions, val_image_idxs likewise
    - train_features: (num_train_images, D) float32; val_features likewise (D = 512 or 4096)
    - idx_to_word: list of V words; word_to_idx: dict word -> index
    - train_urls, val_urls: numpy arrays of str, one per image
    - with regions: train_regions (num_train_images, R, D) float32, val_regions likewise; and, when the
      files hold boxes, train_region_boxes (num_train_images, R, 4), val_region_boxes; and when they are
      a grid, region_grid (h, w), a tuple

    Raises FileNotFoundError (listing every missing file, every directory looked at and the commands that
    make a dataset) when the directory is missing or partial or none is found, and ValueError when what is loaded is inconsistent: caption values
    outside the vocabulary, image indices outside the features, non-finite features, bad vocabulary.
    """
    if not isinstance(regions, bool):
        raise TypeError(f"load_coco_data: regions must be True or False, got {regions!r}")
    if base_dir is None:
        base_dir = find_coco_dir(pca_features)
    if not isinstance(base_dir, (str, os.PathLike)):
        raise TypeError(f"load_coco_data: base_dir must be a str or os.PathLike, got {type(base_dir).__name__}")
    if max_train is not None and (not isinstance(max_train, (int, np.integer)) or isinstance(max_train, bool)
                                  or max_train < 0):
        raise ValueError(f"load_coco_data: max_train must be None or an integer >= 0, got {max_train!r}")
    base = _dataset_dir(base_dir, pca_features)

    data = {}
    with h5py.File(base / CAPTIONS_FILE, "r") as f:
        for split in SPLITS:
            for key in (f"{split}_captions", f"{split}_image_idxs"):
                if key not in f:
                    raise ValueError(f"load_coco_data: {base / CAPTIONS_FILE} has no dataset {key!r} "
                                     f"(found {sorted(f.keys())})")
        for key, value in f.items():
            data[key] = np.asarray(value)
    for split in SPLITS:
        path = base / features_file(split, pca_features)
        with h5py.File(path, "r") as f:
            if "features" not in f:
                raise ValueError(f"load_coco_data: {path} has no dataset 'features' (found {sorted(f.keys())})")
            data[f"{split}_features"] = np.asarray(f["features"])
    with open(base / VOCAB_FILE, encoding="utf-8") as f:
        vocab = json.load(f)
    if not isinstance(vocab, dict):
        raise ValueError(f"load_coco_data: {base / VOCAB_FILE} must hold a JSON object, got {type(vocab).__name__}")
    for key, value in vocab.items():
        data[key] = value
    for split in SPLITS:
        with open(base / urls_file(split), encoding="utf-8") as f:
            lines = [line.strip() for line in f]
        while lines and not lines[-1]:
            lines.pop()
        data[f"{split}_urls"] = np.asarray(lines, dtype=str)

    _check_loaded(data, base)
    if regions:
        data.update(_load_regions(base, {split: data[f"{split}_features"].shape[0] for split in SPLITS}))

    if max_train is not None:
        num_train = data["train_captions"].shape[0]
        mask = np.random.randint(num_train, size=max_train)
        data["train_captions"] = data["train_captions"][mask]
        data["train_image_idxs"] = data["train_image_idxs"][mask]
    return data


def _load_regions(base, num_images):
    """The region arrays of both splits (see load_coco_data), checked against the splits' image counts."""
    out, grids = {}, {}
    for split in SPLITS:
        path = base / regions_file(split)
        if not path.is_file():
            raise FileNotFoundError(
                f"load_coco_data: regions=True but {path} does not exist. Region features (SPEC section 10) "
                f"come from the shapes dataset (version 3 or later: python -m cs231n train regenerates an "
                f"older one) or from `python -m cs231n build-dataset --train-regions ... --val-regions ...`")
        with h5py.File(path, "r") as f:
            if "features" not in f:
                raise ValueError(f"load_coco_data: {path} has no dataset 'features' (found {sorted(f.keys())})")
            features = np.asarray(f["features"])
            boxes = np.asarray(f["boxes"]) if "boxes" in f else None
            grids[split] = tuple(int(v) for v in f.attrs["grid"]) if "grid" in f.attrs else None
        if features.ndim != 3 or features.dtype.kind != "f" or features.shape[0] != num_images[split]:
            raise ValueError(f"load_coco_data: {path}: features should have shape (num_images, R, D) with "
                             f"num_images = {num_images[split]} (the rows of {split}_features), got "
                             f"{features.shape} dtype {features.dtype}")
        if not np.isfinite(features).all():
            raise ValueError(f"load_coco_data: {path}: features hold NaN or inf")
        if boxes is not None and boxes.shape != features.shape[:2] + (4,):
            raise ValueError(f"load_coco_data: {path}: boxes should have shape {features.shape[:2] + (4,)}, "
                             f"got {boxes.shape}")
        out[f"{split}_regions"] = features
        if boxes is not None:
            out[f"{split}_region_boxes"] = boxes
    if out["train_regions"].shape[1:] != out["val_regions"].shape[1:]:
        raise ValueError(f"load_coco_data: train regions {out['train_regions'].shape[1:]} and val regions "
                         f"{out['val_regions'].shape[1:]} differ in (R, D)")
    if grids["train"] != grids["val"]:
        raise ValueError(f"load_coco_data: the train and val region files disagree on the grid: {grids}")
    if grids["train"] is not None:
        out["region_grid"] = grids["train"]
    return out


def with_regions(data):
    """A copy of a data dict whose ``train_features`` / ``val_features`` are its region features.

    The solvers and the evaluation read ``{split}_features``; a model that attends over regions trains on
    ``load_coco_data(..., regions=True)`` passed through this. Arrays are shared, not copied.
    """
    missing = [k for k in ("train_regions", "val_regions") if k not in data]
    if missing:
        raise ValueError(f"with_regions: data has no {missing}; load it with load_coco_data(..., regions=True)")
    out = dict(data)
    out["train_features"], out["val_features"] = data["train_regions"], data["val_regions"]
    return out


def hold_out_images(data, num_images, seed=0):
    """Split ``num_images`` training images, with all their captions, off the training data.

    What is learned from them is chosen on them (the epoch to keep), so the val split stays unseen until
    it is scored. The held-out images are drawn with ``np.random.default_rng(seed)`` among the images
    that have training captions (after ``load_coco_data``'s ``max_train`` draw), so the same data and
    seed give the same split and the global ``np.random`` is left alone.

    Inputs:
    - data: dict of :func:`load_coco_data` (or :func:`with_regions`).
    - num_images: int, 1 <= num_images < the number of images with training captions.
    - seed: int, seeds the draw.

    Returns a tuple of:
    - train: a copy of ``data`` whose ``train_captions`` / ``train_image_idxs`` leave out the held-out
      images' captions (the feature and URL arrays are shared, not copied);
    - held_out: a dict in the form of a val split, ``val_captions`` (M, T), ``val_image_idxs`` (M,)
      numbered 0..num_images-1, ``val_features`` (num_images, ...), ``val_urls`` (num_images,), plus
      ``idx_to_word``/``word_to_idx`` and ``image_ids`` (num_images,), the held-out images' rows of
      ``data['train_features']``, ascending.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"hold_out_images: num_images must be a positive integer, got {num_images!r}")
    idxs = np.asarray(data["train_image_idxs"])
    images = np.unique(idxs)
    if num_images >= images.size:
        raise ValueError(f"hold_out_images: num_images={num_images} leaves nothing to train on: the training "
                         f"captions show {images.size} images; hold out fewer")
    rng = np.random.default_rng(seed)
    image_ids = np.sort(rng.choice(images, size=int(num_images), replace=False))
    held = np.isin(idxs, image_ids)
    train = dict(data)
    train["train_captions"], train["train_image_idxs"] = data["train_captions"][~held], idxs[~held]
    held_out = {"val_captions": data["train_captions"][held],
                "val_image_idxs": np.searchsorted(image_ids, idxs[held]).astype(idxs.dtype),
                "val_features": data["train_features"][image_ids], "image_ids": image_ids}
    if "train_urls" in data:
        held_out["val_urls"] = np.asarray(data["train_urls"])[image_ids]
    for key in ("idx_to_word", "word_to_idx"):
        if key in data:
            held_out[key] = data[key]
    return train, held_out


def _check_loaded(data, base):
    """Raise ValueError unless the loaded arrays are consistent with each other."""
    idx_to_word = data.get("idx_to_word")
    word_to_idx = data.get("word_to_idx")
    vocab_path = base / VOCAB_FILE
    if not isinstance(idx_to_word, list) or not isinstance(word_to_idx, dict):
        raise ValueError(f"load_coco_data: {vocab_path} must hold 'idx_to_word' (a list) and 'word_to_idx' "
                         f"(an object)")
    if tuple(idx_to_word[:4]) != SPECIAL_TOKENS:
        raise ValueError(f"load_coco_data: {vocab_path}: idx_to_word must start with {list(SPECIAL_TOKENS)}, "
                         f"got {idx_to_word[:4]}")
    if len(word_to_idx) != len(idx_to_word) or any(word_to_idx.get(w) != i for i, w in enumerate(idx_to_word)):
        raise ValueError(f"load_coco_data: {vocab_path}: word_to_idx ({len(word_to_idx)} words) is not the "
                         f"inverse of idx_to_word ({len(idx_to_word)} words)")
    V = len(idx_to_word)
    for split in SPLITS:
        captions = data[f"{split}_captions"]
        image_idxs = data[f"{split}_image_idxs"]
        features = data[f"{split}_features"]
        where = f"load_coco_data: {split}"
        if captions.ndim != 2 or captions.dtype.kind not in "iu":
            raise ValueError(f"{where}_captions must be a 2-D integer array, got shape {captions.shape} "
                             f"dtype {captions.dtype}")
        if image_idxs.ndim != 1 or image_idxs.dtype.kind not in "iu" or len(image_idxs) != len(captions):
            raise ValueError(f"{where}_image_idxs must be a 1-D integer array with one entry per caption "
                             f"({len(captions)}), got shape {image_idxs.shape} dtype {image_idxs.dtype}")
        if features.ndim != 2 or features.dtype.kind != "f":
            raise ValueError(f"{where}_features must be a 2-D float array, got shape {features.shape} "
                             f"dtype {features.dtype}")
        if captions.size and (captions.min() < 0 or captions.max() >= V):
            bad = int(captions.min()) if captions.min() < 0 else int(captions.max())
            row = int(np.argwhere((captions < 0) | (captions >= V))[0][0])
            raise ValueError(f"{where}_captions holds word index {bad} (first in caption {row}), outside the "
                             f"vocabulary [0, {V}) of {vocab_path.name}")
        num_images = features.shape[0]
        if image_idxs.size and (image_idxs.min() < 0 or image_idxs.max() >= num_images):
            bad = int(image_idxs.min()) if image_idxs.min() < 0 else int(image_idxs.max())
            raise ValueError(f"{where}_image_idxs holds image index {bad}, outside the {num_images} rows of "
                             f"{split}_features")
        for lo in range(0, num_images, _FINITE_CHECK_ROWS):
            chunk = features[lo:lo + _FINITE_CHECK_ROWS]
            if not np.isfinite(chunk).all():
                r, c = np.argwhere(~np.isfinite(chunk))[0]
                raise ValueError(f"{where}_features is not finite: row {lo + r}, column {c} holds "
                                 f"{chunk[r, c]}")
        urls = data[f"{split}_urls"]
        if len(urls) != num_images:
            warnings.warn(f"load_coco_data: {urls_file(split)} has {len(urls)} URLs but {split}_features "
                          f"has {num_images} rows; URLs of some images will be wrong or missing", stacklevel=3)


def sample_coco_minibatch(data, batch_size=100, split="train"):
    """Draw a random minibatch of captions (with replacement, through ``np.random.choice``).

    Inputs:
    - data: dict from :func:`load_coco_data`.
    - batch_size: number N of captions.
    - split: ``'train'`` or ``'val'``.

    Returns a tuple of:
    - captions: (N, T) int32 caption rows.
    - image_features: (N, D) features of each caption's image.
    - urls: (N,) array of str, each caption's image URL.
    """
    if split not in SPLITS:
        raise ValueError(f"sample_coco_minibatch: split must be 'train' or 'val', got {split!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"sample_coco_minibatch: batch_size must be a positive integer, got {batch_size!r}")
    for key in (f"{split}_captions", f"{split}_image_idxs", f"{split}_features", f"{split}_urls"):
        if key not in data:
            raise ValueError(f"sample_coco_minibatch: data has no key {key!r}")
    split_size = data[f"{split}_captions"].shape[0]
    if split_size == 0:
        raise ValueError(f"sample_coco_minibatch: the {split} split has no captions")
    mask = np.random.choice(split_size, batch_size)
    captions = data[f"{split}_captions"][mask]
    image_idxs = data[f"{split}_image_idxs"][mask]
    image_features = data[f"{split}_features"][image_idxs]
    urls = data[f"{split}_urls"][image_idxs]
    return captions, image_features, urls


FRAMING_TOKENS = ("<NULL>", "<START>", "<END>")


def strip_framing(caption):
    """A decoded caption without ``<NULL>``, ``<START>`` and ``<END>``, words joined by single spaces.

    ``strip_framing('<START> a dog <END>')`` gives ``'a dog'``: what to show a person (``<UNK>`` is
    kept, it stands for a real word).
    """
    return " ".join(w for w in caption.split() if w not in FRAMING_TOKENS)


def decode_captions(captions, idx_to_word):
    """Turn caption rows of word indices back into strings.

    ``<NULL>`` tokens are skipped and each caption stops after its first ``<END>``, which is kept, so a
    row gives e.g. ``'<START> a dog <END>'``.

    Inputs:
    - captions: int array of shape (T,) for one caption or (N, T) for N captions.
    - idx_to_word: list (or dict from int) giving the word of each index.

    Returns a str for a 1-D input, a list of N str for a 2-D input.
    """
    captions = np.asarray(captions)
    if captions.dtype.kind not in "iu":
        raise TypeError(f"decode_captions: captions must hold integer word indices, got dtype {captions.dtype}")
    if captions.ndim not in (1, 2):
        raise ValueError(f"decode_captions: captions must have shape (T,) or (N, T), got {captions.shape}")
    single = captions.ndim == 1
    rows = captions[None] if single else captions  # (N, T)
    decoded = []
    for row in rows.tolist():
        words = []
        for idx in row:
            word = idx_to_word[idx]
            if word != "<NULL>":
                words.append(word)
            if word == "<END>":
                break
        decoded.append(" ".join(words))
    return decoded[0] if single else decoded
