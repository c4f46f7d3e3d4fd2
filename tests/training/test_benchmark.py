"""The `mini` benchmark preset end to end (real simulator, real pretraining, a few steps), its outputs and its cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lensfm_hf.training import benchmark
from lensfm_hf.training.benchmark import markdown_table, run_benchmark, settings_key, write_readme_table

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "recipes" / "benchmark" / "mini.yaml"


def _overrides(root):
    return [f"benchmark.results_dir={root}", f"pretrain.recipe_dir={REPO / 'recipes' / 'pretrain'}"]


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return root, run_benchmark(MINI, overrides=_overrides(root))


def test_mini_preset_writes_well_formed_results(mini_run):
    root, result = mini_run
    assert not result["failures"], result["failures"]
    results = json.loads((root / "mini" / "results.json").read_text())
    assert results["preset"] == "mini" and results["seeds"] == [0, 1]
    cells = results["cells"]
    expected = {(m, p) for m in ("mae", "simclr", "random_init") for p in ("knn", "linear", "finetune")}
    assert {(c["method"], c["protocol"]) for c in cells} == expected
    for cell in cells:
        assert cell["finetuning_set"] == "model3"
        assert cell["pretraining_set"] == ("none" if cell["method"] == "random_init" else "model2")
        assert cell["label_budget"] == "all"
        for metric in ("accuracy", "roc_auc", "roc_auc_no_sub", "roc_auc_cdm", "roc_auc_axion"):
            stat = cell["metrics"][metric]
            assert len(stat["per_seed"]) == 2 and math.isfinite(stat["mean"]) and math.isfinite(stat["std"])
        assert (root / "mini" / cell["probabilities_file"]).is_file()
    for name in results["plots"]:
        assert (root / "mini" / name).stat().st_size > 1000
    assert any("roc_" in p for p in results["plots"]) and any("confusion_" in p for p in results["plots"])

    table = (root / "mini" / "results.md").read_text()
    assert "| Method | Pretraining set | Fine-tuning set | kNN | Linear probe | Fine-tune |" in table
    assert "| MAE | model2 | model3 |" in table and "| Random init | none | model3 |" in table


def test_cards_carry_the_results_in_model_index(mini_run):
    from huggingface_hub import ModelCard

    root, result = mini_run
    assert len(result["cards"]) == 2
    for method in ("mae", "simclr"):
        encoder = root / "mini" / "pretrain" / method / "encoder"
        card = ModelCard.load(encoder / "README.md")
        expected = json.loads((encoder / "eval_results.json").read_text())["results"]
        got = card.data.eval_results
        assert len(got) == len(expected) == 6  # 3 protocols x (accuracy, macro AUC)
        pairs = {(r.dataset_config, r.metric_type, r.metric_name, round(r.metric_value, 4)) for r in got}
        assert pairs == {(e["dataset_config"], e["metric_type"], e["metric_name"], e["metric_value"]) for e in expected}
        assert all(r.task_type == "image-classification" and r.dataset_split == "test" for r in got)


def test_rerun_skips_finished_cells_and_pretraining(mini_run, monkeypatch):
    root, first = mini_run
    calls = []
    original = benchmark.compute_cell

    def counting(protocol, *args, **kwargs):
        calls.append(protocol)
        return original(protocol, *args, **kwargs)

    def no_pretraining(*args, **kwargs):
        raise AssertionError("a finished encoder must be reused")

    monkeypatch.setattr(benchmark, "compute_cell", counting)
    monkeypatch.setattr("lensfm_hf.training.pretrain.run_pretraining", no_pretraining)
    again = run_benchmark(MINI, overrides=_overrides(root))
    assert calls == [] and again["computed"] == 0 and again["cached"] == len(first["cells"])
    assert [c["key"] for c in again["cells"]] == [c["key"] for c in first["cells"]]

    # a changed kNN setting recomputes the kNN cells only
    changed = run_benchmark(MINI, overrides=[*_overrides(root), "protocols.knn_k=5"])
    assert sorted(calls) == ["knn"] * 3 and changed["computed"] == 3


def test_readme_table(mini_run):
    root, _ = mini_run
    text = write_readme_table(root / "mini")
    assert "**Macro one-vs-rest ROC AUC**" in text and "**Accuracy**" in text
    assert text.count("| SimCLR | model2 | model3 |") == 2
    assert "](" in text and ".png)" in text


def test_markdown_table_formats_mean_and_std():
    cell = {
        "method": "dino", "pretraining_set": "model2", "finetuning_set": "model1", "protocol": "few_label",
        "label_budget": 100, "metrics": {"roc_auc": {"mean": 0.91234, "std": 0.0123, "per_seed": [0.9, 0.91, 0.925]}},
    }
    table = markdown_table([cell], "roc_auc")
    assert "| DINO | model2 | model1 | 0.912 ± 0.012 |" in table and "Fine-tune 100/class" in table


def test_settings_key_is_order_independent():
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})


def test_head_init_option_is_checked_and_keys_only_lp_ft_cells():
    recipe_path = Path(__file__).resolve().parents[2] / "recipes" / "benchmark" / "quick.yaml"
    lp_ft = benchmark.load_benchmark_recipe(recipe_path)  # the quick preset fine-tunes with LP-FT
    random_head = benchmark.load_benchmark_recipe(recipe_path, ["protocols.finetune_head_init=random"])
    assert benchmark.BenchmarkProtocolArguments().finetune_head_init == "random"  # the usual protocol by default
    assert "head_init" not in benchmark._protocol_settings(random_head, "finetune")  # earlier caches stay valid
    assert benchmark._protocol_settings(lp_ft, "finetune")["head_init"] == "linear_probe"
    with pytest.raises(ValueError, match="finetune_head_init must be"):
        benchmark.load_benchmark_recipe(recipe_path, ["protocols.finetune_head_init=probe"])


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_full_preset_runs_end_to_end_at_toy_sizes(tmp_path):
    """recipes/benchmark/full.yaml as shipped (GPU pretraining recipes, LP-FT, few-label budgets, bf16 falling back
    to float32 on CPU), shrunk to toy sizes: the measurement preset must not first break on the GPU machine."""
    import yaml

    recipe = yaml.safe_load((REPO / "recipes" / "benchmark" / "full.yaml").read_text())
    recipe["benchmark"].update(
        preset="full-toy", methods=["mae", "ijepa_physics"], finetune_sets=["model3"], seeds=[0],
        results_dir=str(tmp_path), num_threads=1,
    )
    recipe["data"].update(
        simulation_device="cpu", pretrain_train_per_class=8, finetune_train_per_class=16, finetune_test_per_class=4,
        preprocess_batch_size=64,
    )
    recipe["model"].update(preset="micro", image_size=32)
    recipe["pretrain"]["overrides"].update(
        {"training.max_steps": 2, "training.per_device_train_batch_size": 8, "training.warmup_steps": 0}
    )
    recipe["pretrain"]["recipe_dir"] = str(REPO / "recipes" / "pretrain")
    recipe["protocols"]["finetune"].update(
        max_steps=2, eval_steps=1, per_device_train_batch_size=8, per_device_eval_batch_size=16, warmup_steps=0
    )
    recipe["protocols"]["few_label_budgets"] = [3]
    recipe["protocols"]["few_label"].update(max_steps=2, eval_steps=1, per_device_train_batch_size=8, warmup_steps=0)
    recipe["protocols"]["feature_batch_size"] = 16
    result = run_benchmark(recipe)
    assert not result["failures"], result["failures"]
    protocols = {(cell["method"], cell["protocol"]) for cell in result["cells"]}
    assert {("ijepa_physics", "few_label"), ("mae", "linear"), ("random_init", "finetune")} <= protocols
    for cell in result["cells"]:
        assert math.isfinite(cell["metrics"]["roc_auc"]["mean"]), cell


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_worker_processes_give_the_same_cells(mini_run, tmp_path):
    root, serial = mini_run
    parallel = run_benchmark(MINI, overrides=_overrides(tmp_path) + ["benchmark.workers=2"])
    assert not parallel["failures"], parallel["failures"]

    def fine_tunes(result):
        return {
            (cell["method"], cell["protocol"]): [seed["roc_auc"] for seed in cell["per_seed"]]
            for cell in result["cells"] if cell["protocol"] == "finetune"
        }

    expected = fine_tunes(serial)
    assert expected and set(fine_tunes(parallel)) == set(expected)
    for key, values in fine_tunes(parallel).items():
        assert values == pytest.approx(expected[key], abs=1e-6), key


# ----------------------------------------------------------------------------- cache integrity and failures


def _copy_of(mini_run, tmp_path) -> Path:
    """A copy of the mini run's results folder, to damage without touching the shared fixture."""
    import shutil

    root, _ = mini_run
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    return copy


def _forbid_pretraining(*args, **kwargs):
    raise AssertionError("a finished encoder must be reused")


def _cell_file(root: Path, cell) -> Path:
    return benchmark._cell_path(root, cell["method"], cell["finetuning_set"], cell["protocol"], cell["label_budget"],
                                cell["key"])


def test_cut_or_unreadable_cells_are_recomputed_with_a_warning(mini_run, tmp_path, monkeypatch, caplog):
    copy = _copy_of(mini_run, tmp_path)
    first = mini_run[1]
    by_id = {(c["method"], c["protocol"]): c for c in first["cells"]}
    cut = _cell_file(copy / "mini", by_id["mae", "knn"])
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a kill mid-write
    empty = _cell_file(copy / "mini", by_id["mae", "linear"])
    empty.write_bytes(b"")  # a full disk
    npz = copy / "mini" / by_id["simclr", "finetune"]["probabilities_file"]
    npz.write_bytes(npz.read_bytes()[:100])  # its cell is fine, its probabilities are not

    calls = []
    original = benchmark.compute_cell

    def counting(protocol, *args, **kwargs):
        calls.append(protocol)
        return original(protocol, *args, **kwargs)

    monkeypatch.setattr(benchmark, "compute_cell", counting)
    monkeypatch.setattr("lensfm_hf.training.pretrain.run_pretraining", _forbid_pretraining)
    with caplog.at_level("WARNING", logger="lensfm_hf.training.benchmark"):
        again = run_benchmark(MINI, overrides=_overrides(copy))
    assert not again["failures"], again["failures"]
    assert sorted(calls) == ["finetune", "knn", "linear"] and again["computed"] == 3
    assert [c["key"] for c in again["cells"]] == [c["key"] for c in first["cells"]]  # no method lost its rows
    for path in (cut, empty, _cell_file(copy / "mini", by_id["simclr", "finetune"])):
        assert str(path) in caplog.text, caplog.text
        assert json.loads(path.read_text())["key"]  # rewritten whole
    assert not list((copy / "mini" / "cells").rglob("*.tmp"))  # no temporary files left behind


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from lensfm_hf.files import atomic_write

    path = tmp_path / "cell.json"
    with atomic_write(path) as handle:
        handle.write('{"ok": 1}\n')
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path) as handle:
            handle.write('{"ok":')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_a_cut_or_unmarked_encoder_export_is_not_reused(mini_run, tmp_path, monkeypatch):
    import shutil

    copy = _copy_of(mini_run, tmp_path)
    mae = copy / "mini" / "pretrain" / "mae" / "encoder"
    simclr = copy / "mini" / "pretrain" / "simclr" / "encoder"
    assert benchmark.encoder_ready(mae) and benchmark.encoder_ready(simclr)
    assert not list(mae.glob("*complete*"))  # the marker stays out of the hub-ready folder

    weights = mae / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a kill while exporting
    assert not benchmark.encoder_ready(mae)
    benchmark.encoder_marker(simclr).unlink()  # an export killed before it finished writes no marker
    assert not benchmark.encoder_ready(simclr)

    original = mini_run[0] / "mini" / "pretrain" / "mae" / "encoder"
    calls = []

    def pretraining(recipe_path, overrides):
        calls.append(overrides["training.output_dir"])
        shutil.rmtree(mae)
        shutil.copytree(original, mae)
        return {"encoder_dir": str(mae), "global_step": 3}

    monkeypatch.setattr("lensfm_hf.training.pretrain.run_pretraining", pretraining)
    recipe = benchmark.load_benchmark_recipe(MINI, overrides=_overrides(copy))
    info = benchmark.ensure_encoder(recipe, "mae", "unused")
    assert calls == [str(copy / "mini" / "pretrain" / "mae")] and not info["reused"]
    assert benchmark.encoder_ready(mae)  # marked once the export returned
    assert benchmark.ensure_encoder(recipe, "mae", "unused")["reused"] and len(calls) == 1


def test_a_failed_method_exits_nonzero_and_results_md_says_why(mini_run, tmp_path, monkeypatch, capsys):
    from lensfm_hf.cli import main

    copy = _copy_of(mini_run, tmp_path)
    benchmark.encoder_marker(copy / "mini" / "pretrain" / "simclr" / "encoder").unlink()

    def failing(recipe_path, overrides):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr("lensfm_hf.training.pretrain.run_pretraining", failing)
    code = main(["benchmark", str(MINI), *_overrides(copy)])
    err = capsys.readouterr().err
    assert code != 0
    assert "simclr (pretrain) failed" in err and "results.md" in err
    table = (copy / "mini" / "results.md").read_text()
    assert "### Failed methods" in table and "(`simclr`), pretrain: RuntimeError: CUDA out of memory (simulated)" in table
    assert "| MAE | model2 | model3 |" in table  # the others are still reported
    failures = json.loads((copy / "mini" / "results.json").read_text())["failures"]
    assert [(f["method"], f["stage"]) for f in failures] == [("simclr", "pretrain")]


def test_an_unknown_method_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    from lensfm_hf.cli import main

    previous = tmp_path / "mini" / "results.md"
    previous.parent.mkdir()
    previous.write_text("the previous table\n")

    def no_data(recipe):
        raise AssertionError("nothing may run before the methods are checked")

    monkeypatch.setattr(benchmark, "prepare_benchmark_data", no_data)
    code = main(["benchmark", str(MINI), *_overrides(tmp_path), "benchmark.methods=[mae,byol]"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'byol'" in err and "known methods: mae, simclr, moco, dino, ibot, ijepa, ijepa_physics" in err
    assert len(err.strip().splitlines()) == 1
    assert previous.read_text() == "the previous table\n"
    assert [p.name for p in tmp_path.rglob("*")] == ["mini", "results.md"]
    with pytest.raises(ValueError, match="unknown baseline"):
        benchmark.load_benchmark_recipe(MINI, overrides=[*_overrides(tmp_path), "benchmark.baselines=[random]"])


def test_results_carry_representation_health_per_encoder(mini_run):
    root, _ = mini_run
    results = json.loads((root / "mini" / "results.json").read_text())
    assert set(results["health"]) == {"mae", "simclr", "random_init"}
    for health in results["health"].values():
        assert health["rankme"] >= 1.0 and 0.0 <= health["between_image_share"] <= 1.0
        assert isinstance(health["collapsed"], bool) and isinstance(health["collapse_reasons"], list)
    assert "**Representation health**" in (root / "mini" / "results.md").read_text()


def test_probe_label_budgets_add_knn_and_linear_cells_at_each_budget(tmp_path):
    recipe = benchmark.load_benchmark_recipe(MINI, overrides=[
        *_overrides(tmp_path), "benchmark.protocols=[knn,linear,finetune,few_label]",
        "protocols.few_label_budgets=[2]", "protocols.probe_label_budgets=true",
    ])
    import torch

    labels = torch.arange(3).repeat_interleave(20)
    data = benchmark.FinetuneSet("model3", benchmark.TensorSplit(torch.empty(0), labels), None)
    plan = benchmark._protocol_plan(recipe, data)
    assert plan == [("knn", "all"), ("knn", 2), ("linear", "all"), ("linear", 2), ("finetune", "all"), ("few_label", 2)]
    assert benchmark._column_title("knn", 2) == "kNN 2/class" and benchmark._column_title("few_label", 2) == "Fine-tune 2/class"


def test_physics_recovery_is_measured_for_physics_encoders_only(tmp_path):
    from lensfm_hf.models import LensViTConfig
    from lensfm_hf.pretraining import get_pretraining_classes
    from lensfm_hf.training.pretrain import export_encoder

    config_class, model_class = get_pretraining_classes("ijepa_physics")
    model = model_class(config_class.from_preset("micro", image_size=32, patch_size=8, num_hidden_layers=1,
                                                 predictor_num_hidden_layers=1))
    encoder_dir = export_encoder(model, tmp_path / "encoder", {"method": "ijepa_physics"})
    spec = {"name": "ijepa_physics", "random": False, "encoder_dir": str(encoder_dir)}
    recovery = benchmark.physics_recovery(spec, per_class=2)
    assert recovery["num_images"] == 6
    assert math.isfinite(recovery["source_position_error_arcsec"])
    assert "source position error" in benchmark.recovery_lines({"ijepa_physics": recovery})[0]
    assert benchmark.physics_recovery({"name": "random_init", "random": True, "encoder_dir": None,
                                       "config": LensViTConfig()}) is None
