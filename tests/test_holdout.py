"""Choosing the epoch on training images held out, never on val (issue 22's default job).

`coco_utils.hold_out_images` splits images off the training data; `CaptioningSolver(val_scenes=...,
select_on=...)` validates on them; `train --holdout N` (on by default) wires the two, and its default
model is the attention LSTM where the dataset has region features, the LSTM elsewhere.
"""
import json
import shutil

import numpy as np
import pytest

from cs231n.cli import main
from cs231n.coco_utils import hold_out_images, load_coco_data, with_regions

SMALL = ["--wordvec-dim", "16", "--hidden-dim", "24", "--batch-size", "50", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def data(tiny_dir):
    return load_coco_data(base_dir=str(tiny_dir))


def test_held_out_images_take_all_their_captions_and_nothing_else(data):
    state = np.random.get_state()[1].copy()
    train, held = hold_out_images(data, 7, seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the global generator is left alone
    ids = held["image_ids"]
    assert ids.size == 7 and np.all(np.diff(ids) > 0)
    assert not np.isin(train["train_image_idxs"], ids).any()
    assert train["train_captions"].shape[0] + held["val_captions"].shape[0] == data["train_captions"].shape[0]
    # Every held-out caption points at its own image's features, renumbered 0..6.
    original = {tuple(c): i for c, i in zip(data["train_captions"].tolist(), data["train_image_idxs"].tolist())}
    for caption, k in zip(held["val_captions"].tolist(), held["val_image_idxs"].tolist()):
        assert original[tuple(caption)] == ids[k]
        np.testing.assert_array_equal(held["val_features"][k], data["train_features"][ids[k]])
    assert list(held["val_urls"]) == [data["train_urls"][i] for i in ids]
    assert train["val_captions"] is data["val_captions"]  # the real val split is untouched
    again, held_again = hold_out_images(data, 7, seed=5)
    np.testing.assert_array_equal(held_again["image_ids"], ids)
    assert not np.array_equal(hold_out_images(data, 7, seed=6)[1]["image_ids"], ids)


@pytest.mark.parametrize("n", [0, -1, 60, 61, 2.0, True])
def test_holding_out_nothing_or_everything_is_refused(data, n):
    with pytest.raises(ValueError, match="num_images"):
        hold_out_images(data, n)


def test_the_solver_checks_what_it_selects_on(data, tiny_dir):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.data.shapes.accuracy import load_scenes

    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=4,
                          hidden_dim=4)
    with pytest.raises(ValueError, match="select_on must be one of .*scene_right needs scene_dir or val_scenes"):
        CaptioningSolver(model, data, num_val_images=2, select_on="scene_right")
    with pytest.raises(ValueError, match="select_on must be one of"):
        CaptioningSolver(model, data, num_val_images=2, select_on="val_loss")
    with pytest.raises(ValueError, match="val_scenes has 3 scenes but data\\['val_features'\\] has 20"):
        CaptioningSolver(model, data, num_val_images=2, val_scenes=load_scenes(tiny_dir, "val")[:3])
    with pytest.raises(ValueError, match="not both"):
        CaptioningSolver(model, data, num_val_images=2, scene_dir=str(tiny_dir), val_scenes=[])


def test_train_chooses_the_epoch_on_held_out_training_images(tiny_dir, tmp_path, capsys):
    """By default: the attention LSTM, 6 of the 60 training images held out (a tenth), judged by scene
    accuracy; the figures of the kept epoch are those of its model on exactly those images."""
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import decode_captions, strip_framing
    from cs231n.data.shapes.accuracy import load_scenes, scene_accuracy

    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "3", "--out", str(out)] + SMALL) == 0
    printed = capsys.readouterr().out
    assert "held out of training: 6 images" in printed and "val is scored once, at the end" in printed
    summary = json.loads((out / "scores.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["holdout"] == 6 and config["cell_type"] == "attention" and config["num_val_images"] == 0
    assert summary["chosen_on"] == "held-out" and len(summary["per_epoch"]) == 3
    best = max(summary["per_epoch"], key=lambda e: e["scene_right"])  # the first of equal maxima
    assert summary["kept_epoch"] == best["epoch"] and all(e["num_val_images"] == 6 for e in summary["per_epoch"])
    assert f"kept epoch {best['epoch']} of 3: the best captions entirely right on the 6 held-out" in printed

    # Recompute the kept epoch's held-out score from model.npz, the split and the train scenes.
    model = CaptioningRNN.load(out / "model.npz")
    regions = with_regions(load_coco_data(base_dir=str(tiny_dir), regions=True))
    _, held = hold_out_images(regions, 6, seed=3)
    sampled = model.sample(held["val_features"])
    captions = {k: strip_framing(c) for k, c in enumerate(decode_captions(sampled, regions["idx_to_word"]))}
    scenes = load_scenes(tiny_dir, "train")
    expected = scene_accuracy(captions, [scenes[i] for i in held["image_ids"].tolist()])
    assert best["scene_right"] == expected["scene_right"] and best["scene_shape"] == expected["scene_shape"]


def test_holdout_options_are_checked_before_anything_is_written(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--holdout", "60", "--out", str(out)] + SMALL) == 2
    assert "--holdout 60 holds out every training image" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(tiny_dir), "--holdout", "5", "--num-val-images", "4", "--out",
                 str(out)] + SMALL) == 2
    assert "give one" in capsys.readouterr().err
    assert not out.exists()


def test_last_epoch_kept_without_holdout_and_lstm_without_regions(tiny_dir, tmp_path, capsys):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_dir, plain, ignore=shutil.ignore_patterns("*_regions.h5"))
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(plain), "--epochs", "2", "--holdout", "0", "--out", str(out)]
                + SMALL) == 0
    err = capsys.readouterr().err
    assert "has no region features" in err and "--cell-type lstm" in err
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "scores.json").read_text())
    assert config["cell_type"] == "lstm" and config["epochs"] == 2
    assert summary["chosen_on"] == "last epoch" and summary["kept_epoch"] == 2 and summary["per_epoch"] == []
    from cs231n.archive import load_archive
    from cs231n.solver import load_checkpoint

    final, _ = load_archive(out / "model.npz")
    last = load_checkpoint(out / "checkpoint.npz")["params"]
    assert set(final) == set(last)
    for name in final:  # the model is the last epoch's weights
        np.testing.assert_array_equal(final[name], last[name])
