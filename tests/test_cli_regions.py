"""The command line with models that attend over image regions (SPEC section 10).

`train --cell-type attention` and `train --model transformer --regions` train on the dataset's region
features; `evaluate` scores them on the regions (checked against the library's own functions called
directly); `caption` featurizes image files into regions and `--attention FIG.png` draws, per generated
word, the image with its attention weights; `build-dataset --train-regions/--val-regions` writes them.
Runs `cs231n.cli.main` in-process on the tiny shapes dataset with small models.
"""
import json
import warnings

import numpy as np
import pytest

from cs231n.cli import main

MODELS = {
    "attention": ["--cell-type", "attention", "--hidden-dim", "24", "--wordvec-dim", "16"],
    "transformer-regions": ["--model", "transformer", "--regions", "--wordvec-dim", "16", "--num-heads", "2",
                            "--num-layers", "1"],
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained(request, tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with warnings.catch_warnings():
        # A tiny model after two epochs on the tiny dataset may give every image the same caption; the
        # solver's warning about that is right, and is tested on its own in test_solver.
        warnings.filterwarnings("ignore", message=r"epoch \d+: the model gave the same caption",
                                category=UserWarning)
        rc = main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--num-val-images", "10",
                   "--batch-size", "50", "--seed", "3", "--out", str(out), "--quiet"] + MODELS[request.param])
    assert rc == 0
    return request.param, out


def test_train_uses_the_region_features(trained, tiny_dir):
    from cs231n.classifiers.captioning import CaptioningModel
    from cs231n.runs import captioning_data_identity

    name, out = trained
    model = CaptioningModel.load(out / "model.npz")
    assert model._takes_regions() and model.input_dim == 64  # the shapes regions: (images, 4, 64)
    # the model records the region files as its training features
    assert model.identity["features"] == captioning_data_identity(tiny_dir, model.word_to_idx,
                                                                  regions=True)["features"]
    assert set(model.identity["features"]) == {"train2014_regions.h5", "val2014_regions.h5"}
    summary = json.loads((out / "scores.json").read_text())
    assert "scene_misbound" in summary["val_scene_accuracy"]


def test_evaluate_scores_a_region_model_on_the_regions(trained, tiny_dir, capsys):
    from cs231n.classifiers.captioning import CaptioningModel
    from cs231n.coco_utils import load_coco_data, with_regions
    from cs231n.metrics import score_model

    _, out = trained
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "model.npz"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = with_regions(load_coco_data(base_dir=str(tiny_dir), regions=True))
    expected = score_model(CaptioningModel.load(out / "model.npz"), data, split="val")
    assert {k: printed[k] for k in expected} == pytest.approx(expected)
    # the solver checkpoint (its config picks the class) scores the same way
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--num-images", "4"]) == 0


def test_caption_draws_the_attention_of_every_word(trained, tiny_dir, tmp_path, capsys):
    from cs231n.classifiers.captioning import CaptioningModel
    from cs231n.data.shapes import featurize_regions_for_dataset
    from cs231n.image_utils import image_from_url

    _, out = trained
    pngs = [tiny_dir / "images" / "val2014" / f"00000{i}.png" for i in (0, 1)]
    fig = tmp_path / "attention.png"
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(out / "model.npz"), "--attention", str(fig)]
                + [str(p) for p in pngs]) == 0
    printed = capsys.readouterr().out
    model = CaptioningModel.load(out / "model.npz")
    regions, _ = featurize_regions_for_dataset([image_from_url(str(p)) for p in pngs], tiny_dir)
    for png, caption in zip(pngs, model.caption_features(regions)):
        assert f"{png}: {caption}\n" in printed
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # without --attention: the same captions, no figure
    assert main(["caption", "--checkpoint", str(out / "model.npz"), str(pngs[0])]) == 0


def test_attention_needs_a_region_model_and_regions_need_a_transformer(tiny_dir, tmp_path, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data

    data = load_coco_data(base_dir=str(tiny_dir))
    model = CaptioningRNN(data["word_to_idx"], input_dim=512, wordvec_dim=8, hidden_dim=8, cell_type="lstm")
    model.save(tmp_path / "lstm.npz")
    png = tiny_dir / "images" / "val2014" / "000000.png"
    assert main(["caption", "--checkpoint", str(tmp_path / "lstm.npz"), "--data-dir", str(tiny_dir),
                 "--attention", str(tmp_path / "a.png"), str(png)]) != 0
    assert "attends over image regions" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(tiny_dir), "--regions", "--out", str(tmp_path / "r")]) != 0
    assert "--regions is an option of --model transformer" in capsys.readouterr().err


def test_attention_maps_figure():
    from cs231n.vis import attention_maps

    image = np.zeros((20, 20, 3), dtype=np.uint8)
    boxes = np.array([[[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0, 0, 0, 0]]])  # whole, top-left quarter, absent
    weights = [np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])]
    image = np.full((20, 20, 3), 200, dtype=np.uint8)
    fig = attention_maps([image], [["red", "<END>"]], weights, boxes)
    shown = fig.axes[0].images[0].get_array()                        # the first word's panel
    lit = 200 / 255 * (0.15 + 0.85 * np.array([1.0, 0.2]))           # the top-left quarter: 1.0, the rest: 0.2
    assert shown[2, 2, 0] == pytest.approx(lit[0]) and shown[15, 15, 0] == pytest.approx(lit[1])
    assert [ax.get_title() for ax in fig.axes] == ["red", "<END>"]
    with pytest.raises(ValueError, match="should have shape"):
        attention_maps([image], [["red"]], weights, boxes)


def test_build_dataset_takes_region_features(tiny_dir, tmp_path, capsys):
    """build-dataset --train-regions/--val-regions: any extractor's (images, R, D) arrays."""
    import h5py

    from cs231n.coco_utils import load_coco_data

    # caption JSON and features of two tiny splits, written as a user's extractor would
    for split, n in (("train", 6), ("val", 3)):
        images = [{"id": i, "file_name": f"{i}.jpg"} for i in range(n)]
        annotations = [{"image_id": i, "caption": f"a red thing number {i % 2}"} for i in range(n)]
        (tmp_path / f"{split}.json").write_text(json.dumps({"images": images, "annotations": annotations}))
        np.save(tmp_path / f"{split}.npy", np.random.default_rng(0).standard_normal((n, 4)))
        np.save(tmp_path / f"{split}_regions.npy", np.random.default_rng(1).standard_normal((n, 5, 3, 3)))
    out = tmp_path / "built"
    assert main(["build-dataset", "--train-json", str(tmp_path / "train.json"), "--val-json",
                 str(tmp_path / "val.json"), "--train-features", str(tmp_path / "train.npy"), "--val-features",
                 str(tmp_path / "val.npy"), "--out", str(out), "--min-count", "1", "--pca-dim", "2",
                 "--train-regions", str(tmp_path / "train_regions.npy"),
                 "--val-regions", str(tmp_path / "val_regions.npy")]) == 0
    data = load_coco_data(base_dir=str(out), regions=True)
    assert data["train_regions"].shape == (6, 9, 5) and data["region_grid"] == (3, 3)  # a 3x3 grid of 5 values
    with h5py.File(out / "val2014_regions.h5") as f:
        assert tuple(f.attrs["grid"]) == (3, 3)
