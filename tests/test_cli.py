"""The command line wires the library together: train, evaluate, caption, download, build-dataset.

Runs `cs231n.cli.main` in-process on the tiny shapes dataset with small model sizes, and checks the
files and printed scores it produces against the library's own functions called directly.
"""
import http.server
import json
import threading

import numpy as np
import pytest

from cs231n.cli import main

SMALL = ["--wordvec-dim", "16", "--hidden-dim", "24", "--batch-size", "50", "--seed", "3"]


@pytest.fixture(scope="module")
def trained(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--num-val-images", "10",
               "--out", str(out), "--quiet"] + SMALL)
    assert rc == 0
    return out


def test_train_writes_every_output(trained, tiny_dir):
    for name in ("model.npz", "checkpoint.npz", "config.json", "curves.png", "captions.png", "scores.json"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "config.json").read_text())
    # The default model: the attention LSTM, as the dataset has region features (issue 22).
    assert config["data_dir"] == str(tiny_dir) and config["hidden_dim"] == 24 and config["cell_type"] == "attention"
    summary = json.loads((trained / "scores.json").read_text())
    assert summary["chosen_on"] == "val" and summary["kept_epoch"] in (1, 2)  # --num-val-images 10: on val
    assert set(summary["val_scores"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr"}
    assert 0 < summary["distinct_caption_fraction"] <= 1
    assert summary["epochs_run"] == 2
    assert set(summary["val_scene_accuracy"]) == {"scene_right", "scene_count", "scene_color", "scene_shape",
                                                  "scene_size", "scene_arrangement", "scene_unparsed", "scene_misbound"}
    # PNG files start with the PNG signature.
    assert (trained / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_prints_the_scores_of_the_saved_model(trained, tiny_dir, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data
    from cs231n.metrics import score_model

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(trained / "model.npz"), "--data-dir", str(tiny_dir),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from cs231n.coco_utils import with_regions

    model = CaptioningRNN.load(trained / "model.npz")
    assert model.cell_type == "attention"  # reads the region features
    expected = score_model(model, with_regions(load_coco_data(base_dir=str(tiny_dir), regions=True)), split="val")
    assert {k: printed[k] for k in expected} == pytest.approx(expected)
    # The final scores written by train are the same evaluation, scene accuracy included.
    summary = json.loads((trained / "scores.json").read_text())
    assert summary["val_scores"] == pytest.approx(expected)
    assert {k: v for k, v in printed.items() if k.startswith("scene_")} == summary["val_scene_accuracy"]


def test_evaluate_accepts_the_solver_checkpoint_and_beam_search(trained, tiny_dir, capsys):
    assert main(["evaluate", "--checkpoint", str(trained / "checkpoint.npz"), "--data-dir", str(tiny_dir),
                 "--beam-size", "3", "--num-images", "5"]) == 0
    out = capsys.readouterr().out
    assert "beam 3" in out and "CIDEr" in out


def test_caption_featurizes_and_captions_png_files(trained, tiny_dir, capsys):
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.data.shapes import featurize_regions_for_dataset
    from cs231n.image_utils import image_from_url

    png = tiny_dir / "images" / "val2014" / "000000.png"
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(trained / "model.npz"), "--data-dir", str(tiny_dir),
                 str(png)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    model = CaptioningRNN.load(trained / "model.npz")
    regions, _ = featurize_regions_for_dataset([image_from_url(str(png))], tiny_dir)  # the attention LSTM's input
    expected = model.caption_features(regions)[0]
    assert line == f"{png}: {expected}"


def test_caption_warns_on_an_image_unlike_the_training_images(trained, tiny_dir, tmp_path, capsys):
    from PIL import Image

    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)).save(noise)
    png = tiny_dir / "images" / "val2014" / "000001.png"
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(trained / "model.npz"), "--data-dir", str(tiny_dir),
                 str(png), str(noise)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[-2].startswith(f"{png}: ") and lines[-1].startswith(f"{noise}: ")  # stdout: captions only
    warning, = [line for line in captured.err.splitlines() if line.startswith("warning:")]  # stderr (issue 20)
    assert warning.startswith(f"warning: {noise} is unlike the training images (")
    assert "feature distance" in warning


def test_caption_refuses_a_directory_without_the_shapes_featurizer(trained, tmp_path, capsys):
    rc = main(["caption", "--checkpoint", str(trained / "model.npz"), "--data-dir", str(tmp_path), "x.png"])
    assert rc == 1  # a data problem, not a bad option (issue 20, item 10)
    assert "VGG16" in capsys.readouterr().err


def test_resume_continues_the_same_run(tiny_dir, tmp_path):
    """Training 1 epoch, then resuming to 2, ends with the same weights as 2 epochs straight."""
    from cs231n.archive import load_archive

    common = ["--data-dir", str(tiny_dir), "--num-val-images", "0", "--quiet"] + SMALL
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "a")] + common) == 0
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "b")] + common) == 0
    assert main(["train", "--epochs", "2", "--resume", "--out", str(tmp_path / "b")] + common) == 0
    a, _ = load_archive(tmp_path / "a" / "model.npz")
    b, _ = load_archive(tmp_path / "b" / "model.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_zero_features_trains_an_image_blind_model(tiny_dir, tmp_path):
    """With every feature zero, W_proj gets zero gradient, so Adam leaves it exactly at its initial value."""
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data

    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--num-val-images", "0", "--cell-type",
                 "lstm", "--zero-features", "--out", str(tmp_path), "--quiet"] + SMALL) == 0
    trained = CaptioningRNN.load(tmp_path / "model.npz")
    np.random.seed(3)  # the --seed of SMALL: the CLI seeds np.random before building the model
    data = load_coco_data(base_dir=str(tiny_dir))
    init = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=16,
                         hidden_dim=24, cell_type="lstm")
    np.testing.assert_array_equal(trained.params["W_proj"], init.params["W_proj"])
    assert not np.array_equal(trained.params["W_vocab"], init.params["W_vocab"])


def test_train_reports_a_missing_data_dir_cleanly(tmp_path, capsys):
    rc = main(["train", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert rc == 2  # checked with the options, before anything is loaded or written
    assert not (tmp_path / "o").exists()
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nothing" in err


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_error(404)

    def log_message(self, *args):
        pass


def test_download_reports_http_errors_with_exit_code_1(tmp_path, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/coco_captioning.zip"
        rc = main(["download", "coco", "--url", url, "--dest", str(tmp_path / "coco"), "--quiet",
                   "--retries", "0"])
    finally:
        server.shutdown()
    assert rc == 1
    assert "404" in capsys.readouterr().err
    assert not (tmp_path / "coco").exists()


def test_build_dataset_command(tmp_path, capsys):
    from cs231n.coco_utils import load_coco_data

    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 12), ("val", 4)):
        images = [{"id": 100 + i, "file_name": f"{split}_{i}.jpg"} for i in range(n)]
        anns = [{"image_id": 100 + i, "caption": f"A cat number {i % 3} sits."} for i in range(n)]
        (tmp_path / f"{split}.json").write_text(json.dumps({"images": images, "annotations": anns}))
        np.save(tmp_path / f"{split}.npy", rng.standard_normal((n, 20)).astype(np.float32))
        splits[split] = n
    out = tmp_path / "built"
    assert main(["build-dataset", "--train-json", str(tmp_path / "train.json"), "--val-json",
                 str(tmp_path / "val.json"), "--train-features", str(tmp_path / "train.npy"),
                 "--val-features", str(tmp_path / "val.npy"), "--out", str(out), "--min-count", "1",
                 "--pca-dim", "5"]) == 0
    data = load_coco_data(base_dir=str(out))
    assert data["train_features"].shape == (12, 5)
    assert "cat" in data["word_to_idx"]


def test_lm_train_then_lm_sample(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log\n" * 20)
    out = tmp_path / "lm"
    assert main(["lm-train", "--text", str(text), "--hidden-dim", "16", "--wordvec-dim", "8", "--seq-len", "6",
                 "--batch-size", "10", "--epochs", "2", "--lr", "1e-2", "--out", str(out), "--quiet"]) == 0
    assert (out / "lm_checkpoint.npz").is_file()
    capsys.readouterr()
    assert main(["lm-sample", "--checkpoint", str(out / "lm_checkpoint.npz"), "--start", "cat",
                 "--length", "7", "--temperature", "0"]) == 0
    words = capsys.readouterr().out.strip().split(" ")
    assert words[0] == "cat" and len(words) == 8
    # A word the text never had is refused with exit code 1 and a message naming it.
    assert main(["lm-sample", "--checkpoint", str(out / "lm_checkpoint.npz"), "--start", "zebra"]) == 1
    assert "zebra" in capsys.readouterr().err


def test_max_train_subsample_follows_the_seed(tiny_dir, tmp_path):
    """--max-train draws captions with np.random; the same --seed gives the same run."""
    from cs231n.archive import load_archive

    common = ["--data-dir", str(tiny_dir), "--epochs", "1", "--num-val-images", "0", "--max-train", "40",
              "--quiet"] + SMALL + ["--batch-size", "20"]  # a batch must not be larger than the 40 captions
    assert main(["train", "--out", str(tmp_path / "a")] + common) == 0
    assert main(["train", "--out", str(tmp_path / "b")] + common) == 0
    a, _ = load_archive(tmp_path / "a" / "model.npz")
    b, _ = load_archive(tmp_path / "b" / "model.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_train_and_lm_train_switch_on_the_solver_extras(tiny_dir, tmp_path, capsys):
    """The library's classic call prints only the iteration lines; the commands ask for ETA and validation."""
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "1", "--num-val-images", "5",
                 "--out", str(tmp_path / "run")] + SMALL) == 0
    out = capsys.readouterr().out
    assert "(Iteration 1 / " in out and " s/it, ETA " in out
    assert "(Epoch 1 / 1) train loss: " in out and "CIDEr" in out
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 10)
    assert main(["lm-train", "--text", str(text), "--hidden-dim", "8", "--wordvec-dim", "4", "--seq-len", "4",
                 "--batch-size", "10", "--epochs", "1", "--out", str(tmp_path / "lm")]) == 0
    out = capsys.readouterr().out
    assert "(Iteration 1 / " in out and " s/it, ETA " in out
