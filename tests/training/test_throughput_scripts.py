"""scripts/benchmark_pretraining.py --study (its ratio table) and scripts/profile_pretraining.py (the encoder passes it
replays), on synthetic timings and a tiny model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_study_table_takes_medians_of_cpu_time_and_forms_the_issue_ratios():
    bench = _load("benchmark_pretraining")
    run = lambda cpu_ms, batch=64: {"cpu_ms_per_step": cpu_ms, "ms_per_step": 3 * cpu_ms, "images_per_s": 1.0,
                                    "batch_size": batch}
    jobs = [("mae", "bare"), ("hf_vitmae", "bare"), ("lensvit", "finetune"), ("hf_vit", "finetune"),
            ("lensvit", "finetune_trainer"), ("hf_vit", "finetune_trainer")]
    raw = {
        "after": {"mae/bare": [run(100), run(120), run(500)], "hf_vitmae/bare": [run(200)],
                  "lensvit/finetune": [run(80)], "hf_vit/finetune": [run(100)],
                  "lensvit/finetune_trainer": [run(100)], "hf_vit/finetune_trainer": [{"error": "x"}]},
        "before": {"mae/bare": [run(240)], "hf_vitmae/bare": [run(200)], "lensvit/finetune": [run(80)],
                   "hf_vit/finetune": [run(100)], "lensvit/finetune_trainer": [run(100)],
                   "hf_vit/finetune_trainer": [run(100)]},
    }
    table = bench.study_table(raw, jobs)
    mae = table["after"]["mae/bare"]
    assert mae["cpu_ms_per_step"] == 120 and mae["images_per_cpu_s"] == pytest.approx(64 / 0.120)
    assert mae["vs_hf_vitmae"] == pytest.approx(200 / 120)
    assert mae["vs_before"] == pytest.approx(240 / 120)
    assert table["after"]["lensvit/finetune"]["vs_hf_vit"] == pytest.approx(100 / 80)
    assert "vs_hf_vitmae" not in table["after"]["lensvit/finetune"]
    assert "hf_vit/finetune_trainer" not in table["after"]  # every run failed: no row, no ratio
    assert "vs_hf_vit" not in table["after"]["lensvit/finetune_trainer"]


def test_profile_replays_every_encoder_call_of_a_step():
    from lensfm_hf.pretraining import get_pretraining_classes

    profiler = _load("profile_pretraining")
    config_class, model_class = get_pretraining_classes("dino")
    config = config_class.from_preset("micro", image_size=16, patch_size=4, out_dim=32, head_hidden_size=16,
                                      head_bottleneck_size=8, num_local_crops=2)
    torch.manual_seed(0)
    model = model_class(config).train()
    step = profiler.make_step(model, torch.rand(4, 1, 16, 16))
    calls = profiler.encoder_calls(model, step)
    # Student on the 2 global views and on the 2 local crops (with grad), teacher on the global views (no grad).
    assert [(trains, tuple(args[0].shape)) for _, args, _, trains in calls] == [
        (True, (8, 1, 16, 16)), (True, (8, 1, 8, 8)), (False, (8, 1, 16, 16))]
    profiler.replay(calls)
    assert all(p.grad is None for p in model.parameters())
