"""Writing a shapes dataset in the cs231n COCO captioning format, and the cache directory logic.

:func:`make_shapes_dataset` generates into a directory; :func:`ensure_shapes_dataset` generates once into
a cache directory (atomically) and reuses it while its recorded parameters match.
"""
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType

import h5py
import numpy as np
from PIL import Image

from cs231n.coco_utils import (CAPTION_LENGTH, CAPTIONS_FILE, PCA_FEATURE_DIM, SPECIAL_TOKENS, VOCAB_FILE,
                               regions_file, write_regions)
from cs231n.data.shapes.featurizer import (FEATURIZE_BATCH, FEATURIZER_FILE, FEATURIZER_NAME, REGION_PCA_DIM,
                                           distance_limit, feature_distance, featurize_images, region_boxes,
                                           region_features, region_views)
from cs231n.data.shapes.grammar import describe_scene
from cs231n.data.shapes.pca import apply_pca, fit_pca
from cs231n.data.shapes.rendering import render_scene
from cs231n.data.shapes.scenes import sample_scene

FORMAT_NAME = "cs231n-shapes"
FORMAT_VERSION = 3  # 3: + region features (2: object-slot features; 1: random convolutions over fixed regions)

# Names of the files of the cs231n COCO captioning format (SPEC section 5) and of this dataset's extras.
META_FILE = "shapes_meta.json"  # written last: its presence marks a complete dataset
SCENES_FILE = "shapes_scenes.json"
README_FILE = "README.md"

# Preset sizes: (training images, validation images, minimum word count of the vocabulary).
SIZES = MappingProxyType({
    "tiny": (60, 20, 2),
    "default": (6000, 1000, 5),
})


# ----------------------------------------------------------------------------------------------------
# Vocabulary and encoding


def build_vocab(captions, min_count):
    """Vocabulary of caption words: the 4 special tokens, then words seen at least `min_count` times.

    Words are ordered by descending count, ties alphabetically.

    Inputs:
    - captions: iterable of str (space-separated words).
    - min_count: int >= 1.

    Returns a tuple of idx_to_word (list of V words) and word_to_idx (dict).
    """
    counts = Counter(w for c in captions for w in c.split())
    kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
                  key=lambda w: (-counts[w], w))
    idx_to_word = list(SPECIAL_TOKENS) + kept
    return idx_to_word, {w: i for i, w in enumerate(idx_to_word)}


def encode_captions(captions, word_to_idx, length=CAPTION_LENGTH):
    """Encode captions as rows ``<START> w1 .. wk <END> <NULL> ..``; unknown words become ``<UNK>``.

    Inputs:
    - captions: list of N str of at most length - 2 words.
    - word_to_idx: dict with the special tokens.
    - length: T, the row length.

    Returns an array of shape (N, T), int32.
    """
    null, start, end, unk = (word_to_idx[t] for t in SPECIAL_TOKENS)
    out = np.full((len(captions), length), null, dtype=np.int32)  # (N, T)
    for n, caption in enumerate(captions):
        words = caption.split()
        if len(words) > length - 2:
            raise ValueError(f"encode_captions: caption {n} has {len(words)} words, more than {length - 2}")
        out[n, :len(words) + 2] = [start, *(word_to_idx.get(w, unk) for w in words), end]
    return out


# ----------------------------------------------------------------------------------------------------
# Writing and caching datasets


def _parameters(size, num_train_images, num_val_images, seed, image_size, captions_per_image, min_word_count):
    """Resolve the generation parameters (presets filled in) and validate them."""
    if size not in SIZES:
        raise ValueError(f"shapes: size must be one of {sorted(SIZES)}, got {size!r}")
    preset_train, preset_val, preset_min = SIZES[size]
    params = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "size": size,
        "num_train_images": preset_train if num_train_images is None else num_train_images,
        "num_val_images": preset_val if num_val_images is None else num_val_images,
        "seed": seed,
        "image_size": image_size,
        "captions_per_image": captions_per_image,
        "min_word_count": preset_min if min_word_count is None else min_word_count,
        "featurizer": FEATURIZER_NAME,
    }
    for name in ("num_train_images", "num_val_images", "captions_per_image", "min_word_count", "seed"):
        value = params[name]
        low = 0 if name == "seed" else 1
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"shapes: {name} must be an integer >= {low}, got {value!r}")
        params[name] = int(value)
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or not 64 <= image_size <= 128:
        raise ValueError(f"shapes: image_size must be an integer in [64, 128], got {image_size!r}")
    params["image_size"] = int(image_size)
    return params


def _file_url(path):
    """``file://`` URL of an absolute path."""
    return Path(path).resolve().as_uri()


def _write_features(path, features):
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.ascontiguousarray(features, dtype=np.float32))


def _write_urls(directory, final_dir, split, num_images):
    """Write ``{split}2014_urls.txt``: the file:// URL each image will have once in `final_dir`."""
    lines = [_file_url(Path(final_dir) / "images" / f"{split}2014" / f"{i:06d}.png") for i in range(num_images)]
    (Path(directory) / f"{split}2014_urls.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _readme(params, stats):
    return (
        "# shapes: a synthetic captioning dataset in the cs231n COCO format\n\n"
        "Made by `cs231n.data.shapes` (see its module docstring for the full description).\n\n"
        f"- {params['num_train_images']} training and {params['num_val_images']} validation images, "
        f"{params['image_size']}x{params['image_size']} PNGs of 1 to 3 colored shapes, in `images/`.\n"
        f"- {params['captions_per_image']} captions per image from a grammar; vocabulary of "
        f"{stats['vocab_size']} words (words seen fewer than {params['min_word_count']} times in the "
        "training captions are `<UNK>`).\n"
        "- `*_vgg16_fc7.h5` are NOT VGG-16 features: they are 4096 values from a fixed featurizer written\n"
        "  in numpy (the whole image and each of up to 3 objects, in reading order, as 16x16 cells of mask\n"
        "  and color); `*_vgg16_fc7_pca.h5` are their projection on 512 principal axes fitted on the\n"
        "  training features. The PCA and the distance statistics of `caption` are in\n"
        "  `shapes_featurizer.npz`.\n"
        "- `*_regions.h5` are region features for the models that attend (SPEC section 10): `features`\n"
        "  (images, 4, 64), the whole image and each object slot, each 56 PCA values of its 1024 raw\n"
        "  values (one PCA for all four, fitted on the training images), a one-hot of which region it is\n"
        "  and its box; `boxes` (images, 4, 4) are the boxes (x0, y0, x1, y1 as fractions of the image,\n"
        "  zeros for an absent object). Why these regions: a linear probe reads each object's shape,\n"
        "  color and size from its own region 100% of the time (a 4x4 grid cell holding the object's\n"
        "  center: shape 32%, color 99%, size 78%); the one-hot and box say which object it is\n"
        "  (without them, 48%). `python benchmarks/probe_shapes_features.py --regions` measures it.\n"
        f"- Generated with seed {params['seed']}; `shapes_meta.json` records every parameter.\n"
    )


def make_shapes_dataset(out_dir, size="default", *, num_train_images=None, num_val_images=None, seed=0,
                        image_size=96, captions_per_image=5, min_word_count=None, final_dir=None,
                        verbose=False):
    """Generate the shapes dataset into a directory, in the cs231n COCO captioning format.

    Inputs:
    - out_dir: directory to write (created; it must not exist or be empty).
    - size: ``'default'`` (6000 train / 1000 val images, minimum word count 5) or ``'tiny'``
      (60 / 20, minimum word count 2); the counts below override the preset.
    - num_train_images, num_val_images: image counts (None: from `size`).
    - seed: int; the whole dataset is a function of it.
    - image_size: side of the PNGs in pixels, 64 to 128 (features always see them at 96x96).
    - captions_per_image: captions per image.
    - min_word_count: words seen fewer times in the training captions become ``<UNK>``.
    - final_dir: where the directory will finally live, for the ``file://`` URLs (default out_dir);
      :func:`ensure_shapes_dataset` builds in a temporary directory and renames it.
    - verbose: print the time each stage takes.

    Returns the path of out_dir (a pathlib.Path).
    """
    params = _parameters(size, num_train_images, num_val_images, seed, image_size, captions_per_image,
                         min_word_count)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"make_shapes_dataset: {out} exists and is not an empty directory")
    final = Path(final_dir) if final_dir is not None else out
    t0 = time.perf_counter()
    timings = {}
    splits = {"train": params["num_train_images"], "val": params["num_val_images"]}
    # One independent stream per split, so the val split does not change with the number of train images.
    streams = {split: np.random.default_rng(child)
               for split, child in zip(splits, np.random.SeedSequence(params["seed"]).spawn(len(splits)))}

    # Images are featurized chunk by chunk in a worker thread while the next chunk is drawn; numpy
    # releases the GIL in the heavy operations, so the two overlap on two cores. Chunks are whole
    # multiples of the featurizer's batch, so the features equal those of one featurize_images call.
    chunk = 5 * FEATURIZE_BATCH
    scenes, captions, pending = {}, {}, {}
    with ThreadPoolExecutor(max_workers=1) as worker:
        for split, count in splits.items():
            rng = streams[split]
            image_dir = out / "images" / f"{split}2014"
            image_dir.mkdir(parents=True, exist_ok=True)
            scenes[split], captions[split], pending[split] = [], [], []
            for lo in range(0, count, chunk):
                n = min(chunk, count - lo)
                batch = np.empty((n, params["image_size"], params["image_size"], 3), dtype=np.uint8)
                for j in range(n):
                    scene = sample_scene(rng)
                    batch[j] = render_scene(scene, params["image_size"])
                    Image.fromarray(batch[j]).save(image_dir / f"{lo + j:06d}.png", compress_level=1)
                    scenes[split].append(scene)
                    captions[split].append(describe_scene(scene, rng, params["captions_per_image"]))
                pending[split].append(worker.submit(featurize_images, batch, return_boxes=True))
        timings["render"] = time.perf_counter() - t0
        done = {split: [job.result() for job in pending[split]] for split in splits}
        raw = {split: np.concatenate([r for r, _ in done[split]]) for split in splits}  # (M, 4096)
        boxes = {split: np.concatenate([b for _, b in done[split]]) for split in splits}  # (M, 3, 4)
    timings["featurize"] = time.perf_counter() - t0 - timings["render"]  # what was left after drawing

    t1 = time.perf_counter()
    pca = fit_pca(raw["train"], PCA_FEATURE_DIM, seed=params["seed"])
    projected = {split: apply_pca(raw[split], pca) for split in splits}  # (M, 512)
    region_pca = fit_pca(region_views(raw["train"]), REGION_PCA_DIM, seed=params["seed"])
    regions = {split: region_features(raw[split], boxes[split], region_pca) for split in splits}  # (M, 4, 64)
    timings["pca"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    flat = {split: [c for per_image in captions[split] for c in per_image] for split in splits}
    idx_to_word, word_to_idx = build_vocab(flat["train"], params["min_word_count"])
    with h5py.File(out / CAPTIONS_FILE, "w") as f:
        for split in splits:
            f.create_dataset(f"{split}_captions", data=encode_captions(flat[split], word_to_idx))
            idxs = np.repeat(np.arange(splits[split], dtype=np.int32), params["captions_per_image"])
            f.create_dataset(f"{split}_image_idxs", data=idxs)
    (out / VOCAB_FILE).write_text(json.dumps({"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}),
                                  encoding="utf-8")
    for split in splits:
        _write_features(out / f"{split}2014_vgg16_fc7.h5", raw[split])
        _write_features(out / f"{split}2014_vgg16_fc7_pca.h5", projected[split])
        write_regions(out / regions_file(split), regions[split], region_boxes(boxes[split]))
        _write_urls(out, final, split, splits[split])
    train_std = raw["train"].std(axis=0)  # (4096,) the scales of feature_distance (its center: pca["mean"])
    limit = distance_limit(feature_distance(raw["val"], pca["mean"], train_std))
    np.savez(out / FEATURIZER_FILE, pca_mean=pca["mean"], pca_components=pca["components"],
             pca_scale=pca["scale"], train_std=train_std, distance_limit=np.float64(limit),
             region_pca_mean=region_pca["mean"], region_pca_components=region_pca["components"],
             region_pca_scale=region_pca["scale"])
    (out / SCENES_FILE).write_text(json.dumps(
        {split: [{"captions": caps, **asdict(scene)} for scene, caps in zip(scenes[split], captions[split])]
         for split in splits}), encoding="utf-8")
    unk = sum(w not in word_to_idx for c in flat["train"] for w in c.split())
    stats = {"vocab_size": len(idx_to_word), "train_unk_tokens": unk}
    (out / README_FILE).write_text(_readme(params, stats), encoding="utf-8")
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    # The meta file goes last: a directory without it is an unfinished build.
    (out / META_FILE).write_text(json.dumps({"params": params, "stats": stats,
                                             "seconds": {k: round(v, 3) for k, v in timings.items()}},
                                            indent=1), encoding="utf-8")
    if verbose:
        print("shapes: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f" -> {final}")
    return out


def default_shapes_dir(size="default", seed=0):
    """Default cache directory: ``$CS231N_SHAPES_DIR``, else ``datasets/shapes`` at the repository root.

    Other sizes and seeds than ('default', 0) get a sibling directory ``<that>_<size>_seed<seed>`` so
    that they never replace the default dataset.
    """
    override = os.environ.get("CS231N_SHAPES_DIR")
    base = Path(override).expanduser() if override else Path(__file__).resolve().parents[3] / "datasets" / "shapes"
    if (size, seed) == ("default", 0):
        return base
    return base.with_name(f"{base.name}_{size}_seed{seed}")


def _read_meta(directory):
    """The params recorded in a dataset directory, or None when it is not a complete shapes dataset."""
    try:
        meta = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
        return meta["params"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_complete(directory, params):
    """Whether `directory` holds a complete shapes dataset made with `params`."""
    d = Path(directory)
    if _read_meta(d) != params:
        return False
    names = [CAPTIONS_FILE, VOCAB_FILE, FEATURIZER_FILE] + [
        f"{split}2014_{suffix}" for split in ("train", "val")
        for suffix in ("vgg16_fc7.h5", "vgg16_fc7_pca.h5", "regions.h5", "urls.txt")]
    return all((d / name).is_file() for name in names)


def _fix_urls(directory, params):
    """Rewrite the URL lists if the dataset was moved since it was made (the URLs are absolute)."""
    d = Path(directory)
    for split, key in (("train", "num_train_images"), ("val", "num_val_images")):
        path = d / f"{split}2014_urls.txt"
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
        if first != _file_url(d / "images" / f"{split}2014" / "000000.png"):
            tmp = Path(tempfile.mkdtemp(prefix=".urls-", dir=d))
            try:
                _write_urls(tmp, d, split, params[key])
                os.replace(tmp / path.name, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def ensure_shapes_dataset(cache_dir=None, size="default", seed=0, *, verbose=True, **kwargs):
    """Return the directory of a shapes dataset, generating it there first if needed.

    A complete dataset whose recorded parameters match is reused as is. Otherwise the dataset is built
    in a temporary directory beside `cache_dir` and renamed into place, so an interrupted build never
    leaves half a dataset behind; an older shapes dataset with other parameters is replaced. A
    directory that holds anything else is never touched: that is an error.

    Inputs:
    - cache_dir: dataset directory (default :func:`default_shapes_dir`).
    - size, seed: as for :func:`make_shapes_dataset`.
    - verbose: print a line when generating.
    - kwargs: other keyword arguments of :func:`make_shapes_dataset` (num_train_images, ...).

    Returns the dataset directory (a pathlib.Path), ready for
    ``cs231n.coco_utils.load_coco_data(base_dir=...)``.
    """
    target = Path(cache_dir) if cache_dir is not None else default_shapes_dir(size, seed)
    target = target.expanduser().absolute()
    params = _parameters(size, kwargs.get("num_train_images"), kwargs.get("num_val_images"), seed,
                         kwargs.get("image_size", 96), kwargs.get("captions_per_image", 5),
                         kwargs.get("min_word_count"))
    if _is_complete(target, params):
        _fix_urls(target, params)
        return target
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"ensure_shapes_dataset: {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and _read_meta(target) is None:
        raise FileExistsError(f"ensure_shapes_dataset: {target} is not empty and does not hold a shapes "
                              f"dataset; choose another cache_dir or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"shapes: generating the {size!r} dataset (seed {seed}) into {target} ...")
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))
    try:
        make_shapes_dataset(build / "data", size, seed=seed, final_dir=target, verbose=verbose, **kwargs)
        aside = None
        if target.exists():
            # Another shapes dataset (other parameters), or an empty directory: move it aside, then swap.
            aside = build / "old"
            os.replace(target, aside)
        try:
            os.replace(build / "data", target)
        except OSError:
            if _is_complete(target, params):  # another process finished the same build first
                return target
            if aside is not None and not target.exists():
                os.replace(aside, target)  # put the old one back
            raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target
