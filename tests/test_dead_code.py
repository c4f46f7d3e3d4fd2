"""No dead functions: every module-level function of the package is used by the package, a script, a test or the
docs (a decorated function counts as used: its decorator registers it)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _texts(*folders: str, suffixes=(".py",)) -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for folder in folders for path in (REPO / folder).rglob("*")
            if path.suffix in suffixes and path.is_file()}


def test_every_module_level_function_has_a_user():
    package = _texts("lensfm_hf")
    readers = {**package, **_texts("scripts", "tests"), **_texts("docs", suffixes=(".md",))}
    if (REPO / "README.md").is_file():
        readers[REPO / "README.md"] = (REPO / "README.md").read_text(encoding="utf-8")
    words = Counter()  # identifiers, less quoted ones: a name in __all__ is no use
    for text in readers.values():
        words.update(re.findall(r"(?<![\w\"'])[A-Za-z_]\w*(?![\w\"'])", text))
    dead = []
    for path, text in package.items():
        for node in ast.parse(text).body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.decorator_list:
                continue
            if words[node.name] <= 1:  # its own `def` only
                dead.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not dead, f"functions nothing uses (remove them, or use them): {dead}"
