"""The `mini` preset end to end (real simulator, real pretraining, a few steps): one table per task, the plots each
task names, cards with every task in their model-index, health per encoder, failures reported; workers and the
full preset at toy size (slow)."""

from __future__ import annotations

import json
import math

import pytest

from lensfm_hf.training.benchmark import run_benchmark, write_readme_table
from lensfm_hf.training.downstream.tasks import TASKS

MINI_TASKS = {"classification": "model3", "regression": "model3", "super_resolution": "super_resolution",
              "lens_finding": "lens_finding"}
METHODS = ("mae", "simclr", "random_init")


def test_mini_preset_writes_a_cell_per_encoder_task_and_fitting_protocol(mini_run):
    root, result = mini_run
    assert not result["failures"], result["failures"]
    results = json.loads((root / "mini" / "results.json").read_text())
    assert results["preset"] == "mini" and results["seeds"] == [0, 1]
    assert results["evaluations"] == [f"{task}:{config}" for task, config in MINI_TASKS.items()]
    got = {(c["method"], c["task"], c["protocol"]) for c in results["cells"]}
    expected = {(m, task, p) for m in METHODS for task in MINI_TASKS for p in ("knn", "linear", "finetune")
                if p in TASKS[task].protocols}
    assert got == expected and len(results["cells"]) == 27  # 3 encoders x (3 + 2 + 1 + 3) fitting protocols
    for cell in results["cells"]:
        task = TASKS[cell["task"]]
        assert cell["finetuning_set"] == MINI_TASKS[cell["task"]] and cell["label_budget"] == "all"
        assert cell["pretraining_set"] == ("none" if cell["method"] == "random_init" else "model2")
        for metric, _ in task.reported_metrics:
            if metric.startswith("tpr_at_fpr_"):  # 8 negatives resolve no rate below 1/8 (issue 20.5)
                assert math.isnan((cell["metrics"].get(metric) or {}).get("mean", math.nan))
                continue
            stat = cell["metrics"][metric]
            assert len(stat["per_seed"]) == 2 and math.isfinite(stat["mean"]) and math.isfinite(stat["std"])
        assert (root / "mini" / cell["outputs_file"]).is_file()
        if cell["task"] == "super_resolution":
            # the fine-tune starts at bicubic and is selected on validation: never far below it
            assert cell["metrics"]["psnr"]["mean"] > cell["metrics"]["bicubic_psnr"]["mean"] - 0.5, cell["metrics"]
        if cell["task"] == "classification":
            assert 0.0 <= cell["metrics"]["accuracy"]["mean"] <= 1.0


def test_mini_preset_writes_one_table_per_task_and_the_plots_tasks_name(mini_run):
    root, result = mini_run
    table = (root / "mini" / "results.md").read_text()
    for task in MINI_TASKS:
        assert table.count(f"#### {TASKS[task].title}") == 1
        for _, title in TASKS[task].reported_metrics:
            assert f"**{title}**" in table
    assert "#### Axion-mass regression (target: axion_mass, log10 eV)" in table
    assert "| MAE | model2 | model3 |" in table and "| Random init | none | model3 |" in table
    assert "| Method | Pretraining set | Dataset | kNN | Linear probe | Fine-tune |" in table
    assert "| Method | Pretraining set | Dataset | Linear probe | Fine-tune |" in table  # regression: no kNN
    # one table per reported metric of the task (PSNR, SSIM, arc-pixel PSNR), each with its bicubic row
    assert table.count("| Bicubic (no model) | – | super_resolution |") == len(TASKS["super_resolution"].reported_metrics)
    assert "| Method | Pretraining set | Dataset | kNN | Linear probe | Fine-tune |" in table.split("#### Lens finding")[1]
    names = {p.split("/")[-1] for p in json.loads((root / "mini" / "results.json").read_text())["plots"]}
    assert names == {
        "roc_classification_model3_knn.png", "roc_classification_model3_linear.png",
        "roc_classification_model3_finetune.png", "label_efficiency_classification_model3.png",
        "confusion_classification_model3.png", "predicted_vs_true_regression_model3_linear.png",
        "predicted_vs_true_regression_model3_finetune.png", "examples_super_resolution_super_resolution.png",
        "roc_lens_finding_lens_finding_knn.png", "roc_lens_finding_lens_finding_linear.png",
        "roc_lens_finding_lens_finding_finetune.png", "tpr_by_parameter_lens_finding_lens_finding_knn.png",
        "tpr_by_parameter_lens_finding_lens_finding_linear.png", "tpr_by_parameter_lens_finding_lens_finding_finetune.png",
    }
    for path in result["plots"]:
        assert (root / "mini" / "plots" / path.split("/")[-1]).stat().st_size > 1000
    readme = write_readme_table(root / "mini")
    assert readme.count("| SimCLR | model2 | model3 |") == 2 + 3  # 2 classification + 3 regression tables
    assert "](" in readme and ".png)" in readme


def test_cards_carry_every_tasks_results_in_model_index(mini_run):
    from huggingface_hub import ModelCard

    root, result = mini_run
    assert len(result["cards"]) == 2
    for method in ("mae", "simclr"):
        encoder = root / "mini" / "pretrain" / method / "encoder"
        card = ModelCard.load(encoder / "README.md")
        expected = json.loads((encoder / "eval_results.json").read_text())["results"]
        got = card.data.eval_results
        # classification: 3 protocols x 2 metrics; regression: 2 x 3; super-resolution: 1 x its reported metrics;
        # lens finding: 3 x 1 (its TPRs at FPR 10^-2 and below are not resolved by 8 negatives: no card states them)
        assert len(got) == len(expected) == 6 + 6 + len(TASKS["super_resolution"].reported_metrics) + 3
        pairs = {(r.dataset_config, r.metric_type, r.metric_name, round(r.metric_value, 4)) for r in got}
        assert pairs == {(e["dataset_config"], e["metric_type"], e["metric_name"], e["metric_value"]) for e in expected}
        by_task = {}
        for r in got:
            assert r.dataset_split == "test"
            by_task.setdefault(r.task_name, set()).add((r.task_type, r.metric_type))
        assert by_task == {
            TASKS[name].title: {(TASKS[name].card_task_type, key) for key, _ in TASKS[name].reported_metrics
                                if not key.startswith("tpr_at_fpr_")}
            for name in MINI_TASKS
        }


def test_results_carry_representation_health_per_encoder(mini_run):
    root, _ = mini_run
    results = json.loads((root / "mini" / "results.json").read_text())
    assert set(results["health"]) == set(METHODS)
    for health in results["health"].values():
        assert health["rankme"] >= 1.0 and 0.0 <= health["between_image_share"] <= 1.0
        assert isinstance(health["collapsed"], bool) and isinstance(health["collapse_reasons"], list)
        assert health["collapsed"] == bool(health["collapse_reasons"])
        assert health["centred_rankme"] >= 1.0 and health["centred_relative_embedding_std"] > 0
    # The pretrained encoders carry their objective against its trivial value; the random init has none.
    assert results["health"]["random_init"]["learning"] is None
    for method in ("mae", "simclr"):
        learning = results["health"][method]["learning"]
        assert learning["objective_ratio"] > 0 and learning["not_learning"] == (learning["objective_ratio"] > 0.95)
    text = (root / "mini" / "results.md").read_text()
    assert "**Representation health**" in text and "| Centred RankMe (of D) |" in text and "Loss / trivial" in text


def test_a_failed_method_exits_nonzero_and_results_md_says_why(mini, mini_copy, monkeypatch, capsys):
    from lensfm_hf.cli import main
    from lensfm_hf.training import benchmark

    benchmark.encoder_marker(mini_copy / "mini" / "pretrain" / "simclr" / "encoder").unlink()

    def failing(recipe_path, overrides):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(benchmark.encoders, "run_pretraining", failing)
    code = main(["benchmark", str(mini.path), *mini.run_overrides(mini_copy, plots=False)])
    err = capsys.readouterr().err
    assert code != 0
    assert "simclr (pretrain) failed" in err and "results.md" in err
    table = (mini_copy / "mini" / "results.md").read_text()
    assert "### Failed methods" in table and "(`simclr`), pretrain: RuntimeError: CUDA out of memory (simulated)" in table
    assert "| MAE | model2 | model3 |" in table  # the others are still reported
    failures = json.loads((mini_copy / "mini" / "results.json").read_text())["failures"]
    assert [(f["method"], f["stage"]) for f in failures] == [("simclr", "pretrain")]


@pytest.mark.slow  # a second mini run with two worker processes
def test_worker_processes_give_the_same_cells(mini, mini_run, tmp_path):
    _, serial = mini_run
    parallel = run_benchmark(mini.path, overrides=[*mini.run_overrides(tmp_path, plots=False), "benchmark.workers=2"])
    assert not parallel["failures"], parallel["failures"]

    def fine_tunes(result):
        return {(cell["method"], cell["task"]): [seed[TASKS[cell["task"]].selection_metric] for seed in cell["per_seed"]]
                for cell in result["cells"] if cell["protocol"] == "finetune"}

    expected = fine_tunes(serial)
    assert expected and set(fine_tunes(parallel)) == set(expected)
    for key, values in fine_tunes(parallel).items():
        assert values == pytest.approx(expected[key], abs=1e-6), key


@pytest.mark.slow  # end to end, tens of seconds
def test_full_preset_runs_end_to_end_at_toy_sizes(mini, tmp_path):
    """recipes/benchmark/full.yaml as shipped (GPU pretraining recipes, LP-FT, few-label budgets, bf16 falling back
    to float32 on CPU), shrunk to toy sizes: the measurement preset must not first break on the GPU machine."""
    import yaml

    recipe = yaml.safe_load((mini.repo / "recipes" / "benchmark" / "full.yaml").read_text())
    recipe["benchmark"].update(
        preset="full-toy", methods=["mae", "ijepa_physics"], tasks=["classification:model3", "regression"],
        seeds=[0], results_dir=str(tmp_path), num_threads=1,
    )
    recipe["data"].update(
        simulation_device="cpu", pretrain_train_per_class=8, finetune_train_per_class=16, finetune_test_per_class=4,
        preprocess_batch_size=64,
    )
    recipe["model"].update(preset="micro", image_size=32)
    recipe["pretrain"]["overrides"].update(
        {"training.max_steps": 2, "training.per_device_train_batch_size": 8, "training.warmup_steps": 0}
    )
    recipe["pretrain"]["recipe_dir"] = str(mini.repo / "recipes" / "pretrain")
    recipe["protocols"]["finetune"].update(
        max_steps=2, eval_steps=1, per_device_train_batch_size=8, per_device_eval_batch_size=16, warmup_steps=0
    )
    recipe["protocols"]["few_label_budgets"] = [3]
    recipe["protocols"]["few_label"].update(max_steps=2, eval_steps=1, per_device_train_batch_size=8, warmup_steps=0)
    recipe["protocols"]["feature_batch_size"] = 16
    result = run_benchmark(recipe)
    assert not result["failures"], result["failures"]
    protocols = {(cell["method"], cell["task"], cell["protocol"]) for cell in result["cells"]}
    assert {("ijepa_physics", "classification", "few_label"), ("mae", "classification", "linear"),
            ("random_init", "classification", "finetune"), ("mae", "regression", "linear")} <= protocols
    for cell in result["cells"]:
        headline = TASKS[cell["task"]].reported_metrics[0][0]
        assert math.isfinite(cell["metrics"][headline]["mean"]), cell


@pytest.mark.parametrize("fails", [False, True])
def test_run_benchmark_restores_transformers_logging_and_progress_bars(mini, tmp_path, monkeypatch, fails):
    from transformers.utils import logging as hf_logging

    from lensfm_hf.training import benchmark

    seen = {}

    def data(recipe):  # the run's quiet settings hold inside it
        seen.update(verbosity=hf_logging.get_verbosity(), bars=hf_logging.is_progress_bar_enabled())
        if fails:
            raise RuntimeError("simulation failed")
        return "unused"

    monkeypatch.setattr(benchmark.run, "prepare_benchmark_data", data)
    monkeypatch.setattr(benchmark.run, "pretrain_all", lambda recipe, data_path, failures: {})
    overrides = [*mini.overrides(tmp_path), "benchmark.baselines=[]", "benchmark.write_cards=false", "benchmark.plots=false"]
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        if fails:
            with pytest.raises(RuntimeError, match="simulation failed"):
                run_benchmark(mini.path, overrides)
        else:
            assert run_benchmark(mini.path, overrides)["cells"] == []
        assert seen == {"verbosity": hf_logging.ERROR, "bars": False}
        assert hf_logging.get_verbosity() == hf_logging.INFO and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)
