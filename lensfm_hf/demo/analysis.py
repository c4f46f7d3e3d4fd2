"""What the demo shows of one image: the processor's input, a classifier's probabilities, the encoder's attention map
and embedding (beside reference images of each class, projected to 2-D), and for the physics-informed I-JEPA the
inferred lens, its rendered smooth lens and the residual. Models load once per name (`load_encoder`,
`load_classifier`); a folder that is not a model raises `DemoInputError`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)

from ..models import minmax_normalize
from ..simulation import get_recipe, simulate
from ..training.evaluation import BRANCH_TRUTH_COLUMNS
from .inputs import DemoInputError

PHYSICS_METHOD = "ijepa_physics"
REFERENCE_SEED = 20_260_000  # reference images: a fixed seed, far from the seeds users pick


@dataclass
class Encoder:
    """A zoo encoder, its processor and, for the physics-informed I-JEPA, its whole pretraining model."""

    name: str
    model: Any
    processor: Any
    method: str
    physics: Any = None


@dataclass
class Analysis:
    """Everything the page shows of one image with one encoder (and optionally one classifier)."""

    processed: np.ndarray  # (S, S) the processor's output, what the encoder sees
    attention: np.ndarray  # (S, S) attention map, upsampled, in [0, 1]
    embedding: np.ndarray  # (D,)
    probabilities: dict[str, float] = field(default_factory=dict)
    parameters: list[dict[str, Any]] = field(default_factory=list)  # inferred lens beside the truth
    render: np.ndarray | None = None  # (S, S) smooth lens, min-max convention
    residual: np.ndarray | None = None  # (S, S) processed image (min-max) minus render
    residual_energy: float | None = None  # sum of squared residual pixels
    image_energy: float | None = None  # sum of squared pixels of the min-max processed image


def _refuse(name: str, what: str, err: Exception) -> DemoInputError:
    return DemoInputError(f"{name}: not {what} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); pick a "
                          f"folder written by {'lensfm finetune' if what == 'a classifier' else 'lensfm zoo'}.")


@functools.lru_cache(maxsize=16)
def load_encoder(name: str) -> Encoder:
    """The encoder `name` (a hub id such as `lensfm/simclr`, or an encoder folder), with its physics branch."""
    try:
        model = AutoModel.from_pretrained(name).eval()
        processor = AutoImageProcessor.from_pretrained(name)
    except Exception as err:  # noqa: BLE001  any failure to load is the user's pick, shown in the page
        raise _refuse(name, "an encoder", err) from None
    method = str((getattr(model.config, "pretraining", None) or {}).get("method", "random_init"))
    physics = None
    if method == PHYSICS_METHOD:
        try:
            physics = AutoModelForPreTraining.from_pretrained(name, subfolder="pretraining").eval()
        except Exception:  # noqa: BLE001  the encoder still works without its pretraining state
            physics = None
    return Encoder(name, model, processor, method, physics)


@functools.lru_cache(maxsize=16)
def load_classifier(folder: str) -> tuple[Any, Any]:
    """(model, processor) of a fine-tuned classifier folder (`lensfm finetune`)."""
    try:
        model = AutoModelForImageClassification.from_pretrained(folder).eval()
        processor = AutoImageProcessor.from_pretrained(folder)
    except Exception as err:  # noqa: BLE001
        raise _refuse(folder, "a classifier", err) from None
    return model, processor


def _attention_map(attentions: tuple, prefix: int, size: int) -> np.ndarray:
    """Last layer's attention, mean over heads: from the CLS token, or received by each patch; (size, size)."""
    last = attentions[-1][0].mean(0)  # (N, N)
    weights = last[0, prefix:] if prefix else last[:, :].mean(0)
    grid = round(weights.numel() ** 0.5)
    amap = weights.reshape(1, 1, grid, grid)
    amap = F.interpolate(amap, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    return minmax_normalize(amap[None, None])[0, 0].numpy()


@torch.no_grad()
def embed(encoder: Encoder, images: torch.Tensor, output_attentions: bool = False):
    """Pooled embeddings (B, D) of raw images (B, 1, H, W), with the model output."""
    pixel_values = encoder.processor(images, return_tensors="pt")["pixel_values"]
    outputs = encoder.model(pixel_values, output_attentions=output_attentions)
    return pixel_values, outputs


@functools.lru_cache(maxsize=8)
def reference_images(recipe: str, per_class: int) -> tuple[tuple[torch.Tensor, ...], tuple[str, ...]]:
    """`per_class` simulated raw images (per_class, 1, H, W) of each class of `recipe` (fixed seed), and the classes;
    simulated once per config and shared by every encoder."""
    classes = tuple(get_recipe(recipe).class_names)
    return tuple(simulate(recipe, name, per_class, seed=REFERENCE_SEED)["pixel_values"] for name in classes), classes


@functools.lru_cache(maxsize=16)
def reference_embeddings(name: str, recipe: str, per_class: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(embeddings (N, D), labels (N,), class names) of the reference images of `recipe` through encoder `name`."""
    encoder = load_encoder(name)
    images, classes = reference_images(recipe, per_class)
    embeddings = [torch.cat([embed(encoder, chunk)[1].pooler_output for chunk in batch.split(256)]) for batch in images]
    labels = np.concatenate([np.full(len(batch), index) for index, batch in enumerate(images)])
    return torch.cat(embeddings).numpy(), labels, classes


def project(references: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA of the reference embeddings, and `point` (D,) in the same projection."""
    pca = PCA(n_components=2, random_state=0).fit(references)
    return pca.transform(references), pca.transform(point[None])[0]


@torch.no_grad()
def _physics(encoder: Encoder, pixel_values: torch.Tensor, truth: dict[str, float] | None) -> dict[str, Any]:
    model = encoder.physics
    parameters = model.predict_lens_parameters(pixel_values)
    render = model.render(parameters, pixel_values.shape[-1])[0, 0]
    observed = minmax_normalize(pixel_values.float())[0, 0]
    residual = observed - render
    rows = []
    for name, value in parameters.items():
        column, unit = BRANCH_TRUTH_COLUMNS.get(name, (name, ""))
        true_value = (truth or {}).get(column)
        rows.append({"parameter": name, "unit": unit, "inferred": round(float(value[0]), 4),
                     "truth": None if true_value is None else round(true_value, 4)})
    return {"parameters": rows, "render": render.numpy(), "residual": residual.numpy(),
            "residual_energy": float(residual.square().sum()), "image_energy": float(observed.square().sum())}


def analyse(image: np.ndarray, encoder: Encoder, classifier: tuple[Any, Any] | None = None,
            truth: dict[str, float] | None = None) -> Analysis:
    """Run every view of one checked (H, W) image (`inputs.check_image`) through `encoder` (and `classifier`)."""
    raw = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    pixel_values, outputs = embed(encoder, raw, output_attentions=True)
    size = pixel_values.shape[-1]
    prefix = 1 if getattr(encoder.model.config, "use_cls_token", False) else 0
    result = Analysis(
        processed=pixel_values[0, 0].numpy(),
        attention=_attention_map(outputs.attentions, prefix, size),
        embedding=outputs.pooler_output[0].numpy(),
    )
    if classifier is not None:
        model, processor = classifier
        with torch.no_grad():
            logits = model(processor(raw, return_tensors="pt")["pixel_values"]).logits[0]
        probs = logits.float().softmax(-1)
        result.probabilities = {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}
    if encoder.physics is not None:
        physics = _physics(encoder, pixel_values, truth)
        result.parameters, result.render, result.residual = physics["parameters"], physics["render"], physics["residual"]
        result.residual_energy, result.image_energy = physics["residual_energy"], physics["image_energy"]
    return result


__all__ = ["Analysis", "Encoder", "analyse", "embed", "load_classifier", "load_encoder", "project",
           "reference_embeddings"]
