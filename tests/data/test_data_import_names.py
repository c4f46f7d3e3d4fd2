"""The importer and odd file names or links (issue 21 items 9, 14): a non-UTF-8 file name is imported and named in
the summary instead of aborting the import; a class folder that is a symlink is followed like a file symlink, and
the summary says which links were followed."""

from __future__ import annotations

import os

import numpy as np

from lensfm_hf.data.importer import import_deeplensesim


def _release(root, names=("no_sub", "cdm", "axion"), per_class=2):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = np.random.default_rng(i).random((64, 64), dtype=np.float32)
            value = np.array([image, 1e-23], dtype=object) if name == "axion" else image
            np.save(root / name / f"{name}_{i}.npy", value, allow_pickle=name == "axion")
    return root


def test_a_non_utf8_file_name_is_imported_and_named(tmp_path, fake_sim):
    root = _release(tmp_path / "release")
    odd = os.fsencode(root / "cdm") + b"/caf\xe9.npy"  # Latin-1 bytes: not UTF-8
    with open(odd, "wb") as handle:
        np.save(handle, np.zeros((64, 64), dtype=np.float32))
    stats = import_deeplensesim(root, config="model2", out_dir=tmp_path / "out", test_fraction=0.5)
    assert stats.num_images == 7
    summary = str(stats)
    summary.encode("utf-8")  # printable as it is
    assert r"caf\xe9.npy" in summary and "not UTF-8" in summary


def test_a_class_folder_symlink_is_followed_like_a_file_symlink_and_named(tmp_path, fake_sim):
    elsewhere = _release(tmp_path / "elsewhere", names=("cdm",), per_class=3)
    root = _release(tmp_path / "release", names=("no_sub", "axion"))
    os.symlink(elsewhere / "cdm", root / "cdm")
    os.symlink(elsewhere / "cdm" / "cdm_0.npy", root / "no_sub" / "linked.npy")
    stats = import_deeplensesim(root, config="model2", out_dir=tmp_path / "out", test_fraction=0)
    assert stats.counts["train"] == {"no_sub": 3, "cdm": 3, "axion": 2}
    summary = str(stats)
    assert "followed 2 symbolic links" in summary and "cdm" in summary and "no_sub/linked.npy" in summary


def test_a_folder_link_loop_is_walked_once(tmp_path, fake_sim):
    root = _release(tmp_path / "release")
    os.symlink(root, root / "cdm" / "loop")
    os.symlink(root, root / "again")
    stats = import_deeplensesim(root, config="model2", out_dir=tmp_path / "out", test_fraction=0)
    assert stats.counts["train"] == {"no_sub": 2, "cdm": 2, "axion": 2}


def test_a_test_fraction_outside_0_1_is_refused(tmp_path, fake_sim):
    """Issue 21 item 17: --test-fraction 5 or nan was accepted without a word."""
    import pytest

    root = _release(tmp_path / "release")
    for bad in (5, float("nan"), -0.1, 1.0):
        with pytest.raises(ValueError, match=r"test_fraction \(--test-fraction\) must be a number in \[0, 1\)"):
            import_deeplensesim(root, config="model2", out_dir=tmp_path / "out", test_fraction=bad)
    assert not (tmp_path / "out").exists()
