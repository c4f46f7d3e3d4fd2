"""Fine-tuned models load anywhere, and the code in every generated card runs as written.

Both run client code in a fresh subprocess, offline, outside the repository; the pipeline test also refuses the
import of lensfm_hf, as on a machine where it is not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from fake_hub import run_client
from hub_env import offline_env

from lensfm_hf import LensImageProcessor, LensViTConfig, LensViTForImageClassification, LensViTModel
from lensfm_hf.hub import save_for_hub
from lensfm_hf.training.downstream.finetune_export import save_finetuned_model

LABELS = ["no_sub", "cdm", "axion"]
PRETRAINING = {"method": "mae", "recipe": "recipes/pretrain/mae.yaml", "data": "lensfm/deeplense-sims"}
REMOTE_FILES = {"configuration_lens_vit.py", "image_processing_lens_vit.py", "modeling_lens_vit.py"}


def make_tiny_config(**overrides) -> LensViTConfig:
    sizes = dict(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)
    return LensViTConfig.from_preset("tiny", **{**sizes, **overrides})


def finetuned_classifier(folder, metrics=None):
    torch.manual_seed(0)
    model = LensViTForImageClassification(make_tiny_config(
        num_labels=3, id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
        pretraining=PRETRAINING,
    )).eval()
    model.config.finetuning = {"task": "classification", "dataset": "/data/sims", "config": "model3",
                               "encoder": "lensfm/mae", "num_train": 270, "max_steps": 300, "batch_size": 32,
                               "head_init": "linear_probe", "recipe": "recipes/finetune/model3_classification.yaml"}
    save_finetuned_model(model, LensImageProcessor(size=16), folder, metrics or {"accuracy": 0.71, "roc_auc": 0.92})
    return model


def test_finetuned_classifier_runs_in_a_pipeline_without_lensfm(tmp_path):
    folder = tmp_path / "model"
    model = finetuned_classifier(folder)
    assert REMOTE_FILES | {"README.md", "preprocessor_config.json", "config.json"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "no_sub", "1": "cdm", "2": "axion"}
    image = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    with torch.no_grad():
        expected = model(**LensImageProcessor(size=16)(image, return_tensors="pt")).logits.softmax(-1)[0]

    code = f"""
    import json
    import numpy as np
    from transformers import AutoModelForImageClassification, pipeline

    folder = {str(folder)!r}
    image = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    classify = pipeline("image-classification", model=folder, trust_remote_code=True)
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    print("OUT=" + json.dumps({{"scores": classify(image), "id2label": model.config.id2label,
                               "module": type(model).__module__}}))
    """
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = run_client(code, offline_env(tmp_path), cwd=work, block_lensfm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.split("OUT=")[-1])
    assert out["module"].startswith("transformers_modules.")
    assert {entry["label"] for entry in out["scores"]} == set(LABELS)
    assert out["id2label"] == {"0": "no_sub", "1": "cdm", "2": "axion"}
    scores = {entry["label"]: entry["score"] for entry in out["scores"]}
    assert [scores[name] for name in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.slow  # a subprocess that imports transformers (~9 s each)
def test_pipeline_asks_no_trust_question_with_lensfm_imported(tmp_path):
    folder = tmp_path / "model"
    finetuned_classifier(folder)
    code = f"""
    import numpy as np
    import lensfm_hf
    from transformers import pipeline

    classify = pipeline("image-classification", model={str(folder)!r})
    print("LABELS=" + ",".join(sorted(e["label"] for e in classify(np.ones((16, 16), dtype=np.float32)))))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=offline_env(tmp_path), cwd=tmp_path,
                            input="", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "run the custom code" not in result.stdout + result.stderr
    assert result.stdout.strip().endswith("LABELS=axion,cdm,no_sub")


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


@pytest.mark.slow  # a subprocess that imports transformers per code block (~9 s each)
@pytest.mark.parametrize("kind", ["encoder", "classifier"])
def test_every_code_block_of_a_generated_card_runs_on_its_own(tmp_path, kind):
    """Issues 20.9 and 20.10: the card names a placeholder repo id, install-cache puts the real one in, and then
    each code block of the installed card runs alone, offline, by that repo id."""
    from lensfm_hf.hub import install_cache
    from lensfm_hf.hub.cards import REPO_ID_PLACEHOLDER_OWNER

    folder = tmp_path / "outputs" / kind
    if kind == "classifier":
        finetuned_classifier(folder)
    else:
        torch.manual_seed(0)
        encoder = LensViTModel(make_tiny_config(pretraining=PRETRAINING)).eval()
        results = {"preset": "quick", "results": [{
            "task_type": "image-classification", "dataset_name": "Model 3", "dataset_type": "lensfm/deeplense-sims",
            "metric_type": "roc_auc", "metric_name": "Macro ROC AUC (full fine-tune, mean of 3 seeds)",
            "metric_value": 0.8991, "std": 0.0051}]}
        save_for_hub(encoder, LensImageProcessor(size=16), folder, results=results)
    card = (folder / "README.md").read_text()
    # what the card must state
    assert "torch, transformers, pillow and accelerate" in card
    assert f'repo = "{REPO_ID_PLACEHOLDER_OWNER}/' in card and str(tmp_path) not in card
    assert "{'" not in card and "': " not in card.split("## How to use")[0]  # no Python dicts printed
    if kind == "classifier":
        assert "`0` no_sub, `1` cdm, `2` axion" in card
        assert "300 fine-tuning steps of batch 32 on 270 labelled images" in card
        assert 'pipeline("image-classification"' in card
    else:
        assert "0.8991 ± 0.0051" in card and "mean ± standard deviation" in card
        assert "`quick` benchmark preset" in card and "not a measurement" in card
    env = offline_env(tmp_path)
    repo_id = f"lensfm-test/{kind}"
    snapshot = install_cache(folder, repo_id, cache_dir=tmp_path / "hf_home" / "hub")
    card = (snapshot / "README.md").read_text()
    assert f'# {repo_id}' in card and REPO_ID_PLACEHOLDER_OWNER not in card
    blocks = python_blocks(card)
    assert len(blocks) >= 2, card
    assert any("lensfm_hf.training.PreciseBatchNormCallback" in block for block in blocks)
    for index, block in enumerate(blocks):
        assert f'repo = "{repo_id}"' in block, block
        work = tmp_path / f"run{index}"
        work.mkdir()
        result = subprocess.run([sys.executable, "-c", block], env=env, cwd=work, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"block {index + 1} alone:\n{block}\n{result.stderr[-4000:]}"
        saved = work / "lens-classifier"
        if saved.exists():
            assert REMOTE_FILES | {"preprocessor_config.json"} <= {p.name for p in saved.iterdir()}
            assert json.loads((saved / "config.json").read_text())["id2label"] == {"0": "no_sub", "1": "cdm",
                                                                                   "2": "axion"}
