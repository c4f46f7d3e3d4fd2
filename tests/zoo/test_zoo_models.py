"""Every model committed under zoo/: its hashes match provenance.json, it loads with and without lensfm_hf (remote
code), its card's code runs, and a linear probe on freshly simulated Model 3 images gives the card's number.

While zoo/ holds no released model these tests skip with that reason; each committed model is one parameter.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_hub import run_client
from hub_env import offline_env
from safetensors.torch import load_file

from lensfm_hf import LensImageProcessor, LensViTModel
from lensfm_hf.hub.provenance import verify_provenance
from lensfm_hf.hub.zoo import EVAL_RESULTS_JSON, install_zoo_folder, zoo_folders
from lensfm_hf.models.modeling_lens_vit import LensViTPreTrainedModel

# LENSFM_TEST_ZOO points the tests at another zoo folder (to check a release before committing it).
ZOO = Path(os.environ.get("LENSFM_TEST_ZOO") or Path(__file__).resolve().parents[2] / "zoo")
MODELS = [pytest.param(folder, id=folder.name) for folder in zoo_folders(ZOO)] or [pytest.param(
    None, id="none", marks=pytest.mark.skip(reason="zoo/ holds no released model yet (they come from the study: "
                                            "lensfm release results/study)"))]
# The probe's tolerance: 3 standard errors of the difference (the card's spread over seeds and the binomial error of
# the fresh test set), plus 0.03 for a probe trained on fewer images than the benchmark's when the card has no budget
# this small.
PROBE_SIGMAS, SMALLER_SET_ALLOWANCE = 3.0, 0.03
PROBE_TRAIN_PER_CLASS, PROBE_TEST_PER_CLASS, PROBE_SEED = 300, 200, 918_273


@pytest.mark.parametrize("folder", MODELS)
def test_provenance_hashes_match(folder):
    record = verify_provenance(folder)
    assert record["repo_id"].startswith("lensfm/") and record["steps"] > 0 and record["runs"]
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")]


@pytest.mark.parametrize("folder", MODELS)
def test_loads_with_lensfm_and_as_remote_code(folder):
    from transformers import AutoModel

    weights = load_file(str(folder / "model.safetensors"))
    assert {str(t.dtype) for t in weights.values()} == {"torch.float32"}
    for model in (AutoModel.from_pretrained(folder), AutoModel.from_pretrained(folder, trust_remote_code=True)):
        state = model.state_dict()
        ignored = LensViTPreTrainedModel._keys_to_ignore_on_load_unexpected  # iBOT's unused mask token, at most
        assert all(any(re.search(p, name) for p in ignored) for name in set(weights) - set(state))
        assert all(torch.equal(state[name], weights[name]) for name in state)


@pytest.mark.slow  # a fresh interpreter per model (~10 s)
@pytest.mark.parametrize("folder", MODELS)
def test_loads_where_lensfm_is_not_installed(folder, tmp_path):
    from transformers import AutoModel

    images = np.random.default_rng(0).gamma(2.0, 1.0, size=(2, 1, 64, 64)).astype(np.float32)
    processor = LensImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        expected = AutoModel.from_pretrained(folder).eval()(**processor(images, return_tensors="pt")).pooler_output
    np.save(tmp_path / "images.npy", images)
    code = f"""
    import numpy as np, torch
    from transformers import AutoImageProcessor, AutoModel
    images = np.load({str(tmp_path / "images.npy")!r})
    processor = AutoImageProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
    model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
    with torch.no_grad():
        np.save({str(tmp_path / "out.npy")!r}, model(**processor(images, return_tensors="pt")).pooler_output.numpy())
    """
    result = run_client(code, offline_env(tmp_path), cwd=tmp_path, block_lensfm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # the card's blocks (load, embed, a short fine-tune) in a fresh interpreter, offline
@pytest.mark.parametrize("folder", MODELS)
def test_card_code_blocks_run(folder, tmp_path):
    env = offline_env(tmp_path)
    repo_id, _ = install_zoo_folder(folder, cache_dir=Path(env["HF_HOME"]) / "hub")
    card = (folder / "README.md").read_text()
    assert f'repo = "{repo_id}"' in card
    blocks = re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)
    assert blocks
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], env=env, cwd=work, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]


def _linear_probe_entry(folder: Path) -> dict | None:
    """The card's Model 3 linear-probe accuracy: the smallest label budget it reports, else all labels."""
    path = folder / EVAL_RESULTS_JSON
    entries = json.loads(path.read_text())["results"] if path.is_file() else []
    probes = [e for e in entries if e.get("protocol") == "linear" and e.get("dataset_config") == "model3"
              and e.get("metric_type") == "accuracy"]
    numeric = sorted((e for e in probes if str(e.get("label_budget")).isdigit()), key=lambda e: int(e["label_budget"]))
    return (numeric or [e for e in probes if e.get("label_budget") in (None, "all")] or [None])[0]


def _simulated_model3(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from lensfm_hf.simulation import get_recipe, simulate

    recipe = get_recipe("model3")
    images, labels = [], []
    for index, name in enumerate(recipe.class_names):
        images.append(simulate(recipe, name, per_class, seed=seed + index)["pixel_values"])
        labels.append(torch.full((per_class,), index))
    return torch.cat(images), torch.cat(labels)


@pytest.mark.slow  # simulates ~1,500 Model 3 images per model
@pytest.mark.parametrize("folder", MODELS)
def test_linear_probe_reproduces_the_card(folder):
    from lensfm_hf.training.downstream.probes import fit_linear_probe
    from lensfm_hf.training.downstream.splits import train_validation_indices

    entry = _linear_probe_entry(folder)
    if entry is None:
        pytest.skip(f"{folder.name}'s card reports no Model 3 linear-probe accuracy")
    record = verify_provenance(folder)
    evaluated = (record.get("benchmark") or {}).get("evaluated_at_steps")
    if evaluated != record["steps"]:
        pytest.skip(f"{folder.name}: the card's numbers are of step {evaluated}, the weights of step {record['steps']}")
    budget = str(entry.get("label_budget"))
    per_class = int(budget) if budget.isdigit() else PROBE_TRAIN_PER_CLASS
    fewer = not budget.isdigit() and 3 * per_class < int(entry.get("num_train") or 0)
    images, labels = _simulated_model3(2 * per_class + PROBE_TEST_PER_CLASS, PROBE_SEED)
    processor = LensImageProcessor.from_pretrained(folder)
    encoder = LensViTModel.from_pretrained(folder).eval()
    with torch.no_grad():
        features = torch.cat([encoder(**processor(images[i:i + 256].numpy(), return_tensors="pt")).pooler_output
                              for i in range(0, len(images), 256)])
    test = np.concatenate([np.arange(c * len(images) // 3, (c + 1) * len(images) // 3)[-PROBE_TEST_PER_CLASS:]
                           for c in range(3)])
    pool = np.setdiff1d(np.arange(len(images)), test)
    train, validation = train_validation_indices(labels[pool].numpy(), 0.5, 0, labels_per_class=per_class)
    train, validation = pool[train], pool[validation]
    probe = fit_linear_probe(features[train], labels[train], features[validation], labels[validation],
                             label_names=["no_sub", "cdm", "axion"])
    accuracy = float((probe.probabilities(features[test]).argmax(-1) == labels[test]).float().mean())
    card = float(entry["metric_value"])
    tolerance = PROBE_SIGMAS * math.sqrt(float(entry.get("std") or 0.0) ** 2 + card * (1 - card) / len(test))
    tolerance += SMALLER_SET_ALLOWANCE if fewer else 0.0
    assert abs(accuracy - card) <= tolerance, (
        f"{folder.name}: linear probe {accuracy:.3f} on fresh Model 3 images, the card says {card:.3f} "
        f"(tolerance {tolerance:.3f})"
    )
