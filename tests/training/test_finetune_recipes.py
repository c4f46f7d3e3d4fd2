"""Every shipped fine-tuning recipe learns: run at toy size (real simulator, fewer images and steps) and compared
with chance, the mean predictor or bicubic upsampling. Slow (1-5 minutes per recipe on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensfm_hf.resources import recipes_dir
from lensfm_hf.training.finetune import run_finetune

TOY = {  # recipe -> overrides that shrink it while keeping its model, task and optimiser
    "model3_classification": ["data.simulate_train_per_class=100", "data.simulate_test_per_class=50",
                              "training.max_steps=150"],
    "model1_classification": [],  # the noisy one: its documented size (~100 s) is the smallest that learns
    "lens_finding": ["data.simulate_train_per_class=60", "data.simulate_test_per_class=30", "training.max_steps=60"],
    "axion_regression": [],  # its documented size (~4 min): with 300 steps test r2 was -0.03, with 600 0.42
    "super_resolution": ["data.simulate_train_per_class=40", "data.simulate_test_per_class=10",
                         "training.max_steps=60"],
}


def test_every_shipped_recipe_has_a_toy_size_and_states_its_time():
    shipped = {path.stem: path for path in (recipes_dir() / "finetune").glob("*.yaml")}
    assert set(shipped) == set(TOY)
    for path in shipped.values():
        text = path.read_text()
        assert "Expected time" in text and "GPU" in text and "Expected result" in text, path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOY))
def test_shipped_recipe_learns_at_toy_size(tmp_path, name):
    recipe = recipes_dir() / "finetune" / f"{name}.yaml"
    overrides = [*TOY[name], f"training.output_dir={tmp_path / 'run'}", "training.disable_tqdm=true"]
    result = run_finetune(str(recipe), overrides=overrides)
    metrics = result["metrics"]
    if name in ("model3_classification", "lens_finding"):
        assert metrics["roc_auc"] > 0.75, metrics
    elif name == "model1_classification":
        assert metrics["roc_auc"] > 0.65, metrics  # 0.75 measured
    elif name == "axion_regression":
        assert metrics["r2"] > 0.1, metrics  # better than predicting the training mean
    else:
        assert metrics["psnr"] > result["baseline_metrics"]["psnr"], (metrics, result["baseline_metrics"])
    assert Path(result["model_dir"], "README.md").is_file()
