"""Tests of reading CoLA/GLUE TSV folders: layout and header detection, tokenization, vocabulary,
encoding, and the one data dict for TSV and preprocessed folders.

Expected values are written out by hand or counted here with Python loops.
"""
from pathlib import Path

import numpy as np
import pytest

from cola_fixtures import write_cola_dir
from cs231n.cola_tsv import (build_vocabulary, detect_tokenization, encode_sentences, load_classification_data,
                             load_tsv_folder, read_tsv, tokenize)

PUBLIC = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cola_public"
COURSE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cola"

SENTENCES = ["the cat sat", "cat the sat on", "the dog barked"]
LABELS = [1, 0, 1]


def _write(path, layout, header):
    lines = []
    if header:
        lines.append("sentence\tlabel" if layout == 2 else "source\tlabel\tjudgement\tsentence")
    for s, y in zip(SENTENCES, LABELS):
        lines.append(f"{s}\t{y}" if layout == 2 else f"src1\t{y}\t{'' if y else '*'}\t{s}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("layout", [2, 4])
@pytest.mark.parametrize("header", [False, True])
def test_read_tsv_detects_layout_and_header(tmp_path, layout, header):
    sentences, labels, info = read_tsv(_write(tmp_path / "x.tsv", layout, header))
    assert sentences == SENTENCES
    assert labels.tolist() == LABELS and labels.dtype == np.int64
    assert info["layout"] == ("sentence-label" if layout == 2 else "glue-raw")
    assert info["header"] is header
    assert ("with a header" in info["description"]) is header


def test_read_tsv_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a b\t1\nc d\t2\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 2: the label '2'"):
        read_tsv(bad)
    bad.write_text("a b\t1\nc d\t1\textra\n")
    with pytest.raises(ValueError, match=r"line 2: 3 columns"):
        read_tsv(bad)
    bad.write_text("a\tb\tc\n")
    with pytest.raises(ValueError, match=r"3 tab-separated columns"):
        read_tsv(bad)
    with pytest.raises(FileNotFoundError):
        read_tsv(tmp_path / "missing.tsv")


def test_tokenization_detected_and_applied():
    raw = ["Our friends won't buy this analysis, let alone the next one.", "He left.", "Did she?"]
    assert detect_tokenization(raw) == "split-punctuation"
    assert detect_tokenization(["our friends wo n't buy this analysis , let alone the next one .",
                                "he left ."]) == "whitespace"
    assert tokenize(raw[0], "split-punctuation") == ["our", "friends", "wo", "n't", "buy", "this", "analysis",
                                                     ",", "let", "alone", "the", "next", "one", "."]
    assert tokenize("John's book", "split-punctuation") == ["john", "'s", "book"]
    assert tokenize("i'm  giving UP", "whitespace") == ["i'm", "giving", "up"]
    with pytest.raises(ValueError, match="mode"):
        tokenize("x", "nltk")


def test_vocabulary_min_count():
    tokens = [["a", "b", "a"], ["c", "a", "b"], ["d"]]  # a 3, b 2, c 1, d 1
    assert build_vocabulary(tokens, 1) == {"UNK": 0, "a": 1, "b": 2, "c": 3, "d": 4, "CLS": 5, "PAD": 6}
    assert build_vocabulary(tokens, 2) == {"UNK": 0, "a": 1, "b": 2, "CLS": 3, "PAD": 4}
    assert build_vocabulary(tokens, 4) == {"UNK": 0, "CLS": 1, "PAD": 2}
    with pytest.raises(ValueError, match="min_count"):
        build_vocabulary(tokens, 0)


def test_encode_rows_words_cls_pad_and_truncation():
    vocab = build_vocabulary([["a", "b"]], 1)  # UNK 0, a 1, b 2, CLS 3, PAD 4
    rows, cut = encode_sentences([["a", "z"], ["b", "a", "b", "a"]], vocab, 4)
    assert rows.tolist() == [[1, 0, 3, 4], [2, 1, 2, 3]]
    assert cut == 1


def test_tsv_folder_vocabulary_from_train_only(tmp_path):
    _write(tmp_path / "train.tsv", 2, False)
    (tmp_path / "dev_a.tsv").write_text("the unicorn sat\t0\n")
    _write(tmp_path / "dev_b.tsv", 4, True)
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tthe cat\n")  # unlabelled: never read
    data = load_tsv_folder(tmp_path, min_count=1)
    assert "unicorn" not in data["word_to_ix"]
    assert list(data["eval_sets"]) == ["dev_a", "dev_b"]
    a = data["eval_sets"]["dev_a"]
    w = data["word_to_ix"]
    assert a["inxs"][0, :4].tolist() == [w["the"], w["UNK"], w["sat"], w["CLS"]]
    assert a["unk_rate"] == pytest.approx(1 / 3)
    assert data["max_length"] == 5  # the longest training sentence (4 words) + CLS
    assert data["train_inxs"].shape == (3, 5)
    assert data["layout"]["dev_b.tsv"].startswith("GLUE raw") and "header" in data["layout"]["dev_b.tsv"]
    assert data["tokenization"] == "whitespace"
    only = load_classification_data(tmp_path, eval_files=["dev_b.tsv"], min_count=2)
    assert list(only["eval_sets"]) == ["dev_b"]
    assert set(only["word_to_ix"]) == {"UNK", "the", "cat", "sat", "CLS", "PAD"}  # count >= 2 in train


def test_array_folder_keeps_working(tmp_path):
    write_cola_dir(tmp_path)
    data = load_classification_data(tmp_path)
    assert data["format"] == "arrays"
    np.testing.assert_array_equal(data["eval_sets"]["val"]["inxs"], data["val_inxs"])
    with pytest.raises(ValueError, match="TSV folder"):
        load_classification_data(tmp_path, eval_files=["dev.tsv"])
    with pytest.raises(FileNotFoundError, match="neither"):
        load_classification_data(tmp_path / "nothing")


@pytest.mark.skipif(not (PUBLIC.is_dir() and COURSE.is_dir()), reason="the shared CoLA data is not present")
def test_public_folder_is_the_course_split_source():
    data = load_classification_data(PUBLIC)
    assert data["train_labels"].shape == (8551,)
    assert {k: len(v["labels"]) for k, v in data["eval_sets"].items()} == {"dev_in_domain": 527,
                                                                          "dev_out_of_domain": 516}
    assert data["tokenization"] == "whitespace"
    course = np.concatenate([np.load(COURSE / "train_labels.npy"), np.load(COURSE / "val_labels.npy")])
    np.testing.assert_array_equal(data["train_labels"], course)
