"""``download`` (the COCO captioning release, or the full Alice text) and ``build-dataset`` (the COCO
on-disk format from caption JSON and your own CNN features)."""
import argparse
import os

from cs231n.cli.options import add_command, existing_file, nonnegative_int, positive_float, positive_int


def _add_download(sub):
    p = add_command(sub, "download", "download a dataset (coco, or the full Alice text)")
    p.add_argument("what", choices=["coco", "alice"], help="which dataset")
    p.add_argument("--url", help="a mirror of the file (default: the official address)")
    p.add_argument("--dest", help="destination (default: datasets/coco_captioning or $CS231N_COCO_DIR for "
                                  "coco, datasets/alice.txt for alice)")
    p.add_argument("--force", action="store_true", help="replace an existing destination")
    p.add_argument("--retries", type=nonnegative_int, default=5, help="retries after a dropped connection")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for the server")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=cmd_download)


def _add_build(sub):
    p = add_command(sub, "build-dataset", "build the COCO format from caption JSON and features")
    p.add_argument("--train-json", required=True, type=existing_file, help="COCO-style captions of the "
                                                                           "training images")
    p.add_argument("--val-json", required=True, type=existing_file, help="COCO-style captions of the val images")
    p.add_argument("--train-features", required=True, type=existing_file,
                   help=".npy or .h5, rows aligned to the JSON's images")
    p.add_argument("--val-features", required=True, type=existing_file, help="the same for the val images")
    p.add_argument("--out", required=True, help="directory to write the dataset to")
    p.add_argument("--min-count", type=positive_int, default=5, help="rarer words become <UNK>")
    p.add_argument("--max-length", type=caption_length, default=17,
                   help="caption length with <START>/<END> (>= 3: room for one word)")
    p.add_argument("--pca-dim", type=positive_int, default=512, help="size of the PCA features")
    p.add_argument("--features-key", default="features", help="dataset name inside .h5 feature files")
    p.add_argument("--image-base-url", help="prefix of the image URLs written to the URL lists")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--train-regions", type=existing_file,
                   help="optional region features of the train images for the models that attend: .npy or "
                        ".h5, (images, R, D) or a CNN grid (images, D, h, w), rows as --train-features "
                        "(datasets/extract_coco_regions.py makes them)")
    p.add_argument("--val-regions", type=existing_file, help="the same for the val images")
    p.set_defaults(func=cmd_build)


def caption_length(text):
    """argparse type of ``--max-length``: an integer >= 3 (``<START>``, at least one word, ``<END>``)."""
    value = positive_int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be >= 3 (<START>, at least one word and <END>), got {value}")
    return value


def cmd_download(a):
    if a.what == "alice":
        from cs231n.text_utils import download_gutenberg_alice
        dest = a.dest or "datasets/alice.txt"
        if os.path.exists(dest) and not a.force:
            raise FileExistsError(f"--dest {dest} already exists; nothing was downloaded. Choose another "
                                  f"--dest, or pass --force to replace it")
        if os.path.isdir(dest):
            raise ValueError(f"--dest {dest} is a directory; alice is one text file")
        kwargs = {"url": a.url} if a.url else {}
        print(download_gutenberg_alice(dest, timeout=a.timeout, **kwargs))
        return 0
    from cs231n.data.download import DEFAULT_URL, download_coco

    path = download_coco(a.dest, a.url or DEFAULT_URL, force=a.force, retries=a.retries, timeout=a.timeout,
                         quiet=a.quiet)
    print(path)
    return 0


def cmd_build(a):
    from cs231n.data.build_dataset import build_dataset

    out = build_dataset(a.train_json, a.val_json, a.train_features, a.val_features, a.out,
                        min_count=a.min_count, max_length=a.max_length, pca_dim=a.pca_dim,
                        features_key=a.features_key, image_base_url=a.image_base_url, force=a.force,
                        train_regions=a.train_regions, val_regions=a.val_regions)
    print(out)
    return 0
