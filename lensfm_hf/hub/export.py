"""Write a LensViT model, its processor, card and remote code as a hub-ready folder.

The folder loads with `AutoModel`, `AutoModelForImageClassification`, `AutoModelForImageToImage`
and `AutoImageProcessor` (`trust_remote_code=True`) where `lensfm_hf` is not installed: the flat
files of `lensfm_hf/models/` are copied next to the weights and `auto_map` names every class.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard
from transformers import PreTrainedModel
from transformers.dynamic_module_utils import get_imports

from ..files import staged_folder
from ..models import LensImageProcessor, LensViTConfig
from .cards import render_model_card

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
REMOTE_CODE_PATTERNS = ("configuration_*.py", "modeling_*.py", "image_processing_*.py")

# Every Auto class a LensViT checkpoint must load with, whichever class was saved; head <-> encoder
# loading works through base_model_prefix, so one checkpoint serves all of them.
MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_lens_vit.LensViTConfig",
    "AutoModel": "modeling_lens_vit.LensViTModel",
    "AutoModelForImageClassification": "modeling_lens_vit.LensViTForImageClassification",
    "AutoModelForImageToImage": "modeling_lens_vit.LensViTForImageSuperResolution",
}
PROCESSOR_AUTO_MAP = {"AutoImageProcessor": "image_processing_lens_vit.LensImageProcessor"}


def remote_code_files(models_dir: str | Path = MODELS_DIR) -> list[Path]:
    """The flat modules of `models_dir` that go to the hub as remote code (no `__init__.py`)."""
    files = sorted({p for pattern in REMOTE_CODE_PATTERNS for p in Path(models_dir).glob(pattern)})
    for path in files:
        # check_imports would only fail on a machine without lensfm_hf, i.e. the user's; fail here instead.
        if "lensfm_hf" in get_imports(path):
            raise ValueError(
                f"{path} imports lensfm_hf; remote-code files may import only torch, transformers and their "
                "siblings (relatively, `from .configuration_lens_vit import ...`)."
            )
    return files


def _update_json(path: Path, **updates) -> None:
    data = json.loads(path.read_text())
    data.update(updates)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_for_hub(
    model: PreTrainedModel,
    processor: LensImageProcessor | None,
    out_dir: str | Path,
    card: ModelCard | str | None = None,
    *,
    repo_id: str | None = None,
    results: str | Path | Mapping[str, Any] | None = None,
) -> Path:
    """Write `config.json` (full `auto_map`), `model.safetensors`, `preprocessor_config.json`, the remote-code
    files and `README.md` to `out_dir`; return it. The folder is written beside `out_dir` and swapped in whole
    (`files.staged_folder`), so it never holds a config and weights of two runs.

    model: any LensViT model (encoder or head). processor: a `LensImageProcessor` (None: one with default
    settings). card: a `ModelCard` or markdown string; by default one is rendered from the config with
    `repo_id` (for the usage snippet) and `results` (results JSON, see `cards.results_to_eval_results`).
    """
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != LensViTConfig.model_type:
        raise ValueError(
            f"save_for_hub exports LensViT models (model_type 'lens_vit'), got {type(model).__name__}; "
            "for a <Method>ForPreTraining model, export its encoder (a LensViTModel) and save the full "
            "pretraining state in the `pretraining/` subfolder with save_pretrained."
        )
    processor = processor if processor is not None else LensImageProcessor()
    if type(processor).__name__ != "LensImageProcessor":  # by name: a remote-code copy of the class is fine too
        raise ValueError(f"save_for_hub needs a LensImageProcessor (or None), got {type(processor).__name__}.")
    with staged_folder(out_dir) as staging:  # a kill or error keeps the previous export whole
        _write_folder(model, processor, staging, card, repo_id, results)
    return Path(out_dir)


def _write_folder(model: PreTrainedModel, processor: LensImageProcessor, out_dir: Path,
                  card: ModelCard | str | None, repo_id: str | None, results: Any) -> None:
    """The files of `save_for_hub`, written into `out_dir` (its staging folder)."""
    config = model.config
    model.save_pretrained(out_dir)
    _update_json(out_dir / "config.json", auto_map=MODEL_AUTO_MAP)
    processor.save_pretrained(out_dir)
    _update_json(out_dir / "preprocessor_config.json", auto_map=PROCESSOR_AUTO_MAP)

    for path in remote_code_files():
        shutil.copyfile(path, out_dir / path.name)

    if card is None:
        card = render_model_card(
            config, repo_id=repo_id, results=results, extra_context={"num_parameters": model.num_parameters()}
        )
    (out_dir / "README.md").write_text(str(card) if isinstance(card, ModelCard) else card, encoding="utf-8")


__all__ = ["MODEL_AUTO_MAP", "PROCESSOR_AUTO_MAP", "remote_code_files", "save_for_hub"]
