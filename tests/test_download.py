"""Tests for cs231n.data.download: fetching the release from an HTTP server on 127.0.0.1 started here."""
import io
import json
import os
import shutil
import stat
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest

from cs231n.data.download import DownloadError, default_coco_dir, download_coco, verify_coco_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "coco2014_captions.h5", "coco2014_vocab.json",
    "train2014_vgg16_fc7.h5", "train2014_vgg16_fc7_pca.h5", "val2014_vgg16_fc7.h5", "val2014_vgg16_fc7_pca.h5",
    "train2014_urls.txt", "val2014_urls.txt",
]
WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog", "on", "the", "cat", "grass"]
NUM_IMAGES = {"train": 6, "val": 4}
NUM_CAPTIONS = {"train": 10, "val": 7}


def write_release(directory, captions_dtype=np.int32, num_val_urls=None, special=None):
    """Write a tiny dataset in the release format into `directory` (created), with optional defects."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = list(WORDS)
    if special is not None:
        words[:4] = special
    with open(directory / "coco2014_vocab.json", "w") as f:
        json.dump({"idx_to_word": words, "word_to_idx": {w: i for i, w in enumerate(words)}}, f)
    with h5py.File(directory / "coco2014_captions.h5", "w") as f:
        for split in ("train", "val"):
            n = NUM_CAPTIONS[split]
            f[f"{split}_captions"] = rng.integers(0, len(words), size=(n, 17)).astype(captions_dtype)
            f[f"{split}_image_idxs"] = rng.integers(0, NUM_IMAGES[split], size=n).astype(np.int32)
    for split in ("train", "val"):
        m = NUM_IMAGES[split]
        with h5py.File(directory / f"{split}2014_vgg16_fc7.h5", "w") as f:
            f["features"] = rng.standard_normal((m, 4096)).astype(np.float32)
        with h5py.File(directory / f"{split}2014_vgg16_fc7_pca.h5", "w") as f:
            f["features"] = rng.standard_normal((m, 512)).astype(np.float32)
        lines = m if split == "train" or num_val_urls is None else num_val_urls
        (directory / f"{split}2014_urls.txt").write_text(
            "".join(f"http://images.example/{split}/{i}.jpg\n" for i in range(lines)))


def zip_dir(directory, leave_out=()):
    """Zip `directory` under a top-level folder coco_captioning/, as the release does."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in FILES:
            if name not in leave_out:
                archive.write(directory / name, f"coco_captioning/{name}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(directory with the 8 files, the zip bytes)."""
    directory = tmp_path_factory.mktemp("release") / "coco_captioning"
    write_release(directory)
    return directory, zip_dir(directory)


class Handler(BaseHTTPRequestHandler):
    """Serves server.state['payload'] at /coco_captioning.zip, with the failures the state asks for."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        with state["lock"]:
            state["ranges"].append(self.headers.get("Range"))
            attempt = len(state["ranges"])
        if self.path != "/coco_captioning.zip" or state["status"] == 404:
            self.send_error(404, "Not Found")
            return
        data, start = state["payload"], 0
        requested = self.headers.get("Range")
        if requested and state["honour_range"]:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if attempt in state["drop_on"]:
            # Send part of the body, then close the connection (HTTP/1.0: closed when the handler returns).
            self.wfile.write(body[:int(len(body) * state["drop_fraction"])])
            self.wfile.flush()
            return
        self.wfile.write(body)


@pytest.fixture
def server(release):
    """A threaded HTTP server on 127.0.0.1; tests change server.state before downloading."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = {"payload": release[1], "status": 200, "honour_range": True, "drop_on": set(),
                   "drop_fraction": 0.5, "ranges": [], "lock": threading.Lock()}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/coco_captioning.zip"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def range_start(header):
    """The first byte asked for by a ``bytes=START-`` Range header."""
    assert header is not None and header.startswith("bytes=") and header.endswith("-"), header
    return int(header[len("bytes="):-1])


def fetch(server, dest, **kwargs):
    return download_coco(dest, url=server.url, quiet=True, backoff=0, timeout=10, **kwargs)


def assert_same_files(got_dir, want_dir):
    assert sorted(p.name for p in got_dir.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (got_dir / name).read_bytes() == (want_dir / name).read_bytes(), name


def test_download_success(server, release, tmp_path):
    dest = tmp_path / "coco_captioning"
    assert fetch(server, dest) == dest
    assert_same_files(dest, release[0])
    assert server.state["ranges"] == [None]
    assert os.listdir(tmp_path) == ["coco_captioning"]  # no .part, no temporary directories
    summary = verify_coco_dir(dest)
    assert summary == {"num_train_captions": 10, "num_val_captions": 7, "num_train_images": 6,
                       "num_val_images": 4, "vocab_size": len(WORDS)}


def test_dropped_connection_resumes_with_range(server, release, tmp_path):
    server.state["drop_on"] = {1}
    dest = tmp_path / "coco_captioning"
    fetch(server, dest)
    half = len(release[1]) // 2
    first, resumed = server.state["ranges"]
    assert first is None
    assert 0 < range_start(resumed) <= half  # what arrived before the drop (whole chunks) is kept
    assert_same_files(dest, release[0])
    assert os.listdir(tmp_path) == ["coco_captioning"]


def test_server_ignoring_range_restarts_from_zero(server, release, tmp_path):
    server.state.update(drop_on={1}, honour_range=False)
    dest = tmp_path / "coco_captioning"
    fetch(server, dest)
    first, resumed = server.state["ranges"]
    assert first is None and 0 < range_start(resumed) <= len(release[1]) // 2
    assert_same_files(dest, release[0])


def test_retries_exhausted_keeps_part_and_next_call_resumes(server, release, tmp_path):
    # Every answer is a 200 cut at half: the first attempt makes progress, the next two do not.
    server.state.update(drop_on={1, 2, 3}, honour_range=False)
    dest = tmp_path / "coco_captioning"
    with pytest.raises(DownloadError, match="failed attempts in a row"):
        fetch(server, dest, retries=1)
    assert len(server.state["ranges"]) == 3
    part = tmp_path / "coco_captioning.zip.part"
    kept = part.stat().st_size
    assert not dest.exists()
    assert 0 < kept <= len(release[1]) // 2
    assert os.listdir(tmp_path) == [part.name]

    server.state.update(drop_on=set(), honour_range=True)
    fetch(server, dest)
    assert server.state["ranges"][3] == f"bytes={kept}-"
    assert_same_files(dest, release[0])
    assert os.listdir(tmp_path) == ["coco_captioning"]


def test_complete_part_from_an_earlier_run_is_not_fetched_again(server, release, tmp_path):
    (tmp_path / "coco_captioning.zip.part").write_bytes(release[1])
    fetch(server, tmp_path / "coco_captioning")
    assert server.state["ranges"] == [f"bytes={len(release[1])}-"]  # answered 416, nothing sent
    assert_same_files(tmp_path / "coco_captioning", release[0])
    assert os.listdir(tmp_path) == ["coco_captioning"]


def test_oversized_part_is_discarded(server, release, tmp_path):
    (tmp_path / "coco_captioning.zip.part").write_bytes(release[1] + b"stale")
    fetch(server, tmp_path / "coco_captioning")
    assert server.state["ranges"] == [f"bytes={len(release[1]) + 5}-", None]
    assert_same_files(tmp_path / "coco_captioning", release[0])


def test_no_bytes_at_all_leaves_nothing(server, tmp_path):
    server.state.update(drop_on={1, 2, 3, 4}, drop_fraction=0.0)
    with pytest.raises(DownloadError, match="3 failed attempts"):
        fetch(server, tmp_path / "coco_captioning", retries=2)
    assert len(server.state["ranges"]) == 3
    assert os.listdir(tmp_path) == []


def test_404_is_a_clear_error(server, tmp_path):
    server.state["status"] = 404
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server, tmp_path / "coco_captioning")
    assert len(server.state["ranges"]) == 1  # not retried
    assert os.listdir(tmp_path) == []


def test_garbage_instead_of_zip(server, tmp_path):
    server.state["payload"] = np.random.default_rng(1).bytes(5000)
    with pytest.raises(DownloadError, match="corrupt"):
        fetch(server, tmp_path / "coco_captioning")
    assert os.listdir(tmp_path) == []


def test_corrupt_member_data(server, release, tmp_path):
    data = bytearray(release[1])
    with zipfile.ZipFile(io.BytesIO(release[1])) as archive:
        info = archive.getinfo("coco_captioning/train2014_vgg16_fc7.h5")
    # Local header: 30 fixed bytes, then the name and the extra field, then the compressed data.
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = data_start + info.compress_size // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    server.state["payload"] = bytes(data)
    with pytest.raises(DownloadError, match="corrupt"):
        fetch(server, tmp_path / "coco_captioning")
    assert os.listdir(tmp_path) == []


def test_zip_missing_a_file_names_it(server, release, tmp_path):
    server.state["payload"] = zip_dir(release[0], leave_out={"val2014_urls.txt"})
    with pytest.raises(DownloadError, match="val2014_urls.txt: missing"):
        fetch(server, tmp_path / "coco_captioning")
    assert os.listdir(tmp_path) == []


def test_an_existing_complete_dataset_is_left_alone_unless_forced(server, release, tmp_path):
    dest = tmp_path / "coco_captioning"
    shutil.copytree(release[0], dest)
    (dest / "mine.txt").write_text("keep me")  # a complete dataset may hold other files too
    assert fetch(server, dest) == dest
    assert (dest / "mine.txt").read_text() == "keep me"
    assert server.state["ranges"] == []

    fetch(server, dest, force=True)
    assert_same_files(dest, release[0])
    assert os.listdir(tmp_path) == ["coco_captioning"]


def test_an_existing_dest_that_is_not_a_complete_dataset_is_refused_naming_what_is_missing(server, release,
                                                                                           tmp_path):
    """Issue 20, item 8: a folder of unrelated files (or a partial dataset) was 'left as it is', exit 0."""
    dest = tmp_path / "coco_captioning"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    shutil.copy(release[0] / "coco2014_vocab.json", dest)
    with pytest.raises(FileExistsError, match="not a complete") as e:
        fetch(server, dest)
    assert "coco2014_captions.h5: missing" in str(e.value) and "--force" in str(e.value)
    assert "coco2014_vocab.json: missing" not in str(e.value)
    assert sorted(os.listdir(dest)) == ["coco2014_vocab.json", "mine.txt"]
    assert server.state["ranges"] == []


def test_a_dest_that_is_a_regular_file_is_refused_even_with_force(server, tmp_path, capsys):
    from cs231n.cli import main

    dest = tmp_path / "coco.zip"
    dest.write_text("mine")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="is an existing file"):
            fetch(server, dest, force=force)
    assert main(["download", "coco", "--dest", str(dest), "--url", server.url, "--quiet"]) == 1
    assert "--dest" in capsys.readouterr().err
    assert dest.read_text() == "mine" and server.state["ranges"] == []


def test_files_at_top_level_of_the_zip(server, release, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in FILES:
            archive.write(release[0] / name, name)
    server.state["payload"] = buffer.getvalue()
    dest = tmp_path / "nested" / "data"
    fetch(server, dest)
    assert_same_files(dest, release[0])


def test_verify_reports_every_problem(tmp_path):
    bad = tmp_path / "bad"
    write_release(bad, captions_dtype=np.int64, num_val_urls=3, special=["<NULL>", "<START>", "<UNK>", "<END>"])
    (bad / "train2014_urls.txt").unlink()
    with pytest.raises(ValueError) as excinfo:
        verify_coco_dir(bad)
    message = str(excinfo.value)
    assert "train2014_urls.txt: missing" in message
    assert "train_captions must be (N, 17) int32" in message
    assert "val2014_urls.txt: 3 lines but the val features have 4 rows" in message
    assert "the first words must be" in message


def test_verify_checks_widths_and_indices(tmp_path):
    good = tmp_path / "good"
    write_release(good)
    with pytest.raises(ValueError, match="must have 2048 columns"):
        verify_coco_dir(good, feature_dim=2048)
    verify_coco_dir(good, feature_dim=None, pca_dim=None)
    with h5py.File(good / "coco2014_captions.h5", "a") as f:
        idxs = f["val_image_idxs"]
        idxs[0] = NUM_IMAGES["val"]
    with pytest.raises(ValueError, match="val_image_idxs holds values in"):
        verify_coco_dir(good)
    (good / "coco2014_vocab.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        verify_coco_dir(good)


@pytest.mark.parametrize("kwargs, match", [
    ({"url": "ftp://example.org/x.zip"}, "url must be an http"),
    ({"retries": -1}, "retries must be an integer"),
    ({"timeout": 0}, "timeout must be"),
    ({"backoff": -1.0}, "backoff must be"),
])
def test_argument_validation(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        download_coco(tmp_path / "d", quiet=True, **kwargs)


def test_default_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CS231N_COCO_DIR", str(tmp_path / "elsewhere"))
    assert default_coco_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CS231N_COCO_DIR")
    assert default_coco_dir() == REPO_ROOT / "datasets" / "coco_captioning"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_shell_wrapper_passes_arguments_on(tmp_path):
    script = REPO_ROOT / "datasets" / "get_coco_captioning.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    fake_python = tmp_path / "fake-python"
    fake_python.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$PYTHONPATH" "$@"\n')
    fake_python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake_python), PYTHONPATH="")
    out = subprocess.run(["bash", str(script), "--url", "http://mirror/x.zip", "--dest", "a b", "--force"],
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [str(REPO_ROOT), "-m", "cs231n", "download", "coco",
                   "--url", "http://mirror/x.zip", "--dest", "a b", "--force"]


def test_leftovers_of_a_killed_extraction_are_removed_by_the_next_download(server, release, tmp_path):
    """A kill during extraction leaves a .NAME-extract-* folder; the next download removes it."""
    dest = tmp_path / "coco"
    dead = tmp_path / ".coco-extract-999999999-abcd1234"  # pid of no running process
    old_style = tmp_path / ".coco-extract-k2j4h5g6"  # the name before pids were added
    live = tmp_path / f".coco-extract-{os.getppid()}-zzzz"  # a running process may still be extracting
    for folder in (dead, old_style, live):
        (folder / "coco_captioning").mkdir(parents=True)
        (folder / "coco_captioning" / "big.h5").write_bytes(b"x" * 1000)
    fetch(server, dest)
    assert_same_files(dest, release[0])
    assert not dead.exists() and not old_style.exists() and live.exists()
