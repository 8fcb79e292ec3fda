"""datasets/extract_coco_regions.py: COCO region features from a CNN, for build-dataset --train-regions.

Its pieces run with a tiny torch CNN (fixed weights) and are checked against numpy: the preprocessing,
the pooling to a grid, the .npy in the images' JSON order, and build-dataset reading it. The torchvision
part runs with random weights (never downloading) when torchvision is installed.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="the region extractor is optional and needs PyTorch")

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "extract_coco_regions.py"


@pytest.fixture(scope="module")
def extract():
    spec = importlib.util.spec_from_file_location("extract_coco_regions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cnn():
    """A 4-channel 'CNN': one 4x4 convolution of stride 4 with fixed weights: (B, 3, 16, 16) -> (B, 4, 4, 4)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, kernel_size=4, stride=4)
    return conv.eval()


def test_preprocess_normalizes_like_imagenet(extract):
    image = np.full((10, 7, 3), 255, dtype=np.uint8)
    x = extract.preprocess(image, size=16)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
                               rtol=1e-6)
    assert extract.preprocess(np.zeros((5, 5), dtype=np.uint8), size=8).shape == (3, 8, 8)  # grayscale


def test_grids_are_the_average_of_the_feature_map_cells(extract):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(5)]
    cnn = tiny_cnn()
    blocks = list(extract.extract_grids(cnn, images, grid=2, batch_size=2, size=16))
    assert [b.shape for b in blocks] == [(2, 4, 2, 2), (2, 4, 2, 2), (1, 4, 2, 2)]
    got = np.concatenate(blocks)
    with torch.no_grad():
        maps = cnn(torch.from_numpy(np.stack([extract.preprocess(i, 16) for i in images]))).numpy()  # (5, 4, 4, 4)
    expected = maps.reshape(5, 4, 2, 2, 2, 2).mean(axis=(3, 5))  # each 2x2 block of the 4x4 map
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_npy_in_json_order_builds_a_dataset(extract, tmp_path):
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.build_dataset import build_dataset

    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("val", 3)):
        (tmp_path / split).mkdir()
        entries = []
        for i in range(n):
            name = f"{split}_{i}.png"
            Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(tmp_path / split / name)
            entries.append({"id": 100 + i, "file_name": name})
        entries.reverse()  # the JSON's order, not the files', is the rows' order
        annotations = [{"image_id": e["id"], "caption": "a thing"} for e in entries]
        (tmp_path / f"{split}.json").write_text(json.dumps({"images": entries, "annotations": annotations}))
        paths = extract.image_files(tmp_path / f"{split}.json", tmp_path / split)
        assert [p.name for p in paths] == [e["file_name"] for e in entries]
        shape = extract.write_regions_npy(tmp_path / f"{split}_regions.npy", tiny_cnn(), paths, grid=2,
                                          batch_size=3, size=16, verbose=False)
        assert shape == (n, 4, 2, 2)
        first = np.asarray(Image.open(paths[0]).convert("RGB"))
        np.testing.assert_allclose(np.load(tmp_path / f"{split}_regions.npy")[0],
                                   next(extract.extract_grids(tiny_cnn(), [first], 2, 1, 16))[0], rtol=1e-6)
        np.save(tmp_path / f"{split}_fc7.npy", rng.standard_normal((n, 3)))
    out = build_dataset(tmp_path / "train.json", tmp_path / "val.json", tmp_path / "train_fc7.npy",
                        tmp_path / "val_fc7.npy", tmp_path / "built", min_count=1, pca_dim=2,
                        train_regions=tmp_path / "train_regions.npy", val_regions=tmp_path / "val_regions.npy")
    data = load_coco_data(base_dir=out, regions=True)
    assert data["train_regions"].shape == (4, 4, 4) and data["region_grid"] == (2, 2)


def test_torchvision_resnet_trunk_with_random_weights(extract):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (the extractor's optional dependency); its pieces are "
                    "tested above with a tiny torch CNN")
    trunk = extract.torchvision_trunk("resnet18", pretrained=False)  # random weights: no download
    image = np.random.default_rng(2).integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    (block,) = extract.extract_grids(trunk, [image], grid=2, batch_size=1, size=64)
    assert block.shape == (1, 512, 2, 2) and np.isfinite(block).all()
    with pytest.raises(ValueError, match="ResNet"):
        extract.torchvision_trunk("vgg16", pretrained=False)
