"""import_deeplensesim on folders in the released format, including hostile and broken files."""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import DatasetCard

from lensfm_hf.data import (
    CorruptFileError,
    UnsafePickleError,
    import_deeplensesim,
    load_lensing_dataset,
    read_npy,
    simulate_dataset,
)
from lensfm_hf.data.importer import find_class_files

CLASSES = ("no_sub", "cdm", "axion")


def _axion_array(image: np.ndarray, mass: float) -> np.ndarray:
    """The released axion format: a pickled object array [image, axion_mass]."""
    item = np.empty(2, dtype=object)
    item[0], item[1] = image, np.float64(mass)
    return item


def make_release(root: Path, per_class=(3, 2), size=64, seed=0) -> dict:
    """DeepLenseSim-style folders `Model_II/<class>/*.npy` and `Model_II_test/<class>/*.npy`.

    Returns {(split, class): [(file name, image (H, W) float64, mass or NaN)]} sorted by name.
    """
    rng = np.random.default_rng(seed)
    written = {}
    for split, folder, count in (("train", "Model_II", per_class[0]), ("test", "Model_II_test", per_class[1])):
        for class_name in CLASSES:
            directory = root / folder / class_name
            directory.mkdir(parents=True)
            for _ in range(count):
                name = f"{class_name}_sim_{rng.integers(1 << 62):x}.npy"
                image = rng.random((size, size))
                mass = float("nan")
                if class_name == "axion":
                    mass = 10 ** rng.uniform(-24, -22)
                    np.save(directory / name, _axion_array(image, mass), allow_pickle=True)
                elif len(written.get((split, class_name), [])) == 1:
                    np.save(directory / name, image[None])  # some files carry a channel axis
                else:
                    np.save(directory / name, image)
                written.setdefault((split, class_name), []).append((name, image, mass))
    return {key: sorted(value, key=lambda item: item[0]) for key, value in written.items()}


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        import builtins

        return (builtins.eval, (self.code,))


def _write_object_npy(path: Path, payload_object, shape=(2,)) -> None:
    """A .npy with a valid object-dtype header followed by an arbitrary pickle."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": shape})
        pickle.dump(payload_object, handle, protocol=3)


def test_import_round_trip(tmp_path, fake_sim, hf_cache):
    written = make_release(tmp_path / "release")
    stats = import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out", shard_size=4)
    assert stats.counts == {"train": dict.fromkeys(CLASSES, 3), "test": dict.fromkeys(CLASSES, 2)}
    assert stats.skipped == [] and "splits from folder names" in str(stats)

    ds = load_lensing_dataset(tmp_path / "out", "model2", cache_dir=hf_cache)
    for split in ("train", "test"):
        data = ds[split].with_format("numpy")[:]
        assert data["pixel_values"].dtype == np.float32 and data["pixel_values"].shape[1:] == (1, 64, 64)
        for class_index, class_name in enumerate(CLASSES):
            rows = np.flatnonzero(data["label"] == class_index)
            expected = written[(split, class_name)]
            np.testing.assert_array_equal(
                data["pixel_values"][rows, 0], np.stack([image for _, image, _ in expected]).astype(np.float32)
            )
            np.testing.assert_array_equal(
                data["axion_mass"][rows], np.array([mass for _, _, mass in expected], dtype=np.float32)
            )
        assert np.isnan(data["einstein_radius"]).all() and np.isnan(data["n_subhalos"]).all()
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert card.data.configs[0]["config_name"] == "model2" and card.data.license == "unknown"
    assert "Imported from the DeepLenseSim release folder `release`" in card.text


@pytest.mark.parametrize(
    "payload",
    [
        _System("touch {marker}"),
        _Eval("open({marker!r}, 'w').write('pwned')"),
        _axion_array(np.zeros((64, 64)), 1e-23).tolist() + [_System("touch {marker}")],  # hidden in a list
    ],
    ids=["os.system", "builtins.eval", "nested"],
)
def test_malicious_pickle_is_refused_without_running(tmp_path, fake_sim, payload):
    marker = tmp_path / "pwned"
    if isinstance(payload, list):
        payload[-1].command = payload[-1].command.format(marker=marker)
    elif isinstance(payload, _System):
        payload.command = payload.command.format(marker=marker)
    else:
        payload.code = payload.code.format(marker=str(marker))
    make_release(tmp_path / "release", per_class=(1, 1))
    evil = tmp_path / "release" / "Model_II" / "axion" / "axion_sim_evil.npy"
    _write_object_npy(evil, payload)

    with pytest.raises(UnsafePickleError, match=r"axion_sim_evil\.npy.*(posix|nt|os)\.system|builtins\.eval"):
        read_npy(evil)
    with pytest.raises(UnsafePickleError, match="axion_sim_evil.npy"):
        import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3])
def test_restricted_unpickler_reads_numpy1_pickles(tmp_path, protocol):
    """numpy 1.x files name `numpy.core.multiarray` (and, before 1.16, protocol 2 with `_codecs.encode`)."""
    item = _axion_array(np.arange(6.0).reshape(2, 3), 3e-23)
    buffer = io.BytesIO()
    pickle.dump(item, buffer, protocol=protocol)
    legacy = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    path = tmp_path / "legacy.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        handle.write(legacy)
    loaded = read_npy(path)
    np.testing.assert_array_equal(loaded[0], item[0])
    assert loaded[1] == np.float64(3e-23)


def test_codecs_stand_in_only_encodes_latin1(tmp_path):
    class _Codec:
        def __reduce__(self):
            import _codecs

            return (_codecs.encode, ("x", "rot13"))

    path = tmp_path / "codec.npy"
    _write_object_npy(path, [_Codec()])
    with pytest.raises(CorruptFileError, match="not allowed"):
        read_npy(path)


def test_corrupt_files_are_skipped_and_counted_or_raise_when_strict(tmp_path, fake_sim):
    make_release(tmp_path / "release", per_class=(2, 1))
    cdm = tmp_path / "release" / "Model_II" / "cdm"
    (cdm / "cdm_sim_garbage.npy").write_bytes(b"not a numpy file at all")
    good = (cdm / sorted(os.listdir(cdm))[0]).read_bytes()
    (cdm / "cdm_sim_truncated.npy").write_bytes(good[: len(good) // 2])
    np.save(cdm / "cdm_sim_small.npy", np.zeros((32, 32)))
    _write_object_npy(tmp_path / "release" / "Model_II" / "axion" / "axion_sim_badpickle.npy", None)
    (tmp_path / "release" / "Model_II" / "cdm" / "README.txt").write_text("ignored: not .npy")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out", shard_size=3)
    skipped = dict(stats.skipped)
    assert set(skipped) == {
        "Model_II/cdm/cdm_sim_garbage.npy",
        "Model_II/cdm/cdm_sim_truncated.npy",
        "Model_II/cdm/cdm_sim_small.npy",
        "Model_II/axion/axion_sim_badpickle.npy",
    }
    assert "expected (64, 64)" in skipped["Model_II/cdm/cdm_sim_small.npy"]
    assert sum("skipping" in str(w.message) for w in caught) == 4
    assert stats.counts["train"] == dict.fromkeys(CLASSES, 2)
    assert "skipped 4 files" in str(stats)

    with pytest.raises(CorruptFileError, match="cdm_sim_"):
        import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "strict", strict=True)


def test_split_detection(tmp_path, fake_sim):
    for folder in ("data/train/cdm", "data/test/cdm", "flat/cdm", "flat/axion", "val_root/val/no_sub"):
        (tmp_path / folder).mkdir(parents=True)
    found = find_class_files(tmp_path / "data", CLASSES)
    assert set(found) == set()  # empty folders: no files
    for i in range(20):
        np.save(tmp_path / "flat" / "cdm" / f"cdm_{i:02d}.npy", np.zeros((64, 64)))
    np.save(tmp_path / "data" / "train" / "cdm" / "a.npy", np.zeros((64, 64)))
    np.save(tmp_path / "data" / "test" / "cdm" / "b.npy", np.zeros((64, 64)))
    found = find_class_files(tmp_path / "data", CLASSES)
    assert {s: {c: [p.name for p in ps] for c, ps in v.items()} for s, v in found.items()} == {
        "train": {"cdm": ["a.npy"]},
        "test": {"cdm": ["b.npy"]},
    }

    # No test folder: a stable hash of the file name sends ~test_fraction of the files to test.
    first = import_deeplensesim(tmp_path / "flat", config="model2", out_dir=tmp_path / "o1", test_fraction=0.3)
    again = import_deeplensesim(tmp_path / "flat", config="model2", out_dir=tmp_path / "o2", test_fraction=0.3)
    assert first.counts == again.counts and first.counts["test"]["cdm"] > 0
    assert first.counts["train"]["cdm"] + first.counts["test"]["cdm"] == 20
    everything = import_deeplensesim(tmp_path / "flat", config="model2", out_dir=tmp_path / "o3", test_fraction=0)
    assert everything.counts == {"train": {"no_sub": 0, "cdm": 20, "axion": 0}}
    with pytest.raises(FileNotFoundError, match="no class folders"):
        import_deeplensesim(tmp_path / "val_root", config="lens_finding", out_dir=tmp_path / "o4")


def test_import_over_a_simulated_config_needs_overwrite(tmp_path, fake_sim):
    make_release(tmp_path / "release", per_class=(1, 1))
    simulate_dataset(tmp_path / "out", "model2", train_per_class=1, test_per_class=0)
    with pytest.raises(ValueError, match="different parameters.*source: 'simulation' → 'import'"):
        import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out")
    stats = import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out", overwrite=True)
    assert stats.num_images == 6
    # Re-importing the same folder is allowed and rewrites the same shards.
    shards = {p.name: p.read_bytes() for p in (tmp_path / "out" / "model2").glob("*.parquet")}
    import_deeplensesim(tmp_path / "release", config="model2", out_dir=tmp_path / "out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "model2").glob("*.parquet")} == shards


def test_cli_import(tmp_path, fake_sim, capsys):
    from lensfm_hf.cli import main

    make_release(tmp_path / "release", per_class=(1, 1))
    np.save(tmp_path / "release" / "Model_II" / "cdm" / "cdm_sim_bad.npy", np.zeros((8, 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["import-deeplensesim", str(tmp_path / "release"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "imported 6 images" in out and "skipped 1 files" in out and "cdm_sim_bad.npy" in out
    args = ["import-deeplensesim", str(tmp_path / "release"), "--out", str(tmp_path / "strict"), "--strict"]
    assert main(args) == 2
    assert "cdm_sim_bad.npy" in capsys.readouterr().err
