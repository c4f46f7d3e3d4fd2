"""The benchmark's report from hand-made cells: tables per task and metric (a bicubic row for super-resolution),
the detailed table, failures, and card results from each task's reported metrics and card type."""

from __future__ import annotations

from lensfm_hf.training.benchmark import card_results, detailed_table, markdown_table
from lensfm_hf.training.benchmark.report import failures_section, health_table, task_sections
from lensfm_hf.training.downstream.tasks import TASKS


def _stat(*values):
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return {"mean": mean, "std": std, "per_seed": list(values)}


def _cell(method, task, dataset, protocol, metrics, budget="all"):
    return {"method": method, "method_name": method.upper(), "pretraining_set": "model2", "task": task,
            "finetuning_set": dataset, "protocol": protocol, "label_budget": budget, "seeds": [0, 1],
            "metrics": {k: _stat(*v) for k, v in metrics.items()}, "label_names": ["no_sub", "cdm", "axion"]}


CELLS = [
    _cell("mae", "classification", "model3", "knn", {"roc_auc": (0.8, 0.82), "accuracy": (0.6, 0.62)}),
    _cell("mae", "classification", "model3", "finetune", {"roc_auc": (0.9, 0.92), "accuracy": (0.7, 0.72)}),
    _cell("mae", "regression", "model3", "linear", {"mae": (0.3, 0.5), "bias": (-0.1, 0.1), "r2": (0.4, 0.6),
                                                    "rmse": (0.5, 0.6)}),
    _cell("mae", "super_resolution", "super_resolution", "finetune",
          {"psnr": (41.0, 42.0), "ssim": (0.95, 0.97), "bicubic_psnr": (40.0, 40.0), "bicubic_ssim": (0.9, 0.9)}),
    _cell("simclr", "super_resolution", "super_resolution", "finetune",
          {"psnr": (43.0, 43.0), "ssim": (0.98, 0.98), "bicubic_psnr": (40.0, 40.0), "bicubic_ssim": (0.9, 0.9)}),
]


def test_markdown_table_formats_mean_and_std():
    cell = {
        "method": "dino", "pretraining_set": "model2", "finetuning_set": "model1", "protocol": "few_label",
        "label_budget": 100, "metrics": {"roc_auc": {"mean": 0.91234, "std": 0.0123, "per_seed": [0.9, 0.91, 0.925]}},
    }
    table = markdown_table([cell], "roc_auc")
    assert "| DINO | model2 | model1 | 0.912 ± 0.012 |" in table and "Fine-tune 100/class" in table
    one_seed = {**cell, "metrics": {"roc_auc": {"mean": 0.5, "std": float("nan"), "per_seed": [0.5]}}}
    assert "| DINO | model2 | model1 | 0.500 |" in markdown_table([one_seed], "roc_auc")


def test_one_section_per_task_with_a_table_per_reported_metric_and_a_bicubic_row():
    text = "\n".join(task_sections(CELLS))
    for name in ("classification", "regression", "super_resolution"):
        assert text.count(f"#### {TASKS[name].title}") == 1
    assert "#### Lens finding" not in text  # no cells, no section
    assert "#### Axion-mass regression (target: axion_mass, log10 eV)" in text
    for title in ("**Macro ROC AUC**", "**Accuracy**", "**MAE (dex)**", "**Bias (dex)**", "**R²**", "**PSNR (dB)**",
                  "**SSIM**"):
        assert text.count(title) == 1, title
    assert "| MAE | model2 | model3 | 0.400 ± 0.141 |" in text  # the regression MAE table, linear probe column
    assert "| Bicubic (no model) | – | super_resolution | 40.000 ± 0.000 |" in text
    assert "| Bicubic (no model) | – | super_resolution | 0.900 ± 0.000 |" in text
    classification = text.split("#### Axion")[0]
    assert "Bicubic" not in classification  # only the task with a baseline has the row
    assert "| MAE | model2 | model3 | 0.810 ± 0.014 | 0.910 ± 0.014 |" in classification


def test_detailed_table_lists_each_cells_task_metrics():
    table = detailed_table(CELLS)
    lines = [line for line in table.splitlines() if line.startswith("| MAE |") or line.startswith("| SimCLR |")]
    assert len(lines) == len(CELLS)
    regression = next(line for line in lines if "| regression |" in line)
    assert "mae 0.400 ± 0.141" in regression and "r2 0.500" in regression and "rmse" not in regression
    sr = next(line for line in lines if "| super_resolution |" in line)
    assert "psnr" in sr and "bicubic_psnr 40.000" in sr
    order = [line.split(" | ")[1] for line in lines]
    assert order == sorted(order, key=list(TASKS).index)  # in registry order


def test_card_results_use_each_tasks_metrics_and_card_type():
    results = card_results("mae", CELLS, "lensfm/deeplense-sims")
    assert results["model_name"] == "lensfm-mae"
    entries = {(e["task_name"], e["protocol"], e["metric_type"]): e for e in results["results"]}
    assert set(entries) == {
        ("Substructure classification", "knn", "roc_auc"), ("Substructure classification", "knn", "accuracy"),
        ("Substructure classification", "finetune", "roc_auc"), ("Substructure classification", "finetune", "accuracy"),
        ("Axion-mass regression", "linear", "mae"), ("Axion-mass regression", "linear", "bias"),
        ("Axion-mass regression", "linear", "r2"),
        ("2× super-resolution", "finetune", "psnr"), ("2× super-resolution", "finetune", "ssim"),
    }  # rmse and the bicubic baseline are not the model's reported metrics; simclr's cells are not mae's
    for (task_name, _, _), entry in entries.items():
        task = next(t for t in TASKS.values() if t.title == task_name)
        assert entry["task_type"] == task.card_task_type and entry["dataset_split"] == "test"
    psnr = entries["2× super-resolution", "finetune", "psnr"]
    assert psnr["metric_value"] == 41.5 and psnr["metric_name"] == "PSNR (dB) (full fine-tune, mean of 2 seeds)"
    assert psnr["task_type"] == "image-to-image" and psnr["dataset_config"] == "super_resolution"
    assert entries["Axion-mass regression", "linear", "mae"]["metric_name"] == "MAE (dex) (linear probe, mean of 2 seeds)"


def test_an_unresolved_tpr_is_shown_as_not_resolved_never_as_a_number():
    """Issue 20.5: a TPR at an FPR below 1 / negatives (NaN per seed, null once written) reads "not resolved"."""
    for stat in ({"mean": float("nan"), "std": float("nan"), "per_seed": [float("nan")] * 2},
                 {"mean": None, "std": None, "per_seed": [None, None]}):
        cell = {**_cell("mae", "lens_finding", "lens_finding", "finetune", {"roc_auc": (1.0, 1.0)}),
                "label_names": ["non_lens", "lens"]}
        cell["metrics"]["tpr_at_fpr_0.01"] = stat
        text = "\n".join(task_sections([cell]))
        assert "| MAE | model2 | lens_finding | not resolved |" in text
        assert "tpr_at_fpr_0.01 not resolved" in detailed_table([cell])
        assert "tpr_at_fpr_0.01" not in {e["metric_type"] for e in card_results("mae", [cell], "x/y")["results"]}


def test_failures_section_names_method_stage_and_error():
    assert failures_section([]) == ""
    text = failures_section([{"method": "simclr", "stage": "pretrain", "error": "RuntimeError: out\nof memory"}])
    assert text.startswith("### Failed methods")
    assert "- **SimCLR** (`simclr`), pretrain: RuntimeError: out of memory" in text


def test_health_table_shows_centred_readings_and_the_objective_against_its_trivial_value():
    base = {"rankme": 1.4, "embedding_dim": 64, "relative_embedding_std": 0.02, "between_image_share": 0.4,
            "collapsed": False, "collapse_reasons": []}
    rows = {
        "simclr": {**base, "centred_rankme": 13.0, "centred_relative_embedding_std": 0.92,
                   "learning": {"objective_ratio": 0.42, "not_learning": False}},
        "ijepa": {**base, "centred_rankme": 9.0, "centred_relative_embedding_std": 0.5,
                  "learning": {"objective_ratio": 0.998, "not_learning": True}},
        "dino": base,  # a results.json written before the centred readings and the learning check
    }
    lines = health_table(rows).splitlines()
    assert "Centred RankMe (of D)" in lines[0] and "Loss / trivial" in lines[0]
    assert "| 13.0 (of 64) | 0.920 | 1.4 | 0.020 |" in lines[2] and "| 0.420 | healthy |" in lines[2]
    assert "| 0.998 | **not learning**: loss at 100% of its trivial value" in lines[3]
    assert "| – (of 64) | – | 1.4 |" in lines[4] and lines[4].endswith("| – | healthy |")


HEALTH = {"mae": {"centred_rankme": 27.3, "embedding_dim": 64, "collapsed": False, "collapse_reasons": [],
                  "learning": {"not_learning": True, "objective_ratio": 2.21}}}


def test_encoder_cards_show_health_and_the_random_init_baseline_in_the_cards_folder(tmp_path):
    """Issue 20.11: each encoder card puts the random-init baseline beside its numbers and states its health; the
    cards are written to <results>/cards/<method>/ (the paths returned, which the CLI prints) and linked from
    results.md's cards section."""
    from lensfm_hf.models import LensViTConfig, LensViTModel
    from lensfm_hf.resources import recipes_dir
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe
    from lensfm_hf.training.benchmark.report import cards_section, write_cards

    cells = [*CELLS, _cell("random_init", "classification", "model3", "finetune",
                           {"roc_auc": (0.6, 0.62), "accuracy": (0.4, 0.42)})]
    entries = {(e["protocol"], e["metric_type"]): e for e in card_results("mae", cells, "x/y")["results"]}
    assert entries["finetune", "roc_auc"]["baseline"] == 0.61 and "baseline" not in entries["knn", "roc_auc"]
    encoder_dir = tmp_path / "pretrain" / "mae" / "encoder"
    LensViTModel(LensViTConfig.from_preset("micro", image_size=16, patch_size=8)).save_pretrained(encoder_dir)
    recipe = load_benchmark_recipe(recipes_dir() / "benchmark" / "quick.yaml", [f"benchmark.results_dir={tmp_path}"])
    root = tmp_path / "quick"
    written = write_cards(recipe, {"mae": {"encoder_dir": str(encoder_dir)}}, cells, HEALTH)
    assert written == [str(root / "cards" / "mae" / "README.md")]
    card = (root / "cards" / "mae" / "README.md").read_text()
    assert (encoder_dir / "README.md").read_text() == card
    assert "| Random init |" in card.replace("| Random init (same protocol) |", "| Random init |")
    assert "0.9100 ± 0.0141 | 0.6100 |" in card
    assert "centred RankMe 27.3 of 64" in card and "not learning" in card and "221%" in card
    section = cards_section(root, written)
    assert "[MAE](cards/mae/README.md)" in section


def test_the_cards_preset_description_is_generated_from_the_recipe():
    """Issue 20.12: the card's preset line states the recipe's own budget (quick: 100 fine-tuning steps, not 150)."""
    from lensfm_hf.resources import recipes_dir
    from lensfm_hf.training.benchmark.recipe import load_benchmark_recipe
    from lensfm_hf.training.benchmark.report import preset_note

    quick = load_benchmark_recipe(recipes_dir() / "benchmark" / "quick.yaml")
    note = preset_note(quick)
    assert "not a measurement" in note and "150" not in note
    assert "micro ViT at 64 px" in note and "50 pretraining steps" in note
    assert "100 fine-tuning images per class" in note and "100 fine-tuning steps" in note
    assert "20 for lens_finding" in note
    shorter = load_benchmark_recipe(recipes_dir() / "benchmark" / "quick.yaml", ["protocols.finetune.max_steps=70"])
    assert "70 fine-tuning steps" in preset_note(shorter)
