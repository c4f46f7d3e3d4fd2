"""The dataset builder against the real `lensfm_hf.simulation` (tiny Model II, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

simulation = pytest.importorskip("lensfm_hf.simulation")

from lensfm_hf.data import lensing_features, load_lensing_dataset, shard_seed, simulate_dataset  # noqa: E402
from lensfm_hf.data.build import plan_shards  # noqa: E402


def test_model2_round_trip_equals_simulate(tmp_path, hf_cache):
    recipe = simulation.get_recipe("model2")
    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=1, seed=11, shard_size=3)
    ds = load_lensing_dataset(out, "model2", cache_dir=hf_cache)
    assert ds["train"].features == lensing_features(recipe)
    assert ds["train"].column_names == ["pixel_values", "label", *recipe.parameter_columns]
    for split, per_class in (("train", 2), ("test", 1)):
        data = ds[split].with_format("numpy")[:]
        start = 0
        for spec in plan_shards(split, per_class, len(recipe.class_names), 3):
            labels = data["label"][start : start + spec.num_rows]
            for class_index, (class_name, count) in enumerate(zip(recipe.class_names, spec.class_counts)):
                seed = shard_seed(11, "model2", split, class_name, spec.index)
                expected = simulation.simulate(recipe, class_name, count, seed)
                rows = start + np.flatnonzero(labels == class_index)
                np.testing.assert_array_equal(data["pixel_values"][rows], expected["pixel_values"].numpy())
                for column in recipe.parameter_columns:
                    np.testing.assert_array_equal(data[column][rows], expected[column].numpy())
            start += spec.num_rows
    axion = data["label"] == recipe.class_names.index("axion")
    assert np.isfinite(data["axion_mass"][axion]).all() and np.isnan(data["axion_mass"][~axion]).all()


def test_cli_simulate_is_reproducible(tmp_path, hf_cache):
    from lensfm_hf.cli import main

    runs = []
    for name in ("a", "b"):
        args = ["simulate", "--config", "model2", "--train-per-class", "1", "--test-per-class", "1"]
        assert main([*args, "--seed", "2", "--out", str(tmp_path / name)]) == 0
        runs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name / "model2").glob("*.parquet"))})
    assert runs[0] == runs[1] and len(runs[0]) == 2
    assert "model2" in (tmp_path / "a" / "README.md").read_text()
    assert load_lensing_dataset(tmp_path / "a", "model2", split="test", cache_dir=hf_cache).num_rows == 3
