"""Self-supervised pretraining methods for LensViT: MAE, SimCLR, MoCo v3, DINO, iBOT, I-JEPA, physics-informed I-JEPA.

Each method is a `<Method>Config` + `<Method>ForPreTraining` (a PreTrainedModel whose forward builds its own
views/masks and returns the loss); defining the model class registers it (`registry.py`), Auto* classes included.
"""

# isort: off
# Importing a method registers it: the import order below is the registry's, hence the tables' row order.
from .mae import LensMAEConfig, LensMAEForPreTraining
from .simclr import LensSimCLRConfig, LensSimCLRForPreTraining
from .moco import LensMoCoConfig, LensMoCoForPreTraining
from .dino import LensDINOConfig, LensDINOForPreTraining
from .ibot import LensIBOTConfig, LensIBOTForPreTraining
from .ijepa import LensIJEPAConfig, LensIJEPAForPreTraining, LensIJEPAPredictor
from .ijepa_physics import LensPhysicsIJEPAConfig, LensPhysicsIJEPAForPreTraining
# isort: on
from .base import LensPretrainingConfig, LensPretrainingModel
from .registry import (
    PRETRAINING_METHODS,
    ZOO_ORG,
    get_pretraining_classes,
    hub_spelling,
    method_aliases,
    method_display_name,
    resolve_method,
    zoo_repo_id,
)
from .views import ViewConfig, make_views

__all__ = [
    "PRETRAINING_METHODS",
    "ZOO_ORG",
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
    "hub_spelling",
    "method_aliases",
    "method_display_name",
    "make_views",
    "resolve_method",
    "zoo_repo_id",
]
