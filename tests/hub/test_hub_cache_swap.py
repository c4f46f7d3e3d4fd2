"""install_cache replaces a snapshot without a moment where `refs/main` points at nothing (issue 21 item 5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lensfm_hf.hub import install_cache


def _installed(storage: Path) -> Path:
    return storage / "snapshots" / (storage / "refs" / "main").read_text()


def test_a_kill_while_reinstalling_keeps_the_installed_snapshot(exported, tmp_path, monkeypatch):
    folder = tmp_path / "encoder"
    shutil.copytree(exported / "encoder", folder)
    snapshot = install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    storage = snapshot.parents[1]
    before = {p.relative_to(snapshot): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()}
    (snapshot / "README.md").unlink()  # a damaged snapshot of the same content: the reinstall must repair it

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the kill lands while the new snapshot is moved in

    monkeypatch.setattr(Path, "rename", killed)
    monkeypatch.setattr(Path, "replace", killed)
    monkeypatch.setattr("os.rename", killed)
    monkeypatch.setattr("os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    monkeypatch.undo()
    # refs/main still names a snapshot that exists: the old one, kept until the ref points at a new one
    assert _installed(storage).is_dir() and (_installed(storage) / "model.safetensors").is_file()

    repaired = install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    assert {p.relative_to(repaired): p.read_bytes() for p in repaired.rglob("*") if p.is_file()} == before
    assert not [p.name for p in (storage / "snapshots").iterdir() if p.name.startswith(".")]
