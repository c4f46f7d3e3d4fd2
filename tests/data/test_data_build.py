"""simulate_dataset: round trip through datasets, resumption, parameter checks, configs, card, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Array3D, ClassLabel, Value
from fake_simulation import DEEPLENSE_RECIPES, fake_simulate
from huggingface_hub import DatasetCard

from lensfm_hf.data import (
    dataset_to_tensors,
    iter_torch_batches,
    lensing_features,
    load_lensing_dataset,
    shard_seed,
    simulate_dataset,
)
from lensfm_hf.data.build import interleave_order, plan_shards


def _parquet_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def test_plan_is_class_balanced_and_bounded():
    plan = plan_shards("train", per_class=1000, num_classes=3, shard_size=1000)
    assert [s.class_counts for s in plan] == [(250, 250, 250)] * 4
    assert all(s.num_rows <= 1000 for s in plan)
    assert sum(s.num_rows for s in plan) == 3000
    assert plan_shards("test", 0, 3, 10) == []
    assert interleave_order([2, 2]) == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_round_trip_through_load_dataset(tmp_path, fake_sim, hf_cache):
    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=3, test_per_class=2, seed=7, shard_size=4)
    recipe = DEEPLENSE_RECIPES["model2"]
    ds = load_lensing_dataset(out, "model2", cache_dir=hf_cache)
    assert set(ds) == {"train", "test"}
    features = ds["train"].features
    assert features == lensing_features(recipe)
    assert ds["train"].column_names == ["pixel_values", "label", *recipe.parameter_columns]
    assert features["pixel_values"] == Array3D(shape=(1, 64, 64), dtype="float32")
    assert features["label"] == ClassLabel(names=["no_sub", "cdm", "axion"])
    assert all(features[c] == Value("float32") for c in recipe.parameter_columns)
    assert ds["train"].num_rows == 9 and ds["test"].num_rows == 6

    # Rebuild what simulate produced, shard by shard, and compare exactly.
    for split, per_class in (("train", 3), ("test", 2)):
        data = ds[split].with_format("numpy")[:]
        start = 0
        for spec in plan_shards(split, per_class, 3, 4):
            labels = data["label"][start : start + spec.num_rows]
            for class_index, (class_name, count) in enumerate(zip(recipe.class_names, spec.class_counts)):
                seed = shard_seed(7, "model2", split, class_name, spec.index)
                expected = fake_simulate(recipe, class_name, count, seed)
                rows = start + np.flatnonzero(labels == class_index)
                np.testing.assert_array_equal(data["pixel_values"][rows], expected["pixel_values"])
                for column in recipe.parameter_columns:
                    np.testing.assert_array_equal(data[column][rows], expected[column])
            start += spec.num_rows
        assert start == len(data["label"])
    axion = ds["train"].filter(lambda row: row["label"] == 2)
    assert not np.isnan(axion["axion_mass"]).any()
    assert np.isnan(ds["train"].filter(lambda row: row["label"] != 2)["axion_mass"]).all()


def test_interrupted_run_resumes_bit_identical(tmp_path, fake_sim, monkeypatch):
    kwargs = {"config": "model2", "train_per_class": 4, "test_per_class": 2, "seed": 3, "shard_size": 3}
    simulate_dataset(tmp_path / "full", **kwargs)
    reference = _parquet_bytes(tmp_path / "full")
    assert len(reference) == 6  # 4 train + 2 test shards

    real_simulate = fake_sim.simulate

    def dying_simulate(*args, **kw):
        if len(fake_sim.calls) >= 7:  # midway through the third shard
            raise KeyboardInterrupt("simulated crash")
        return real_simulate(*args, **kw)

    monkeypatch.setattr(fake_sim, "simulate", dying_simulate)
    fake_sim.calls.clear()
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(tmp_path / "resumed", **kwargs)
    partial = _parquet_bytes(tmp_path / "resumed")
    assert len(partial) == 2 and all(reference[name] == data for name, data in partial.items())
    assert not (tmp_path / "resumed" / "README.md").exists()

    monkeypatch.setattr(fake_sim, "simulate", real_simulate)
    fake_sim.calls.clear()
    simulate_dataset(tmp_path / "resumed", **kwargs)
    assert len(fake_sim.calls) == 4 * 3  # only the four missing shards were simulated
    assert _parquet_bytes(tmp_path / "resumed") == reference
    assert (tmp_path / "resumed" / "README.md").read_text() == (tmp_path / "full" / "README.md").read_text()

    # A deleted shard is regenerated identically; the others are not touched.
    victim = tmp_path / "resumed" / "model2" / "train-00002-of-00004.parquet"
    victim.unlink()
    fake_sim.calls.clear()
    simulate_dataset(tmp_path / "resumed", **kwargs)
    assert len(fake_sim.calls) == 3
    assert _parquet_bytes(tmp_path / "resumed") == reference


def test_rerun_with_other_parameters_raises(tmp_path, fake_sim):
    out = tmp_path / "ds"
    simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=0, shard_size=3)
    before = _parquet_bytes(out)
    with pytest.raises(ValueError, match=r"different parameters.*seed: 0 → 1.*overwrite=True"):
        simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3)
    with pytest.raises(ValueError, match="train_per_class"):
        simulate_dataset(out, "model2", train_per_class=5, test_per_class=1, seed=0, shard_size=3)
    assert _parquet_bytes(out) == before
    simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3, overwrite=True)
    after = _parquet_bytes(out)
    assert after.keys() == before.keys() and after != before


def test_two_configs_share_one_folder(tmp_path, fake_sim, hf_cache):
    out = tmp_path / "ds"
    simulate_dataset(out, "model1", train_per_class=2, test_per_class=1, shard_size=10)
    simulate_dataset(out, "model3", train_per_class=2, test_per_class=0, shard_size=10)
    card = DatasetCard.load(out / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert set(configs) == {"model1", "model3"}
    assert configs["model1"]["data_files"] == [
        {"split": "train", "path": "model1/train-*"},
        {"split": "test", "path": "model1/test-*"},
    ]
    m1 = load_lensing_dataset(out, "model1", split="train", cache_dir=hf_cache)
    m3 = load_lensing_dataset(out, "model3", cache_dir=hf_cache)
    assert m1.features["pixel_values"].shape == (1, 24, 24)
    assert set(m3) == {"train"} and m3["train"].features["pixel_values"].shape == (1, 64, 64)
    with pytest.raises(ValueError, match=r"no config 'model2'; available: model1, model3"):
        load_lensing_dataset(out, "model2", cache_dir=hf_cache)


def test_card_metadata_and_sections(tmp_path, fake_sim):
    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=1, seed=5, shard_size=6)
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["configs"][0]["config_name"] == "model2"
    assert {"gravitational-lensing", "dark-matter", "deeplense"} <= set(data["tags"])
    assert "image-classification" in data["task_categories"]
    assert data["size_categories"] == "n<1K" and data["license"] == "apache-2.0"
    info = data["dataset_info"]
    assert info["config_name"] == "model2"
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {"train": 6, "test": 3}
    text = card.text
    for heading in ("## How to load", "### Simulation parameters", "### Classes", "## Limitations", "## Citation"):
        assert heading in text
    assert "| `pixel_scale` | 0.101 |" in text
    assert "luminosity-distance Einstein radius" in text  # the recipe's notes
    assert "arXiv:1909.07346" in text
    assert "(images/model2_examples.png)" in text
    png = out / "images" / "model2_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_super_resolution_has_high_resolution_column(tmp_path, fake_sim, hf_cache):
    out = simulate_dataset(tmp_path / "ds", "super_resolution", train_per_class=1, test_per_class=1, shard_size=10)
    ds = load_lensing_dataset(out, "super_resolution", split="test", cache_dir=hf_cache)
    assert ds.features["high_resolution"] == Array3D(shape=(1, 32, 32), dtype="float32")
    assert "image-to-image" in DatasetCard.load(out / "README.md").data.task_categories


def test_torch_batches(tmp_path, fake_sim, hf_cache):
    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=4, test_per_class=0, shard_size=100)
    train = load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache)
    tensors = dataset_to_tensors(train, ["pixel_values", "label"])
    assert tensors["pixel_values"].shape == (12, 1, 64, 64) and tensors["pixel_values"].dtype == torch.float32
    assert tensors["label"].dtype == torch.int64
    batches = list(iter_torch_batches(train, 5, columns=["pixel_values", "label"]))
    assert [len(b["label"]) for b in batches] == [5, 5, 2]
    torch.testing.assert_close(torch.cat([b["pixel_values"] for b in batches]), tensors["pixel_values"])
    shuffled = list(iter_torch_batches(train, 5, columns=["label"], shuffle=True, seed=1, drop_last=True))
    assert [len(b["label"]) for b in shuffled] == [5, 5]
    streamed = load_lensing_dataset(out, "model2", split="train", streaming=True)
    first = next(iter_torch_batches(streamed, 4, columns=["pixel_values"]))
    torch.testing.assert_close(first["pixel_values"], tensors["pixel_values"][:4])


def test_cli_simulate(tmp_path, fake_sim, capsys, hf_cache):
    from lensfm_hf.cli import main

    out = tmp_path / "cli"
    args = ["simulate", "--config", "model2", "--train-per-class", "2", "--test-per-class", "1"]
    assert main([*args, "--seed", "4", "--shard-size", "3", "--out", str(out)]) == 0
    assert f"dataset written to {out}" in capsys.readouterr().out
    assert load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache).num_rows == 6
    assert main([*args, "--seed", "5", "--shard-size", "3", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--config", "model9", "--out", str(tmp_path / "x")]) == 2
    assert "unknown config 'model9'" in capsys.readouterr().err


def test_foreign_folder_is_not_overwritten(tmp_path, fake_sim):
    folder = tmp_path / "ds" / "model2"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not written by lensfm"):
        simulate_dataset(tmp_path / "ds", "model2", train_per_class=1, test_per_class=0)
    assert (folder / "precious.txt").exists()
    shutil.rmtree(folder)


def test_a_folder_built_when_layout_was_called_task_resumes(tmp_path):
    from lensfm_hf.data.build import prepare_config_dir
    from lensfm_hf.data.folder import write_manifest
    from lensfm_hf.simulation import get_recipe

    recipe = {k: v for k, v in get_recipe("lens_finding").to_dict().items() if k != "notes"}
    identity = {"source": "simulation", "recipe": recipe, "seed": 0}
    old = dict(identity, recipe={("task" if k == "layout" else k): v for k, v in recipe.items()})
    config_dir = tmp_path / "lens_finding"
    config_dir.mkdir()
    write_manifest(config_dir, {"identity": old, "complete": False})
    assert prepare_config_dir(config_dir, identity, overwrite=False)  # resumes: the same build under the new name
    with pytest.raises(ValueError, match="different parameters"):
        prepare_config_dir(config_dir, dict(identity, seed=1), overwrite=False)


def test_a_folder_built_before_the_lens_light_fields_were_added_resumes(tmp_path):
    from lensfm_hf.data.build import prepare_config_dir
    from lensfm_hf.data.folder import to_json, write_manifest
    from lensfm_hf.simulation import get_recipe
    from lensfm_hf.simulation.recipes import ADDED_FIELDS

    recipe = to_json({k: v for k, v in get_recipe("model2").to_dict().items() if k != "notes"})
    identity = {"source": "simulation", "recipe": recipe, "seed": 0}
    old = dict(identity, recipe={k: v for k, v in recipe.items() if k not in ADDED_FIELDS})
    config_dir = tmp_path / "model2"
    config_dir.mkdir()
    write_manifest(config_dir, {"identity": old, "complete": False})
    assert prepare_config_dir(config_dir, identity, overwrite=False)  # the study's data built before issue 19 resume


def test_an_interrupted_overwrite_keeps_the_previous_config(tmp_path, fake_sim, monkeypatch, hf_cache):
    """Issue 21 item 2: `--overwrite` deleted the complete config before the new one existed."""
    from lensfm_hf.data import build

    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=1, seed=0, shard_size=3)
    before = {p.name: p.read_bytes() for p in (out / "model2").iterdir()}
    real, calls = build._simulate_shard, []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "_simulate_shard", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3, overwrite=True)
    assert {p.name: p.read_bytes() for p in (out / "model2").iterdir()} == before
    assert not (out / ".lensfm").exists()  # no staging folder left
    monkeypatch.setattr(build, "_simulate_shard", real)
    simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=1, shard_size=3, overwrite=True)
    assert {p.name: p.read_bytes() for p in (out / "model2").iterdir()} != before
    assert load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache).num_rows == 6


def test_counts_beyond_the_stated_limit_are_refused_at_once(tmp_path, fake_sim, capsys):
    """Issue 21 item 13: `--train-per-class 10000000000` planned shards in memory, then a MemoryError traceback."""
    from lensfm_hf import cli

    with pytest.raises(ValueError, match=r"train_per_class=10,000,000,000 is beyond the stated limit of 1,000,000"):
        simulate_dataset(tmp_path / "ds", "model2", train_per_class=10_000_000_000, test_per_class=1)
    assert cli.main(["simulate", "--config", "model2", "--train-per-class", "10000000000", "--out",
                     str(tmp_path / "ds")]) == 2
    assert "beyond the stated limit" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_no_partial_shard(tmp_path, fake_sim, monkeypatch):
    """Issue 21 item 8: a full disk while writing a super-resolution shard aborted the process (pyarrow, SIGABRT)."""
    import errno
    from collections import namedtuple

    from lensfm_hf.data import build

    usage, real_usage = namedtuple("usage", "total used free"), build.shutil.disk_usage
    monkeypatch.setattr(build.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OSError, match=r"ds/super_resolution needs about [\d,]+ bytes for its shards but its disk "
                                      r"has 1,000 free"):
        simulate_dataset(tmp_path / "ds", "super_resolution", train_per_class=4, test_per_class=2, shard_size=4)
    assert not list((tmp_path / "ds").rglob("*.parquet"))
    monkeypatch.setattr(build.shutil, "disk_usage", real_usage)

    real_write = build.atomic_write

    class FullDisk:
        def __init__(self, path, mode):
            self.inner = real_write(path, mode)

        def __enter__(self):
            handle = self.inner.__enter__()

            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
            return handle

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(build, "atomic_write", FullDisk)
    with pytest.raises(OSError, match=r"no space left in .*super_resolution while writing shard train-00000"):
        simulate_dataset(tmp_path / "ds", "super_resolution", train_per_class=4, test_per_class=2, shard_size=4)
    assert not list((tmp_path / "ds").rglob("*.parquet")) and not list((tmp_path / "ds").rglob(".tmp-*"))


def test_the_example_image_is_redrawn_only_when_a_shard_is_newer_than_it(tmp_path, fake_sim, monkeypatch):
    from lensfm_hf.data import build

    kwargs = {"config": "model2", "train_per_class": 2, "test_per_class": 1, "seed": 0, "shard_size": 3}
    simulate_dataset(tmp_path, **kwargs)
    image = tmp_path / "images" / "model2_examples.png"
    assert image.stat().st_size > 1000
    drawn = []
    monkeypatch.setattr(build, "write_example_images", lambda out, config: drawn.append(config) or image.touch())
    simulate_dataset(tmp_path, **kwargs)  # nothing to simulate: the drawing of these shards is kept
    assert drawn == []
    (tmp_path / "model2" / "train-00001-of-00002.parquet").unlink()  # regenerated: newer than the drawing
    simulate_dataset(tmp_path, **kwargs)
    image.unlink()
    simulate_dataset(tmp_path, **kwargs)
    assert drawn == ["model2", "model2"]
    assert "model2_examples.png" in (tmp_path / "README.md").read_text()
