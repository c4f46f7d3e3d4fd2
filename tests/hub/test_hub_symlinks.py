"""push and install-cache refuse symlinks that leave the folder, naming them (issue 21 item 7)."""

from __future__ import annotations

import shutil

import pytest

from lensfm_hf.cli import main
from lensfm_hf.hub import install_cache, push_folder


@pytest.fixture
def leaky(exported, tmp_path):
    """An encoder folder with a file link and a folder link pointing outside it, and one harmless inside link."""
    folder = tmp_path / "encoder"
    shutil.copytree(exported / "encoder", folder)
    secret = tmp_path / "token"
    secret.write_text("hf_secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.txt").write_text("x")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "extra").symlink_to(tmp_path / "outside", target_is_directory=True)
    (folder / "card_copy.md").symlink_to("README.md")  # stays inside: fine
    return folder


def test_install_cache_refuses_links_leaving_the_folder(leaky, tmp_path):
    with pytest.raises(ValueError, match=r"notes\.txt.*extra|extra.*notes\.txt") as info:
        install_cache(leaky, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    assert "card_copy.md" not in str(info.value)
    assert not (tmp_path / "cache").exists()


def test_push_refuses_links_leaving_the_folder(leaky, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never reached: refused before any request
    with pytest.raises(ValueError, match="notes.txt"):
        push_folder(leaky, "lensfm/tiny-encoder")
    assert main(["push", str(leaky), "--repo-id", "lensfm/tiny-encoder"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "outside" in err and len(err.strip().splitlines()) == 1


def test_links_inside_the_folder_are_installed(exported, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(exported / "encoder", folder)
    (folder / "card_copy.md").symlink_to("README.md")
    snapshot = install_cache(folder, "lensfm/tiny-encoder", cache_dir=tmp_path / "cache")
    assert (snapshot / "card_copy.md").read_text() == (folder / "README.md").read_text()
