"""Fetch and decode images: :func:`image_from_url` for http(s) URLs, ``file://`` URLs and plain paths.

The COCO captioning release lists Flickr URLs, many of which are dead; the synthetic shapes dataset
lists ``file://`` URLs of its PNGs. :func:`image_from_url` returns an (H, W, 3) uint8 array, or None
after printing one line that says why the image could not be had, as the cs231n notebooks expect
(``placeholder=True`` returns a gray image with a cross instead, so plotting code never breaks).

Downloads go through ``requests`` with a timeout, a few retries with exponential back-off for
transient failures (timeouts, dropped connections, HTTP 429 and 5xx; not for other 4xx answers or for
bytes that are not an image), and a small on-disk cache of the downloaded bytes, keyed by URL:
``$CS231N_IMAGE_CACHE`` or ``.cache/images`` at the repository root, at most 2000 files, the least
recently used removed first.
"""
import hashlib
import io
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
import requests
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_TIMEOUT = 10.0  # seconds, for connecting and for each read
DEFAULT_RETRIES = 2  # extra attempts after a transient failure
DEFAULT_BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_BYTES = 50 * 2 ** 20  # larger downloads are refused
CACHE_MAX_FILES = 2000
PLACEHOLDER_SIZE = 128
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_USER_AGENT = "cs231n-captioning/0.1 (python-requests)"


class _Transient(Exception):
    """A failure that another attempt may not repeat (timeout, dropped connection, 429/5xx)."""


class _Failure(Exception):
    """A failure that another attempt would repeat (404, not an image, ...); the message is the reason."""


def default_image_cache_dir():
    """Where downloaded images are cached: ``$CS231N_IMAGE_CACHE``, else ``.cache/images`` in the repo."""
    override = os.environ.get("CS231N_IMAGE_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / ".cache" / "images"


def placeholder_image(size=PLACEHOLDER_SIZE):
    """A light gray square with a dark gray cross: what ``image_from_url(..., placeholder=True)`` returns
    for an image it could not get.

    Inputs:
    - size: side S in pixels.

    Returns an array of shape (S, S, 3), uint8.
    """
    img = np.full((size, size, 3), 220, dtype=np.uint8)
    i = np.arange(size)
    for offset in (-1, 0, 1):
        j = np.clip(i + offset, 0, size - 1)
        img[i, j] = 120
        img[i, size - 1 - j] = 120
    return img


def decode_image(data):
    """Decode image file bytes with Pillow into an (H, W, 3) uint8 array.

    Grayscale, palette, CMYK and 16-bit images are converted to RGB; images with transparency (RGBA,
    LA, palette with a transparent color) are composited over white; EXIF orientation is applied; an
    animation gives its first frame.

    Inputs:
    - data: bytes of an image file (PNG, JPEG, GIF, ...).

    Returns an array of shape (H, W, 3), uint8.

    Raises ValueError with a one-line reason when the bytes are not a complete image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes now, so a truncated file fails here
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # a malformed EXIF block: keep the image as stored
                pass
            return _to_rgb(img)
    except UnidentifiedImageError:
        head = bytes(data[:16])
        raise ValueError(f"not an image ({len(data)} bytes starting {head!r})") from None
    except Image.DecompressionBombError as e:
        raise ValueError(f"image too large to decode safely: {e}") from None
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, ... for broken files
        raise ValueError(f"cannot decode image ({type(e).__name__}: {e})") from None


def _to_rgb(img):
    """A Pillow image as an (H, W, 3) uint8 array (see :func:`decode_image`)."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)  # (H, W, 4)
        alpha = rgba[:, :, 3:] / 255.0
        rgb = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    if mode.startswith("I") or mode == "F":
        gray = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and gray.size and gray.max() > 255):
            gray = gray / 257.0  # 16-bit range to 8-bit
        elif mode == "F" and gray.size and gray.max() <= 1.0:
            gray = gray * 255.0
        gray = np.clip(np.rint(np.nan_to_num(gray)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _local_path(url):
    """The filesystem path of a ``file://`` URL or a plain path; None for other URLs."""
    text = os.fspath(url)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _Failure(f"file URL names another host ({parts.netloc!r})")
        return Path(url2pathname(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if "://" in text:
        raise _Failure(f"unsupported URL scheme {parts.scheme!r}")
    return Path(text).expanduser()  # a plain path (a Windows drive letter looks like a scheme)


def _cache_file(cache_dir, url):
    return Path(cache_dir) / (hashlib.sha256(url.encode("utf-8")).hexdigest()[:40] + ".img")


def _cache_store(cache_dir, url, data):
    """Write the bytes of `url` into the cache (atomically) and drop the oldest files beyond the limit."""
    try:
        directory = Path(cache_dir)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, _cache_file(directory, url))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        files = [p for p in directory.iterdir() if p.suffix == ".img"]
        if len(files) > CACHE_MAX_FILES:
            files.sort(key=lambda p: p.stat().st_mtime)
            for p in files[:len(files) - CACHE_MAX_FILES]:
                p.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written is no reason to fail


def _download(url, timeout):
    """One GET of `url`; returns the body bytes or raises _Transient / _Failure."""
    try:
        with requests.get(url, timeout=timeout, stream=True, headers={"User-Agent": _USER_AGENT}) as r:
            if r.status_code != 200:
                reason = f"HTTP {r.status_code} {r.reason or ''}".rstrip()
                if r.status_code in _RETRY_STATUSES:
                    raise _Transient(reason)
                raise _Failure(reason)
            chunks, total = [], 0
            for chunk in r.iter_content(chunk_size=1 << 16):
                total += len(chunk)
                if total > MAX_BYTES:
                    raise _Failure(f"larger than {MAX_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.Timeout:
        raise _Transient(f"timed out after {timeout} s") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
        raise _Transient(f"connection failed ({type(e).__name__})") from None
    except requests.RequestException as e:
        raise _Failure(f"request failed ({type(e).__name__}: {e})") from None


def image_from_url(url, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES, cache_dir=None, placeholder=False,
                   backoff=DEFAULT_BACKOFF):
    """Read an image from an http(s) URL, a ``file://`` URL or a plain path.

    On failure (HTTP error such as 404, timeout, refused connection, missing file, bytes that are not an
    image, truncated file) one line ``image_from_url: <reason>: <url>`` is printed and None is returned
    (or the placeholder image, see below).

    Inputs:
    - url: str (or os.PathLike for a path).
    - timeout: seconds to wait for the connection and for each read (a number, or a
      ``(connect, read)`` pair as requests takes).
    - retries: how many more attempts after a transient failure (timeout, dropped connection,
      HTTP 408/429/5xx); waits `backoff`, 2 `backoff`, ... seconds between attempts.
    - cache_dir: directory of the download cache; None for :func:`default_image_cache_dir`, False to
      neither read nor write a cache. Only http(s) downloads are cached, and only when they decode.
    - placeholder: return :func:`placeholder_image` instead of None on failure.
    - backoff: seconds before the first retry.

    Returns an array of shape (H, W, 3), uint8, or None.
    """
    if not isinstance(url, (str, os.PathLike)):
        raise TypeError(f"image_from_url: url must be a str or os.PathLike, got {type(url).__name__}")
    if not isinstance(retries, (int, np.integer)) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"image_from_url: retries must be an integer >= 0, got {retries!r}")
    try:
        return _fetch(url, timeout, int(retries), cache_dir, backoff)
    except _Failure as e:
        print(f"image_from_url: {e}: {os.fspath(url)}")
        return placeholder_image() if placeholder else None


def _fetch(url, timeout, retries, cache_dir, backoff):
    """The body of :func:`image_from_url`; raises _Failure with the reason."""
    path = _local_path(url)
    if path is not None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _Failure("no such file") from None
        except OSError as e:
            raise _Failure(f"cannot read file ({e.strerror or e})") from None
        return _decode_or_fail(data)

    url = os.fspath(url)
    if cache_dir is None:
        cache_dir = default_image_cache_dir()
    if cache_dir is not False:
        cached = _cache_file(cache_dir, url)
        try:
            data = cached.read_bytes()
        except OSError:
            data = None
        if data is not None:
            try:
                image = decode_image(data)
                os.utime(cached)  # most recently used
                return image
            except (ValueError, OSError):
                cached.unlink(missing_ok=True)  # a damaged cache entry: fetch again

    for attempt in range(retries + 1):
        try:
            data = _download(url, timeout)
            break
        except _Transient as e:
            if attempt == retries:
                raise _Failure(str(e) + (f" ({retries + 1} attempts)" if retries else "")) from None
            time.sleep(backoff * 2 ** attempt)
    image = _decode_or_fail(data)
    if cache_dir is not False:
        _cache_store(cache_dir, url, data)
    return image


def _decode_or_fail(data):
    try:
        return decode_image(data)
    except ValueError as e:
        raise _Failure(str(e)) from None
