"""Tests of the text helpers: tokenizers, vocabulary, encoding, windows, data preparation, download.

The Alice counts are checked on ``../shared/data/alice.txt`` (or ``$CS231N_ALICE_TXT``) when it exists;
the download is tested against an ``http.server`` that the test starts on 127.0.0.1.
"""
import http.server
import os
import threading

import numpy as np
import pytest

from cs231n import text_utils
from cs231n.text_utils import (UNK, build_vocab, classic_tokenize, decode, default_alice_path,
                               download_gutenberg_alice, encode, join_tokens, make_windows,
                               prepare_text_data, strip_gutenberg_boilerplate, tokenize, word_tokenize)


def alice_text():
    path = default_alice_path()
    if not os.path.isfile(path):
        pytest.skip(f"Alice text not found at {path} (set CS231N_ALICE_TXT to its location)")
    return text_utils.read_text(path)


# --------------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------------

def test_classic_tokenize_lowercases_and_splits_on_single_spaces_and_newlines():
    text = "The Cat sat,\non the  mat.\n\nEnd\n"
    assert classic_tokenize(text) == ["the", "cat", "sat,", "on", "the", "", "mat.", "", "end", ""]


def test_classic_tokenize_rejects_non_strings():
    with pytest.raises(TypeError, match="text must be a str"):
        classic_tokenize(["a", "b"])


def test_word_tokenize_separates_punctuation_and_keeps_inner_apostrophes_and_hyphens():
    text = "‘Alice’s daisy-chain,’ she said (don't!)\n  Oh  dear..."
    assert word_tokenize(text) == ["‘", "alice’s", "daisy-chain", ",", "’", "she", "said", "(", "don't",
                                   "!", ")", "oh", "dear", ".", ".", "."]


def test_word_tokenize_never_gives_empty_tokens():
    assert word_tokenize("  \n\n a  \n") == ["a"]
    assert word_tokenize("") == []


def test_tokenize_dispatches_and_rejects_unknown_names():
    assert tokenize("A b", "classic") == ["a", "b"]
    assert tokenize("A, b", "words") == ["a", ",", "b"]
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        tokenize("a", "bpe")


def test_join_tokens_classic_inverts_the_classic_split_up_to_case():
    text = "so she was considering  in her own mind\n(as well as she could,"
    assert join_tokens(classic_tokenize(text), "classic") == text.lower().replace("\n", " ")


def test_join_tokens_words_attaches_punctuation():
    tokens = ["‘", "oh", ",", "dear", "!", "’", "said", "alice", "(", "quietly", ")", "."]
    assert join_tokens(tokens, "words") == "‘oh, dear!’ said alice (quietly)."


# --------------------------------------------------------------------------------------------------
# Vocabulary and encoding
# --------------------------------------------------------------------------------------------------

def test_build_vocab_puts_unk_first_then_orders_by_count_then_first_appearance():
    tokens = "b a c a b d a".split()
    word_to_idx, idx_to_word = build_vocab(tokens)
    # counts: a 3, b 2, c 1, d 1 (c seen before d)
    assert idx_to_word == [UNK, "a", "b", "c", "d"]
    assert word_to_idx == {w: i for i, w in enumerate(idx_to_word)}


def test_build_vocab_min_count_and_max_size():
    tokens = "b a c a b d a".split()
    assert build_vocab(tokens, min_count=2)[1] == [UNK, "a", "b"]
    assert build_vocab(tokens, max_size=3)[1] == [UNK, "a", "b"]
    assert build_vocab(tokens, max_size=1)[1] == [UNK]


def test_build_vocab_shares_the_unk_index_with_a_literal_unk_token():
    _, idx_to_word = build_vocab(["x", UNK, UNK, UNK])
    assert idx_to_word == [UNK, "x"]


@pytest.mark.parametrize("kwargs, match", [({"min_count": 0}, "min_count"), ({"max_size": 0}, "max_size")])
def test_build_vocab_rejects_bad_limits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_vocab(["a"], **kwargs)


def test_build_vocab_rejects_a_plain_string():
    with pytest.raises(TypeError, match="tokenize it first"):
        build_vocab("some text")


def test_encode_maps_unknown_words_to_unk_and_decode_inverts():
    word_to_idx, idx_to_word = build_vocab("the cat the hat".split())
    idx = encode("the dog hat".split(), word_to_idx)
    assert idx.dtype == np.int32
    assert idx.tolist() == [word_to_idx["the"], word_to_idx[UNK], word_to_idx["hat"]]
    assert decode(idx, idx_to_word) == ["the", UNK, "hat"]


def test_encode_needs_unk_and_decode_checks_range():
    with pytest.raises(ValueError, match="<UNK>"):
        encode(["a"], {"a": 0})
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        decode(np.array([0, 2]), ["<UNK>", "a"])


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("L, T, stride", [(11, 3, 1), (11, 3, 3), (11, 3, 4), (4, 3, 1), (20, 5, 2)])
def test_make_windows_matches_explicit_slicing(L, T, stride):
    stream = np.arange(100, 100 + L)
    inputs, targets = make_windows(stream, T, stride)
    expected_in, expected_out = [], []
    s = 0
    while s + T + 1 <= L:
        expected_in.append(stream[s:s + T])
        expected_out.append(stream[s + 1:s + T + 1])
        s += stride
    assert inputs.dtype == np.int32 and targets.dtype == np.int32
    np.testing.assert_array_equal(inputs, np.array(expected_in))
    np.testing.assert_array_equal(targets, np.array(expected_out))


def test_make_windows_rejects_short_streams_and_bad_sizes():
    with pytest.raises(ValueError, match="fewer than T \\+ 1 = 6"):
        make_windows(np.arange(5), 5)
    with pytest.raises(ValueError, match="T must be an int >= 1"):
        make_windows(np.arange(5), 0)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        make_windows(np.arange(5), 2, stride=1.5)
    with pytest.raises(ValueError, match="1-D integer"):
        make_windows(np.zeros(10), 2)


# --------------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------------

def test_prepare_text_data_splits_the_stream_and_builds_the_vocabulary_from_training_text():
    text = " ".join(["a b c d"] * 10 + ["e f e f e f e f"])  # 48 tokens, e and f only at the end
    data = prepare_text_data(text, seq_len=4, stride=1, val_fraction=0.25)
    assert data["num_tokens"] == 48 and data["num_train_tokens"] == 36
    assert data["idx_to_word"][0] == UNK and set(data["idx_to_word"]) == {UNK, "a", "b", "c", "d"}
    assert data["train_inputs"].shape == (36 - 4, 4)
    assert data["train_eval_inputs"].shape == ((36 - 1) // 4, 4)
    # validation: tokens 36..47, 12 tokens, (12 - 1 - 4) // 4 + 1 = 2 non-overlapping windows
    assert data["val_inputs"].shape == (2, 4)
    unk = data["word_to_idx"][UNK]
    # the held-out part starts with "a b c d" (tokens 36..39) and then e/f, which are unknown
    np.testing.assert_array_equal(data["val_inputs"][1], [unk] * 4)
    # eval windows are non-overlapping: their targets cover the training stream once
    stream = encode(classic_tokenize(text)[:36], data["word_to_idx"])
    np.testing.assert_array_equal(data["train_eval_targets"].ravel(), stream[1:1 + 8 * 4])


def test_prepare_text_data_without_validation_has_empty_val_windows():
    data = prepare_text_data("one two three four five six", seq_len=2)
    assert data["val_inputs"].shape == (0, 2)
    assert data["tokenizer"] == "classic" and data["seq_len"] == 2 and data["stride"] == 1


def test_prepare_text_data_rejects_texts_too_short():
    with pytest.raises(ValueError, match="fewer than seq_len \\+ 1"):
        prepare_text_data("a b c", seq_len=5)
    with pytest.raises(ValueError, match="val_fraction"):
        prepare_text_data("a b c", seq_len=1, val_fraction=1.0)


# --------------------------------------------------------------------------------------------------
# The shared Alice text
# --------------------------------------------------------------------------------------------------

def test_alice_classic_split_has_2170_tokens_and_778_distinct():
    tokens = classic_tokenize(alice_text())
    assert len(tokens) == 2170
    assert len(set(tokens)) == 778
    assert tokens[:4] == ["chapter", "i.", "down", "the"]


def test_alice_vocabulary_and_windows():
    data = prepare_text_data(alice_text(), seq_len=50, stride=1)
    assert len(data["idx_to_word"]) == 779  # 778 distinct tokens plus <UNK>
    assert data["train_inputs"].shape == (2120, 50)
    assert data["train_eval_inputs"].shape == (43, 50)


def test_default_alice_path_honours_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(text_utils.ALICE_ENV, str(tmp_path / "mine.txt"))
    assert default_alice_path() == str(tmp_path / "mine.txt")
    monkeypatch.delenv(text_utils.ALICE_ENV)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(text_utils.__file__)))
    assert default_alice_path() == os.path.normpath(os.path.join(repo, "..", "shared", "data", "alice.txt"))


def test_read_text_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such text file"):
        text_utils.read_text(tmp_path / "absent.txt")


# --------------------------------------------------------------------------------------------------
# Download (against a local server)
# --------------------------------------------------------------------------------------------------

BOOK = ("\ufeffThe Project Gutenberg eBook of Alice's Adventures in Wonderland\r\n\r\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK ALICE'S ADVENTURES IN WONDERLAND ***\r\n\r\n"
        "CHAPTER I.\r\nDown the Rabbit-Hole\r\n\r\nAlice was beginning to get very tired.\r\n\r\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK ALICE'S ADVENTURES IN WONDERLAND ***\r\n"
        "Licence text follows.\r\n")


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 serving BOOK at /pg11.txt and 404 elsewhere; yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/pg11.txt":
                body = BOOK.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_gutenberg_alice_strips_the_licence(local_server, tmp_path):
    dest = tmp_path / "sub" / "alice.txt"
    out = download_gutenberg_alice(dest, url=local_server + "/pg11.txt", timeout=10)
    assert out == str(dest)
    text = dest.read_text(encoding="utf-8")
    assert text == "CHAPTER I.\nDown the Rabbit-Hole\n\nAlice was beginning to get very tired.\n"
    assert not [p for p in os.listdir(dest.parent) if p != "alice.txt"]  # no temporary files left


def test_download_gutenberg_alice_can_keep_everything(local_server, tmp_path):
    dest = tmp_path / "full.txt"
    download_gutenberg_alice(dest, url=local_server + "/pg11.txt", strip_boilerplate=False)
    assert dest.read_text(encoding="utf-8") == BOOK.lstrip("\ufeff").replace("\r\n", "\n")


def test_download_failure_names_the_url_and_writes_nothing(local_server, tmp_path):
    dest = tmp_path / "alice.txt"
    url = local_server + "/missing.txt"
    with pytest.raises(RuntimeError, match="missing.txt"):
        download_gutenberg_alice(dest, url=url, timeout=10)
    assert not dest.exists()


def test_strip_gutenberg_boilerplate_leaves_plain_text_alone():
    assert strip_gutenberg_boilerplate("just a story\n") == "just a story\n"
