"""The house's import contract (docs: DESIGN.md, "The house"), checked over the package's import graph.

Every `import` of `lensfm_hf` in every module of the package and in `lensfm_cli.py` is read with `ast`, including
those inside functions, classes and `if` blocks, so an import moved into a function to dodge a cycle still counts.
Relative imports are resolved; `from pkg import name` counts as an import of `pkg.name` when that is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lensfm_hf"

# ---------------------------------------------------------------------------------------------------------------------
# The layer table, top to bottom. A unit is a subpackage (`training`) or a top-level module (`cli`, `files`).
# A module may import its own unit, any unit in a LOWER row, and a sibling in its own row (same layer: allowed as
# long as no cycle forms, which the cycle test checks). The last row holds the leaves: they import NOTHING of the
# package, so each can be used by any layer and loaded where the rest is absent.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lensfm_cli", PACKAGE, "cli"),  # entry points: console script, package __init__ (Auto* registration), CLI
    ("demo",),  # the Gradio app (`lensfm demo`, the Space): reads models, simulates, shows
    ("training",),  # Trainer glue, tasks, protocols, benchmark
    ("pretraining", "data", "hub"),  # SSL methods; datasets; cards, export, push, cache
    ("simulation",),  # DeepLenseSim recipes, samplers, engines
    ("physics",),  # differentiable lensing in torch
    (
        "models",  # hub remote code: must load where lensfm_hf is not installed
        "pipelines",  # transformers pipeline subclasses, registered by the package __init__
        "metrics",  # evaluate module loaded by path (evaluate.load(<dir>)), offline
        "files",  # atomic files, staged folders swapped in whole, the one folder lock: used by every layer
        "distributed",  # rank, world size and collectives (identity in one process), for methods and their runs
        "resources",  # shipped recipe lookup, used by the CLI before anything heavy loads
    ),
)
LEAVES = frozenset(LAYERS[-1])
# House rules the order alone does not state: (importer unit, imported unit) -> rule.
FORBIDDEN: dict[tuple[str, str], str] = {
    ("physics", "models"): "physics/ knows nothing of datasets, models or training",
    ("physics", "pipelines"): "physics/ knows nothing of datasets, models or training",
    ("physics", "metrics"): "physics/ knows nothing of datasets, models or training",
}
# Inside `training/`: three wings and what they share (recipes, records, health: the modules at training/'s top).
# Pretraining runs and downstream evaluation never import each other; only the benchmark joins them, and nothing in
# training/ imports the benchmark. The shared modules import no wing.
TRAINING_WINGS = ("pretrain", "downstream", "benchmark")
WING_RULES: dict[tuple[str, str], str] = {
    ("pretrain", "downstream"): "training/pretrain and training/downstream never import each other",
    ("downstream", "pretrain"): "training/pretrain and training/downstream never import each other",
    ("pretrain", "benchmark"): "only the benchmark joins the wings: no wing imports training/benchmark",
    ("downstream", "benchmark"): "only the benchmark joins the wings: no wing imports training/benchmark",
    ("shared", "pretrain"): "training/'s shared modules (recipes, records, health) import no wing",
    ("shared", "downstream"): "training/'s shared modules (recipes, records, health) import no wing",
    ("shared", "benchmark"): "training/'s shared modules (recipes, records, health) import no wing",
}
# ---------------------------------------------------------------------------------------------------------------------

LAYER_OF = {unit: index for index, row in enumerate(LAYERS) for unit in row}


def _module_files() -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (file, is_package)} for the package and the console script."""
    modules = {"lensfm_cli": (REPO_ROOT / "lensfm_cli.py", False)}
    for path in sorted((REPO_ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


MODULES = _module_files()


def _unit(module: str) -> str:
    """`lensfm_hf.data.build` -> `data`; `lensfm_hf` -> `lensfm_hf`; `lensfm_cli` -> `lensfm_cli`."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else parts[0]


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import statement anywhere in `module`."""
    path, is_package = MODULES[module]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            # `from pkg import sub` imports the module pkg.sub; `from pkg import name` imports pkg itself.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # `import lensfm_hf.x.y.Name`-style targets that are no module fall back to the deepest module.
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.append((target, node.lineno))
    return found


GRAPH: dict[str, list[tuple[str, int]]] = {module: _imports(module) for module in MODULES}


def _wing(module: str) -> str | None:
    """`lensfm_hf.training.pretrain.run` -> `pretrain`; `lensfm_hf.training.records` -> `shared`; None outside
    training/ (and for the `training` package itself, whose lazy exports name every wing)."""
    parts = module.split(".")
    if parts[:2] != [PACKAGE, "training"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in TRAINING_WINGS else "shared"


def _rule_broken(importer: str, imported: str) -> str | None:
    """The rule an import of `imported` by `importer` breaks, or None."""
    a, b = _unit(importer), _unit(imported)
    if a == b:
        return WING_RULES.get((_wing(importer), _wing(imported)))
    if a in LEAVES:
        return f"{a} is a leaf and imports nothing of the package"
    if (a, b) in FORBIDDEN:
        return FORBIDDEN[(a, b)]
    if LAYER_OF[b] < LAYER_OF[a]:
        return f"no import runs upward: {a} (layer {LAYER_OF[a]}) may not import {b} (layer {LAYER_OF[b]})"
    return None


def test_every_unit_has_a_place_in_the_layer_table():
    missing = sorted({_unit(module) for module in MODULES} - set(LAYER_OF))
    assert not missing, f"units missing from LAYERS in tests/test_architecture.py (give each a layer): {missing}"


def test_collector_sees_imports_inside_functions_and_relative_ones():
    # data.build reaches the simulator (its lower layer); cli imports every command's module inside functions.
    assert any(target.startswith("lensfm_hf.simulation") for target, _ in GRAPH["lensfm_hf.data.build"])
    assert any(target.startswith("lensfm_hf.training") for target, _ in GRAPH["lensfm_hf.cli"])


def test_training_has_its_three_wings():
    wings = {_wing(module) for module in MODULES} - {None}
    assert wings == {*TRAINING_WINGS, "shared"}, wings


def test_layers():
    violations = [
        f"{importer} imports {imported} (line {line}): {rule}"
        for importer, targets in sorted(GRAPH.items())
        for imported, line in targets
        if (rule := _rule_broken(importer, imported))
    ]
    assert not violations, "import contract broken:\n  " + "\n  ".join(violations)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), by Tarjan."""
    edges = {module: sorted({target for target, _ in targets if target != module}) for module, targets in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return components


def test_no_import_cycles():
    messages = []
    for component in _cycles():
        members = set(component)
        links = [
            f"{importer} imports {imported} (line {line})"
            for importer in component
            for imported, line in GRAPH[importer]
            if imported in members and imported != importer
        ]
        messages.append(f"cycle between {', '.join(component)}: " + "; ".join(links) + " (rule: no import circles)")
    assert not messages, "import cycles (every import counted, function-level ones too):\n  " + "\n  ".join(messages)


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        ("lensfm_hf.data.build", "lensfm_hf.training.downstream.finetune", True),  # upward
        ("lensfm_hf.simulation.simulate", "lensfm_hf.data.build", True),  # upward
        ("lensfm_hf.pretraining.mae", "lensfm_hf.training.pretrain.callbacks", True),  # upward
        ("lensfm_hf.physics.mass", "lensfm_hf.models.modeling_lens_vit", True),  # physics knows no models
        ("lensfm_hf.models.modeling_lens_vit", "lensfm_hf.files", True),  # leaf
        ("lensfm_hf.training.pretrain.run", PACKAGE, True),  # the package __init__ sits on top
        ("lensfm_hf.data.card", "lensfm_hf.hub.cards", False),  # same layer
        ("lensfm_hf.pretraining.ijepa_physics", "lensfm_hf.physics.mass", False),  # downward
        ("lensfm_hf.hub.export", "lensfm_hf.models", False),  # models below everything
        ("lensfm_hf.training.pretrain.run", "lensfm_hf.training.downstream.probes", True),  # wings apart
        ("lensfm_hf.training.downstream.finetune", "lensfm_hf.training.pretrain.data", True),  # wings apart
        ("lensfm_hf.training.downstream.tasks", "lensfm_hf.training.benchmark.recipe", True),  # benchmark on top
        ("lensfm_hf.training.records", "lensfm_hf.training.pretrain.run", True),  # shared imports no wing
        ("lensfm_hf.training.benchmark.cells", "lensfm_hf.training.downstream.finetune", False),  # benchmark joins
        ("lensfm_hf.training.benchmark.zoo", "lensfm_hf.training.pretrain.run", False),  # benchmark joins
        ("lensfm_hf.training.pretrain.run", "lensfm_hf.training.health", False),  # wings use the shared modules
    ],
)
def test_rule_table(importer, imported, broken):
    assert (_rule_broken(importer, imported) is not None) == broken
