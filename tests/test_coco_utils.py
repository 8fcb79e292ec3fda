"""Tests of cs231n.coco_utils: loading a dataset in the COCO captioning format (a tiny synthetic one made
in a temporary directory), the errors for missing or inconsistent files, minibatches and decoding.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cs231n.coco_utils import (decode_captions, grid_boxes, load_coco_data, sample_coco_minibatch, with_regions,
                               write_regions)
from cs231n.data.shapes import make_shapes_dataset

KEYS = {"train_captions", "train_image_idxs", "val_captions", "val_image_idxs", "train_features",
        "val_features", "idx_to_word", "word_to_idx", "train_urls", "val_urls"}
REQUIRED_PCA = ["coco2014_captions.h5", "coco2014_vocab.json", "train2014_vgg16_fc7_pca.h5",
                "val2014_vgg16_fc7_pca.h5", "train2014_urls.txt", "val2014_urls.txt"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny shapes dataset (30 train, 10 val images) made once for this module."""
    return make_shapes_dataset(tmp_path_factory.mktemp("coco") / "tiny", "tiny", seed=11,
                               num_train_images=30, num_val_images=10)


@pytest.fixture
def copy_of(tiny, tmp_path):
    """A fresh copy of the tiny dataset's format files, to damage."""
    dest = tmp_path / "copy"
    dest.mkdir()
    for p in tiny.iterdir():
        if p.is_file():
            shutil.copy(p, dest / p.name)
    return dest


def _raw(path, name, key):
    with h5py.File(path / name) as f:
        return f[key][:]


def test_load_returns_the_files_unchanged(tiny):
    data = load_coco_data(base_dir=tiny)
    assert set(data) == KEYS
    for split, n in (("train", 30), ("val", 10)):
        stored = _raw(tiny, "coco2014_captions.h5", f"{split}_captions")
        np.testing.assert_array_equal(data[f"{split}_captions"], stored)
        assert data[f"{split}_captions"].dtype == np.int32 and data[f"{split}_captions"].shape == (5 * n, 17)
        np.testing.assert_array_equal(data[f"{split}_image_idxs"],
                                      _raw(tiny, "coco2014_captions.h5", f"{split}_image_idxs"))
        feats = data[f"{split}_features"]
        assert feats.shape == (n, 512) and feats.dtype == np.float32
        np.testing.assert_array_equal(feats, _raw(tiny, f"{split}2014_vgg16_fc7_pca.h5", "features"))
        urls = (tiny / f"{split}2014_urls.txt").read_text().splitlines()
        assert isinstance(data[f"{split}_urls"], np.ndarray) and list(data[f"{split}_urls"]) == urls
    vocab = json.loads((tiny / "coco2014_vocab.json").read_text())
    assert data["idx_to_word"] == vocab["idx_to_word"] and data["word_to_idx"] == vocab["word_to_idx"]


def test_raw_features_when_pca_is_off(tiny):
    data = load_coco_data(base_dir=str(tiny), pca_features=False)
    assert data["train_features"].shape == (30, 4096) and data["val_features"].shape == (10, 4096)
    np.testing.assert_array_equal(data["val_features"], _raw(tiny, "val2014_vgg16_fc7.h5", "features"))


def test_regions_add_only_the_region_arrays(tiny):
    data = load_coco_data(base_dir=tiny, regions=True)
    classic = load_coco_data(base_dir=tiny)
    assert set(data) == KEYS | {"train_regions", "val_regions", "train_region_boxes", "val_region_boxes"}
    for key in KEYS - {"idx_to_word", "word_to_idx"}:
        np.testing.assert_array_equal(data[key], classic[key])
    for split, n in (("train", 30), ("val", 10)):
        np.testing.assert_array_equal(data[f"{split}_regions"], _raw(tiny, f"{split}2014_regions.h5", "features"))
        np.testing.assert_array_equal(data[f"{split}_region_boxes"], _raw(tiny, f"{split}2014_regions.h5", "boxes"))
        assert data[f"{split}_regions"].shape[:2] == (n, 4) and data[f"{split}_regions"].dtype == np.float32
    swapped = with_regions(data)
    assert swapped["train_features"] is data["train_regions"] and swapped["val_features"] is data["val_regions"]
    assert data["train_features"].shape == (30, 512)  # the original dict is untouched
    with pytest.raises(ValueError, match="regions=True"):
        with_regions(classic)
    with pytest.raises(TypeError, match="regions"):
        load_coco_data(base_dir=tiny, regions="yes")


def test_region_file_errors(copy_of):
    (copy_of / "val2014_regions.h5").unlink()
    load_coco_data(base_dir=copy_of)  # the classic load does not need them
    with pytest.raises(FileNotFoundError, match="val2014_regions.h5.*build-dataset"):
        load_coco_data(base_dir=copy_of, regions=True)
    write_regions(copy_of / "val2014_regions.h5", np.zeros((9, 4, 64), np.float32))  # one image short
    with pytest.raises(ValueError, match=r"num_images = 10"):
        load_coco_data(base_dir=copy_of, regions=True)
    write_regions(copy_of / "val2014_regions.h5", np.zeros((10, 5, 64), np.float32))  # R differs from train
    with pytest.raises(ValueError, match="differ in"):
        load_coco_data(base_dir=copy_of, regions=True)


def test_write_regions_stores_a_grid_row_major_with_its_boxes(copy_of):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("val", 10)):
        grid = rng.standard_normal((n, 8, 2, 3)).astype(np.float32)  # (M, D, h, w), channels first
        write_regions(copy_of / f"{split}2014_regions.h5", grid)
        with h5py.File(copy_of / f"{split}2014_regions.h5") as f:
            assert tuple(f.attrs["grid"]) == (2, 3)
            stored = f["features"][:]
        for i, j in ((0, 0), (0, 2), (1, 1)):
            np.testing.assert_array_equal(stored[:, 3 * i + j], grid[:, :, i, j])  # row-major cells
    data = load_coco_data(base_dir=copy_of, regions=True)
    assert data["region_grid"] == (2, 3) and data["val_regions"].shape == (10, 6, 8)
    np.testing.assert_allclose(data["val_region_boxes"][0, 5], [2 / 3, 0.5, 1, 1])  # bottom right cell
    np.testing.assert_allclose(grid_boxes(1, 2), [[0, 0, 0.5, 1], [0.5, 0, 1, 1]])
    bad = copy_of / "bad.h5"
    with pytest.raises(ValueError, match=r"\(M, R, D\)"):
        write_regions(bad, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="boxes should have shape"):
        write_regions(bad, np.zeros((3, 4, 2)), boxes=np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match="fractions"):
        write_regions(bad, np.zeros((3, 4, 2)), boxes=np.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="h \\* w"):
        write_regions(bad, np.zeros((3, 4, 2)), grid=(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        write_regions(bad, np.full((3, 4, 2), np.nan))


def test_missing_directory_lists_every_file_and_the_commands(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_coco_data(base_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert "does not exist" in message
    for name in REQUIRED_PCA:
        assert name in message
    assert "python -m cs231n download coco" in message
    assert "ensure_shapes_dataset" in message and "python -m cs231n train" in message


def test_partial_directory_names_only_the_missing_files(copy_of):
    (copy_of / "val2014_vgg16_fc7_pca.h5").unlink()
    (copy_of / "train2014_urls.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_coco_data(base_dir=copy_of)
    message = str(info.value)
    assert "missing 2 file(s)" in message
    assert "val2014_vgg16_fc7_pca.h5" in message and "train2014_urls.txt" in message
    assert "coco2014_captions.h5" not in message
    # the raw features are not needed for PCA loading and vice versa
    (copy_of / "train2014_vgg16_fc7.h5").unlink()
    with pytest.raises(FileNotFoundError, match="train2014_vgg16_fc7.h5"):
        load_coco_data(base_dir=copy_of, pca_features=False)


def _rewrite(path, name, key, fn):
    with h5py.File(path / name, "r+") as f:
        values = f[key][:]
        del f[key]
        f.create_dataset(key, data=fn(values))


def test_caption_index_outside_vocabulary(copy_of):
    V = len(json.loads((copy_of / "coco2014_vocab.json").read_text())["idx_to_word"])

    def corrupt(c):
        c[7, 3] = V
        return c

    _rewrite(copy_of, "coco2014_captions.h5", "val_captions", corrupt)
    with pytest.raises(ValueError, match=rf"val_captions holds word index {V} \(first in caption 7\).*\[0, {V}\)"):
        load_coco_data(base_dir=copy_of)


def test_image_index_outside_features(copy_of):
    def corrupt(idx):
        idx[4] = 30
        return idx

    _rewrite(copy_of, "coco2014_captions.h5", "train_image_idxs", corrupt)
    with pytest.raises(ValueError, match="train_image_idxs holds image index 30, outside the 30 rows"):
        load_coco_data(base_dir=copy_of)


def test_non_finite_features(copy_of):
    def corrupt(f):
        f[2, 5] = np.nan
        return f

    _rewrite(copy_of, "train2014_vgg16_fc7_pca.h5", "features", corrupt)
    with pytest.raises(ValueError, match="train_features is not finite: row 2, column 5"):
        load_coco_data(base_dir=copy_of)
    load_coco_data(base_dir=copy_of, pca_features=False)  # the raw features are fine


def test_bad_vocabulary(copy_of):
    vocab = json.loads((copy_of / "coco2014_vocab.json").read_text())
    vocab["idx_to_word"][1], vocab["idx_to_word"][2] = vocab["idx_to_word"][2], vocab["idx_to_word"][1]
    (copy_of / "coco2014_vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ValueError, match="must start with"):
        load_coco_data(base_dir=copy_of)


def test_max_train_draws_with_replacement_through_np_random(tiny):
    full = load_coco_data(base_dir=tiny)
    np.random.seed(123)
    a = load_coco_data(base_dir=tiny, max_train=40)
    np.random.seed(123)
    b = load_coco_data(base_dir=tiny, max_train=40)
    np.testing.assert_array_equal(a["train_captions"], b["train_captions"])
    np.random.seed(123)
    mask = np.random.randint(150, size=40)  # what classic cs231n does
    np.testing.assert_array_equal(a["train_captions"], full["train_captions"][mask])
    np.testing.assert_array_equal(a["train_image_idxs"], full["train_image_idxs"][mask])
    np.testing.assert_array_equal(a["train_features"], full["train_features"])  # images untouched
    np.testing.assert_array_equal(a["val_captions"], full["val_captions"])
    with pytest.raises(ValueError, match="max_train"):
        load_coco_data(base_dir=tiny, max_train=-1)


def test_environment_variable_sets_the_default_directory(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("CS231N_COCO_DIR", str(tiny))
    data = load_coco_data()
    assert data["train_captions"].shape == (150, 17)
    monkeypatch.setenv("CS231N_COCO_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="empty"):
        load_coco_data()  # an explicit setting is used alone, never passed over for another place


# The classic notebooks' data cell, unchanged in substance: no base_dir, then a look at what came back.
CLASSIC_DATA_CELL = """
import cs231n
import numpy as np
from cs231n.coco_utils import load_coco_data

data = load_coco_data(pca_features=True)
for k, v in data.items():
    if type(v) == np.ndarray:
        print(k, type(v), v.shape, v.dtype)
    else:
        print(k, type(v), len(v))
print("imported", cs231n.__file__)
"""
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "cs231n"


def _run_classic_cell(cwd, package_parent):
    """Run CLASSIC_DATA_CELL in a fresh interpreter in `cwd`, importing the cs231n package in `package_parent`."""
    env = {k: v for k, v in os.environ.items() if k not in ("CS231N_COCO_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(package_parent)
    return subprocess.run([sys.executable, "-c", CLASSIC_DATA_CELL], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _installed_copy(tmp_path):
    """A copy of the cs231n package in tmp_path/site, as an installed one: no repository around it."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE_DIR, site / "cs231n", ignore=shutil.ignore_patterns("__pycache__", "datasets"))
    return site


def _copy_dataset(src, dest, only=None):
    dest.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and (only is None or p.name in only):
            shutil.copy(p, dest / p.name)
    return dest


def test_classic_data_cell_finds_the_data_beside_the_notebook(tiny, tmp_path):
    # 2017-2019: the notebook's folder holds cs231n/datasets/coco_captioning (no cs231n/__init__.py: the
    # assignment's own code removed), and the installed library is imported.
    notebook_dir = tmp_path / "assignment3"
    data_dir = _copy_dataset(tiny, notebook_dir / "cs231n" / "datasets" / "coco_captioning")
    site = _installed_copy(tmp_path)
    result = _run_classic_cell(notebook_dir, site)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"base dir  {data_dir}"
    assert "train_captions <class 'numpy.ndarray'> (150, 17) int32" in lines
    assert "idx_to_word <class 'list'> %d" % len(load_coco_data(base_dir=tiny)["idx_to_word"]) in lines
    assert lines[-1] == f"imported {site / 'cs231n' / '__init__.py'}"


def test_classic_data_cell_finds_the_data_in_the_package(tiny, tmp_path):
    # 2021+: the data lives inside the cs231n package. A partial copy under the working directory
    # (only the captions) is passed over for the whole one.
    site = _installed_copy(tmp_path)
    data_dir = _copy_dataset(tiny, site / "cs231n" / "datasets" / "coco_captioning")
    notebook_dir = tmp_path / "notebooks"
    _copy_dataset(tiny, notebook_dir / "cs231n" / "datasets" / "coco_captioning", only={"coco2014_captions.h5"})
    result = _run_classic_cell(notebook_dir, site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"base dir  {data_dir}"
    assert "val_features <class 'numpy.ndarray'> (10, 512) float32" in result.stdout.splitlines()


def test_classic_data_cell_without_data_says_where_it_looked_and_how_to_get_data(tiny, tmp_path):
    site = _installed_copy(tmp_path)
    notebook_dir = tmp_path / "notebooks"
    partial = _copy_dataset(tiny, notebook_dir / "cs231n" / "datasets" / "coco_captioning",
                            only={"coco2014_captions.h5", "coco2014_vocab.json"})
    result = _run_classic_cell(notebook_dir, site)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    first = next(k for k, line in enumerate(message) if line.startswith("FileNotFoundError: "))
    assert message[first] == ("FileNotFoundError: load_coco_data: no COCO captioning dataset (with PCA (512) "
                              "features) found; looked in:")
    assert message[first + 1] == (f"  1. cs231n/datasets/coco_captioning under the working directory: {partial} "
                                  "is incomplete (missing train2014_vgg16_fc7_pca.h5, val2014_vgg16_fc7_pca.h5, "
                                  "train2014_urls.txt, val2014_urls.txt)")
    assert message[first + 2] == ("  2. datasets/coco_captioning in the cs231n package: "
                                  f"{site / 'cs231n' / 'datasets' / 'coco_captioning'} does not exist")
    assert message[first + 3] == ("  3. where python -m cs231n download coco puts it: "
                                  f"{site / 'datasets' / 'coco_captioning'} does not exist")
    assert "python -m cs231n download coco" in result.stderr
    assert "ensure_shapes_dataset()" in result.stderr
    assert "base dir" not in result.stdout


def test_sample_coco_minibatch_matches_np_random_choice(tiny):
    data = load_coco_data(base_dir=tiny)
    np.random.seed(5)
    captions, features, urls = sample_coco_minibatch(data, batch_size=7, split="val")
    np.random.seed(5)
    mask = np.random.choice(50, 7)
    np.testing.assert_array_equal(captions, data["val_captions"][mask])
    idx = data["val_image_idxs"][mask]
    np.testing.assert_array_equal(features, data["val_features"][idx])
    np.testing.assert_array_equal(urls, data["val_urls"][idx])
    assert captions.shape == (7, 17) and features.shape == (7, 512) and urls.shape == (7,)
    with pytest.raises(ValueError, match="split"):
        sample_coco_minibatch(data, split="test")
    with pytest.raises(ValueError, match="batch_size"):
        sample_coco_minibatch(data, batch_size=0)


def test_decode_captions():
    idx_to_word = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog", "cat"]
    assert decode_captions(np.array([1, 4, 5, 2, 0, 0]), idx_to_word) == "<START> a dog <END>"
    rows = np.array([[1, 4, 0, 5, 2, 6],  # NULL skipped, stop after END
                     [4, 3, 6, 0, 0, 0],  # no START or END (a sampled caption)
                     [2, 4, 5, 2, 2, 2]])  # END first
    assert decode_captions(rows, idx_to_word) == ["<START> a dog <END>", "a <UNK> cat", "<END>"]
    assert decode_captions(np.zeros((2, 3), dtype=np.int64), idx_to_word) == ["", ""]
    as_dict = dict(enumerate(idx_to_word))
    assert decode_captions(np.array([[4, 6, 2]], dtype=np.int32), as_dict) == ["a cat <END>"]
    with pytest.raises(TypeError, match="integer"):
        decode_captions(np.array([1.0, 2.0]), idx_to_word)
    with pytest.raises(ValueError, match="shape"):
        decode_captions(np.zeros((1, 2, 3), dtype=int), idx_to_word)


def test_decode_round_trip_of_loaded_captions(tiny):
    data = load_coco_data(base_dir=tiny)
    scenes = json.loads((tiny / "shapes_scenes.json").read_text())
    decoded = decode_captions(data["val_captions"], data["idx_to_word"])
    originals = [c for scene in scenes["val"] for c in scene["captions"]]
    for text, original in zip(decoded, originals):
        words = [w if w in data["word_to_idx"] else "<UNK>" for w in original.split()]
        assert text == " ".join(["<START>"] + words + ["<END>"])


def test_strip_framing_removes_only_the_framing_tokens():
    from cs231n.coco_utils import strip_framing

    assert strip_framing("<START> a <UNK> dog <END>") == "a <UNK> dog"
    assert strip_framing("<NULL> <NULL>") == ""
    assert strip_framing("a   red  square") == "a red square"
