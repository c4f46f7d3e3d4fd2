"""save_for_hub: the folder's files, its auto_map, and loading it as remote code where lensfm_hf is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_hub import run_client
from safetensors.numpy import load_file

import lensfm_hf
from lensfm_hf import LensViTForImageSuperResolution
from lensfm_hf.hub import save_for_hub

MODELS_DIR = Path(lensfm_hf.__file__).parent / "models"
EXPECTED_AUTO_MAP = {
    "AutoConfig": "configuration_lens_vit.LensViTConfig",
    "AutoModel": "modeling_lens_vit.LensViTModel",
    "AutoModelForImageClassification": "modeling_lens_vit.LensViTForImageClassification",
    "AutoModelForImageToImage": "modeling_lens_vit.LensViTForImageSuperResolution",
}
REMOTE_FILES = ["configuration_lens_vit.py", "image_processing_lens_vit.py", "modeling_lens_vit.py"]


@pytest.mark.parametrize("kind", ["encoder", "classifier"])
def test_folder_has_everything(exported, kind):
    folder = exported / kind
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", *REMOTE_FILES} <= {
        p.name for p in folder.iterdir()
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == EXPECTED_AUTO_MAP  # the full map, whichever class was saved
    assert config["model_type"] == "lens_vit"
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_lens_vit.LensImageProcessor"}
    assert processor["stretch"] == "asinh"
    for name in REMOTE_FILES:  # copied verbatim from the package
        assert (folder / name).read_text() == (MODELS_DIR / name).read_text()
    assert not (folder / "__init__.py").exists()
    assert "trust_remote_code=True" in (folder / "README.md").read_text()


def test_given_card_default_processor_and_wrong_model(tiny_config, tmp_path):
    model = LensViTForImageSuperResolution(tiny_config())
    folder = save_for_hub(model, None, tmp_path / "sr", card="# my card\n")
    assert (folder / "README.md").read_text() == "# my card\n"
    assert json.loads((folder / "preprocessor_config.json").read_text())["image_processor_type"] == "LensImageProcessor"
    assert json.loads((folder / "config.json").read_text())["auto_map"] == EXPECTED_AUTO_MAP
    with pytest.raises(ValueError, match="LensViT"):
        save_for_hub(torch.nn.Linear(2, 2), None, tmp_path / "linear")
    with pytest.raises(ValueError, match="LensImageProcessor"):
        save_for_hub(model, object(), tmp_path / "wrong_processor")
    assert not (tmp_path / "linear").exists() and not (tmp_path / "wrong_processor").exists()


def test_remote_code_loads_without_lensfm(auto_image_processor_usable, exported, fake_hub_env, tmp_path):
    # A user without our package: lensfm_hf refused on import, classes come from transformers_modules.
    env = {k: v for k, v in fake_hub_env.items() if k != "PYTHONPATH"}
    code = f"""
    import json
    import torch
    from safetensors.numpy import load_file, save_file
    from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification,
                              AutoModelForImageToImage)

    root = {str(exported)!r}
    enc, clf = root + "/encoder", root + "/classifier"
    ref = load_file(root + "/reference.safetensors")
    loaded = {{
        "config": AutoConfig.from_pretrained(enc, trust_remote_code=True),
        "encoder": AutoModel.from_pretrained(enc, trust_remote_code=True),
        "classifier": AutoModelForImageClassification.from_pretrained(clf, trust_remote_code=True),
        "classifier_body": AutoModel.from_pretrained(clf, trust_remote_code=True),
        "new_head": AutoModelForImageClassification.from_pretrained(enc, trust_remote_code=True, num_labels=2),
        "super_resolution": AutoModelForImageToImage.from_pretrained(enc, trust_remote_code=True),
    }}
    out = {{}}
    if {auto_image_processor_usable}:  # transformers 5.17 without torchvision has no AutoImageProcessor
        loaded["processor"] = AutoImageProcessor.from_pretrained(enc, trust_remote_code=True)
        out["pixel_values"] = loaded["processor"](ref["images"], return_tensors="pt")["pixel_values"]
    pixel_values = torch.from_numpy(ref["pixel_values"])
    with torch.no_grad():
        out.update({{
            "encoder_pooler": loaded["encoder"](pixel_values).pooler_output,
            "encoder_hidden": loaded["encoder"](pixel_values).last_hidden_state,
            "classifier_logits": loaded["classifier"](pixel_values).logits,
            "classifier_pooler": loaded["classifier_body"](pixel_values).pooler_output,
            "new_head_logits": loaded["new_head"](pixel_values).logits,
            "reconstruction": loaded["super_resolution"](pixel_values).reconstruction,
        }})
    save_file({{k: v.numpy() for k, v in out.items()}}, {str(tmp_path / "out.safetensors")!r})
    print("MODULES=" + json.dumps({{name: type(obj).__module__ for name, obj in loaded.items()}}))
    """
    result = run_client(code, env, cwd=tmp_path, block_lensfm=True)
    assert result.returncode == 0, result.stderr[-4000:]
    modules = json.loads(result.stdout.split("MODULES=")[-1])
    assert all(module.startswith("transformers_modules.") for module in modules.values()), modules

    ref, out = load_file(str(exported / "reference.safetensors")), load_file(str(tmp_path / "out.safetensors"))
    keys = ["encoder_pooler", "encoder_hidden", "classifier_logits", "classifier_pooler"]
    if auto_image_processor_usable:
        assert "processor" in modules
        keys.append("pixel_values")
    for key in keys:
        torch.testing.assert_close(torch.from_numpy(out[key]), torch.from_numpy(ref[key]), msg=key)
    assert out["new_head_logits"].shape == (3, 2)
    assert out["reconstruction"].shape == (3, 1, 32, 32) and np.isfinite(out["reconstruction"]).all()


def test_an_export_that_fails_midway_keeps_the_previous_folder_whole(tiny_config, tmp_path, monkeypatch):
    """Issue 21 item 1: a killed export left a new config.json beside the old weights of another size."""
    from lensfm_hf import LensImageProcessor, LensViTModel

    folder = save_for_hub(LensViTModel(tiny_config()), None, tmp_path / "encoder")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    bigger = LensViTModel(tiny_config(hidden_size=64, intermediate_size=128))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(LensImageProcessor, "save_pretrained", fail)  # after config.json and weights are written
    with pytest.raises(OSError, match="disk full"):
        save_for_hub(bigger, None, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["encoder"]  # no staging folder left behind
