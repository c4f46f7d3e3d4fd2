"""Every consumer of a built folder refuses a shard that does not match the manifest (issue 21 item 3): a flipped
byte, a shard copied from another build, a stray or missing shard, a wrong row count; checked once per process."""

from __future__ import annotations

import shutil

import pytest

from lensfm_hf.data import load_lensing_dataset, simulate_dataset
from lensfm_hf.data import verify as verify_module
from lensfm_hf.data.importer import import_deeplensesim


@pytest.fixture
def built(tmp_path, fake_sim):
    return simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=1, seed=0, shard_size=3)


def _flip_byte(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_intact_folder_loads(built, hf_cache):
    assert load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache).num_rows == 6


def test_a_flipped_byte_is_refused_naming_the_shard(built, hf_cache):
    shard = min((built / "model2").glob("train-*.parquet"))
    _flip_byte(shard)
    with pytest.raises(ValueError, match=rf"shard .*{shard.name} does not match the SHA-256"):
        load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache)


def test_a_shard_copied_from_another_build_is_refused(built, tmp_path, fake_sim, hf_cache):
    other = simulate_dataset(tmp_path / "other", "model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3)
    name = min((built / "model2").glob("train-*.parquet")).name
    shutil.copyfile(other / "model2" / name, built / "model2" / name)
    with pytest.raises(ValueError, match=rf"{name} does not match"):
        load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache)


def test_a_stray_shard_is_refused_and_a_simulate_rerun_removes_it(built, hf_cache):
    config_dir = built / "model2"
    first = min(config_dir.glob("train-*.parquet"))
    stray = config_dir / "train-00007-of-00009.parquet"
    shutil.copyfile(first, stray)
    with pytest.raises(ValueError, match=r"train-00007-of-00009.parquet is not listed"):
        load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache)
    with pytest.warns(UserWarning, match="not a shard of this build"):
        simulate_dataset(built, "model2", train_per_class=2, test_per_class=1, seed=0, shard_size=3)
    assert not stray.exists()
    assert load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache).num_rows == 6


def test_a_missing_shard_and_an_unfinished_build_are_refused(built, hf_cache):
    config_dir = built / "model2"
    manifest = (config_dir / "manifest.json").read_text()
    min(config_dir.glob("test-*.parquet")).unlink()
    with pytest.raises(ValueError, match=r"test-.*is missing"):
        load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache)
    (config_dir / "manifest.json").write_text(manifest.replace('"complete": true', '"complete": false'))
    with pytest.raises(ValueError, match="unfinished build"):
        load_lensing_dataset(built, "model2", split="train", cache_dir=hf_cache)


def test_the_check_hashes_once_per_folder_and_process(built, hf_cache, monkeypatch):
    calls = []
    real = verify_module.file_sha256
    monkeypatch.setattr(verify_module, "file_sha256", lambda path: calls.append(path) or real(path))
    verify_module._VERIFIED.clear()
    for _ in range(3):
        verify_module.verify_config_folder(built / "model2")
    assert len(calls) == len(list((built / "model2").glob("*.parquet")))  # hashed once
    shard = min((built / "model2").glob("train-*.parquet"))
    _flip_byte(shard)  # size unchanged; the mtime moves
    with pytest.raises(ValueError, match="does not match"):
        verify_module.verify_config_folder(built / "model2")


def test_an_import_records_shard_hashes(tmp_path, fake_sim, hf_cache):
    import numpy as np

    source = tmp_path / "release"
    for name in ("no_sub", "cdm", "axion"):
        (source / name).mkdir(parents=True)
        for i in range(2):
            image = np.random.default_rng(i).random((64, 64), dtype=np.float32)
            np.save(source / name / f"{i}.npy", np.array([image, 1e-23], dtype=object) if name == "axion" else image)
    out = tmp_path / "imported"
    import_deeplensesim(source, config="model2", out_dir=out, test_fraction=0)
    shard = min((out / "model2").glob("train-*.parquet"))
    _flip_byte(shard)
    with pytest.raises(ValueError, match="does not match"):
        load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache)
