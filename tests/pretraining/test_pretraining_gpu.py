"""Every pretraining method on a CUDA device under bf16 autocast (marked `gpu`: `python -m pytest -m gpu`)."""

import pytest
import torch

from lensfm_hf.pretraining import PRETRAINING_METHODS, get_pretraining_classes

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("method", sorted(PRETRAINING_METHODS))
def test_bf16_training_steps_on_the_gpu(method):
    torch.manual_seed(0)
    config_class, model_class = get_pretraining_classes(method)
    config = config_class.from_preset("tiny", image_size=64, patch_size=8)
    model = model_class(config).cuda()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    images = torch.rand(64, 1, 64, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    losses = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(pixel_values=images).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    with torch.no_grad():
        features = model.get_encoder()(images[:4]).last_hidden_state
    assert features.is_cuda and torch.isfinite(features).all()


@pytest.mark.parametrize("method", ["ijepa_physics", "dino"])
def test_gpu_recipe_through_the_cli_on_the_gpu_stream(method, tmp_path):
    """A shipped GPU recipe (bf16, fused AdamW, images simulated on the GPU) through `lensfm pretrain`, few steps."""
    import json
    import math
    from pathlib import Path

    from lensfm_hf.cli import main

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "pretrain" / f"{method}.yaml"
    overrides = [
        f"output_dir={tmp_path}", "max_steps=4", "per_device_train_batch_size=64", "logging_steps=1",
        "disable_tqdm=true", "data.num_eval_images=128", "eval_steps=2", "save_steps=2", "warmup_steps=1",
        "data.stream_compile=true",
    ]
    assert main(["pretrain", str(recipe), *overrides]) == 0
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert any("eval_loss" in entry for entry in state["log_history"])
    assert (tmp_path / "encoder" / "model.safetensors").is_file()
