"""Model cards: metadata parsed back by ModelCard.load, and model-index round-tripping the results JSON."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import EvalResult, ModelCard

from lensfm_hf.hub import render_model_card, results_to_eval_results

RESULTS = {
    "model_name": "lensfm/ijepa-physics",
    "results": [
        {"task_type": "image-classification", "dataset_name": "DeepLenseSim Model 3",
         "dataset_type": "lensfm/deeplense-sims", "dataset_config": "model3", "dataset_split": "test",
         "metric_type": "accuracy", "metric_name": "Accuracy (linear probe)", "metric_value": 0.81},
        {"task_type": "image-classification", "dataset_name": "DeepLenseSim Model 3",
         "dataset_type": "lensfm/deeplense-sims", "dataset_config": "model3", "dataset_split": "test",
         "metric_type": "roc_auc", "metric_name": "ROC AUC (linear probe)", "metric_value": 0.93, "seed": 0},
        {"task_type": "image-classification", "dataset_name": "DeepLenseSim Model 1",
         "dataset_type": "lensfm/deeplense-sims", "dataset_config": "model1", "dataset_split": "test",
         "metric_type": "accuracy", "metric_name": "Accuracy (fine-tuned)", "metric_value": 0.9},
    ],
}


def _fields(result: EvalResult) -> tuple:
    return (result.task_type, result.dataset_type, result.dataset_name, result.dataset_config, result.dataset_split,
            result.metric_type, result.metric_name, result.metric_value)


def test_encoder_card_round_trip(tiny_config, tmp_path):
    config = tiny_config(pretraining={"method": "ijepa_physics", "recipe": "recipes/pretrain/ijepa_physics.yaml",
                                      "data": "lensfm/deeplense-sims"})
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(RESULTS))
    card = render_model_card(config, repo_id="lensfm/ijepa-physics", results=results_path)
    card.save(tmp_path / "README.md")

    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "image-feature-extraction"
    assert data.license == "apache-2.0"
    assert data.datasets == ["lensfm/deeplense-sims"]
    assert {"gravitational-lensing", "self-supervised", "ijepa-physics"} <= set(data.tags)
    assert data.base_model is None
    assert data.model_name == "lensfm/ijepa-physics"
    # model-index round trip: the card's eval results are exactly the results JSON
    assert [_fields(r) for r in data.eval_results] == [_fields(r) for r in results_to_eval_results(RESULTS)]
    assert [(r["metric_type"], r["metric_value"]) for r in RESULTS["results"]] == [
        (r.metric_type, r.metric_value) for r in data.eval_results]

    text = loaded.text
    for section in ("## Model", "## Intended use", "## Training data and recipe", "## Results", "## How to use",
                    "## Limitations", "## Citation"):
        assert section in text
    assert "I-JEPA (physics)" in text and "recipes/pretrain/ijepa_physics.yaml" in text
    assert "| Accuracy (linear probe) | 0.8100 |" in text
    assert 'AutoModel.from_pretrained(repo, trust_remote_code=True)' in text and "AutoImageProcessor" in text
    assert "Simulation-to-real gap" in text


def test_classifier_card_without_results(tiny_config):
    config = tiny_config(num_labels=3, id2label={0: "no_sub", 1: "cdm", 2: "axion"},
                         architectures=["LensViTForImageClassification"])
    card = render_model_card(config, repo_id="lensfm/clf", base_model="lensfm/ijepa-physics", method="mae")
    data = ModelCard(str(card)).data
    assert data.pipeline_tag == "image-classification"
    assert data.base_model == "lensfm/ijepa-physics"
    assert "mae" in data.tags and data.eval_results is None
    assert "AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True)" in card.text
    assert "No evaluation results" in card.text and "`2` axion" in card.text


def test_results_schema_errors(tmp_path):
    bad = {"results": [{"task_type": "image-classification", "metric_type": "accuracy", "metric_value": 0.5}]}
    with pytest.raises(ValueError, match="dataset_type"):
        results_to_eval_results(bad)
    with pytest.raises(ValueError, match="model_name"):
        results_to_eval_results({"accuracy": 0.5})
    with pytest.raises(FileNotFoundError):
        results_to_eval_results(tmp_path / "missing.json")


def _free_names(code: str) -> set[str]:
    """Names a code block reads but neither assigns nor imports (builtins aside): what it needs from elsewhere."""
    import builtins
    import symtable

    table = symtable.symtable(code, "<card block>", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    free, tables = set(), [table]
    while tables:
        current = tables.pop()
        tables += current.get_children()
        for symbol in current.get_symbols():
            top = current is table and symbol.is_referenced() and not (symbol.is_assigned() or symbol.is_imported())
            if top or (current is not table and symbol.is_global()):
                free.add(symbol.get_name())
    return free - defined - set(dir(builtins))


def _python_blocks(card: str) -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


@pytest.mark.parametrize("architectures", [["LensViTModel"], ["LensViTForImageClassification"]])
def test_each_card_code_block_runs_on_its_own(tiny_config, architectures):
    """Issue 20.10: no block reads a name (such as `repo`) that only an earlier block defines."""
    labels = {0: "no_sub", 1: "cdm", 2: "axion"} if architectures == ["LensViTForImageClassification"] else None
    config = tiny_config(architectures=architectures, **({"num_labels": 3, "id2label": labels} if labels else {}))
    card = str(render_model_card(config, repo_id="lensfm/mae"))
    blocks = _python_blocks(card)
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        assert not _free_names(block), f"block {index + 1} needs {_free_names(block)} from another block:\n{block}"


def test_cards_name_a_repo_id_and_no_local_path(tiny_config):
    """Issue 20.9: without a repo id the card names a placeholder id (never the output folder); records that hold
    paths of this machine (dataset, encoder, recipe, pretraining data) reach the card as names only."""
    from lensfm_hf.hub.cards import REPO_ID_PLACEHOLDER_OWNER

    local = "/home/someone/work"
    config = tiny_config(architectures=["LensViTForImageClassification"], num_labels=3,
                         id2label={0: "no_sub", 1: "cdm", 2: "axion"},
                         pretraining={"method": "mae", "data": {"source": f"{local}/sims", "config": "model2"},
                                      "recipe": f"{local}/recipes/mae.yaml"})
    finetuning = {"task": "classification", "dataset": f"{local}/data", "config": "model3",
                  "encoder": f"{local}/results/quick/pretrain/mae/encoder",
                  "recipe": f"{local}/lensfm/recipes/finetune/model3_classification.yaml",
                  "num_train": 540, "max_steps": 300, "batch_size": 32}
    for repo_id in (None, f"{local}/outputs/finetune/model3_classification/model"):
        card = str(render_model_card(config, repo_id=repo_id, extra_context={"finetuning": finetuning}))
        assert local not in card and "/home" not in card, card
        assert "a dataset folder simulated with lensfm_hf, config `model2`" in card
        assert f'repo = "{REPO_ID_PLACEHOLDER_OWNER}/' in card
        assert "model3_classification.yaml" in card
    card = str(render_model_card(config, repo_id="me/lens-classifier", extra_context={"finetuning": finetuning}))
    assert 'repo = "me/lens-classifier"' in card and card.count("# me/lens-classifier") == 1


@pytest.mark.parametrize("data", [{"source": "stream:model2"}, {"source": "/somewhere/data", "config": "model2"}])
def test_an_encoder_card_states_the_inputs_of_its_pretraining_data(tiny_config, data):
    """Issue 20.3: a pretrained encoder's card says what inputs it expects (instrument, pixel scale, units) from the
    simulation preset its pretraining data came from."""
    config = tiny_config(pretraining={"method": "mae", "data": data})
    card = str(render_model_card(config, repo_id="lensfm/mae"))
    inputs = card.split("## Inputs")[1].split("##")[0]
    assert "DeepLenseSim Model 2" in inputs and "0.101 arcsec" in inputs and "euclid_vis_2022" in inputs
    assert "e-/s per pixel" in inputs and "64×64" in inputs
