"""Tests of cs231n.cola_utils: reading the CoLA format and refusing every malformed folder clearly.

Each error test writes a correct synthetic folder (tests/cola_fixtures.py), breaks one file in one
way, and checks that the message names the file and what is wrong. The real data, when present, is
checked against the figures its README states.
"""
from pathlib import Path

import numpy as np
import pytest

from cola_fixtures import WORDS, make_split, write_cola_dir
from cs231n.cola_utils import decode_sentence, load_cola_data, read_word_to_ix

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cola"


@pytest.fixture
def folder(tmp_path):
    return write_cola_dir(tmp_path / "cola")


def test_loads_synthetic_folder(folder):
    data = load_cola_data(folder)
    inputs, labels = make_split(60, 0)
    np.testing.assert_array_equal(data["train_inxs"], inputs)
    np.testing.assert_array_equal(data["train_labels"], labels)
    assert data["val_inxs"].shape == (30, 10)
    assert data["word_to_ix"] == {w: i for i, w in enumerate(WORDS)}
    assert data["ix_to_word"] == WORDS
    assert (data["cls_index"], data["pad_index"], data["unk_index"]) == (13, 14, 0)
    assert data["max_length"] == 10
    # CLS positions by a loop written here
    expected = [list(row).index(13) for row in inputs]
    np.testing.assert_array_equal(data["train_cls_positions"], expected)


def test_default_folder_follows_the_environment(folder, monkeypatch):
    from cs231n.cola_utils import default_cola_dir

    monkeypatch.setenv("CS231N_COLA_DIR", str(folder))
    assert default_cola_dir() == folder
    assert load_cola_data()["train_inxs"].shape == (60, 10)


def test_max_train_is_a_seeded_subset(folder):
    full = load_cola_data(folder)
    a = load_cola_data(folder, max_train=20, seed=3)
    b = load_cola_data(folder, max_train=20, seed=3)
    np.testing.assert_array_equal(a["train_inxs"], b["train_inxs"])
    assert a["train_inxs"].shape == (20, 10)
    # every kept row is a distinct row of the full split, with its own label
    rows = {tuple(r): y for r, y in zip(full["train_inxs"], full["train_labels"])}
    assert all(rows[tuple(r)] == y for r, y in zip(a["train_inxs"], a["train_labels"]))
    assert a["val_inxs"].shape == full["val_inxs"].shape
    with pytest.raises(ValueError, match="max_train"):
        load_cola_data(folder, max_train=0)


def test_decode_sentence_drops_cls_and_pad():
    inputs, _ = make_split(1, 0)
    words = decode_sentence(inputs[0], WORDS)
    assert "CLS" not in words and "PAD" not in words
    assert len(words.split()) == list(inputs[0]).index(13)


def test_string_indices_and_classic_csv_order(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("our,1\nfriends,2\nUNK,0\n")
    assert read_word_to_ix(path) == {"our": 1, "friends": 2, "UNK": 0}


@pytest.mark.parametrize("text, message", [
    ("a,0\nb\n", "line 2: expected 'word,index'"),
    ("a,0\nb,x\n", "line 2: the index 'x' is not an integer"),
    ("a,0\na,1\n", "line 2: the word 'a' appears twice"),
    ("a,0\nb,0\n", "index 0 is given to both 'a' and 'b'"),
    ("a,0\nb,5\n", "must be 0..1"),
    ("", "holds no words"),
])
def test_bad_vocabulary_file(tmp_path, text, message):
    path = tmp_path / "word_to_ix.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        read_word_to_ix(path)
    assert "word_to_ix.csv" in str(e.value)


def test_missing_folder_and_files(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_cola_data(tmp_path / "nowhere")
    (folder / "val_labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="lacks val_labels.npy"):
        load_cola_data(folder)


def test_vocabulary_without_special_tokens(folder):
    lines = (folder / "word_to_ix.csv").read_text().splitlines()
    (folder / "word_to_ix.csv").write_text("\n".join(l.replace("CLS,", "SEP,") for l in lines) + "\n")
    with pytest.raises(ValueError, match="no 'CLS' entry"):
        load_cola_data(folder)


def _rewrite(folder, name, fn):
    a = np.load(folder / name)
    np.save(folder / name, fn(a))


@pytest.mark.parametrize("name, change, message", [
    ("train_inxs.npy", lambda a: np.where(a == 3, 15, a), r"train_inxs.npy: row \d+, position \d+ holds word "
                                                          r"index 15, outside the vocabulary \[0, 15\)"),
    ("val_inxs.npy", lambda a: np.where(a == 3, -1, a), r"val_inxs.npy: row \d+, position \d+ holds word index -1"),
    ("train_inxs.npy", lambda a: a.astype(np.float64), "must be a 2-D integer array"),
    ("train_inxs.npy", lambda a: np.where(a == 13, 14, a), "row 0 holds 0 CLS tokens"),
    ("train_inxs.npy", lambda a: np.concatenate([a[:, :1] * 0 + 13, a[:, 1:]], 1), "holds 2 CLS tokens"),
    ("train_inxs.npy", lambda a: np.where(a == 14, 2, a), "a word after CLS"),
    ("train_inxs.npy", lambda a: np.concatenate([a[:, :1] * 0 + 14, a[:, 1:]], 1), "PAD before CLS"),
    ("train_labels.npy", lambda a: np.where(np.arange(a.size) == 4, 2, a), "label 4 is 2; labels must be 0"),
    ("val_labels.npy", lambda a: a.astype(np.float32), "1-D integer array of 0/1 labels"),
    ("train_labels.npy", lambda a: a[:-1], "holds 59 labels but train_inxs.npy has 60 rows"),
    ("val_inxs.npy", lambda a: a[:0], "val_inxs.npy is empty"),
    ("val_inxs.npy", lambda a: np.concatenate([a, np.full((a.shape[0], 1), 14)], 1),
     "rows of 10 positions but val_inxs.npy of 11"),
])
def test_malformed_split(folder, name, change, message):
    _rewrite(folder, name, change)
    with pytest.raises(ValueError, match=message) as e:
        load_cola_data(folder)
    assert name.split(".")[0] in str(e.value)


def test_pickled_file_is_refused(folder):
    np.save(folder / "train_labels.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="train_labels.npy is not a numeric .npy array"):
        load_cola_data(folder)


@pytest.mark.skipif(not REAL.is_dir(), reason="the shared CoLA data is not present")
def test_real_cola_matches_its_readme():
    data = load_cola_data(REAL)
    assert data["train_inxs"].shape == (7000, 43) and data["val_inxs"].shape == (1551, 43)
    assert len(data["word_to_ix"]) == 1542
    assert (data["unk_index"], data["cls_index"], data["pad_index"]) == (0, 1540, 1541)
    assert round(float(data["train_labels"].mean()), 3) == 0.703
    assert round(float(data["val_labels"].mean()), 3) == 0.709
