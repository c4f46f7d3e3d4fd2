"""The benchmark's encoders: the simulated data, one pretrained encoder per method (reused when finished), the
random-init baseline, and what is measured of each encoder itself (representation health, physics recovery)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForPreTraining

from ...data.build import simulate_dataset
from ...models import LensImageProcessor, LensViTConfig, LensViTModel
from ..downstream.finetune import architecture_of, backbone_config
from ..evaluation import method_evaluation
from ..health import encoder_health, warn_if_collapsed, warn_if_not_learning
from ..pretrain.run import run_pretraining
from ..downstream.plots import plot_parameter_recovery
from ..downstream.probes import load_encoder
from ..records import settings_key
from ..downstream.splits import load_processor
from .markers import encoder_marker, encoder_ready, file_fingerprint, mark_encoder_ready
from .recipe import BASELINES, RANDOM_INIT, BenchmarkRecipe, encoder_method, pretrain_overrides, pretrain_recipe_path

logger = logging.getLogger(__name__)

def device_of(recipe: BenchmarkRecipe) -> torch.device:
    """`benchmark.device`, or cuda when present, else cpu."""
    if recipe.benchmark.device:
        return torch.device(recipe.benchmark.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_benchmark_data(recipe: BenchmarkRecipe) -> str:
    """The dataset folder / hub id holding the pretraining config and every evaluation's config (simulated once
    into `<root>/data`, then reused)."""
    data = recipe.data
    if data.dataset is not None:
        return data.dataset
    folder = recipe.root / "data"
    device = data.simulation_device
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("simulation_device=%s but no CUDA device is available: simulating on the CPU.", device)
        device = "cpu"
    # One folder per config: an evaluated config at the evaluation's counts (pretraining then reads its train
    # split); the pretraining set alone only when pretraining reads a folder, not the stream.
    plan = {}
    if recipe.pretrain.data_source != "stream":
        plan[data.pretrain_config] = (data.pretrain_train_per_class, 0)
    for config in dict.fromkeys(evaluation.config for evaluation in recipe.evaluations):
        plan[config] = (data.finetune_train_per_class, data.finetune_test_per_class)
    for config, (train_per_class, test_per_class) in plan.items():
        simulate_dataset(folder, config=config, train_per_class=train_per_class, test_per_class=test_per_class,
                         seed=data.seed, device=device)
    return str(folder)


def ensure_encoder(recipe: BenchmarkRecipe, name: str, data_path: str) -> dict[str, Any]:
    """Pretrain encoder `name` (a method, or a repeat `<method>@seed<N>` of it) unless `<root>/pretrain/<name>/encoder`
    already holds a finished encoder."""
    method = encoder_method(name)
    encoder_dir = recipe.root / "pretrain" / name / "encoder"
    if encoder_ready(encoder_dir):
        return {"encoder_dir": str(encoder_dir), "reused": True}
    if encoder_dir.exists():
        logger.warning("%s has no completion marker %s (or it no longer matches the weights): pretraining %s again.",
                       encoder_dir, encoder_marker(encoder_dir).name, method)
    encoder_marker(encoder_dir).unlink(missing_ok=True)
    recipe_path = pretrain_recipe_path(recipe, method)
    if not recipe_path.is_file():
        raise FileNotFoundError(f"no pretraining recipe {recipe_path} for method {method!r}")
    overrides = pretrain_overrides(recipe, name, data_path)  # refuses a recipe that names another method
    start = time.perf_counter()
    result = run_pretraining(str(recipe_path), overrides=overrides)
    exported = Path(result.get("encoder_dir", encoder_dir))
    mark_encoder_ready(exported, method=method, global_step=result.get("global_step"))  # last: the export is whole
    return {
        "encoder_dir": str(exported),
        "reused": False,
        "recipe": str(recipe_path),
        "runtime_s": time.perf_counter() - start,
        "global_step": result.get("global_step"),
        "train_loss": result.get("train_loss"),
    }


def random_encoder(config: LensViTConfig, seed: int) -> LensViTModel:
    """A randomly initialised encoder of `config`'s architecture (seeded): the random-init baseline."""
    torch.manual_seed(seed)
    return LensViTModel(architecture_of(config)).eval()


def benchmark_processor(recipe: BenchmarkRecipe, image_size: int) -> LensImageProcessor:
    """The processor of the rows trained from scratch: the benchmark's stretch, per-image min-max, `image_size`."""
    return LensImageProcessor(stretch=recipe.model.stretch, stretch_scale=recipe.model.stretch_scale, size=image_size)


def pretrained_processor(recipe: BenchmarkRecipe, encoder_dir: str, image_size: int) -> LensImageProcessor:
    """The encoder's saved processor, refused when its stretch is not the benchmark's (a reused encoder pretrained
    under another `model.stretch` would be compared on other pixels than the rows trained from scratch)."""
    processor = load_processor(encoder_dir, image_size)
    wanted = (recipe.model.stretch, float(recipe.model.stretch_scale))
    if (processor.stretch, float(processor.stretch_scale)) != wanted:
        raise ValueError(
            f"{encoder_dir} was pretrained with stretch={processor.stretch!r}, stretch_scale={processor.stretch_scale} "
            f"but this benchmark sets model.stretch={wanted[0]!r}, model.stretch_scale={wanted[1]}: delete that "
            f"encoder folder to pretrain it again, or run with the encoder's stretch."
        )
    return processor


def config_fingerprint(config: LensViTConfig) -> str:
    """The random init's identity in a cell's key: the config fields that differ from LensViTConfig's defaults, so
    a field added later at its default (which builds the same network) leaves the key, and the cells, as they were."""
    defaults = type(config)().to_dict()
    changed = {key: value for key, value in config.to_dict().items()
               if key != "transformers_version" and (key not in defaults or defaults[key] != value)}
    return settings_key(changed)


def encoder_specs(recipe: BenchmarkRecipe, encoders: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the cells need of each encoder: name, folder (None for the random init), config, image processor (its
    saved one, at its image size), fingerprint, and the set it was pretrained on. The random-init baseline takes exactly the pretrained encoders' architecture."""
    specs = []
    for method, info in encoders.items():
        config = LensViTConfig.from_pretrained(info["encoder_dir"])
        specs.append({
            "name": method, "random": False, "encoder_dir": info["encoder_dir"], "config": config,
            "processor": pretrained_processor(recipe, info["encoder_dir"], config.image_size),
            "fingerprint": file_fingerprint(info["encoder_dir"]), "pretraining_set": recipe.data.pretrain_config,
        })
    extra = [supervised_spec(recipe, name) for name in recipe.benchmark.baselines
             if BASELINES[name].kind == "supervised"]
    if RANDOM_INIT not in recipe.benchmark.baselines:
        return specs + extra
    if specs:
        # The shared backbone: a method without per-method overrides (e.g. MAE's mean pooling) if there is one.
        plain = [s for s in specs if not (recipe.pretrain.method_overrides or {}).get(encoder_method(s["name"]))]
        reference = (plain or specs)[0]["config"]
    else:
        reference = backbone_config(
            recipe.model.preset, recipe.model.image_size, recipe.model.patch_size,
            patch_embedding_type=recipe.model.patch_embedding_type,
            position_embedding_type=recipe.model.position_embedding_type,
        )
    config = architecture_of(reference)
    specs.append({"name": RANDOM_INIT, "random": True, "encoder_dir": None, "config": config,
                  "processor": benchmark_processor(recipe, config.image_size),
                  "fingerprint": config_fingerprint(config), "pretraining_set": "none"})
    return specs + extra


def supervised_spec(recipe: BenchmarkRecipe, name: str) -> dict[str, Any]:
    """A supervised baseline's row (ResNet-18, RCAN-lite): its backbone trained from scratch by every fine-tune cell,
    on the same processed images as the ViT rows (the benchmark's image size, the random init's processor). No
    encoder is measured of it (`supervised`)."""
    config = BASELINES[name].backbone(recipe.model.image_size)
    return {"name": name, "random": True, "supervised": True, "encoder_dir": None, "config": config,
            "processor": benchmark_processor(recipe, config.image_size),
            "fingerprint": settings_key(config.to_dict()), "pretraining_set": "none"}


def spec_encoder(spec: Mapping[str, Any], seed: int) -> LensViTModel:
    """The encoder of a spec in eval mode: loaded, or drawn with `seed` for the random init."""
    return random_encoder(spec["config"], seed) if spec["random"] else load_encoder(spec["encoder_dir"])


def benchmark_health(recipe: BenchmarkRecipe, spec: Mapping[str, Any], images: torch.Tensor, where: str) -> dict:
    """Representation health of one encoder on `images` (the same test images for every encoder; seed 0 for the
    random init), with the teacher entropy its pretraining logged (DINO, iBOT) and, under `learning`, its objective
    against the trivial value at the end of pretraining (None for the random init and older encoders)."""
    seed = recipe.benchmark.seeds[0] if recipe.benchmark.seeds else 0
    pretraining = {} if spec["random"] else spec["config"].pretraining or {}
    logged = pretraining.get("health") or {}
    health = encoder_health(
        spec_encoder(spec, seed).to(device_of(recipe)), images,
        teacher_entropy=logged.get("teacher_entropy"), teacher_entropy_max=logged.get("teacher_entropy_max"),
    ).to_dict()
    health["images"] = f"{where}, {len(images)} images"
    health["learning"] = pretraining.get("learning")
    warn_if_collapsed(health, spec["name"])
    warn_if_not_learning(health["learning"], spec["name"])
    return health


def physics_recovery(spec: Mapping[str, Any], plot_dir: Path | None = None, per_class: int = 100) -> dict | None:
    """What the encoder's method measures of its own pretrained model (`evaluation.method_evaluation`): for the
    physics-informed I-JEPA, how well its physics branch recovers each parameter the simulator varies, against the
    image-independent guess, on fresh held-out images (`plot_dir/physics_recovery_<name>.png`: predicted against
    true); None for methods without a measurement and for the random init."""
    state = Path(spec["encoder_dir"] or "") / "pretraining"
    if spec["random"] or not (state / "config.json").is_file():
        return None
    model = AutoModelForPreTraining.from_pretrained(str(state))
    measured = method_evaluation(model, per_class=per_class, keep_predictions=plot_dir is not None)
    predictions = (measured or {}).pop("predictions", None)
    if predictions:
        path = Path(plot_dir) / f"physics_recovery_{spec['name']}.png"
        plot_parameter_recovery({**measured, "predictions": predictions}, path, title=(
            f"{spec['name']}: physics branch on {measured['num_images']} held-out "
            f"{getattr(model.config, 'data_recipe', '')} images, predicted against true"))
        measured["plot"] = path.name
    return measured


__all__ = [
    "benchmark_health",
    "config_fingerprint",
    "device_of",
    "encoder_specs",
    "ensure_encoder",
    "physics_recovery",
    "prepare_benchmark_data",
    "pretrain_overrides",
    "random_encoder",
    "supervised_spec",
    "spec_encoder",
]
