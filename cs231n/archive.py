"""Safe, atomic files of named arrays plus JSON metadata: the one format for models and checkpoints.

An archive is a ``.npz`` file (a zip of ``.npy`` arrays) with one extra member, ``__meta__``, holding
UTF-8 JSON as bytes. It is read with ``allow_pickle=False``, so loading a file from an untrusted source
cannot run code, and written atomically: the data goes to a temporary file in the destination's
directory, is flushed and fsynced, then renamed over the destination, so a crash at any moment leaves
either the old file or the new one, never a half-written file. A process killed during a write leaves
its temporary file behind (``.tmp-<pid>-*``); :func:`remove_stale_temp_files` deletes those of
processes that no longer run.
"""
import json
import math
import os
import re
import tempfile
import zipfile

import numpy as np

from cs231n.backend import to_numpy

META_KEY = "__meta__"


class ArchiveError(ValueError):
    """A file that is not a readable archive (missing, truncated, not an npz, bad metadata)."""


def save_archive(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and ``meta`` (JSON-serializable dict) to ``path`` atomically.

    Inputs:
    - path: destination file name; ``.npz`` is not appended, the name is used as given.
    - arrays: dict of str -> array (numeric dtypes only; object arrays are refused). GPU (CuPy) arrays
      are copied to the host: files always hold host numpy arrays, so they load on any machine.
    - meta: dict that ``json.dumps`` accepts.

    Returns the path written.
    """
    path = os.fspath(path)
    if META_KEY in arrays:
        raise ValueError(f"save_archive: array name {META_KEY!r} is reserved for the metadata")
    payload = {}
    for name, value in arrays.items():
        a = to_numpy(value)
        if a.dtype.hasobject:
            raise TypeError(f"save_archive: array {name!r} has dtype object, which would need pickle")
        payload[name] = a
    text = json.dumps(meta, ensure_ascii=False, sort_keys=True)
    payload[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return _atomic_write(path, "wb", lambda f: np.savez(f, **payload), suffix=".npz")


def load_archive(path):
    """Read an archive written by :func:`save_archive`; return ``(arrays, meta)``.

    Raises ``FileNotFoundError`` when the file is missing and :class:`ArchiveError` (a ValueError) when
    it is truncated, not an npz, lacks metadata or would need pickle to load.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ArchiveError(f"{path} is a directory, not an archive file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        # Checked here so the message is ours: numpy would suggest loading an unknown file with pickle.
        what = "an empty file" if not magic else "not an .npz archive (it does not start like a zip file)"
        raise ArchiveError(f"{path} is {what}; expected a model or checkpoint written by this library")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ArchiveError(f"{path} is not a readable archive (truncated or not an .npz file?): {e}") from e
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise ArchiveError(f"{path} has no {META_KEY} entry: not written by this library")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArchiveError(f"{path} has unreadable metadata: {e}") from e
    return arrays, meta


def atomic_write_text(path, text):
    """Write a UTF-8 text file atomically (temporary file, fsync, rename)."""
    return _atomic_write(os.fspath(path), "w", lambda f: f.write(text))


def json_ready(obj):
    """``obj`` with every NaN or infinite float replaced by None, so that it is valid JSON.

    ``json.dumps`` would write them as ``NaN``/``Infinity``, which JSON does not have (a diverged loss
    or an overflowing perplexity must not make a results file unreadable). Dicts, lists and tuples are
    copied recursively; numpy scalars become Python numbers.
    """
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def atomic_write_json(path, obj):
    """Write ``obj`` as indented JSON atomically; non-finite floats become null (see :func:`json_ready`)."""
    return atomic_write_text(path, json.dumps(json_ready(obj), indent=2, allow_nan=False) + "\n")


def remove_stale_temp_files(directory, prefix=".tmp-"):
    """Delete the temporary files (or folders) that killed writers left in ``directory``; return their names.

    An entry counts when its name is ``<prefix><pid>-<random>[.npz]`` and no process ``<pid>`` runs,
    or ``<prefix><random>[.npz]`` (the name older versions used). Entries of live processes are kept.

    Inputs:
    - directory: str or os.PathLike (a missing directory has nothing to remove).
    - prefix: the temporary names' prefix, ``.tmp-`` for :func:`save_archive`'s files.
    """
    import shutil

    directory = os.fspath(directory)
    pattern = re.compile(r"^" + re.escape(prefix) + r"(?:(\d+)-)?[A-Za-z0-9_]+(?:\.npz)?$")
    removed = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in sorted(names):
        match = pattern.match(name)
        if match is None or (match.group(1) is not None and _process_alive(int(match.group(1)))):
            continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        removed.append(name)
    return removed


def _process_alive(pid):
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or we cannot tell: keep the file
    return True


def _atomic_write(path, mode, write, suffix=""):
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _mkstemp_like_open(directory, prefix=f".tmp-{os.getpid()}-", suffix=suffix)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)
    return path


def _mkstemp_like_open(directory, **kwargs):
    """``tempfile.mkstemp`` but with the permissions ``open()`` would give (mkstemp's are 0600)."""
    fd, tmp = tempfile.mkstemp(dir=directory, **kwargs)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
    except (AttributeError, OSError):  # not on every platform; the file is still written
        pass
    return fd, tmp


def _fsync_dir(directory):
    # Make the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
