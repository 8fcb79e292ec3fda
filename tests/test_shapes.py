"""Tests of the synthetic shapes dataset (cs231n.data.shapes): images, captions, vocabulary, featurizer,
PCA, the files it writes and the cache directory logic.

Captions are checked against the scenes with a small parser written here (it finds the color and shape
words in order and the relation phrase), and images against the scenes by reading pixels, so that the
checks do not reuse the generator's own grammar or drawing code.
"""
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from cs231n.data import shapes

TINY_TRAIN, TINY_VAL = 60, 20

# Words a caption may use for each color and shape (written out here, independently of the module).
COLOR_WORDS = {"red": {"red"}, "orange": {"orange"}, "yellow": {"yellow"}, "green": {"green"},
               "blue": {"blue"}, "purple": {"purple", "violet"}, "black": {"black"}}
SHAPE_WORDS = {"circle": {"circle", "disk"}, "square": {"square", "box"}, "triangle": {"triangle"},
               "diamond": {"diamond", "rhombus"}, "star": {"star"}}
SIZE_WORDS = {"large": {"large", "big"}, "small": {"small", "little", "tiny"}}
WORD_TO_COLOR = {w: c for c, ws in COLOR_WORDS.items() for w in ws}
WORD_TO_SHAPE = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
WORD_TO_SIZE = {w: s for s, ws in SIZE_WORDS.items() for w in ws}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny dataset generated once for this module; returns its directory."""
    return shapes.make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "tiny", "tiny", seed=3)


def _scenes(path):
    return json.loads((Path(path) / shapes.SCENES_FILE).read_text())


def _mentions(caption):
    """The (size or None, color, shape) objects named in a caption, in order, and its relation words."""
    words = caption.split()
    objects, size, color = [], None, None
    for w in words:
        if w in WORD_TO_SIZE:
            size = WORD_TO_SIZE[w]
        elif w in WORD_TO_COLOR:
            color = WORD_TO_COLOR[w]
        elif w in WORD_TO_SHAPE:
            objects.append((size, color, WORD_TO_SHAPE[w]))
            size, color = None, None
    relation = None
    for key in ("left", "right", "above", "over", "top", "below", "under", "beneath", "then", "next",
                "side", "one"):
        if key in words:
            relation = key
            break
    return objects, relation


# ---------------------------------------------------------------------------------------------------
# Scenes, images, captions


def test_scene_sampling_covers_the_design():
    rng = np.random.default_rng(0)
    scenes = [shapes.sample_scene(rng) for _ in range(600)]
    counts = {len(s.objects) for s in scenes}
    assert counts == {1, 2, 3}
    assert {o.color for s in scenes for o in s.objects} == set(COLOR_WORDS)
    assert {o.shape for s in scenes for o in s.objects} == set(SHAPE_WORDS)
    assert {o.size for s in scenes for o in s.objects} == {"small", "large"}
    assert {s.layout for s in scenes} == {"single", "row", "column"}
    for s in scenes:
        xs = [o.x for o in s.objects]
        ys = [o.y for o in s.objects]
        if s.layout == "row":  # left to right, clearly apart, roughly level
            assert all(b - a > 0.25 for a, b in zip(xs, xs[1:]))
            assert max(ys) - min(ys) < 0.1
        elif s.layout == "column":
            assert all(b - a > 0.25 for a, b in zip(ys, ys[1:]))
            assert max(xs) - min(xs) < 0.1
        for o in s.objects:  # inside the image
            assert o.radius < o.x < 1 - o.radius and o.radius < o.y < 1 - o.radius
        large = [o.radius for o in s.objects if o.size == "large"]
        small = [o.radius for o in s.objects if o.size == "small"]
        assert all(r > 0.13 for r in large) and all(r < 0.105 for r in small)


def test_rendered_pixels_match_the_scene():
    rng = np.random.default_rng(1)
    for _ in range(40):
        scene = shapes.sample_scene(rng)
        img = shapes.render_scene(scene, image_size=96)
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert np.array_equal(img[0, 0], np.array(scene.background, np.uint8))
        for o in scene.objects:  # the center pixel has the object's color
            center = img[int(o.y * 96), int(o.x * 96)].astype(int)
            assert np.abs(center - np.array(o.rgb)).max() <= 2
        # the object area is in proportion with its size: count the pixels far from the background
        far = np.abs(img.astype(int) - np.array(scene.background)).sum(axis=2) > 60
        expected = sum(np.pi * (o.radius * 96) ** 2 for o in scene.objects)
        assert 0.25 * expected < far.sum() < 1.1 * expected


def test_image_size_option():
    scene = shapes.sample_scene(np.random.default_rng(2))
    assert shapes.render_scene(scene, image_size=64).shape == (64, 64, 3)
    assert shapes.render_scene(scene, image_size=128).shape == (128, 128, 3)


def test_captions_name_every_object_in_order():
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(300):
        scene = shapes.sample_scene(rng)
        caps = shapes.describe_scene(scene, rng, 5)
        assert len(caps) == 5 and len(set(caps)) == 5
        for cap in caps:
            words = cap.split()
            assert 1 <= len(words) <= 15 and cap == cap.lower() and "  " not in cap
            mentioned, relation = _mentions(cap)
            if len(mentioned) != len(scene.objects) or any(color is None for _, color, _ in mentioned):
                continue  # a typo hid a color or shape word
            checked += 1
            facts = [(o.size, o.color, o.shape) for o in scene.objects]
            if relation in ("right", "below", "under", "beneath"):
                facts = facts[::-1]  # these captions name the objects from the other end
            for (size, color, shape), (true_size, true_color, true_shape) in zip(mentioned, facts):
                assert color == true_color and shape == true_shape, (cap, scene)
                assert size in (None, true_size), (cap, scene)
            if scene.layout == "row":
                assert relation in ("left", "right", "then", "next", "side"), cap
            elif scene.layout == "column":
                assert relation in ("above", "over", "top", "below", "under", "beneath", "one"), cap
    assert checked > 1300


def test_caption_phrasing_has_a_majority_form():
    # The most common phrasing of two objects in a row uses "to the left of" in more than half of them,
    # and "right of" still occurs, so all four relations are in the data.
    rng = np.random.default_rng(5)
    rows = []
    while len(rows) < 400:
        scene = shapes.sample_scene(rng)
        if scene.layout == "row" and len(scene.objects) == 2:
            rows += shapes.describe_scene(scene, rng, 5)
    assert sum("to the left of" in c for c in rows) > 0.3 * len(rows)
    assert sum("right of" in c for c in rows) > 0.1 * len(rows)


def test_grammar_probabilities_sum_to_one():
    tables = list(shapes._TEMPLATES.values()) + list(shapes._RELATIONS.values())
    tables += list(shapes._SIZE_WORDS.values()) + list(shapes._COLOR_WORDS.values())
    tables += list(shapes._SHAPE_WORDS.values())
    for table in tables:
        assert abs(sum(p for _, p in table) - 1.0) < 1e-12, table


# ---------------------------------------------------------------------------------------------------
# Featurizer and PCA


def _slots(features):
    """Features (N, 4096) as (N, view, channel, 16, 16): view 0 the image, views 1-3 the objects."""
    return features.reshape(-1, 4, 4, 16, 16)


def test_featurizer_puts_each_object_in_its_slot_in_reading_order():
    rng = np.random.default_rng(6)
    scenes = [shapes.sample_scene(rng) for _ in range(60)]
    images = np.stack([shapes.render_scene(s) for s in scenes])
    feats = shapes.featurize_images(images)
    assert feats.shape == (60, 4096) and feats.dtype == np.float32
    assert feats.min() >= 0 and feats.max() <= 1
    views = _slots(feats).astype(np.float64)
    for scene, image, v in zip(scenes, images, views):
        # where the image differs from its background, counted directly on the pixels
        differs = np.abs(image.astype(int) - np.array(scene.background)).max(axis=-1) > 64
        assert v[0, 0].sum() == pytest.approx(differs.sum() / 36, rel=0.25)  # 6x6-pixel cells
        for k in range(3):
            mass = v[1 + k, 0].sum()
            if k >= len(scene.objects):
                assert mass == 0  # no object: an empty slot
                continue
            obj = scene.objects[k]
            color = v[1 + k, 1:] * 255  # (3, 16, 16): the object's mean color in every cell
            assert np.ptp(color, axis=(1, 2)).max() < 1e-3
            assert np.abs(color[:, 0, 0] - np.array(obj.rgb)).max() < 12, (k, color[:, 0, 0], obj)
            # its mass (2x2-pixel cells) is the object's area, counted on the pixels near its center
            r = int(obj.radius * 96) + 3
            cy, cx = int(obj.y * 96), int(obj.x * 96)
            area = differs[max(cy - r, 0):cy + r, max(cx - r, 0):cx + r].sum()
            assert mass == pytest.approx(area / 4, rel=0.25)


def test_featurizer_keeps_sizes_and_shapes_apart():
    """Same place and color, other size or shape: the object slot changes, the other slots do not."""
    def scene(shape, size):
        obj = shapes.ShapeObject(shape=shape, color="red", size=size, x=0.5, y=0.5,
                                 radius=0.14 if size == "large" else 0.095, rgb=(215, 40, 40))
        return shapes.Scene(layout="single", objects=(obj,), background=(230, 230, 230))

    names = [(shape, size) for shape in shapes.SHAPES for size in shapes.OBJECT_SIZES]
    feats = _slots(shapes.featurize_images(np.stack([shapes.render_scene(scene(*n)) for n in names])))
    masks = feats[:, 1, 0].reshape(len(names), -1)  # the object's silhouette
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert np.abs(masks[a] - masks[b]).sum() > 3, (names[a], names[b])
    large = [i for i, n in enumerate(names) if n[1] == "large"]
    small = [i for i, n in enumerate(names) if n[1] == "small"]
    assert masks[large].sum(axis=1).min() > masks[small].sum(axis=1).max() * 0.9
    assert not feats[:, 2:].any()


def test_featurizer_inputs():
    rng = np.random.default_rng(7)
    img = shapes.render_scene(shapes.sample_scene(rng))
    base = shapes.featurize_images(img[None])
    np.testing.assert_array_equal(shapes.featurize_images([img]), base)  # a list works
    np.testing.assert_allclose(shapes.featurize_images(img[None] / 255.0), base, atol=1e-5)  # floats in [0, 1]
    big = np.asarray(Image.fromarray(img).resize((150, 130), Image.Resampling.NEAREST))
    small = np.asarray(Image.fromarray(big).resize((96, 96), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(shapes.featurize_images([big]), shapes.featurize_images(small[None]))
    assert np.abs(shapes.featurize_images([big]) - base).mean() < 0.1 * np.abs(base).mean()
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(shapes.featurize_images([rgba]), base)
    assert shapes.featurize_images([img[:, :, 0]]).shape == (1, 4096)  # grayscale
    # features see where things are: the left-right mirror image gives other features
    assert not np.allclose(shapes.featurize_images(img[None, :, ::-1]), base)
    with pytest.raises(ValueError, match="batch"):
        shapes.featurize_images(img)
    with pytest.raises(TypeError):
        shapes.featurize_images("image.png")


def test_fit_pca_exact_and_randomized_agree_with_svd():
    rng = np.random.default_rng(8)
    # low rank plus a little noise: the randomized fit must find the same top subspace
    X = (rng.standard_normal((700, 12)) * np.arange(12, 0, -1)) @ rng.standard_normal((12, 300))
    X = (X + 0.01 * rng.standard_normal((700, 300)) + 3.0).astype(np.float32)
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    for M in (10, 200):  # 10 + 64 < 300 takes the randomized branch, 200 the exact one
        pca = shapes.fit_pca(X, M, seed=0)
        C = pca["components"].astype(np.float64)
        assert C.shape == (M, 300)
        np.testing.assert_allclose(C @ C.T, np.eye(M), atol=1e-4)
        k = min(M, 10)
        np.testing.assert_allclose(np.abs(C[:k] @ Vt[:k].T), np.eye(k), atol=1e-3)  # same axes, up to sign
        proj = shapes.apply_pca(X, pca)
        assert proj.shape == (700, M) and proj.dtype == np.float32
        np.testing.assert_allclose(proj.mean(axis=0), 0, atol=1e-2 * float(np.abs(proj).max()))
        np.testing.assert_allclose(np.mean(np.sum(proj.astype(np.float64) ** 2, axis=1)), M, rtol=1e-3)


def test_fit_pca_with_fewer_rows_than_components_pads_with_zeros():
    X = np.random.default_rng(9).standard_normal((20, 50)).astype(np.float32)
    pca = shapes.fit_pca(X, 30)
    C = pca["components"]
    np.testing.assert_allclose(C[:19] @ C[:19].T, np.eye(19), atol=1e-5)
    assert not C[19:].any()


# ---------------------------------------------------------------------------------------------------
# The written dataset


def test_files_follow_the_coco_format(tiny):
    names = {"coco2014_captions.h5", "coco2014_vocab.json", "train2014_vgg16_fc7.h5", "val2014_vgg16_fc7.h5",
             "train2014_vgg16_fc7_pca.h5", "val2014_vgg16_fc7_pca.h5", "train2014_urls.txt", "val2014_urls.txt"}
    assert names <= {p.name for p in tiny.iterdir()}
    with h5py.File(tiny / "coco2014_captions.h5") as f:
        assert set(f) == {"train_captions", "train_image_idxs", "val_captions", "val_image_idxs"}
        for split, n in (("train", TINY_TRAIN), ("val", TINY_VAL)):
            assert f[f"{split}_captions"].shape == (5 * n, 17) and f[f"{split}_captions"].dtype == np.int32
            assert f[f"{split}_image_idxs"].dtype == np.int32
            np.testing.assert_array_equal(f[f"{split}_image_idxs"][:], np.repeat(np.arange(n), 5))
    for split, n in (("train", TINY_TRAIN), ("val", TINY_VAL)):
        for name, width in ((f"{split}2014_vgg16_fc7.h5", 4096), (f"{split}2014_vgg16_fc7_pca.h5", 512)):
            with h5py.File(tiny / name) as f:
                assert list(f) == ["features"]
                assert f["features"].shape == (n, width) and f["features"].dtype == np.float32
                assert np.isfinite(f["features"][:]).all()
    vocab = json.loads((tiny / "coco2014_vocab.json").read_text())
    assert vocab["idx_to_word"][:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert all(vocab["word_to_idx"][w] == i for i, w in enumerate(vocab["idx_to_word"]))


def test_urls_are_file_urls_of_the_images(tiny):
    scenes = _scenes(tiny)
    for split, n in (("train", TINY_TRAIN), ("val", TINY_VAL)):
        urls = (tiny / f"{split}2014_urls.txt").read_text().splitlines()
        assert len(urls) == n
        for i in (0, n - 1):
            assert urls[i].startswith("file://")
            path = Path(urls[i][len("file://"):])
            assert path.is_file() and path.parent.parent.parent == tiny.resolve()
            img = np.asarray(Image.open(path))
            assert img.shape == (96, 96, 3)
            scene = scenes[split][i]
            assert np.array_equal(img[0, 0], scene["background"])


def test_captions_encode_the_scene_captions_with_the_vocabulary(tiny):
    scenes = _scenes(tiny)
    vocab = json.loads((tiny / "coco2014_vocab.json").read_text())
    idx_to_word = vocab["idx_to_word"]
    # independent vocabulary: words seen at least min_count (2 for tiny) times in the train captions
    counts = {}
    for scene in scenes["train"]:
        for cap in scene["captions"]:
            for w in cap.split():
                counts[w] = counts.get(w, 0) + 1
    assert set(idx_to_word[4:]) == {w for w, c in counts.items() if c >= 2}
    assert len(vocab["idx_to_word"]) == len(set(vocab["idx_to_word"]))
    with h5py.File(tiny / "coco2014_captions.h5") as f:
        train_rows = f["train_captions"][:]
        for split in ("train", "val"):
            rows = f[f"{split}_captions"][:]
            caps = [c for scene in scenes[split] for c in scene["captions"]]
            for row, cap in zip(rows, caps):
                words = [w if w in vocab["word_to_idx"] else "<UNK>" for w in cap.split()]
                expected = ["<START>"] + words + ["<END>"] + ["<NULL>"] * (15 - len(words))
                assert [idx_to_word[i] for i in row] == expected
    assert (train_rows == 3).any()  # rare words (typos) are <UNK>, as in COCO


def test_pca_features_are_the_projection_of_the_raw_features(tiny):
    saved = np.load(tiny / shapes.FEATURIZER_FILE)
    for split in ("train", "val"):
        with h5py.File(tiny / f"{split}2014_vgg16_fc7.h5") as f:
            raw = f["features"][:]
        with h5py.File(tiny / f"{split}2014_vgg16_fc7_pca.h5") as f:
            pca = f["features"][:]
        expected = (raw.astype(np.float64) - saved["pca_mean"]) @ saved["pca_components"].T.astype(np.float64)
        np.testing.assert_allclose(pca, expected * float(saved["pca_scale"]), rtol=1e-3, atol=1e-3)
    # the training projections are centered; fewer images than 512 leaves zero columns
    with h5py.File(tiny / "train2014_vgg16_fc7_pca.h5") as f:
        train = f["features"][:]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-3)
    assert not train[:, TINY_TRAIN:].any()


def test_featurize_for_dataset_reproduces_stored_features(tiny):
    urls = (tiny / "val2014_urls.txt").read_text().splitlines()[:4]
    images = [np.asarray(Image.open(u[len("file://"):]).convert("RGB")) for u in urls]
    feats = shapes.featurize_for_dataset(images, tiny)
    with h5py.File(tiny / "val2014_vgg16_fc7_pca.h5") as f:
        np.testing.assert_allclose(feats, f["features"][:4], rtol=1e-4, atol=1e-4)
    with pytest.raises(FileNotFoundError, match="shapes_featurizer.npz"):
        shapes.featurize_for_dataset(images, tiny / "images")


def test_region_files_hold_each_view_its_name_and_its_box(tiny):
    """SPEC section 10: (M, 4, 64) regions = 56 PCA values of each view, a one-hot of the view, its box."""
    saved = np.load(tiny / shapes.FEATURIZER_FILE)
    scenes = _scenes(tiny)
    for split, n in (("train", TINY_TRAIN), ("val", TINY_VAL)):
        with h5py.File(tiny / f"{split}2014_regions.h5") as f:
            assert set(f) == {"features", "boxes"} and "grid" not in f.attrs  # not a grid
            regions, boxes = f["features"][:], f["boxes"][:]
        with h5py.File(tiny / f"{split}2014_vgg16_fc7.h5") as f:
            raw = f["features"][:]
        assert regions.shape == (n, 4, 64) and regions.dtype == np.float32
        assert boxes.shape == (n, 4, 4) and boxes.dtype == np.float32
        # the PCA values: each 1024-value view projected with the saved region PCA (computed here in float64)
        views = raw.reshape(n, 4, 1024).astype(np.float64)
        expected = (views - saved["region_pca_mean"]) @ saved["region_pca_components"].T.astype(np.float64)
        np.testing.assert_allclose(regions[:, :, :56], expected * float(saved["region_pca_scale"]),
                                   rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(regions[:, :, 56:60], np.broadcast_to(np.eye(4), (n, 4, 4)))
        np.testing.assert_array_equal(regions[:, :, 60:], boxes)
        for scene, b in zip(scenes[split], boxes):
            np.testing.assert_array_equal(b[0], [0, 0, 1, 1])  # the whole image
            for k in range(3):
                if k >= len(scene["objects"]):
                    assert not b[1 + k].any()  # no object, no box
                    continue
                obj = scene["objects"][k]
                x0, y0, x1, y1 = b[1 + k]
                assert abs((x0 + x1) / 2 - obj["x"]) < 0.03 and abs((y0 + y1) / 2 - obj["y"]) < 0.04
                assert 1.3 * obj["radius"] < x1 - x0 < 2.1 * obj["radius"] + 0.02


def test_featurize_regions_for_dataset_reproduces_stored_regions(tiny, tmp_path):
    urls = (tiny / "val2014_urls.txt").read_text().splitlines()[:4]
    images = [np.asarray(Image.open(u[len("file://"):]).convert("RGB")) for u in urls]
    regions, boxes = shapes.featurize_regions_for_dataset(images, tiny)
    with h5py.File(tiny / "val2014_regions.h5") as f:
        np.testing.assert_allclose(regions, f["features"][:4], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(boxes, f["boxes"][:4])
    # the 4096 raw values are what they were before regions existed; only the boxes are added
    raw, object_boxes = shapes.featurize_images(np.stack(images), return_boxes=True)
    np.testing.assert_array_equal(raw, shapes.featurize_images(np.stack(images)))
    np.testing.assert_array_equal(object_boxes, boxes[:, 1:])
    # a dataset made before regions (format version 2) has no region PCA: a clear error
    old = tmp_path / "old"
    old.mkdir()
    with np.load(tiny / shapes.FEATURIZER_FILE) as saved:
        np.savez(old / shapes.FEATURIZER_FILE, **{k: saved[k] for k in saved.files if not k.startswith("region")})
    with pytest.raises(ValueError, match="older version.*regenerate"):
        shapes.featurize_regions_for_dataset(images, old)


def test_a_cached_dataset_without_regions_is_regenerated(tmp_path):
    """A version-2 cache (no region files) is rebuilt with regions, not reused."""
    target = tmp_path / "shapes"
    path = shapes.ensure_shapes_dataset(target, "tiny", seed=1, **_small())
    meta = json.loads((path / shapes.META_FILE).read_text())
    meta["params"]["version"] = 2
    (path / shapes.META_FILE).write_text(json.dumps(meta))
    for split in ("train", "val"):
        (path / f"{split}2014_regions.h5").unlink()
    shapes.ensure_shapes_dataset(target, "tiny", seed=1, **_small())
    assert json.loads((path / shapes.META_FILE).read_text())["params"]["version"] == shapes.FORMAT_VERSION
    assert all((path / f"{split}2014_regions.h5").is_file() for split in ("train", "val"))


def test_same_seed_same_dataset_other_seed_other(tmp_path, tiny):
    again = shapes.make_shapes_dataset(tmp_path / "again", "tiny", seed=3)
    other = shapes.make_shapes_dataset(tmp_path / "other", "tiny", seed=4)
    for name, key in (("coco2014_captions.h5", "train_captions"), ("train2014_vgg16_fc7_pca.h5", "features"),
                      ("val2014_vgg16_fc7.h5", "features")):
        with h5py.File(tiny / name) as a, h5py.File(again / name) as b, h5py.File(other / name) as c:
            np.testing.assert_array_equal(a[key][:], b[key][:])
            assert a[key].shape != c[key].shape or not np.array_equal(a[key][:], c[key][:])
    assert (tiny / "coco2014_vocab.json").read_text() == (again / "coco2014_vocab.json").read_text()
    img_a = (tiny / "images" / "train2014" / "000007.png").read_bytes()
    assert img_a == (again / "images" / "train2014" / "000007.png").read_bytes()


def test_val_split_does_not_depend_on_the_number_of_train_images(tmp_path, tiny):
    more = shapes.make_shapes_dataset(tmp_path / "more", "tiny", seed=3, num_train_images=70)
    assert _scenes(more)["val"] == _scenes(tiny)["val"]
    assert _scenes(more)["train"][:TINY_TRAIN] == _scenes(tiny)["train"]


def test_make_refuses_a_non_empty_directory_and_bad_parameters(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        shapes.make_shapes_dataset(tmp_path / "x", "tiny")
    with pytest.raises(ValueError, match="size"):
        shapes.make_shapes_dataset(tmp_path / "y", "huge")
    with pytest.raises(ValueError, match="image_size"):
        shapes.make_shapes_dataset(tmp_path / "y", "tiny", image_size=32)
    with pytest.raises(ValueError, match="num_train_images"):
        shapes.make_shapes_dataset(tmp_path / "y", "tiny", num_train_images=0)


# ---------------------------------------------------------------------------------------------------
# The cache directory


def _small(**kw):
    return dict(num_train_images=12, num_val_images=4, verbose=False, **kw)


def test_ensure_generates_once_then_reuses(tmp_path):
    target = tmp_path / "cache" / "shapes"
    path = shapes.ensure_shapes_dataset(target, "tiny", seed=1, **_small())
    assert path == target.absolute() and (path / shapes.META_FILE).is_file()
    stamp = (path / shapes.META_FILE).stat().st_mtime_ns
    assert shapes.ensure_shapes_dataset(target, "tiny", seed=1, **_small()) == path
    assert (path / shapes.META_FILE).stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in target.parent.iterdir()] == ["shapes"]  # no temporary directories left
    # other parameters: rebuilt in place
    shapes.ensure_shapes_dataset(target, "tiny", seed=2, **_small())
    assert json.loads((path / shapes.META_FILE).read_text())["params"]["seed"] == 2
    assert [p.name for p in target.parent.iterdir()] == ["shapes"]


def test_ensure_never_leaves_half_a_dataset(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(shapes.dataset, "fit_pca", broken)  # where make_shapes_dataset looks it up
    target = tmp_path / "shapes"
    with pytest.raises(RuntimeError, match="interrupted"):
        shapes.ensure_shapes_dataset(target, "tiny", **_small())
    assert list(tmp_path.iterdir()) == []


def test_ensure_replaces_other_shapes_datasets_but_not_foreign_files(tmp_path):
    unfinished = tmp_path / "other"
    shapes.make_shapes_dataset(unfinished, "tiny", num_train_images=12, num_val_images=4)
    (unfinished / shapes.META_FILE).write_text(json.dumps({"params": {"seed": 99}}))
    shapes.ensure_shapes_dataset(unfinished, "tiny", **_small())
    assert json.loads((unfinished / shapes.META_FILE).read_text())["params"]["seed"] == 0

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not empty"):
        shapes.ensure_shapes_dataset(foreign, "tiny", **_small())
    assert (foreign / "thesis.tex").read_text() == "do not delete"


def test_ensure_fixes_urls_after_a_move(tmp_path):
    first = shapes.ensure_shapes_dataset(tmp_path / "a", "tiny", **_small())
    moved = tmp_path / "b"
    os.replace(first, moved)
    path = shapes.ensure_shapes_dataset(moved, "tiny", **_small())
    urls = (path / "train2014_urls.txt").read_text().splitlines()
    assert len(urls) == 12 and all(Path(u[len("file://"):]).is_file() for u in urls)


def test_default_directory_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CS231N_SHAPES_DIR", raising=False)
    root = Path(__file__).resolve().parents[1]  # the repository root
    assert shapes.default_shapes_dir() == root / "datasets" / "shapes"
    assert shapes.default_shapes_dir("tiny", 0) == root / "datasets" / "shapes_tiny_seed0"
    monkeypatch.setenv("CS231N_SHAPES_DIR", str(tmp_path / "mine"))
    assert shapes.default_shapes_dir() == tmp_path / "mine"
    path = shapes.ensure_shapes_dataset(None, "default", **_small())
    assert path == (tmp_path / "mine").absolute() and (path / "coco2014_captions.h5").is_file()
