"""Archives: named arrays plus JSON metadata, written atomically and read without pickle."""
import os
import stat

import numpy as np
import pytest

from cs231n.archive import ArchiveError, atomic_write_text, load_archive, save_archive


def test_round_trip_keeps_arrays_dtypes_and_utf8_metadata(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int32)}
    meta = {"vocab": ["<NULL>", "café", "日本"], "n": 3}
    path = save_archive(tmp_path / "m.npz", arrays, meta)
    got, got_meta = load_archive(path)
    assert got_meta == meta
    assert got.keys() == arrays.keys()
    for k in arrays:
        assert got[k].dtype == arrays[k].dtype
        np.testing.assert_array_equal(got[k], arrays[k])


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_archive(path, {"a": np.ones(3)}, {"v": 1})
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        save_archive(path, {"a": np.zeros(3)}, {"v": 2})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_truncated_file_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    save_archive(path, {"a": np.random.default_rng(0).standard_normal(1000)}, {"v": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="not a readable archive"):
        load_archive(path)


def test_missing_file_and_foreign_npz(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_archive(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ArchiveError, match="__meta__"):
        load_archive(tmp_path / "plain.npz")


def test_object_arrays_are_neither_written_nor_read(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        save_archive(tmp_path / "x.npz", {"a": np.array([{"x": 1}], dtype=object)}, {})
    # A hand-made npz with a pickled object array is refused on load instead of unpickled.
    np.savez(tmp_path / "evil.npz", a=np.array([{"x": 1}], dtype=object),
             __meta__=np.frombuffer(b"{}", dtype=np.uint8))
    with pytest.raises(ArchiveError):
        load_archive(tmp_path / "evil.npz")


def test_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_archive(tmp_path / "m.npz", {"a": np.ones(1)}, {})
        atomic_write_text(tmp_path / "t.txt", "hello")
    finally:
        os.umask(old)
    for name in ("m.npz", "t.txt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    assert (tmp_path / "t.txt").read_text() == "hello"
