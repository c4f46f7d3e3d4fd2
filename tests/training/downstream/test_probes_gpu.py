"""Probes and LP-FT fine-tuning with features and models on a CUDA device (marked `gpu`: `python -m pytest -m gpu`)."""

import pytest
import torch

from lensfm_hf.training.downstream.probes import knn_evaluate, linear_probe, ridge_probe

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

NAMES = ["no_sub", "cdm", "axion"]


def test_knn_and_linear_probe_take_gpu_features():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(90) % 3
    features = torch.randn(90, 16, generator=generator) + 6 * torch.nn.functional.one_hot(labels, 16).float()
    train, validation, test = features[:60].cuda(), features[60:75].cuda(), features[75:].cuda()
    probe = linear_probe(train, labels[:60], validation, labels[60:75], test, labels[75:], label_names=NAMES)
    knn = knn_evaluate(train, labels[:60], test, labels[75:], label_names=NAMES)
    for result in (probe, knn):
        assert result["accuracy"] > 0.9 and result["probabilities"].shape == (15, 3)


def test_ridge_probe_takes_features_extracted_on_the_gpu():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(120, 8, generator=generator)
    targets = (features @ torch.linspace(-1, 1, 8)).numpy() - 23.0
    features = features.cuda().cpu()  # what extract_features hands back: CPU float32
    result = ridge_probe(features[:80], targets[:80], features[80:100], targets[80:100], features[100:])
    assert abs(result["predictions"] - targets[100:]).mean() < 0.05


def test_lp_ft_fine_tune_in_bf16_on_the_gpu(tmp_path):
    from lensfm_hf.models import LensViTConfig
    from lensfm_hf.training.downstream.finetune import finetune_task, training_arguments
    from lensfm_hf.training.downstream.splits import TensorSplit

    generator = torch.Generator().manual_seed(0)

    def split(n):
        labels = torch.arange(n) % 3
        images = torch.rand(n, 1, 16, 16, generator=generator) * 0.3 + labels.view(-1, 1, 1, 1) / 3
        return TensorSplit(images, labels, NAMES)

    config = LensViTConfig.from_preset("micro", image_size=16, patch_size=8)
    training = {"max_steps": 6, "eval_steps": 3, "per_device_train_batch_size": 16, "learning_rate": 1e-3, "bf16": True}
    args = training_arguments("classification", training, tmp_path / "run", seed=0, has_validation=True)
    _, result = finetune_task("classification", config, split(48), split(15), split(15), args,
                              head_init="linear_probe")
    assert result["roc_auc"] > 0.9 and result["validation"]["roc_auc"] > 0.9
