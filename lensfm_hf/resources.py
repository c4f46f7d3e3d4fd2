"""Where the shipped YAML recipes are, and how a recipe name given on the command line becomes a file.

A wheel install carries them as package data in `lensfm_hf/recipes/` (see setup.py); a source checkout has them in
the top-level `recipes/`. Imports nothing from the package, so the CLI can use it before anything heavy loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

_PACKAGE = Path(__file__).resolve().parent
RECIPE_KINDS = ("pretrain", "finetune", "benchmark")


def recipes_dir() -> Path:
    """The folder of shipped recipes: `lensfm_hf/recipes` in a wheel install, else the checkout's `recipes/`."""
    for candidate in (_PACKAGE / "recipes", _PACKAGE.parent / "recipes"):
        if (candidate / "pretrain").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no shipped recipes in {_PACKAGE / 'recipes'} or {_PACKAGE.parent / 'recipes'}; reinstall lensfm-hf "
        "(the recipes are package data) or pass the path of a YAML recipe."
    )


def default_zoo_dir() -> Path:
    """The released models: `./zoo` when the current folder has one, else the source checkout's `zoo/`."""
    here = Path("zoo")
    return here if here.is_dir() else _PACKAGE.parent / "zoo"


def shipped_recipes(kind: str) -> list[str]:
    """Names (file stems) of the shipped recipes of `kind` (pretrain, finetune, benchmark)."""
    try:
        return sorted(p.stem for p in (recipes_dir() / kind).glob("*.yaml"))
    except FileNotFoundError:
        return []


def resolve_recipe(recipe: str | os.PathLike, kind: str) -> Path:
    """The YAML file meant by `recipe`: an existing path; a bare name of a shipped recipe of `kind` (`mae`,
    `mae_tiny`, `model3_classification`, `quick`); or a `recipes/<kind>/<name>.yaml` path, which also resolves to
    the shipped copy where the current directory is not a source checkout. Raises FileNotFoundError that lists
    the shipped names."""
    path = Path(recipe)
    if path.is_file():
        return path
    parts = path.parts
    candidates = []
    if len(parts) == 1:
        candidates.append(path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    elif len(parts) >= 3 and parts[-3] == "recipes" and parts[-2] in RECIPE_KINDS:
        kind = parts[-2]
        candidates.append(parts[-1])
    try:
        base = recipes_dir() / kind
    except FileNotFoundError:
        base = None
    for name in candidates:
        if base is not None and (base / name).is_file():
            return base / name
    names = ", ".join(shipped_recipes(kind)) or "none found"
    raise FileNotFoundError(
        f"recipe {recipe} does not exist; pass a YAML file or the name of a shipped {kind} recipe ({names})."
    )


# The most values (mapping keys and values, list items) a recipe may hold once its YAML aliases are expanded: the
# shipped recipes hold a few hundred; a 2 KB file of nested aliases can stand for a billion, which copying,
# printing or saving the recipe would then build.
MAX_YAML_VALUES = 100_000


def _expanded_values(value: Any, memo: dict[int, int], limit: int) -> int:
    """How many values `value` holds with every alias expanded (shared objects counted each time they occur)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in memo:
        if memo[key] < 0:
            raise ValueError("a recursive YAML alias (a node that contains itself)")
        return memo[key]
    memo[key] = -1
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1
    for item in items:
        total += _expanded_values(item, memo, limit)
        if total > limit:
            break
    memo[key] = total
    return total


def load_yaml(path: str | os.PathLike, what: str = "recipe") -> Any:
    """The YAML document in `path` (safe_load: no tags that build objects), refused with a one-line ValueError naming
    the file when it is not valid YAML or its aliases expand beyond `MAX_YAML_VALUES` values (an alias bomb)."""
    try:
        with open(path, encoding="utf-8") as handle:  # a file stream: YAML errors then name the file
            data = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ValueError(f"{what} {path} is not valid YAML{where}: {problem}; fix the syntax there (indent with "
                         "spaces, `key: value`)") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        size = _expanded_values(data, {}, MAX_YAML_VALUES)
    except (ValueError, RecursionError) as err:
        problem = str(err) if isinstance(err, ValueError) else "nesting too deep"
        raise ValueError(f"{what} {path} is refused: {problem}; write the values out without aliases") from None
    if size > MAX_YAML_VALUES:
        raise ValueError(f"{what} {path} is refused: its YAML aliases expand to more than {MAX_YAML_VALUES:,} values "
                         "(an alias bomb?); write the values out without aliases")
    return data


__all__ = [
    "MAX_YAML_VALUES",
    "RECIPE_KINDS",
    "default_zoo_dir",
    "load_yaml",
    "recipes_dir",
    "resolve_recipe",
    "shipped_recipes",
]
