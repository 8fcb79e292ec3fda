"""The command line with --model transformer: train writes a Transformer, evaluate and caption load it.

Runs `cs231n.cli.main` in-process on the tiny shapes dataset with a small Transformer, and checks the
printed scores against the library's own functions called directly.
"""
import json
import warnings

import pytest

from cs231n.cli import main

SMALL = ["--model", "transformer", "--wordvec-dim", "16", "--num-heads", "2", "--num-layers", "1",
         "--batch-size", "50", "--seed", "3"]


@pytest.fixture(scope="module")
def trained(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with warnings.catch_warnings():
        # A 16-wide Transformer after one epoch on the tiny dataset may well give every image the same
        # caption; the solver's warning about that is right, and is tested on its own in test_solver.
        warnings.filterwarnings("ignore", message=r"epoch \d+: the model gave the same caption",
                                category=UserWarning)
        rc = main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--num-val-images", "10",
                   "--out", str(out), "--quiet"] + SMALL)
    assert rc == 0
    return out


def test_train_writes_a_transformer(trained, tiny_dir):
    from cs231n.classifiers.transformer import CaptioningTransformer

    model = CaptioningTransformer.load(trained / "model.npz")
    assert (model.num_heads, model.num_layers, model.wordvec_dim) == (2, 1, 16)
    assert model.identity is not None                       # the training data is recorded
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "transformer" and config["lr"] == 1e-3  # the Transformer's default rate


def test_evaluate_and_caption_load_a_transformer(trained, tiny_dir, capsys):
    from cs231n.classifiers.captioning import CaptioningModel
    from cs231n.coco_utils import load_coco_data
    from cs231n.metrics import score_model

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(trained / "model.npz"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = score_model(CaptioningModel.load(trained / "model.npz"), load_coco_data(base_dir=str(tiny_dir)),
                           split="val")
    assert {k: printed[k] for k in expected} == pytest.approx(expected)
    assert set(printed) - set(expected) == {"scene_right", "scene_count", "scene_color", "scene_shape",
                                            "scene_size", "scene_arrangement", "scene_unparsed", "scene_misbound"}
    # the solver checkpoint holds the model's config, not its class: the config's keys pick it
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.npz"), "--beam-size", "2",
                 "--num-images", "4"]) == 0
    assert "beam 2" in capsys.readouterr().out
    png = tiny_dir / "images" / "val2014" / "000000.png"
    assert main(["caption", "--checkpoint", str(trained / "model.npz"), str(png)]) == 0
    assert capsys.readouterr().out.startswith(f"{png}: ")


def test_num_heads_must_divide_the_model_size(tmp_path, capsys):
    rc = main(["train", "--model", "transformer", "--num-heads", "3", "--wordvec-dim", "16",
               "--out", str(tmp_path / "run")])
    assert rc == 2  # a bad combination of options (issue 20, item 10)
    assert "--num-heads 3 must divide --wordvec-dim 16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()                  # refused before any work
