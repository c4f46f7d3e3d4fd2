"""Zoo repo ids; building the zoo (`lensfm_hf.training.benchmark.zoo.build_zoo`) is tested in tests/training/test_zoo.py."""

from __future__ import annotations

from lensfm_hf.hub.zoo import zoo_repo_id


def test_zoo_repo_ids():
    assert zoo_repo_id("mae") == "lensfm/mae"
    assert zoo_repo_id("ijepa_physics") == "lensfm/ijepa-physics"


def test_install_zoo_encoder_never_edits_the_benchmark_folder(exported, tmp_path):
    """Issue 20 item 8: the card for the zoo repo id goes into the installed copy; the benchmark's files stay as written."""
    import hashlib
    import shutil

    from lensfm_hf.hub.zoo import install_zoo_encoder

    folder = tmp_path / "results" / "pretrain" / "mae" / "encoder"
    shutil.copytree(exported / "encoder", folder)
    (folder / "README.md").write_text("# the benchmark's card\n")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    snapshot = install_zoo_encoder(folder, "mae", cache_dir=tmp_path / "cache")
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert 'repo = "lensfm/mae"' in (snapshot / "README.md").read_text()
