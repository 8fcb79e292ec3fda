"""Region features of COCO images from a torchvision CNN, for ``build-dataset --train-regions`` (SPEC section 10).

The models that attend over image regions (``train --cell-type attention``, ``--model transformer
--regions``) read, for every image, R vectors instead of one: here the cells of a CNN's last
convolutional feature map, average-pooled to a ``--grid`` x ``--grid`` grid (4 x 4 as in EECS 498-007's
attention LSTM). This script runs on your machine with PyTorch and torchvision, which the library itself
does not need:

    pip install torch torchvision
    python datasets/extract_coco_regions.py --captions annotations/captions_train2014.json \\
        --images train2014/ --out train_regions.npy [--cnn resnet18] [--grid 4] [--batch-size 32]
    python datasets/extract_coco_regions.py --captions annotations/captions_val2014.json \\
        --images val2014/ --out val_regions.npy
    python -m cs231n build-dataset --train-json annotations/captions_train2014.json \\
        --val-json annotations/captions_val2014.json --train-features train_fc7.npy \\
        --val-features val_fc7.npy --train-regions train_regions.npy --val-regions val_regions.npy \\
        --out datasets/coco_regions

What it writes: one row per entry of the JSON's ``images`` list, in that order (the order build-dataset
expects), each the (C, grid, grid) feature map of the image (``file_name`` under ``--images``), resized
to ``--size`` pixels square and normalized with ImageNet's mean and deviation, through the CNN up to its
last convolution (resnet18/34: C = 512; resnet50: 2048); a ``.npy`` of shape (M, C, grid, grid),
float32, written as it goes (memory-mapped). build-dataset stores it as R = grid * grid row-major regions
with the cells' boxes, which ``caption --attention`` draws. The CNN's ImageNet weights are downloaded by
torchvision the first time (``--random-weights`` skips that, for a quick check of the pipeline).

For 82,783 COCO train images at grid 4 with resnet18 the file is 82783 x 512 x 16 x 4 bytes = 2.7 GB.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(image, size=224):
    """One image (H, W, 3) uint8 (or grayscale (H, W)) as the CNN's input: (3, size, size) float32."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    a = np.asarray(Image.fromarray(a[:, :, :3].astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR))
    x = (a.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # (size, size, 3)
    return x.transpose(2, 0, 1)                                          # (3, size, size)


def torchvision_trunk(name="resnet18", pretrained=True):
    """A torchvision ResNet without its global pooling and classifier: images (B, 3, S, S) -> (B, C, S/32, S/32).

    ``pretrained`` loads torchvision's ImageNet weights (downloaded on first use); False leaves them random.
    """
    import torch
    import torchvision

    if not name.startswith("resnet"):
        raise ValueError(f"torchvision_trunk: --cnn must be a torchvision ResNet (resnet18, resnet34, resnet50, "
                         f"...), got {name!r}")
    model = getattr(torchvision.models, name)(weights="DEFAULT" if pretrained else None)
    return torch.nn.Sequential(*list(model.children())[:-2]).eval()  # drop avgpool and fc


def extract_grids(trunk, images, grid=4, batch_size=32, size=224):
    """Feature maps of images pooled to a grid: yields (B, C, grid, grid) float32 arrays, batch by batch.

    Inputs:
    - trunk: a torch module mapping (B, 3, size, size) float32 to (B, C, h, w).
    - images: an iterable of (H, W, 3) uint8 images.
    - grid: side of the grid of regions (adaptive average pooling of the h x w map).
    - batch_size: images per forward pass.
    - size: side the images are resized to.
    """
    import torch
    import torch.nn.functional as F

    def run(batch):
        with torch.no_grad():
            maps = trunk(torch.from_numpy(np.stack(batch)))                  # (B, C, h, w)
            return F.adaptive_avg_pool2d(maps, grid).numpy().astype(np.float32)  # (B, C, grid, grid)

    batch = []
    for image in images:
        batch.append(preprocess(image, size))
        if len(batch) == batch_size:
            yield run(batch)
            batch = []
    if batch:
        yield run(batch)


def image_files(captions_json, image_dir):
    """The image file of every entry of a COCO captions JSON's ``images`` list, in order."""
    data = json.loads(Path(captions_json).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{captions_json}: expected a COCO captions JSON with an 'images' list")
    return [Path(image_dir) / entry["file_name"] for entry in data["images"]]


def write_regions_npy(out, trunk, paths, grid=4, batch_size=32, size=224, verbose=True):
    """Extract the grid of every image in ``paths`` and write them, in order, to the ``.npy`` file ``out``.

    Returns the shape written, (M, C, grid, grid).
    """
    def images():
        for path in paths:
            with Image.open(path) as img:
                yield np.asarray(img.convert("RGB"))

    array, done = None, 0
    for block in extract_grids(trunk, images(), grid, batch_size, size):
        if array is None:  # the channel count is known after the first batch
            array = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32,
                                              shape=(len(paths),) + block.shape[1:])
        array[done:done + len(block)] = block
        done += len(block)
        if verbose:
            print(f"\r{done}/{len(paths)} images", end="", file=sys.stderr, flush=True)
    if array is None:
        raise ValueError("write_regions_npy: no images to extract")
    array.flush()
    if verbose:
        print(file=sys.stderr)
    return array.shape


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--captions", required=True, help="COCO captions JSON (its 'images' list sets the order)")
    p.add_argument("--images", required=True, help="directory holding the images' file_name")
    p.add_argument("--out", required=True, help="the .npy file to write, (images, C, grid, grid) float32")
    p.add_argument("--cnn", default="resnet18", help="torchvision ResNet (resnet18, resnet34, resnet50, ...)")
    p.add_argument("--grid", type=int, default=4, help="regions per side (R = grid * grid)")
    p.add_argument("--size", type=int, default=224, help="images are resized to size x size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--random-weights", action="store_true", help="no ImageNet weights (no download; a test)")
    a = p.parse_args(argv)
    trunk = torchvision_trunk(a.cnn, pretrained=not a.random_weights)
    shape = write_regions_npy(a.out, trunk, image_files(a.captions, a.images), a.grid, a.batch_size, a.size)
    print(f"wrote {a.out}: {shape}")


if __name__ == "__main__":
    main()
