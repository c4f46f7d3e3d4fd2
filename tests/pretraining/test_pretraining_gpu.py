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
