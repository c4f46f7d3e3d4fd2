"""files.py: atomic_write replaces a file whole or leaves it as it was."""

import pytest

from lensfm_hf.files import atomic_write


def test_atomic_write_round_trip_text_and_bytes(tmp_path):
    with atomic_write(tmp_path / "sub" / "a.txt") as handle:
        handle.write("é\n")
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "é\n"
    with atomic_write(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as handle:
            handle.write("new")
            raise RuntimeError("boom")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_bad_mode_raises(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(tmp_path / "a", "a"):
            pass


def test_the_temporary_file_has_a_per_process_hidden_name_a_build_cleans_up(tmp_path):
    import os

    from lensfm_hf.files import TMP_PREFIX

    with atomic_write(tmp_path / "manifest.json") as handle:
        handle.write("{}")
        (temp,) = [p.name for p in tmp_path.iterdir()]
    assert temp.startswith(f"{TMP_PREFIX}{os.getpid()}-") and temp.endswith("-manifest.json")
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
