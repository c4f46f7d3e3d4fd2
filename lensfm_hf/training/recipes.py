"""YAML recipes: one file = one run, parsed section by section into dataclasses with `HfArgumentParser`.

A recipe is a mapping of sections (`model:`, `data:`, `training:` ...), each parsed into its dataclass;
the defaults live in the dataclasses. `key=value` overrides (from the command line) are applied to the
raw mapping first, so they are checked and typed exactly like YAML values.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..resources import load_yaml


def read_recipe(recipe: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The raw recipe mapping from a YAML path or an already-built dict (deep-copied)."""
    if isinstance(recipe, Mapping):
        return copy.deepcopy(dict(recipe))
    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist; pass a YAML file such as recipes/pretrain/mae.yaml.")
    data = load_yaml(path)  # bounded alias expansion; errors name the file
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"recipe {path} must be a YAML mapping of sections, got {type(data).__name__}.")
    return dict(data)


def _field_names(dataclass_type: type) -> list[str]:
    return [f.name for f in dataclasses.fields(dataclass_type) if f.init]


def _suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it: `10` -> 10, `true` -> True, `[a, b]` -> list, `1e-3` -> 0.001."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return _yaml_float(value)


def _yaml_float(value: Any) -> Any:
    # PyYAML reads "1e-3" (no dot) as a string; every user writes learning rates that way.
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if any(c in value.lower() for c in ".e") and value.strip().lower() not in ("nan", "inf", "-inf", "+inf"):
            return number
    return value


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None, sections: Mapping[str, type]
) -> dict[str, Any]:
    """Set `section.key=value` (or `key=value` when exactly one section has `key`) in the raw recipe.

    Deeper keys address dict-valued fields: `model.method_config.mask_ratio=0.6`.
    A mapping {dotted key: value} is accepted too (values used as they are).
    """
    if not overrides:
        return raw
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not KEY=VALUE (e.g. training.max_steps=10 or max_steps=10).")
            key, text = item.split("=", 1)
            items.append((key.strip(), parse_value(text)))
    for key, value in items:
        parts = key.split(".")
        if parts[0] not in sections:
            owners = [name for name, cls in sections.items() if parts[0] in _field_names(cls)]
            if not owners:
                every = [f"{name}.{field}" for name, cls in sections.items() for field in _field_names(cls)]
                raise ValueError(
                    f"override {key!r}: no recipe section has a field {parts[0]!r}"
                    f"{_suggest(parts[0], [e.split('.', 1)[1] for e in every] + list(sections))}; "
                    f"sections are {', '.join(sections)}."
                )
            if len(owners) > 1:
                raise ValueError(
                    f"override {key!r} is ambiguous: sections {', '.join(owners)} all have {parts[0]!r}; "
                    f"write e.g. {owners[0]}.{key}=..."
                )
            parts = [owners[0], *parts]
        if len(parts) < 2:
            raise ValueError(f"override {key!r} names a whole section; set one of its fields, e.g. {key}.<field>=...")
        section = raw.setdefault(parts[0], {})
        if section is None:
            section = raw[parts[0]] = {}
        target = section
        for part in parts[1:-1]:
            child = target.get(part)
            if child is None:
                child = target[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {key!r}: {part!r} is not a mapping in the recipe.")
            target = child
        target[parts[-1]] = value
    return raw


def _unwrap_types(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(annotation) for t in _unwrap_types(arg))
    if origin is typing.Literal:
        return tuple(type(a) for a in typing.get_args(annotation))
    return (origin or annotation,)


def _coerce(value: Any, annotation: Any) -> Any:
    """YAML scalars into the field's type where YAML guesses differently (`1e-3`, `10` for a float, ...)."""
    kinds = _unwrap_types(annotation)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        if float in kinds and str not in kinds:
            try:
                return float(value)
            except ValueError:
                return value
        if int in kinds and str not in kinds:
            try:
                return int(value)
            except ValueError:
                return value
    if isinstance(value, int) and float in kinds and int not in kinds:
        return float(value)
    if isinstance(value, (int, float)) and str in kinds and not (int in kinds or float in kinds):
        enum_kinds = [k for k in kinds if isinstance(k, type) and issubclass(k, enum.Enum)]
        if not enum_kinds:
            return str(value)
    return value


_SCALARS = (int, float, bool, str, type(None))


def _check_type(section: str, key: str, value: Any, annotation: Any) -> None:
    """Raise a ValueError when a scalar-typed field got a value of another kind (`seed=abc`)."""
    kinds = _unwrap_types(annotation)
    containers = [kind for kind in kinds if kind in (list, tuple, dict)]
    if containers and isinstance(value, (int, float)) and not (set(kinds) & {int, float, bool}):
        # A number is never a list or a mapping (`methods: 5` failed later with "'int' object is not iterable").
        shape = "mapping `{k: v}`" if dict in containers else "list `[a, b]`"
        raise ValueError(f"{section}.{key} expects a {' or '.join(k.__name__ for k in containers)}, got {value!r}; "
                         f"write it as a YAML {shape} in the recipe or the KEY=VALUE override.")
    if not kinds or not all(kind in _SCALARS for kind in kinds):
        return  # containers, enums, Any: left to the dataclass
    if isinstance(value, bool):
        ok = bool in kinds
    elif isinstance(value, int):
        ok = int in kinds or float in kinds
    else:
        ok = isinstance(value, tuple(kinds))
    if not ok:
        expected = " or ".join(sorted(kind.__name__ if kind is not type(None) else "null" for kind in kinds))
        raise ValueError(f"{section}.{key} expects {expected}, got {value!r}; set it to a {expected} value in the "
                         "recipe or the KEY=VALUE override.")


def check_section(name: str, dataclass_type: type, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """`values` with YAML scalars coerced to their fields' types; a ValueError names `name.key` for an unknown key
    (with suggestions) or a scalar of the wrong kind. Nothing is constructed, so any mapping can be checked early."""
    values = dict(values or {})
    names = _field_names(dataclass_type)
    unknown = [key for key in values if key not in names]
    if unknown:
        hints = "; ".join(f"{key!r}{_suggest(key, names)}" for key in unknown)
        raise ValueError(
            f"unknown key(s) in recipe section {name!r}: {hints}. "
            f"Fields of {name!r} ({dataclass_type.__name__}) are documented in its dataclass."
        )
    try:
        hints_by_name = typing.get_type_hints(dataclass_type)
    except Exception:  # forward references we cannot resolve: leave values as YAML read them
        hints_by_name = {}
    values = {key: _coerce(value, hints_by_name.get(key, Any)) for key, value in values.items()}
    for key, value in values.items():
        _check_type(name, key, value, hints_by_name.get(key, Any))
    return values


def parse_section(name: str, dataclass_type: type, values: Mapping[str, Any] | None):
    """One section into its dataclass (`check_section`, then the dataclass's own checks)."""
    values = check_section(name, dataclass_type, values)
    (parsed,) = HfArgumentParser(dataclass_type).parse_dict(values, allow_extra_keys=False)
    return parsed


def check_sections(raw: dict[str, Any], sections: Mapping[str, type], recipe: Any = None) -> dict[str, Any]:
    """`raw` with every section of `sections` a mapping (a missing or null one becomes {}); an unknown section or
    one that is not a mapping is a ValueError naming it (and the recipe file, when `recipe` is a path)."""
    where = f" (recipe {recipe})" if isinstance(recipe, (str, os.PathLike)) else ""
    unknown = [key for key in raw if key not in sections]
    if unknown:
        hints = "; ".join(f"{key!r}{_suggest(key, list(sections))}" for key in unknown)
        raise ValueError(f"unknown recipe section(s) {hints}; a recipe has the sections {', '.join(sections)}{where}.")
    for name in sections:
        if raw.get(name) is None:
            raw[name] = {}
        elif not isinstance(raw[name], Mapping):
            shown = repr(raw[name])
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise ValueError(f"recipe section {name!r} must be a mapping of field: value, got {shown}{where}.")
    return raw


def load_recipe(
    recipe: str | os.PathLike | Mapping[str, Any],
    sections: Mapping[str, type],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    before_parse: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a recipe into {section: dataclass instance}; also return the raw mapping after overrides.

    `defaults` fill keys the recipe leaves out (before overrides), for values that depend on the run
    (e.g. an output directory named after the recipe file). `before_parse(raw)` may adjust the raw mapping
    after overrides (e.g. machine-dependent settings).
    """
    raw = check_sections(read_recipe(recipe), sections, recipe)
    for name in sections:
        raw[name] = dict(raw[name])
    for name, values in (defaults or {}).items():
        for key, value in values.items():
            raw[name].setdefault(key, value)
    raw = apply_overrides(raw, overrides, sections)
    if before_parse is not None:
        before_parse(raw)
    parsed = {name: parse_section(name, cls, raw[name]) for name, cls in sections.items()}
    return parsed, raw


__all__ = [
    "apply_overrides",
    "check_section",
    "check_sections",
    "load_recipe",
    "parse_section",
    "parse_value",
    "read_recipe",
]
