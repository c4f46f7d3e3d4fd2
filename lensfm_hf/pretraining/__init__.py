"""Self-supervised pretraining methods for LensViT: MAE, SimCLR, MoCo v3, DINO, iBOT, I-JEPA, physics-informed I-JEPA.

Each method is a `<Method>Config` + `<Method>ForPreTraining` (a PreTrainedModel whose forward builds its own
views/masks and returns the loss), registered with AutoConfig and AutoModelForPreTraining on import.
"""

from transformers import AutoConfig, AutoModelForPreTraining

from .base import LensPretrainingConfig, LensPretrainingModel
from .dino import LensDINOConfig, LensDINOForPreTraining
from .ibot import LensIBOTConfig, LensIBOTForPreTraining
from .ijepa import LensIJEPAConfig, LensIJEPAForPreTraining, LensIJEPAPredictor
from .ijepa_physics import LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining
from .mae import LensMAEConfig, LensMAEForPreTraining
from .moco import LensMoCoConfig, LensMoCoForPreTraining
from .simclr import LensSimCLRConfig, LensSimCLRForPreTraining
from .views import ViewConfig, make_views

PRETRAINING_METHODS: dict[str, tuple[type[LensPretrainingConfig], type[LensPretrainingModel]]] = {
    "mae": (LensMAEConfig, LensMAEForPreTraining),
    "simclr": (LensSimCLRConfig, LensSimCLRForPreTraining),
    "moco": (LensMoCoConfig, LensMoCoForPreTraining),
    "dino": (LensDINOConfig, LensDINOForPreTraining),
    "ibot": (LensIBOTConfig, LensIBOTForPreTraining),
    "ijepa": (LensIJEPAConfig, LensIJEPAForPreTraining),
    "ijepa_physics": (LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining),
}


def get_pretraining_classes(method: str) -> tuple[type[LensPretrainingConfig], type[LensPretrainingModel]]:
    """(ConfigClass, ModelClass) of a pretraining method by its name, e.g. `get_pretraining_classes("dino")`."""
    try:
        return PRETRAINING_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown pretraining method {method!r}; choose one of {sorted(PRETRAINING_METHODS)}."
        ) from None


def method_display_name(method: str) -> str:
    """The name tables, plots and cards give a method (its config's `display_name`); unknown names pass through."""
    classes = PRETRAINING_METHODS.get(method)
    return classes[0].display_name if classes else method


def _register_auto_classes() -> None:
    for config_class, model_class in PRETRAINING_METHODS.values():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForPreTraining.register(config_class, model_class, exist_ok=True)


_register_auto_classes()

__all__ = [
    "PRETRAINING_METHODS",
    "LensDINOConfig",
    "LensDINOForPreTraining",
    "LensIBOTConfig",
    "LensIBOTForPreTraining",
    "LensIJEPAConfig",
    "LensIJEPAForPreTraining",
    "LensIJEPAPredictor",
    "LensPhysicsIJEPAConfig",
    "LensPhysicsIJEPAForPreTraining",
    "LensMAEConfig",
    "LensMAEForPreTraining",
    "LensMoCoConfig",
    "LensMoCoForPreTraining",
    "LensPretrainingConfig",
    "LensPretrainingModel",
    "LensSimCLRConfig",
    "LensSimCLRForPreTraining",
    "ViewConfig",
    "get_pretraining_classes",
    "method_display_name",
    "make_views",
]
