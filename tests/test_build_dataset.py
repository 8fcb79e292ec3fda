"""Tests for cs231n.data.build_dataset on small COCO-style JSON and feature files written here."""
import json
import os

import h5py
import numpy as np
import pytest

from cs231n.data.build_dataset import build_dataset, build_vocab, encode_captions, tokenize_caption
from cs231n.data.download import verify_coco_dir

D, PCA_DIM = 8, 3

TRAIN = {
    "images": [
        {"id": 11, "file_name": "train2014/a.jpg", "coco_url": "http://img.example/a.jpg"},
        {"id": 7, "file_name": "train2014/b.jpg"},
        {"id": 30, "file_name": "c.jpg", "flickr_url": "http://farm.example/c.jpg"},
        {"id": 4, "url": "http://x.example/d.jpg", "coco_url": "http://img.example/d.jpg"},
        {"id": 5, "file_name": "/train2014/e.jpg"},
        {"id": 6, "coco_url": "http://img.example/f.jpg"},  # an image without captions
    ],
    "annotations": [
        {"image_id": 11, "id": 1, "caption": "A dog, on the GRASS."},
        {"image_id": 7, "id": 2, "caption": "The dog's ball!"},
        {"image_id": 30, "id": 3, "caption": "a cat on a mat"},
        {"image_id": 4, "id": 4, "caption": "A dog runs and runs and runs on the grass in the park "
                                            "near a lake with ducks today"},
        {"image_id": 5, "id": 5, "caption": "Dog on grass;  zebra?\n"},
        {"image_id": 30, "id": 6, "caption": "A CAT!!"},
    ],
}
VAL = {
    "images": [
        {"id": 1, "file_name": "val2014/x.jpg"},
        {"id": 2, "file_name": "val2014/y.jpg"},
        {"id": 3, "file_name": "val2014/z.jpg"},
    ],
    "annotations": [
        {"image_id": 3, "caption": "The cat, on a mat."},
        {"image_id": 1, "caption": "zebra zebra"},
        {"image_id": 3, "caption": "A dog"},
    ],
}
# Worked out by hand from the captions above.
TRAIN_TOKENS = [
    ["a", "dog", "on", "the", "grass"],
    ["the", "dogs", "ball"],
    ["a", "cat", "on", "a", "mat"],
    ["a", "dog", "runs", "and", "runs", "and", "runs", "on", "the", "grass", "in", "the", "park", "near", "a"],
    ["dog", "on", "grass", "zebra"],
    ["a", "cat"],
]
VAL_TOKENS = [["the", "cat", "on", "a", "mat"], ["zebra", "zebra"], ["a", "dog"]]
# min_count=2: a 6, on 4, the 4, dog 3, grass 3, runs 3, and 2, cat 2; the rest appear once.
VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "on", "the", "dog", "grass", "runs", "and", "cat"]
TRAIN_IDXS = [0, 1, 2, 3, 4, 2]
VAL_IDXS = [2, 0, 2]
BASE = "http://images.example/"
TRAIN_URLS = ["http://img.example/a.jpg", BASE + "train2014/b.jpg", "http://farm.example/c.jpg",
              "http://x.example/d.jpg", BASE + "train2014/e.jpg", "http://img.example/f.jpg"]
VAL_URLS = [BASE + "val2014/x.jpg", BASE + "val2014/y.jpg", BASE + "val2014/z.jpg"]


def expected_rows(token_lists):
    """START, the words (unknown ones as <UNK>), END, then NULL up to 17 columns."""
    rows = []
    for tokens in token_lists:
        words = [VOCAB.index(w) if w in VOCAB else 3 for w in tokens]
        rows.append([1, *words, 2] + [0] * (15 - len(words)))
    return np.array(rows)


@pytest.fixture
def inputs(tmp_path):
    """Paths of the JSON and feature files, and the features as float64 arrays."""
    rng = np.random.default_rng(0)
    mixing = np.linalg.qr(rng.standard_normal((D, D)))[0]
    scales = np.array([6.0, 4.0, 2.5, 1.5, 1.0, 0.7, 0.5, 0.3])
    train = (rng.standard_normal((6, D)) * scales) @ mixing + 3.0
    val = (rng.standard_normal((3, D)) * scales) @ mixing + 3.0
    (tmp_path / "train.json").write_text(json.dumps(TRAIN))
    (tmp_path / "val.json").write_text(json.dumps(VAL))
    np.save(tmp_path / "train.npy", train)  # float64 on purpose: written out as float32
    with h5py.File(tmp_path / "val.h5", "w") as f:
        f["features"] = val.astype(np.float32)
    return {"train_json": tmp_path / "train.json", "val_json": tmp_path / "val.json",
            "train_features": tmp_path / "train.npy", "val_features": tmp_path / "val.h5",
            "train": train, "val": val}


def build(inputs, out_dir, **kwargs):
    options = dict(min_count=2, pca_dim=PCA_DIM, image_base_url=BASE)
    options.update(kwargs)
    return build_dataset(inputs["train_json"], inputs["val_json"], inputs["train_features"],
                         inputs["val_features"], out_dir, **options)


def read_features(path):
    with h5py.File(path, "r") as f:
        assert f["features"].dtype == np.float32
        return f["features"][()]


def test_captions_vocab_and_urls(inputs, tmp_path):
    out = build(inputs, tmp_path / "out")
    assert out == tmp_path / "out"
    assert sorted(os.listdir(tmp_path)) == ["out", "train.json", "train.npy", "val.h5", "val.json"]

    vocab = json.loads((out / "coco2014_vocab.json").read_text())
    assert vocab["idx_to_word"] == VOCAB
    assert vocab["word_to_idx"] == {w: i for i, w in enumerate(VOCAB)}
    with h5py.File(out / "coco2014_captions.h5", "r") as f:
        for split, tokens, idxs in (("train", TRAIN_TOKENS, TRAIN_IDXS), ("val", VAL_TOKENS, VAL_IDXS)):
            assert f[f"{split}_captions"].dtype == np.int32
            assert f[f"{split}_image_idxs"].dtype == np.int32
            np.testing.assert_array_equal(f[f"{split}_captions"][()], expected_rows(tokens))
            np.testing.assert_array_equal(f[f"{split}_image_idxs"][()], idxs)
        long_caption = " ".join(VOCAB[i] for i in f["train_captions"][3])
    assert long_caption == ("<START> a dog runs and runs and runs on the grass <UNK> the <UNK> <UNK> a <END>")
    assert (out / "train2014_urls.txt").read_text() == "".join(u + "\n" for u in TRAIN_URLS)
    assert (out / "val2014_urls.txt").read_text() == "".join(u + "\n" for u in VAL_URLS)
    assert verify_coco_dir(out, feature_dim=D, pca_dim=PCA_DIM)["vocab_size"] == len(VOCAB)


def test_features_and_pca(inputs, tmp_path):
    out = build(inputs, tmp_path / "out")
    train32, val32 = inputs["train"].astype(np.float32), inputs["val"].astype(np.float32)
    np.testing.assert_array_equal(read_features(out / "train2014_vgg16_fc7.h5"), train32)
    np.testing.assert_array_equal(read_features(out / "val2014_vgg16_fc7.h5"), val32)

    # Independent PCA: SVD of the centered float32 train features, each axis signed so that its
    # largest-magnitude entry is positive (the documented convention).
    mean = train32.astype(np.float64).mean(axis=0)
    _, _, vt = np.linalg.svd(train32 - mean, full_matrices=False)
    axes = vt[:PCA_DIM].T
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(PCA_DIM)])
    train_pca = read_features(out / "train2014_vgg16_fc7_pca.h5")
    val_pca = read_features(out / "val2014_vgg16_fc7_pca.h5")
    np.testing.assert_allclose(train_pca, (train32 - mean) @ axes, rtol=0, atol=1e-4)
    np.testing.assert_allclose(val_pca, (val32 - mean) @ axes, rtol=0, atol=1e-4)
    variances = train_pca.astype(np.float64).var(axis=0)
    assert np.all(np.diff(variances) < 0)
    np.testing.assert_allclose(train_pca.mean(axis=0), 0.0, atol=1e-4)


def test_tokenize_caption():
    assert tokenize_caption("A Dog, on the GRASS.") == ["a", "dog", "on", "the", "grass"]
    assert tokenize_caption("The dog's   ball!\n\t3 of them") == ["the", "dogs", "ball", "3", "of", "them"]
    assert tokenize_caption("Caf\u00e9 \u201cnice\u201d snake_case") == ["caf\u00e9", "nice", "snakecase"]
    assert tokenize_caption("Cafe\u0301") == ["caf\u00e9"]  # combining accent composed, not dropped
    assert tokenize_caption("?!") == []
    with pytest.raises(TypeError, match="caption must be a str"):
        tokenize_caption(None)


def test_vocab_and_encoding_helpers():
    idx_to_word, word_to_idx = build_vocab([["b", "a"], ["a", "c", "b"], ["d"]], min_count=2)
    assert idx_to_word == ["<NULL>", "<START>", "<END>", "<UNK>", "a", "b"]
    caps = encode_captions([["a", "zzz", "b"], []], word_to_idx, max_length=5)
    np.testing.assert_array_equal(caps, [[1, 4, 3, 5, 2], [1, 2, 0, 0, 0]])
    assert caps.dtype == np.int32
    with pytest.raises(ValueError, match="max_length must be an integer >= 3"):
        encode_captions([["a"]], word_to_idx, max_length=2)
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        build_vocab([["a"]], min_count=0)


def test_dicts_arrays_h5_key_and_file_names_as_given(inputs, tmp_path):
    with h5py.File(tmp_path / "train_feats.h5", "w") as f:
        f["feats"] = inputs["train"]
    out = build_dataset(TRAIN, VAL, tmp_path / "train_feats.h5", inputs["val"].astype(np.float32),
                        tmp_path / "out", min_count=2, pca_dim=PCA_DIM, features_key="feats")
    lines = (out / "train2014_urls.txt").read_text().splitlines()
    assert lines[1] == "train2014/b.jpg" and lines[4] == "/train2014/e.jpg"
    np.testing.assert_array_equal(read_features(out / "train2014_vgg16_fc7.h5"),
                                  inputs["train"].astype(np.float32))
    with pytest.raises(ValueError, match="has no dataset 'features'.*features_key"):
        build_dataset(TRAIN, VAL, tmp_path / "train_feats.h5", inputs["val"], tmp_path / "out2",
                      min_count=2, pca_dim=PCA_DIM)


def test_loads_with_coco_utils(inputs, tmp_path):
    coco_utils = pytest.importorskip("cs231n.coco_utils", reason="cs231n.coco_utils is not written yet")
    out = build(inputs, tmp_path / "out")
    data = coco_utils.load_coco_data(base_dir=str(out))
    np.testing.assert_array_equal(data["train_captions"], expected_rows(TRAIN_TOKENS))
    np.testing.assert_array_equal(data["val_image_idxs"], VAL_IDXS)
    assert data["train_features"].shape == (6, PCA_DIM)
    assert list(data["idx_to_word"]) == VOCAB
    assert list(data["val_urls"]) == VAL_URLS
    raw = coco_utils.load_coco_data(base_dir=str(out), pca_features=False)
    np.testing.assert_array_equal(raw["val_features"], inputs["val"].astype(np.float32))


def test_existing_out_dir_needs_force(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="force=True"):
        build(inputs, out)
    assert os.listdir(out) == ["mine.txt"]
    build(inputs, out, force=True)
    assert "mine.txt" not in os.listdir(out)
    assert sorted(os.listdir(tmp_path)) == ["out", "train.json", "train.npy", "val.h5", "val.json"]


def test_errors_leave_nothing_behind(inputs, tmp_path):
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "out"

    bad_val = inputs["val"].copy()
    bad_val[1, 2] = np.nan
    np.save(tmp_path / "val_nan.npy", bad_val)
    with pytest.raises(ValueError, match="val_features row 1 holds NaN"):
        build(dict(inputs, val_features=tmp_path / "val_nan.npy"), out)
    (tmp_path / "val_nan.npy").unlink()

    with pytest.raises(ValueError, match="train_features has 5 rows but train_json lists 6 images"):
        build(dict(inputs, train_features=inputs["train"][:5]), out)

    unknown = dict(VAL, annotations=VAL["annotations"] + [{"image_id": 999, "caption": "a dog"}])
    with pytest.raises(ValueError, match=r"val_json has 1 captions whose image_id is not in 'images', e.g. \[999\]"):
        build(dict(inputs, val_json=unknown), out)

    duplicate = dict(TRAIN, images=TRAIN["images"] + [{"id": 7, "file_name": "again.jpg"}])
    with pytest.raises(ValueError, match="lists image id 7 twice"):
        build(dict(inputs, train_json=duplicate), out)

    with pytest.raises(ValueError, match=r"pca_dim=512 needs .*\(at most 5\)"):
        build(inputs, out, pca_dim=512)

    with pytest.raises(ValueError, match="train_features has 8 columns but val_features has 5"):
        build(dict(inputs, val_features=inputs["val"][:, :5]), out)

    no_url = dict(VAL, images=VAL["images"][:2] + [{"id": 3}])
    with pytest.raises(ValueError, match=r"val_json images\[2\] has none of the fields"):
        build(dict(inputs, val_json=no_url), out)

    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        build(inputs, out, min_count=0)
    assert sorted(os.listdir(tmp_path)) == before


def test_region_features_from_any_extractor(inputs, tmp_path):
    """SPEC section 10: regions (M, R, D) from .npy, a grid (M, D, h, w) array, or an .h5 in the region format."""
    coco_utils = pytest.importorskip("cs231n.coco_utils")
    rng = np.random.default_rng(1)
    train = rng.standard_normal((6, 3, 5))  # (M, R, D), float64: written as float32
    np.save(tmp_path / "train_regions.npy", train)
    val_grid = rng.standard_normal((3, 5, 1, 3)).astype(np.float32)  # (M, D, h, w): R = 3
    with pytest.raises(ValueError, match="differ"):  # the train regions are not a grid
        build(dict(inputs), tmp_path / "out", train_regions=tmp_path / "train_regions.npy", val_regions=val_grid)
    out = build(dict(inputs), tmp_path / "out", train_regions=tmp_path / "train_regions.npy",
                val_regions=train[:3])
    data = coco_utils.load_coco_data(base_dir=out, regions=True)
    np.testing.assert_array_equal(data["train_regions"], train.astype(np.float32))
    assert "train_region_boxes" not in data and "region_grid" not in data
    # a file already in the region format keeps its boxes and grid; a grid array is stored row-major
    boxes = np.broadcast_to(coco_utils.grid_boxes(1, 3), (6, 3, 4))
    coco_utils.write_regions(tmp_path / "train_regions.h5", train, boxes=boxes, grid=(1, 3))
    out = build(dict(inputs), tmp_path / "out2", train_regions=tmp_path / "train_regions.h5", val_regions=val_grid)
    data = coco_utils.load_coco_data(base_dir=out, regions=True)
    assert data["region_grid"] == (1, 3)
    np.testing.assert_array_equal(data["val_regions"], val_grid[:, :, 0].transpose(0, 2, 1))
    np.testing.assert_allclose(data["train_region_boxes"], boxes)
    # errors name the argument
    with pytest.raises(ValueError, match="both train_regions and val_regions"):
        build(inputs, tmp_path / "out3", train_regions=train)
    with pytest.raises(ValueError, match="val_regions has 2 rows but val_json lists 3 images"):
        build(inputs, tmp_path / "out3", train_regions=train, val_regions=train[:2])
    with pytest.raises(ValueError, match=r"train_regions must have shape \(M, R, D\)"):
        build(inputs, tmp_path / "out3", train_regions=train[:, 0], val_regions=train[:3])
    assert not (tmp_path / "out3").exists()


# ------------------------------------------------------------------ issue 20, items 9 and 10


@pytest.mark.parametrize("length", [3, 5, 20])
def test_any_max_length_of_at_least_3_builds_and_loads(inputs, tmp_path, length):
    """--max-length N failed for every N but 17, after all the work (the check hard-coded the release's 17)."""
    from cs231n.coco_utils import load_coco_data

    out = build(inputs, tmp_path / "out", max_length=length)
    data = load_coco_data(base_dir=str(out))
    assert data["train_captions"].shape == (len(TRAIN_TOKENS), length)
    rows = data["train_captions"]
    assert (rows[:, 0] == 1).all() and ((rows == 2).sum(axis=1) == 1).all()  # START first, one END each
    assert verify_coco_dir(out, feature_dim=None, pca_dim=None, caption_length=None)["num_val_captions"] == 3
    with pytest.raises(ValueError, match=f"\\(N, 17\\) int32, got \\({len(TRAIN_TOKENS)}, {length}\\)"
                       if length != 17 else "never"):
        verify_coco_dir(out, feature_dim=None, pca_dim=None)  # the release's own check keeps its 17


def test_build_dataset_command_refuses_a_max_length_of_2_as_a_bad_option(inputs, tmp_path, capsys):
    from cs231n.cli import main

    rc = main(["build-dataset", "--train-json", str(inputs["train_json"]), "--val-json", str(inputs["val_json"]),
               "--train-features", str(inputs["train_features"]), "--val-features", str(inputs["val_features"]),
               "--out", str(tmp_path / "out"), "--max-length", "2"])
    assert rc == 2
    assert "--max-length" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_build_dataset_names_a_captions_file_that_is_not_json(inputs, tmp_path, capsys):
    from cs231n.cli import main

    rc = main(["build-dataset", "--train-json", str(inputs["train_features"]), "--val-json", str(inputs["val_json"]),
               "--train-features", str(inputs["train_features"]), "--val-features", str(inputs["val_features"]),
               "--out", str(tmp_path / "out"), "--pca-dim", "3", "--min-count", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(inputs["train_features"]) in err and "is not JSON" in err and "codec" not in err
    assert len(err.strip().splitlines()) == 1


def test_train_reads_captions_of_any_length(inputs, tmp_path, monkeypatch):
    """A dataset built with --max-length 60 trains (the Transformer's table of positions grows to fit)."""
    import cs231n.cli.train
    from cs231n.cli import main

    # The example URLs lead nowhere: the caption grid gets grey placeholders without asking the network.
    monkeypatch.setattr(cs231n.cli.train, "_val_images", lambda data, split, ids: [None] * len(ids))

    out = build(inputs, tmp_path / "data", max_length=60, min_count=1)
    for model in (["--model", "rnn"], ["--model", "transformer", "--num-heads", "2"]):
        assert main(["train", "--data-dir", str(out), "--epochs", "1", "--batch-size", "3", "--wordvec-dim", "8",
                     "--hidden-dim", "8", "--num-val-images", "2", "--quiet", "--out", str(tmp_path / model[1])]
                    + model) == 0
