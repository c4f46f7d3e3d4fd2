"""Model cards for LensViT checkpoints, rendered from `model_cards/model_card.md` with huggingface_hub.

The card's YAML metadata (tags, pipeline tag, datasets, base model, `model-index`) comes from
`ModelCardData`; the `model-index` is built from the results JSON an evaluation run writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..pretraining import hub_spelling, method_display_name
from ..simulation import preset_inputs

# Card templates live in the repo's model_cards/; lensfm_hf/templates links there in a checkout and is a copy in
# an installed wheel (package_data), so this one path works in both.
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


# Keys of one results entry, as EvalResult fields; the first five are required.
REQUIRED_RESULT_KEYS = ("task_type", "dataset_type", "dataset_name", "metric_type", "metric_value")
OPTIONAL_RESULT_KEYS = ("task_name", "dataset_config", "dataset_split", "dataset_revision", "metric_name", "source_url")

# What each benchmark preset is, for the card's "Preset" line: numbers from a smoke test must say so. Its budget
# (steps, images) is stated from the recipe itself (`training.benchmark.report.preset_note`), never written here.
BENCHMARK_PRESETS = {
    "mini": "the test-suite preset (a few steps everywhere): checks the code path, says nothing about the method",
    "quick": "a smoke test of the whole pipeline, not a measurement",
    "study": "the measurement that fits a CPU (about 90 minutes on 2 cores)",
    "full": "the measurement preset (ViT-S, DeepLenseSim-size data, one GPU)",
}
REQUIREMENTS = "torch, transformers, pillow and accelerate (accelerate only for fine-tuning with Trainer)"


HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
# The owner in the repo id a card names when none was given; `lensfm push` and `install-cache` put the real one in.
REPO_ID_PLACEHOLDER_OWNER = "your-username"
# The line of every card code block that names the repo: how push and install-cache find the id to replace.
CARD_REPO_LINE = re.compile(r'^repo = "([^"\n]+)"$', re.MULTILINE)
# Keys of a fine-tuning record that hold a dataset, encoder or recipe location (a hub id or a local path).
LOCATION_KEYS = ("dataset", "encoder", "recipe")


def is_hub_repo_id(name: str | None) -> bool:
    """True for an `ORG/NAME` that is not a local path (only those are valid card metadata)."""
    return bool(name) and bool(HUB_REPO_ID.fullmatch(str(name))) and not Path(str(name)).exists()


def public_name(location: Any) -> str:
    """A dataset / encoder / recipe location as a card may show it: a hub repo id or a relative path (such as
    `recipes/finetune/x.yaml`) as is, an absolute or home path by its last component only (a card never carries a
    path of the machine it was made on)."""
    text = str(location)
    if is_hub_repo_id(text) or not (PurePath(text).is_absolute() or text.startswith("~")):
        return text
    return PurePath(text).name or text


def card_repo_id(repo_id: str | None, name: str) -> str:
    """`repo_id` when it is a hub repo id, else the placeholder `your-username/<name>` (a local folder never)."""
    if is_hub_repo_id(repo_id):
        return str(repo_id)
    slug = re.sub(r"[^\w.-]+", "-", name).strip("-.") or "lens-vit"
    return f"{REPO_ID_PLACEHOLDER_OWNER}/{slug}"


def retarget_card(text: str, repo_id: str) -> str:
    """The card `text` naming `repo_id` wherever it named its own repo (the `repo = "..."` line of its code, the
    title, the model-index name); unchanged when it has no such line or names `repo_id` already."""
    match = CARD_REPO_LINE.search(text)
    if match is None or match.group(1) == repo_id:
        return text
    return text.replace(match.group(1), repo_id)


def load_results(results: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The results JSON (a path or an already-parsed dict) as a dict with a `results` list."""
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"results file {path} does not exist; pass the JSON an evaluation run wrote.")
        results = json.loads(path.read_text())
    if not isinstance(results, Mapping) or not isinstance(results.get("results"), list):
        raise ValueError(
            'results must be a dict (or JSON file) of the form {"model_name": ..., "results": [{...}, ...]}.'
        )
    return dict(results)


def results_to_eval_results(results: str | Path | Mapping[str, Any]) -> list[EvalResult]:
    """Results JSON -> huggingface_hub `EvalResult`s (one per entry), the source of the card's `model-index`.

    Schema (what an evaluation module writes)::

        {"model_name": "lensfm/ijepa-physics",          # optional; names the model-index entry
         "results": [
            {"task_type": "image-classification",       # required: HF task id
             "dataset_name": "DeepLenseSim Model 3",    # required: human-readable
             "dataset_type": "lensfm/deeplense-sims",   # required: dataset repo id
             "dataset_config": "model3",                # optional
             "dataset_split": "test",                   # optional
             "metric_type": "accuracy",                 # required: metric id (accuracy, roc_auc, mse, ...)
             "metric_name": "Accuracy (linear probe)",  # optional: shown on the Hub; say the protocol here
             "metric_value": 0.81,                      # required: a number
             "task_name": ..., "dataset_revision": ..., "source_url": ...},   # optional
            ...]}

    Unknown keys in an entry are ignored, so an evaluator may store extra fields (seed, n_labels) alongside.
    """
    entries = load_results(results)["results"]
    eval_results = []
    for index, entry in enumerate(entries):
        missing = [key for key in REQUIRED_RESULT_KEYS if entry.get(key) is None]
        if missing:
            raise ValueError(f"results entry {index} lacks {missing}; every entry needs {list(REQUIRED_RESULT_KEYS)}.")
        fields = {key: entry[key] for key in REQUIRED_RESULT_KEYS + OPTIONAL_RESULT_KEYS if entry.get(key) is not None}
        eval_results.append(EvalResult(**fields))
    return eval_results


def card_template(name: str = "model_card.md") -> Path:
    """Path of a Jinja card template shipped with the package (`model_card.md`, `dataset_card.md`)."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"card template {name} not found in {TEMPLATES_DIR}; reinstall lensfm-hf (its templates are package data)."
        )
    return path


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return config.to_dict()


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def recipe_line(recipe: Any) -> str | None:
    """A pretraining recipe (a path, or the resolved mapping `config.pretraining["recipe"]`) as one readable line."""
    if not recipe:
        return None
    if not isinstance(recipe, Mapping):
        return f"`{public_name(recipe)}`"
    model, training = dict(recipe.get("model") or {}), dict(recipe.get("training") or {})
    parts = []
    if model.get("preset"):
        size = f" at {model['image_size']} px" if model.get("image_size") else ""
        patch = f", patch {model['patch_size']}" if model.get("patch_size") else ""
        parts.append(f"{model['preset']} ViT{size}{patch}")
    if training.get("max_steps"):
        batch = training.get("per_device_train_batch_size")
        world = training.get("world_size") or 1
        parts.append(f"{training['max_steps']} steps" + (f" of batch {batch * world}" if batch else ""))
    if training.get("learning_rate") is not None:
        parts.append(f"learning rate {_number(training['learning_rate'])}")
    if training.get("bf16"):
        parts.append("bf16")
    name = f"`{recipe['name']}`" if recipe.get("name") else "recipe"
    return f"{name}: " + ", ".join(parts) if parts else name


def data_line(data: Any) -> str | None:
    """A pretraining data record (a path / hub id, or a mapping with source, config, split) as one readable line."""
    if not data:
        return None
    if not isinstance(data, Mapping):
        data = {"source": data}
    source, config, split = data.get("source"), data.get("config"), data.get("split")
    if isinstance(source, str) and source.startswith("stream:"):
        config = source.split(":", 1)[1]
        return f"{config} images simulated on the fly by lensfm_hf's simulator (a fresh batch every step)"
    # a local folder means nothing on the Hub (and names this machine's layout): say what it holds instead
    text = f"`{source}`" if is_hub_repo_id(source) else "a dataset folder simulated with lensfm_hf"
    if config:
        text += f", config `{config}`"
    if split:
        text += f", split `{split}`"
    return text


def pretraining_inputs(data: Any) -> dict[str, Any] | None:
    """What a pretraining data record's images are (`simulation.preset_inputs` of its config: instrument, pixel
    scale, units), for the card's Inputs section; None when the config is not a registered preset."""
    if not data:
        return None
    if not isinstance(data, Mapping):
        data = {"source": data}
    source, config = data.get("source"), data.get("config")
    if isinstance(source, str) and source.startswith("stream:"):
        config = source.split(":", 1)[1]
    return preset_inputs(str(config)) if config else None


def budget_line(pretraining: Mapping[str, Any], finetuning: Mapping[str, Any] | None = None) -> str | None:
    """The training budget: steps x batch = images seen (pretraining), or steps, batch, labelled images
    (fine-tuning)."""
    if finetuning:
        steps, batch, count = finetuning.get("max_steps"), finetuning.get("batch_size"), finetuning.get("num_train")
        if steps and batch:
            return f"{steps} fine-tuning steps of batch {batch}" + (f" on {count} labelled images" if count else "")
    steps, batch = pretraining.get("steps"), pretraining.get("global_batch_size")
    if steps and batch:
        return f"{steps} pretraining steps of batch {batch} ({int(steps) * int(batch):,} images seen)"
    return None


def _default_pipeline_tag(config: dict[str, Any]) -> str:
    architectures = " ".join(config.get("architectures") or [])
    if "ForImageClassification" in architectures:
        return "image-classification"
    if "SuperResolution" in architectures:
        return "image-to-image"
    return "image-feature-extraction"


def render_model_card(
    config: Any = None,
    *,
    repo_id: str | None = None,
    method: str | None = None,
    results: str | Path | Mapping[str, Any] | None = None,
    base_model: str | None = None,
    datasets: str | list[str] | None = None,
    license: str = "apache-2.0",
    pipeline_tag: str | None = None,
    extra_context: Mapping[str, Any] | None = None,
    template_path: str | Path | None = None,
) -> ModelCard:
    """Render the model card of a LensViT checkpoint.

    config: a `LensViTConfig` (or its dict); its `pretraining` dict (method, recipe, data) fills the
    training section and, unless given, `method` and `datasets`. results: results JSON (path or dict,
    schema in `results_to_eval_results`) for the `model-index` and the results table. base_model: the
    encoder repo a fine-tuned model started from. pipeline_tag: default from `config.architectures`.
    extra_context: more template variables (e.g. `num_parameters`, `summary`). template_path: default
    `model_cards/model_card.md`.
    """
    cfg = _config_dict(config)
    pretraining = dict(cfg.get("pretraining") or {})
    method = method or pretraining.get("method")
    if datasets is None:
        data = pretraining.get("dataset") or pretraining.get("data")
        # only a hub repo id ("org/name") is valid card metadata; local paths stay in the recipe section
        if isinstance(data, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", data) and not Path(data).exists():
            datasets = [data]
    datasets = [datasets] if isinstance(datasets, str) else list(datasets or [])
    pipeline_tag = pipeline_tag or _default_pipeline_tag(cfg)

    results_dict = load_results(results) if results is not None else None
    eval_results = results_to_eval_results(results_dict) if results_dict else None
    repo_id = card_repo_id(repo_id, PurePath(str(repo_id)).name if repo_id else f"lens-vit-{method or 'encoder'}")
    model_name = (results_dict or {}).get("model_name") or repo_id

    tags = ["lensfm", "lens_vit", "gravitational-lensing", "strong-lensing", "dark-matter", "astronomy",
            "vision-transformer", "self-supervised"]
    if method:
        tags.append(hub_spelling(method).replace(" ", "-"))
    if base_model:
        tags.append("fine-tuned")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        tags=list(dict.fromkeys(tags)),
        datasets=datasets or None,
        base_model=base_model,
        model_name=model_name if eval_results else None,  # model-index needs it; alone it is noise
        eval_results=eval_results or None,
    )
    extra = dict(extra_context or {})
    finetuning = dict(extra.get("finetuning") or cfg.get("finetuning") or {})
    finetuning.update({key: public_name(finetuning[key]) for key in LOCATION_KEYS if finetuning.get(key)})
    extra["finetuning"] = finetuning
    preset = extra.get("benchmark_preset") or (results_dict or {}).get("preset")
    context = {
        "repo_id": repo_id,
        "requirements": REQUIREMENTS,
        "recipe_line": recipe_line(pretraining.get("recipe")),
        "data_line": data_line(pretraining.get("data") or pretraining.get("dataset")),
        "budget_line": budget_line(pretraining, finetuning),
        "training_inputs": pretraining_inputs(pretraining.get("data") or pretraining.get("dataset")),
        "finetuning": finetuning,
        "benchmark_preset": preset,
        "benchmark_preset_note": BENCHMARK_PRESETS.get(str(preset)) if preset else None,
        "label_names": [str(v) for _, v in sorted((cfg.get("id2label") or {}).items(), key=lambda kv: int(kv[0]))],
        "model_name": model_name,
        "method": method,
        "method_title": method_display_name(method) if method else None,
        "pretraining": pretraining,
        "pretraining_json": json.dumps(pretraining, indent=2, sort_keys=True, default=str) if pretraining else "",
        "config": cfg,
        "results": (results_dict or {}).get("results", []),
        "is_classifier": pipeline_tag == "image-classification" and cfg.get("problem_type") != "regression",
        "image_size": cfg.get("image_size", 64),
    }
    context.update(extra)
    return ModelCard.from_template(card_data, template_path=str(template_path or card_template()), **context)


__all__ = [
    "BENCHMARK_PRESETS", "REPO_ID_PLACEHOLDER_OWNER", "REQUIREMENTS", "budget_line", "card_repo_id", "data_line",
    "is_hub_repo_id", "load_results", "pretraining_inputs", "public_name", "recipe_line", "render_model_card", "results_to_eval_results",
    "retarget_card",
]
