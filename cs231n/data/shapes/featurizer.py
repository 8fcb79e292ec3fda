"""The shapes dataset's featurizer: each object cut out and described in its own slot, in numpy.

What it computes, plainly (images are first resized to 96x96):

1. Background and mask. The background color is the median of the image's border pixels; a pixel's
   difference from it is the largest of its three channel differences (0 to 255), and the mask rises
   linearly from 0 at a difference of 24 to 1 at 64 (so the anti-aliased edges are partly in).
2. Objects. The columns that hold mask pixels (mask > 0.5) form runs separated by empty columns, and so
   do the rows. If there are at least as many column runs as row runs, the objects stand side by side
   and each column run is one object; otherwise each row run is one. At most 3 runs are kept (the
   heaviest), in reading order (left to right, or top to bottom).
3. Four views of 16x16 cells x 4 channels each (colors in [0, 1]):
   - view 0, the whole image: the mask and the mask times each of R, G, B, averaged over 6x6-pixel
     cells (where there is something, and which color it has);
   - views 1 to 3, object k: its mask in a 32x32-pixel window centered on its bounding box, averaged
     over 2x2-pixel cells, with everything outside the object's run masked out; and its mean color
     (over its pixels that differ from the background by at least 80% of its largest difference, i.e.
     away from the anti-aliased edge) in every cell of the R, G, B channels. The window has the same size for every object, so a large object fills more of it than
     a small one; an absent object is zeros.
4. The 4 x 4 x 16 x 16 = 4096 values (view, channel, row, column) are the raw features; the PCA of
   ``cs231n.data.shapes.pca`` gives the 512 stored beside them.
5. Regions (SPEC section 10, for the models that attend): the same four views as R = 4 regions, each
   described by 64 values: its 1024 raw values projected on 56 principal axes (one PCA for all four
   views, fitted on the training images' views), then which view it is (4 values, one-hot: whole
   image, object 1, 2, 3), then its box (x0, y0, x1, y1 as fractions of the image: the whole image
   (0, 0, 1, 1), an object its mask's bounding box, an absent object zeros). A window is centered on
   its object, so without the last 8 values a region would not say where its object is: "which object
   comes first" is what a caption's order needs (benchmarks/probe_shapes_features.py --regions measures
   what one region tells).

Why: a model reads an image's features through one linear map. With one slot per object in reading
order, "which object has which shape, color and size" is in fixed places, and a linear map can read it
(benchmarks/probe_shapes_features.py measures this). The previous featurizer (version 1 of the dataset:
random convolution filters max-pooled over 16 fixed image regions) mixed the objects' features
together; linear probes told the first object's shape only 90% of the time from it.

:func:`featurize_images` gives the 4096 raw values (and the objects' boxes); :func:`featurize_for_dataset`
applies a dataset's saved PCA to new images and :func:`featurize_regions_for_dataset` its region PCA;
:func:`region_features` turns raw values and boxes into regions; :func:`feature_distance` says how far
features are from the training images'.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from cs231n.coco_utils import RAW_FEATURE_DIM
from cs231n.data.shapes.pca import apply_pca

FEATURIZER_FILE = "shapes_featurizer.npz"
FEATURIZER_NAME = "object-slots-1"  # recorded in shapes_meta.json; changes whenever the features do

FEATURE_INPUT_SIZE = 96
MAX_OBJECTS = 3
_CELLS = 16  # each view is _CELLS x _CELLS cells
_WINDOW = 32  # side in pixels of the window cut around each object
_MASK_LOW, _MASK_HIGH = 24.0, 64.0  # difference from the background where the mask goes from 0 to 1
FEATURIZE_BATCH = 100  # images per vectorized pass (bounds the memory)
assert (1 + MAX_OBJECTS) * 4 * _CELLS * _CELLS == RAW_FEATURE_DIM
NUM_REGIONS = 1 + MAX_OBJECTS  # R: the whole image and each object slot
REGION_PCA_DIM = 56  # principal axes per region (the probes read every fact from 16; see the README)
REGION_DIM = REGION_PCA_DIM + NUM_REGIONS + 4  # D of a region: PCA values, one-hot view, box
_VIEW_DIM = RAW_FEATURE_DIM // NUM_REGIONS  # 1024 raw values per view


def _as_image_batch(images):
    """Images as one (N, 96, 96, 3) uint8 array, resizing with Pillow where needed."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = list(images)
    elif isinstance(images, np.ndarray) and images.ndim in (2, 3):
        raise ValueError(f"featurize_images: images must be a batch (N, H, W, 3) or a list of images, "
                         f"got one array of shape {images.shape}; wrap a single image as images[None]")
    elif isinstance(images, (list, tuple)):
        batch = list(images)
    else:
        raise TypeError(f"featurize_images: images must be an array (N, H, W, 3) or a list of (H, W, 3) "
                        f"arrays, got {type(images).__name__}")
    S = FEATURE_INPUT_SIZE
    out = np.empty((len(batch), S, S, 3), dtype=np.uint8)
    for i, img in enumerate(batch):
        a = np.asarray(img)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
            raise ValueError(f"featurize_images: image {i} must have shape (H, W, 3), got {a.shape}")
        if a.dtype != np.uint8:
            if a.dtype.kind == "f" and a.size and float(np.nanmax(a)) <= 1.0:
                a = a * 255.0
            a = np.clip(np.nan_to_num(a.astype(np.float64)), 0, 255).round().astype(np.uint8)
        a = a[:, :, :3]
        if a.shape[:2] != (S, S):
            a = np.asarray(Image.fromarray(a).resize((S, S), Image.Resampling.BILINEAR))
        out[i] = a
    return out


def _runs(profile):
    """(start, stop) of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], profile, [False]]).astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _object_runs(on):
    """The objects of one (S, S) bool mask: (axis, runs), axis 1 if side by side (column runs) else 0."""
    cols, rows = _runs(on.any(axis=0)), _runs(on.any(axis=1))
    axis, runs = (1, cols) if len(cols) >= len(rows) else (0, rows)
    if len(runs) > MAX_OBJECTS:
        mass = [int(on[:, a:b].sum() if axis == 1 else on[a:b].sum()) for a, b in runs]
        heaviest = sorted(np.argsort(mass, kind="stable")[::-1][:MAX_OBJECTS])
        runs = [runs[k] for k in heaviest]
    return axis, runs


def featurize_images(images, return_boxes=False):
    """Raw 4096-value features of images: the whole image and up to 3 objects, one slot each.

    See the module docstring for what the values are. Images of another size are resized to 96x96
    first; grayscale (H, W) images are repeated to 3 channels and an alpha channel is dropped.

    Inputs:
    - images: uint8 array of shape (N, H, W, 3), or a list of N (H, W, 3) arrays (float arrays with
      values in [0, 1] or [0, 255] are accepted too).
    - return_boxes: also return each object slot's box.

    Returns features, of shape (N, 4096), float32, in [0, 1]; with return_boxes, the tuple (features,
    boxes) where boxes (N, 3, 4) float32 holds each object's mask bounding box (x0, y0, x1, y1) as
    fractions of the image, zeros for an absent object.
    """
    batch = _as_image_batch(images)  # (N, 96, 96, 3)
    N, S = batch.shape[0], FEATURE_INPUT_SIZE
    C, half = _CELLS, _WINDOW // 2
    features = np.zeros((N, 1 + MAX_OBJECTS, C, C, 4), dtype=np.float32)  # (N, view, y, x, channel)
    boxes = np.zeros((N, MAX_OBJECTS, 4), dtype=np.float32)  # (N, slot, x0 y0 x1 y1)
    for lo in range(0, N, FEATURIZE_BATCH):
        x = batch[lo:lo + FEATURIZE_BATCH].astype(np.float32) / np.float32(255.0)  # (n, S, S, 3)
        n = x.shape[0]
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (n, 4S, 3)
        background = np.median(border.transpose(0, 2, 1), axis=2)  # (n, 3)
        d = np.abs(x - background[:, None, None])  # (n, S, S, 3)
        diff = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]) * np.float32(255.0)  # (n, S, S)
        mask = np.clip((diff - _MASK_LOW) / (_MASK_HIGH - _MASK_LOW), 0.0, 1.0)  # (n, S, S)
        planes = np.concatenate([mask[..., None], mask[..., None] * x], axis=-1)  # (n, S, S, 4)
        f = S // C
        features[lo:lo + n, 0] = planes.reshape(n, C, f, C, f, 4).mean(axis=(2, 4))
        padded = np.pad(np.concatenate([diff[..., None], x], axis=-1),
                        ((0, 0), (half, half), (half, half), (0, 0)))  # (n, S+W, S+W, 4) diff, R, G, B
        for i in range(n):
            on = mask[i] > 0.5
            axis, runs = _object_runs(on)
            for k, (a, b) in enumerate(runs):
                inside = np.zeros((S + _WINDOW, S + _WINDOW), dtype=np.float32)  # this object's run
                if axis == 1:
                    inside[:, half + a:half + b] = 1
                    ys = np.flatnonzero(on[:, a:b].any(axis=1))
                    y0, y1, x0, x1 = ys[0], ys[-1] + 1, a, b
                else:
                    inside[half + a:half + b] = 1
                    xs = np.flatnonzero(on[a:b].any(axis=0))
                    y0, y1, x0, x1 = a, b, xs[0], xs[-1] + 1
                boxes[lo + i, k] = np.array([x0, y0, x1, y1], dtype=np.float32) / np.float32(S)
                cy, cx = (y0 + y1) // 2, (x0 + x1) // 2  # window [c - W/2, c + W/2) in image pixels
                window = padded[i, cy:cy + _WINDOW, cx:cx + _WINDOW]  # (W, W, 4)
                own = window[..., 0] * inside[cy:cy + _WINDOW, cx:cx + _WINDOW]  # (W, W) this object's diff
                own_mask = np.clip((own - _MASK_LOW) / (_MASK_HIGH - _MASK_LOW), 0.0, 1.0)
                features[lo + i, 1 + k, :, :, 0] = own_mask.reshape(C, 2, C, 2).mean(axis=(1, 3))
                solid = own >= 0.8 * own.max()  # its pixels least blended with the background
                color = window[..., 1:][solid].mean(axis=0)  # (3,)
                features[lo + i, 1 + k, :, :, 1:] = color  # the mean color, in every cell
    raw = features.transpose(0, 1, 4, 2, 3).reshape(N, RAW_FEATURE_DIM)  # (N, 4096) view, channel, y, x
    return (raw, boxes) if return_boxes else raw


def region_views(raw_features):
    """The raw values of each region (view), stacked: (N, 4096) -> (N * 4, 1024), for the region PCA."""
    raw = np.asarray(raw_features, dtype=np.float32)
    return raw.reshape(raw.shape[0] * NUM_REGIONS, _VIEW_DIM)


def region_boxes(object_boxes):
    """The box of every region: the whole image (0, 0, 1, 1), then the objects' boxes.

    Inputs:
    - object_boxes: array of shape (N, 3, 4) from ``featurize_images(..., return_boxes=True)``.

    Returns boxes of shape (N, 4, 4), float32.
    """
    object_boxes = np.asarray(object_boxes, dtype=np.float32)
    whole = np.broadcast_to(np.array([0, 0, 1, 1], dtype=np.float32), (object_boxes.shape[0], 1, 4))
    return np.concatenate([whole, object_boxes], axis=1)


def region_features(raw_features, object_boxes, pca):
    """Region features (module docstring, item 5): each view's PCA values, one-hot view, box.

    Inputs:
    - raw_features: array of shape (N, 4096) from :func:`featurize_images`.
    - object_boxes: array of shape (N, 3, 4) from ``featurize_images(..., return_boxes=True)``.
    - pca: the region PCA, a dict from ``fit_pca(region_views(train_raw), REGION_PCA_DIM)``.

    Returns regions, of shape (N, 4, 64), float32.
    """
    N = np.asarray(raw_features).shape[0]
    projected = apply_pca(region_views(raw_features), pca).reshape(N, NUM_REGIONS, -1)  # (N, R, 56)
    which = np.broadcast_to(np.eye(NUM_REGIONS, dtype=np.float32), (N, NUM_REGIONS, NUM_REGIONS))
    return np.concatenate([projected, which, region_boxes(object_boxes)], axis=2)  # (N, R, 64)


def _load_featurizer(base_dir):
    """The PCA and the distance statistics saved in a dataset's ``shapes_featurizer.npz``."""
    path = Path(base_dir) / FEATURIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"featurize_for_dataset: {path} not found; {base_dir} is not a shapes "
                                f"dataset made by cs231n.data.shapes (real COCO features come from VGG-16)")
    with np.load(path) as saved:
        contents = {k: saved[k] for k in saved.files}
    if "train_std" not in contents:
        raise ValueError(f"featurize_for_dataset: {base_dir} was made by an older version of the shapes dataset "
                         f"(random-convolution features); its featurizer no longer exists. Regenerate it "
                         f"(cs231n.data.shapes.ensure_shapes_dataset, or `python -m cs231n train`) and retrain")
    return contents


def featurize_regions_for_dataset(images, base_dir):
    """The region features a shapes dataset would hold for new images (e.g. a PNG to caption).

    Uses the region PCA saved in ``base_dir/shapes_featurizer.npz``.

    Inputs:
    - images: as for :func:`featurize_images`.
    - base_dir: directory of a dataset made by :func:`make_shapes_dataset` (format version 3 or later).

    Returns a tuple of regions (N, 4, 64) float32 and their boxes (N, 4, 4) float32 (x0, y0, x1, y1 as
    fractions of the image).
    """
    saved = _load_featurizer(base_dir)
    if "region_pca_mean" not in saved:
        raise ValueError(f"featurize_regions_for_dataset: {base_dir} was made by an older version of the shapes "
                         f"dataset, without region features; regenerate it "
                         f"(cs231n.data.shapes.ensure_shapes_dataset, or `python -m cs231n train`)")
    pca = {"mean": saved["region_pca_mean"], "components": saved["region_pca_components"],
           "scale": saved["region_pca_scale"]}
    raw, boxes = featurize_images(images, return_boxes=True)
    return region_features(raw, boxes, pca), region_boxes(boxes)


def featurize_for_dataset(images, base_dir, return_distance=False, return_doubts=False):
    """The 512 PCA features a shapes dataset would hold for new images (e.g. a PNG to caption).

    Uses the PCA saved in ``base_dir/shapes_featurizer.npz``.

    Inputs:
    - images: as for :func:`featurize_images`.
    - base_dir: directory of a dataset made by :func:`make_shapes_dataset`.
    - return_distance: also return each image's :func:`feature_distance` from the training images and
      the dataset's calibrated limit for it.
    - return_doubts: also return, for each image, the reasons it is unlike the training images
      (:func:`image_doubts`, which includes a distance above the limit); an empty list: none.

    Returns features, of shape (N, 512), float32; with return_distance, (features, distances (N,),
    limit) where a distance above limit means the image is unlike the images the dataset was made of;
    with return_doubts, (features, doubts) or, with both, (features, distances, limit, doubts).
    """
    saved = _load_featurizer(base_dir)
    pca = {"mean": saved["pca_mean"], "components": saved["pca_components"], "scale": saved["pca_scale"]}
    raw = featurize_images(images)  # (N, 4096)
    features = apply_pca(raw, pca)  # (N, 512)
    if not (return_distance or return_doubts):
        return features
    distances = feature_distance(raw, saved["pca_mean"], saved["train_std"])
    limit = float(saved["distance_limit"])
    out = (features, distances, limit) if return_distance else (features,)
    return out + (image_doubts(images, raw, distances, limit),) if return_doubts else out


# An image is resized to FEATURE_INPUT_SIZE first; beyond these sides resizing destroys or invents the
# detail the featurizer reads (a 1x1 image becomes one flat color, a 5000x5000 one loses thin edges).
MIN_SIDE, MAX_SIDE = FEATURE_INPUT_SIZE // 4, FEATURE_INPUT_SIZE * 10


def image_doubts(images, raw_features, distances=None, limit=None):
    """Why each image is unlike the shapes dataset's images: a list of reasons per image (empty: none).

    The feature distance alone misses degenerate images: a blank image's features are all zeros, which
    lie close to the training mean. So these are checked on their own:
    - one flat color (all black, all white, ...);
    - no object found (nothing differs from the border's background color);
    - a side below MIN_SIDE or above MAX_SIDE pixels (the images are resized to 96x96);
    - a feature distance above the dataset's limit (when ``distances`` and ``limit`` are given).

    Inputs:
    - images: the images given to :func:`featurize_images` (a list of (H, W[, C]) arrays or an array).
    - raw_features: their (N, 4096) features from :func:`featurize_images`.
    - distances, limit: optional, from :func:`featurize_for_dataset` (``return_distance``).

    Returns a list of N lists of str.
    """
    raw = np.asarray(raw_features).reshape(len(raw_features), 1 + MAX_OBJECTS, 4, _CELLS * _CELLS)
    found = raw[:, 1:, 0].max(axis=2) > 0  # (N, MAX_OBJECTS) object slot k holds an object
    doubts = []
    for i, img in enumerate(images):
        a = np.asarray(img)
        reasons = []
        if a.size and np.ptp(a[..., :3] if a.ndim == 3 else a) == 0:
            reasons.append("it is one flat color")
        elif not found[i].any():
            reasons.append("the featurizer finds no object in it")
        h, w = a.shape[:2]
        if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
            reasons.append(f"it is {w}x{h} pixels, resized to {FEATURE_INPUT_SIZE}x{FEATURE_INPUT_SIZE} (sides "
                           f"of {MIN_SIDE} to {MAX_SIDE} keep the shapes readable)")
        if distances is not None and distances[i] > limit:
            reasons.append(f"feature distance {distances[i]:.1f} > {limit:.1f}, the limit calibrated on the val "
                           f"images")
        doubts.append(reasons)
    return doubts


_DISTANCE_FLOOR = 0.05  # added to every deviation, so values that never vary in training do not divide by 0


def feature_distance(raw_features, train_mean, train_std):
    """How far raw features are from the training images': the RMS of their z-scores.

    ``sqrt(mean_d ((x_d - mean_d) / (std_d + 0.05))^2)`` over the 4096 raw values d, with the mean and
    deviation of each value over the training images (values lie in [0, 1]; the 0.05 keeps values that
    never vary in training from dominating). Images like the training images score about 1; noise and
    photos light up cells that are always empty in the training images and score far higher.

    Inputs:
    - raw_features: array of shape (N, D) from :func:`featurize_images`.
    - train_mean, train_std: arrays of shape (D,) over the training images.

    Returns an array of shape (N,), float64.
    """
    x = np.asarray(raw_features, dtype=np.float64)
    z = (x - np.asarray(train_mean, dtype=np.float64)) / (np.asarray(train_std, dtype=np.float64) + _DISTANCE_FLOOR)
    return np.sqrt(np.mean(z * z, axis=1))


def distance_limit(val_distances):
    """The distance above which an image counts as unlike the dataset: 1.5 x the largest val distance."""
    return 1.5 * float(np.max(val_distances))
