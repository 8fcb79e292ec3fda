"""Tests of cs231n.image_utils.image_from_url against a local HTTP server and local files.

The server runs on 127.0.0.1 (port chosen by the OS) in a thread, serves images made here with Pillow,
and counts the requests for each path, so that cache hits can be told from downloads.
"""
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from cs231n.image_utils import decode_image, image_from_url, placeholder_image

SLOW_SECONDS = 1.0  # the slow handler's delay; the tests use a much smaller timeout


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _rgb_pattern(h=12, w=20):
    """An RGB image with distinct values everywhere, so that a flip or channel swap would show."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


RGB = _rgb_pattern()
GRAY = np.arange(7 * 9, dtype=np.uint8).reshape(7, 9) * 4
RGBA = np.zeros((6, 5, 4), dtype=np.uint8)
RGBA[..., 0] = 200
RGBA[..., 1] = 100
RGBA[..., 2] = 50
RGBA[:, :2, 3] = 255  # opaque columns
RGBA[:, 2:, 3] = 0  # transparent columns: over white
RGBA[0, 4, 3] = 128  # half transparent pixel


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes``; counts requests in ``server.hits``; /slow.png waits, /flaky.png fails once."""

    def do_GET(self):  # noqa: N802 (the http.server name)
        with self.server.lock:
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        if self.path == "/slow.png":
            time.sleep(SLOW_SECONDS)
        if self.path == "/flaky.png" and self.server.hits[self.path] == 1:
            self._send(503, b"busy", "text/plain")
            return
        route = self.server.routes.get(self.path.split("?")[0].replace("/flaky.png", "/ok.png"))
        if route is None:
            self._send(404, b"not found", "text/plain")
            return
        self._send(200, route[0], route[1])

    def _send(self, status, body, content_type):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """A threaded HTTP server on 127.0.0.1; yields (base_url, hits dict)."""
    ok = _png_bytes(RGB)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    httpd.lock = threading.Lock()
    httpd.hits = {}
    httpd.routes = {
        "/ok.png": (ok, "image/png"),
        "/ok2.png": (ok, "image/png"),
        "/cached.png": (ok, "image/png"),
        "/slow.png": (ok, "image/png"),
        "/gray.png": (_png_bytes(GRAY), "image/png"),
        "/rgba.png": (_png_bytes(RGBA), "image/png"),
        "/text": (b"<html><body>this is not an image</body></html>", "text/html"),
        "/truncated.png": (ok[: len(ok) // 2], "image/png"),
    }
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address
    yield f"http://{host}:{port}", httpd.hits
    httpd.shutdown()
    httpd.server_close()


def _expected_rgba_over_white():
    a = RGBA[..., 3:].astype(np.float64) / 255.0
    return np.rint(RGBA[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)


def test_http_png_decodes_exactly(server, tmp_path):
    base, _ = server
    img = image_from_url(f"{base}/ok.png", cache_dir=tmp_path)
    assert img.dtype == np.uint8 and img.shape == RGB.shape
    np.testing.assert_array_equal(img, RGB)


def test_http_404_returns_none_with_one_line(server, tmp_path, capsys):
    base, hits = server
    before = hits.get("/missing.png", 0)
    assert image_from_url(f"{base}/missing.png", cache_dir=tmp_path, retries=3, backoff=0) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "404" in out and "/missing.png" in out
    assert hits["/missing.png"] == before + 1  # a 404 is not retried


def test_non_image_bytes(server, tmp_path, capsys):
    base, _ = server
    assert image_from_url(f"{base}/text", cache_dir=tmp_path) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not an image" in out


def test_truncated_image(server, tmp_path, capsys):
    base, _ = server
    assert image_from_url(f"{base}/truncated.png", cache_dir=tmp_path) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "decode" in out
    assert not any(tmp_path.iterdir())  # a failed download is not cached


def test_timeout_is_retried_then_reported(server, tmp_path, capsys):
    base, hits = server
    start = time.perf_counter()
    assert image_from_url(f"{base}/slow.png", timeout=0.1, retries=1, backoff=0, cache_dir=tmp_path) is None
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "timed out" in out and "2 attempts" in out
    assert elapsed < 2 * SLOW_SECONDS  # it gave up after the timeouts, without waiting for the server
    assert hits["/slow.png"] == 2


def test_transient_503_is_retried(server, tmp_path, capsys):
    base, hits = server
    img = image_from_url(f"{base}/flaky.png", retries=2, backoff=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(img, RGB)
    assert hits["/flaky.png"] == 2
    assert capsys.readouterr().out == ""


def test_refused_connection(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert image_from_url(f"http://127.0.0.1:{port}/x.png", retries=0, cache_dir=tmp_path, timeout=1) is None
    assert "connection failed" in capsys.readouterr().out


def test_grayscale_converted_to_rgb(server, tmp_path):
    base, _ = server
    img = image_from_url(f"{base}/gray.png", cache_dir=tmp_path)
    assert img.shape == GRAY.shape + (3,) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], GRAY)


def test_rgba_composited_over_white(server, tmp_path):
    base, _ = server
    img = image_from_url(f"{base}/rgba.png", cache_dir=tmp_path)
    assert img.shape == (6, 5, 3)
    expected = _expected_rgba_over_white()
    np.testing.assert_array_equal(img[:, :2], RGBA[:, :2, :3])
    np.testing.assert_array_equal(img[1:, 2:], np.full((5, 3, 3), 255, np.uint8))
    assert np.abs(img.astype(int) - expected).max() <= 1


def test_cache_hit_does_not_contact_server(server, tmp_path):
    base, hits = server
    url = f"{base}/cached.png"
    first = image_from_url(url, cache_dir=tmp_path)
    assert hits["/cached.png"] == 1
    second = image_from_url(url, cache_dir=tmp_path)
    assert hits["/cached.png"] == 1
    np.testing.assert_array_equal(first, second)
    # cache_dir=False neither reads nor writes the cache
    third = image_from_url(url, cache_dir=False)
    assert hits["/cached.png"] == 2
    np.testing.assert_array_equal(third, RGB)


def test_damaged_cache_entry_is_fetched_again(server, tmp_path):
    base, hits = server
    url = f"{base}/ok2.png"
    image_from_url(url, cache_dir=tmp_path)
    (entry,) = [p for p in tmp_path.iterdir() if p.suffix == ".img"]
    entry.write_bytes(b"garbage")
    img = image_from_url(url, cache_dir=tmp_path)
    np.testing.assert_array_equal(img, RGB)
    assert hits["/ok2.png"] == 2
    assert entry.read_bytes() != b"garbage"


def test_default_cache_dir_from_environment(server, tmp_path, monkeypatch):
    base, _ = server
    monkeypatch.setenv("CS231N_IMAGE_CACHE", str(tmp_path / "env_cache"))
    image_from_url(f"{base}/ok.png")
    assert len(list((tmp_path / "env_cache").glob("*.img"))) == 1


def test_placeholder_option(server, tmp_path, capsys):
    base, _ = server
    img = image_from_url(f"{base}/missing.png", cache_dir=tmp_path, placeholder=True)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    np.testing.assert_array_equal(img, placeholder_image())
    assert "404" in capsys.readouterr().out


def test_file_url_and_plain_path(tmp_path):
    path = tmp_path / "dir with space" / "img.png"
    path.parent.mkdir()
    path.write_bytes(_png_bytes(RGB))
    np.testing.assert_array_equal(image_from_url(path.as_uri()), RGB)
    np.testing.assert_array_equal(image_from_url(str(path)), RGB)
    np.testing.assert_array_equal(image_from_url(path), RGB)


def test_missing_file_and_bad_scheme(tmp_path, capsys):
    assert image_from_url((tmp_path / "nope.png").as_uri()) is None
    assert "no such file" in capsys.readouterr().out
    assert image_from_url(str(tmp_path / "nope.png")) is None
    assert "no such file" in capsys.readouterr().out
    assert image_from_url("ftp://example.com/x.png") is None
    assert "unsupported URL scheme" in capsys.readouterr().out


def test_local_jpeg_cmyk_and_palette(tmp_path):
    # CMYK JPEG and palette PNG both come back as RGB of the same size.
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(RGB).convert("CMYK").save(cmyk, format="JPEG")
    img = image_from_url(cmyk)
    assert img.shape == RGB.shape and img.dtype == np.uint8
    pal = tmp_path / "p.png"
    Image.fromarray(RGB).convert("P").save(pal)
    expected = np.asarray(Image.open(pal).convert("RGB"))
    np.testing.assert_array_equal(image_from_url(pal), expected)


def test_sixteen_bit_grayscale(tmp_path):
    values = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    img = image_from_url(path)
    assert img.shape == (3, 4, 3)
    np.testing.assert_array_equal(img[..., 0], np.rint(values / 257.0).astype(np.uint8))


def test_decode_image_reasons():
    with pytest.raises(ValueError, match="not an image"):
        decode_image(b"hello world")
    with pytest.raises(ValueError, match="decode"):
        decode_image(_png_bytes(RGB)[:60])


def test_bad_arguments():
    with pytest.raises(TypeError, match="url"):
        image_from_url(123)
    with pytest.raises(ValueError, match="retries"):
        image_from_url("x.png", retries=-1)
