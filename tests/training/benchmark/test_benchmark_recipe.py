"""The benchmark recipe: evaluations from `TASK` and `TASK:CONFIG`, and every mistake refused before anything runs."""

from __future__ import annotations

import pytest

from lensfm_hf.training import benchmark
from lensfm_hf.training.benchmark import BenchmarkProtocolArguments, Evaluation, load_benchmark_recipe
from lensfm_hf.training.benchmark.recipe import method_title
from lensfm_hf.training.downstream.tasks import TASKS


def _pairs(recipe):
    return [(e.task.name, e.config) for e in recipe.evaluations]


def test_evaluations_expand_tasks_and_task_configs(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, mini.overrides(tmp_path))
    assert _pairs(recipe) == [("classification", "model3"), ("regression", "model3"),
                              ("super_resolution", "super_resolution"), ("lens_finding", "lens_finding")]
    both = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path),
                                             "benchmark.tasks=[classification,lens_finding:lens_finding,classification:model3]"])
    # a TASK runs on each of its benchmark configs; a repeated pair runs once
    assert _pairs(both) == [("classification", "model1"), ("classification", "model3"), ("lens_finding", "lens_finding")]
    assert both.evaluations[0].title == "Substructure classification, DeepLenseSim Model 1"
    assert Evaluation(TASKS["regression"], "model3") in recipe.evaluations


def test_every_registered_task_is_evaluated_by_default(mini, tmp_path):
    recipe = load_benchmark_recipe({"benchmark": {"methods": ["mae"], "results_dir": str(tmp_path)},
                                    "pretrain": {"recipe_dir": str(mini.repo / "recipes" / "pretrain")}})
    assert _pairs(recipe) == [(task.name, config) for task in TASKS.values() for config in task.benchmark_configs]


def test_unknown_tasks_and_protocols_are_refused_with_the_known_ones(mini, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'segmentation'; choose one of classification, regression"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.tasks=[segmentation:model3]"])
    with pytest.raises(ValueError, match=r"unknown protocol\(s\) \['ridge'\] in benchmark.protocols"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.protocols=[knn,ridge]"])
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['regresion'\] in protocols.task_finetune"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "protocols.task_finetune={regresion: {max_steps: 2}}"])
    with pytest.raises(ValueError, match="benchmark.seeds is empty"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.seeds=[]"])
    with pytest.raises(ValueError, match="unknown baseline"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.baselines=[random]"])


def test_training_of_a_cell_takes_the_tasks_own_settings_last(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, [
        *mini.overrides(tmp_path), "protocols.few_label={max_steps: 7, learning_rate: 0.01}",
        "protocols.task_finetune={super_resolution: {max_steps: 9}}",
    ])
    assert recipe.training_for(TASKS["classification"], "finetune")["max_steps"] == 4
    few = recipe.training_for(TASKS["classification"], "few_label")
    assert few["max_steps"] == 7 and few["learning_rate"] == 0.01 and few["eval_steps"] == 2
    sr = recipe.training_for(TASKS["super_resolution"], "finetune")
    assert sr["max_steps"] == 9 and sr["learning_rate"] == 1e-3


def test_head_init_option_is_checked_and_keys_only_lp_ft_cells(mini):
    recipe_path = mini.repo / "recipes" / "benchmark" / "quick.yaml"
    lp_ft = load_benchmark_recipe(recipe_path)  # the quick preset fine-tunes with LP-FT
    random_head = load_benchmark_recipe(recipe_path, ["protocols.finetune_head_init=random"])
    assert BenchmarkProtocolArguments().finetune_head_init == "random"  # the usual protocol by default
    classification = TASKS["classification"]
    assert "head_init" not in benchmark.cells.protocol_settings(random_head, classification, "finetune")
    assert benchmark.cells.protocol_settings(lp_ft, classification, "finetune")["head_init"] == "linear_probe"
    # tasks without classes fine-tune a new head whatever the option: their cells do not depend on it
    assert "head_init" not in benchmark.cells.protocol_settings(lp_ft, TASKS["regression"], "finetune")
    with pytest.raises(ValueError, match="finetune_head_init must be"):
        load_benchmark_recipe(recipe_path, ["protocols.finetune_head_init=probe"])


def test_the_zoos_spelling_of_a_method_is_accepted(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.methods=[mae,ijepa-physics]"])
    assert recipe.benchmark.methods == ["mae", "ijepa_physics"]  # the registered name: rows, folders and recipes
    spelled = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.methods=[ijepa-physics]",
                                                 "pretrain.method_overrides={ijepa_physics: {model.method: lensfm/ijepa-physics}}"])
    assert spelled.benchmark.methods == ["ijepa_physics"]  # the method's own name, in the zoo's spelling, is no mismatch
    keyed = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path),
                                              "pretrain.method_overrides={lensfm/mae: {training.max_steps: 2}}"])
    assert keyed.pretrain.method_overrides == {"mae": {"training.max_steps": 2}}  # the key names mae's pretraining
    with pytest.raises(ValueError, match="unknown method.*'maee' in pretrain.method_overrides"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "pretrain.method_overrides={maee: {seed: 1}}"])


def test_an_unknown_method_is_refused_before_anything_runs(mini, tmp_path, monkeypatch, capsys):
    from lensfm_hf.cli import main

    previous = tmp_path / "mini" / "results.md"
    previous.parent.mkdir()
    previous.write_text("the previous table\n")

    def no_data(recipe):
        raise AssertionError("nothing may run before the methods are checked")

    monkeypatch.setattr(benchmark.run, "prepare_benchmark_data", no_data)
    code = main(["benchmark", str(mini.path), *mini.overrides(tmp_path), "benchmark.methods=[mae,byol]"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'byol'" in err and "known methods: mae, simclr, moco, dino, ibot, ijepa, ijepa_physics" in err
    assert len(err.strip().splitlines()) == 1
    assert previous.read_text() == "the previous table\n"
    assert [p.name for p in tmp_path.rglob("*")] == ["mini", "results.md"]


def _recipe_dir_with(tmp_path, mini, method: str, says: str):
    """A pretraining recipe folder whose `<method>_tiny.yaml` is the shipped one of `says` (so it names `says`)."""
    folder = tmp_path / "pretrain_recipes"
    folder.mkdir(exist_ok=True)
    (folder / f"{method}_tiny.yaml").write_text((mini.repo / "recipes" / "pretrain" / f"{says}_tiny.yaml").read_text())
    return folder


def test_a_recipe_naming_another_method_is_refused_before_anything_runs(mini, tmp_path):
    folder = _recipe_dir_with(tmp_path, mini, "simclr", says="mae")  # simclr_tiny.yaml says method: mae
    overrides = [*mini.overrides(tmp_path), f"pretrain.recipe_dir={folder}", "benchmark.methods=[simclr]"]
    with pytest.raises(ValueError, match=r"simclr_tiny.yaml names model.method 'mae'.*asked for 'simclr'.*MAE's numbers"):
        load_benchmark_recipe(mini.path, overrides)
    with pytest.raises(ValueError, match=r"pretrain.method_overrides.simclr sets model.method 'mae'"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.methods=[simclr]",
                                          "pretrain.method_overrides={simclr: {model.method: mae}}"])


def test_pretraining_is_told_the_method_and_refuses_a_recipe_changed_since(mini, tmp_path, monkeypatch):
    folder = _recipe_dir_with(tmp_path, mini, "simclr", says="simclr")
    recipe = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), f"pretrain.recipe_dir={folder}",
                                               "benchmark.methods=[simclr]"])
    assert benchmark.pretrain_overrides(recipe, "simclr", "/data")["model.method"] == "simclr"
    (folder / "simclr_tiny.yaml").write_text((mini.repo / "recipes" / "pretrain" / "mae_tiny.yaml").read_text())

    def pretraining(recipe_path, overrides):
        raise AssertionError("a mismatched recipe must not pretrain")

    monkeypatch.setattr(benchmark.encoders, "run_pretraining", pretraining)
    with pytest.raises(ValueError, match="names model.method 'mae'"):
        benchmark.ensure_encoder(recipe, "simclr", "unused")


@pytest.mark.parametrize("override, message", [
    ("protocols.finetune.learning_rate=abc", r"protocols.finetune.learning_rate expects float, got 'abc'; set"),
    ("protocols.few_label={max_stepz: 3}", r"unknown key\(s\) in recipe section 'protocols.few_label': 'max_stepz' "
                                           r"\(did you mean 'max_steps'"),
    ("protocols.task_finetune={regression: {seed: x}}", r"protocols.task_finetune.regression.seed expects int"),
    ("pretrain.overrides={training.learning_rate: abc}", r"pretrain.overrides.*mae.*training.learning_rate expects float"),
    ("pretrain.method_overrides={simclr: {model.methd_config.pooling: mean}}",
     r"pretrain.method_overrides.simclr: unknown key\(s\) in recipe section 'model': 'methd_config' \(did you mean "
     r"'method_config'"),
])
def test_a_bad_override_fails_before_anything_runs_naming_the_key(mini, tmp_path, monkeypatch, override, message):
    def no_data(recipe):
        raise AssertionError("nothing may run before every override is checked")

    monkeypatch.setattr(benchmark.run, "prepare_benchmark_data", no_data)
    with pytest.raises(ValueError, match=message):
        benchmark.run_benchmark(mini.path, [*mini.overrides(tmp_path), override])
    assert not (tmp_path / "mini").exists()


def test_a_baseline_runs_its_own_protocols_seeds_and_tasks(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, [
        *mini.overrides(tmp_path), "benchmark.baselines=[random_init,resnet18]",
        "benchmark.protocols=[knn,linear,finetune,few_label]", "benchmark.baseline_seeds={resnet18: [0]}",
        "benchmark.baseline_tasks={resnet18: [classification:model3, super_resolution]}"])
    assert recipe.seeds_of("resnet18") == [0] and recipe.seeds_of("random_init") == recipe.seeds_of("mae") == [0, 1]
    assert recipe.protocols_of("resnet18") == ["finetune", "few_label"]  # no encoder to probe
    assert recipe.protocols_of("random_init") == recipe.protocols_of("mae") == ["knn", "linear", "finetune", "few_label"]
    # a supervised baseline runs only the tasks its backbone has a head for: ResNet-18 no super-resolution
    assert [(e.task.name, e.config) for e in recipe.evaluations_of("resnet18")] == [("classification", "model3")]
    assert recipe.evaluations_of("random_init") == recipe.evaluations
    assert method_title("resnet18") == "ResNet-18 (scratch)"
    assert [e.task.name for e in recipe.evaluations_of("rcan_lite")] == ["super_resolution"]
    assert recipe.protocols_of("rcan_lite") == ["finetune"]
    # a stage that runs without the ResNet row keeps its entries; a name that is no baseline is refused
    load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.baseline_seeds={resnet18: [0]}"])
    for override, named in [("benchmark.baseline_seeds={resnet: [0]}", "benchmark.baseline_seeds names \\['resnet'\\]"),
                            ("benchmark.baseline_tasks={resnt18: [classification]}", "benchmark.baseline_tasks names"),
                            ("benchmark.baselines=[resnet]", "known baselines: random_init, resnet18")]:
        with pytest.raises(ValueError, match=named):
            load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), override])
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.baselines=[resnet18]",
                                          "benchmark.baseline_tasks={resnet18: [segmentation]}"])


def test_a_pretraining_repeat_is_its_own_encoder_with_its_seed(mini, tmp_path):
    recipe = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.pretrain_repeats={simclr: [1, 2]}"])
    assert recipe.encoder_names == ["mae", "simclr", "simclr@seed1", "simclr@seed2"]
    own, repeat = (benchmark.pretrain_overrides(recipe, name, "/data") for name in ("simclr", "simclr@seed2"))
    assert repeat["model.method"] == "simclr" and repeat["training.seed"] == 2 and "training.seed" not in own
    assert repeat["training.output_dir"].endswith("pretrain/simclr@seed2")
    assert {k: v for k, v in repeat.items() if k not in ("training.seed", "training.output_dir")} == {
        k: v for k, v in own.items() if k != "training.output_dir"}
    assert method_title("simclr@seed2") == "SimCLR (pretraining seed 2)"
    skipped = load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.pretrain_repeats={dino: [1]}"])
    assert skipped.encoder_names == ["mae", "simclr"]  # dino is not in this run's methods
    with pytest.raises(ValueError, match="benchmark.pretrain_repeats names \\['dyno'\\], which is no pretraining method"):
        load_benchmark_recipe(mini.path, [*mini.overrides(tmp_path), "benchmark.pretrain_repeats={dyno: [1]}"])


def test_quick_has_the_supervised_rows_and_a_small_super_resolution_trunk(mini):
    recipe = load_benchmark_recipe(mini.repo / "recipes" / "benchmark" / "quick.yaml")
    assert [(e.task.name, e.config) for e in recipe.evaluations_of("resnet18")] == [("classification", "model3")]
    assert [e.task.name for e in recipe.evaluations_of("rcan_lite")] == ["super_resolution"]
    assert recipe.seeds_of("resnet18") == recipe.seeds_of("rcan_lite") == [0]
    head = benchmark.cells.protocol_settings(recipe, TASKS["super_resolution"], "finetune")["head"]
    assert head["sr_decoder"] == "rcan" and head["sr_trunk_blocks"] == 1  # the decoder is part of the cell key
    assert "head" not in benchmark.cells.protocol_settings(recipe, TASKS["classification"], "finetune")
