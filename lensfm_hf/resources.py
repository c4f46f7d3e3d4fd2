"""Where the shipped YAML recipes are, and how a recipe name given on the command line becomes a file.

A wheel install carries them as package data in `lensfm_hf/recipes/` (see setup.py); a source checkout has them in
the top-level `recipes/`. Imports nothing from the package, so the CLI can use it before anything heavy loads.
"""

from __future__ import annotations

import os
from pathlib import Path

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


__all__ = ["RECIPE_KINDS", "default_zoo_dir", "recipes_dir", "resolve_recipe", "shipped_recipes"]
