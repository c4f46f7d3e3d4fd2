"""data/folder.py: manifests round-trip exactly, writes are atomic, build locks exclude a second holder."""

import hashlib

import numpy as np
import pytest

from lensfm_hf.data.folder import (
    MANIFEST_NAME,
    TMP_PREFIX,
    WORK_DIR_NAME,
    build_lock,
    file_sha256,
    read_manifest,
    temp_path,
    to_json,
    write_manifest,
)


def test_manifest_round_trip_keeps_values_and_key_order(tmp_path):
    manifest = {"z": 1, "a": [1.5, None], "recipe": {"image_size": (64, 64), "scale": np.float32(0.5)}}
    write_manifest(tmp_path / "model2", manifest)
    back = read_manifest(tmp_path / "model2")
    assert back == {"z": 1, "a": [1.5, None], "recipe": {"image_size": [64, 64], "scale": 0.5}}
    assert list(back) == ["z", "a", "recipe"]
    assert read_manifest(tmp_path / "missing") is None
    assert [p.name for p in (tmp_path / "model2").iterdir()] == [MANIFEST_NAME]  # no temp file left


def test_failed_write_keeps_the_old_manifest(tmp_path):
    write_manifest(tmp_path, {"complete": True})
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        write_manifest(tmp_path, {"bad": object()})
    assert read_manifest(tmp_path) == {"complete": True}
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_to_json_converts_numpy_and_rejects_the_rest(tmp_path):
    assert to_json({"a": np.arange(3), "b": np.int64(2), "p": tmp_path}) == {"a": [0, 1, 2], "b": 2, "p": str(tmp_path)}
    with pytest.raises(TypeError, match="set is not JSON serialisable"):
        to_json({1, 2})


def test_temp_paths_are_hidden_unique_and_next_to_the_file(tmp_path):
    a, b = temp_path(tmp_path / "x.parquet"), temp_path(tmp_path / "x.parquet")
    assert a != b and a.parent == tmp_path and a.name.startswith(TMP_PREFIX) and a.name.endswith("x.parquet")


def test_file_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_build_lock_refuses_a_second_holder_and_cleans_up(tmp_path):
    with build_lock(tmp_path, "model2.config") as lock:
        assert lock.read_text().strip().isdigit()  # the holder's pid
        with pytest.raises(RuntimeError, match=r"config 'model2' in .* is being built by another process"):
            with build_lock(tmp_path, "model2.config", what="config 'model2'"):
                pass
        with build_lock(tmp_path, "model3.config"):  # another config is independent
            pass
    assert not (tmp_path / WORK_DIR_NAME).exists()


def test_rewriting_a_manifest_or_a_shard_keeps_its_permissions(tmp_path):
    """Both go through files.atomic_write, which keeps the replaced file's mode (a group-readable dataset stays so)."""
    import stat

    from datasets import ClassLabel, Features, Value

    from lensfm_hf.data.build import write_shard

    write_manifest(tmp_path, {"complete": False})
    features = Features({"label": ClassLabel(names=["a", "b"]), "flux": Value("float32")})
    shard = tmp_path / "train-00000-of-00001.parquet"
    columns = {"label": np.array([0, 1]), "flux": np.array([1.0, 2.0])}
    write_shard(shard, columns, features)
    for path in (tmp_path / MANIFEST_NAME, shard):
        path.chmod(0o640)
    write_manifest(tmp_path, {"complete": True})
    assert write_shard(shard, columns, features) == 2
    for path in (tmp_path / MANIFEST_NAME, shard):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name
    assert read_manifest(tmp_path) == {"complete": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, shard.name]
