"""The registry of pretraining methods, filled by the methods themselves, and the one table of their spellings.

Defining a `<Method>ForPreTraining` whose own `config_class` names a `method` registers it under that name (as timm's
models register themselves), with AutoConfig and AutoModelForPreTraining too. `resolve_method` accepts the zoo's
spellings (`ijepa-physics`, `lensfm/ijepa-physics`) wherever a method is named: CLI, recipes, benchmark, zoo.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import NamedTuple

from transformers import AutoConfig, AutoModelForPreTraining

ZOO_ORG = "lensfm"  # the zoo's hub organisation: encoders are `lensfm/<method with hyphens>`


class MethodClasses(NamedTuple):
    config_class: type
    model_class: type


_REGISTRY: dict[str, MethodClasses] = {}
# Read-only view of the registry, in registration order (the order of the tables' rows).
PRETRAINING_METHODS = MappingProxyType(_REGISTRY)


def register_method(model_class: type) -> type:
    """Register `model_class` (a `<Method>ForPreTraining`) under its config's `method`; called by
    `LensPretrainingModel.__init_subclass__`. Refuses a second, different class for a name already taken."""
    config_class = model_class.config_class
    method = config_class.method
    if not method or method != method.lower() or "-" in method or "/" in method:
        raise ValueError(
            f"{config_class.__name__}.method = {method!r}: a method name is lower-case snake_case (e.g. 'ijepa_physics');"
            " the hyphenated hub spelling is derived from it."
        )
    known = _REGISTRY.get(method)
    if known is not None and _qualified(known.model_class) != _qualified(model_class):
        raise ValueError(
            f"method {method!r} is registered by {_qualified(known.model_class)}; give "
            f"{_qualified(model_class)}'s config another `method`."
        )
    _REGISTRY[method] = MethodClasses(config_class, model_class)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModelForPreTraining.register(config_class, model_class, exist_ok=True)
    return model_class


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def hub_spelling(method: str) -> str:
    """The hub's spelling of a method name: hyphens for underscores (`ijepa_physics` -> `ijepa-physics`)."""
    return method.lower().replace("_", "-")


def zoo_repo_id(method: str, org: str = ZOO_ORG) -> str:
    """`lensfm/<method>` with hub-style hyphens: mae -> lensfm/mae, ijepa_physics -> lensfm/ijepa-physics."""
    return f"{org}/{hub_spelling(method)}"


def method_aliases() -> dict[str, str]:
    """The one alias table, {spelling: method}: each registered method under its own name, its hub spelling, and
    both behind the zoo's organisation (`ijepa_physics`, `ijepa-physics`, `lensfm/ijepa-physics`, ...)."""
    table = {}
    for method in _REGISTRY:
        for spelling in (method, hub_spelling(method)):
            table[spelling] = method
            table[f"{ZOO_ORG}/{spelling}"] = method
    return table


def resolve_method(name: str) -> str:
    """The registered method meant by `name` (any spelling of `method_aliases`, any case), or a ValueError naming the
    nearest method and every registered one."""
    method = method_aliases().get(str(name).strip().lower())
    if method is None:
        close = difflib.get_close_matches(str(name), list(method_aliases()), n=1)
        hint = f" (did you mean {method_aliases()[close[0]]!r}?)" if close else ""
        raise ValueError(f"unknown pretraining method {name!r}{hint}; choose one of {', '.join(_REGISTRY)}.")
    return method


def get_pretraining_classes(method: str) -> MethodClasses:
    """(ConfigClass, ModelClass) of a pretraining method by any of its spellings, e.g.
    `get_pretraining_classes("dino")`, `get_pretraining_classes("lensfm/ijepa-physics")`."""
    return _REGISTRY[resolve_method(method)]


def method_display_name(method: str) -> str:
    """The name tables, plots and cards give a method (its config's `display_name`); unknown names pass through."""
    known = method_aliases().get(str(method).strip().lower())
    return _REGISTRY[known].config_class.display_name if known else method


__all__ = [
    "PRETRAINING_METHODS",
    "ZOO_ORG",
    "MethodClasses",
    "get_pretraining_classes",
    "hub_spelling",
    "method_aliases",
    "method_display_name",
    "register_method",
    "resolve_method",
    "zoo_repo_id",
]
