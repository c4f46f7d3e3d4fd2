"""Style figures of the package, per folder: module docstrings over 5 lines, parameter type-hint coverage, and
comments that cite a file the repository does not hold (the style targets of issue 16).

    python scripts/style_report.py [--package lensfm_hf] [--details]
"""

from __future__ import annotations

import argparse
import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_DOCSTRING_LINES = 5
# A cited file: a path with a folder and a known extension, e.g. docs/ablation/backbone.md.
SECTION = re.compile(r"§\s?\d+")  # a section of a cited document
CITATION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.(?:md|py|yaml|json|txt|cfg|toml))\b")


def folder_of(path: Path, package: Path) -> str:
    """`physics/`, `training/` ... for a module in a subpackage, the file name for a top-level module."""
    parts = path.relative_to(package).parts
    return f"{parts[0]}/" if len(parts) > 1 else parts[0]


def docstring_lines(tree: ast.Module) -> int:
    """Lines of the module docstring (0 when there is none)."""
    text = ast.get_docstring(tree, clean=True)
    return len(text.strip().splitlines()) if text else 0


def is_hinted(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True when every parameter but `self`/`cls`, `*args` and `**kwargs` has a type annotation."""
    arguments = function.args
    params = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    if params and params[0].arg in ("self", "cls"):
        params = params[1:]
    return all(param.annotation is not None for param in params)


def _resolves(cited: str, path: Path, root: Path) -> bool:
    """True when `cited` names a file from any folder between the repository `root` and `path`."""
    return any((folder / cited).exists() for folder in path.parents if folder.is_relative_to(root))


def missing_citations(text: str, path: Path, root: Path) -> list[str]:
    """Cited documents that are not in the repository: paths (`docs/ablation/backbone.md`) that resolve neither from
    the root nor from a folder above the file, and sections (a section sign and number after a name) of a document that is no file
    here. A placeholder path (`out_dir/README.md`) and a bare file name (`model_card.md`) name no location."""
    out = {}
    where = path.relative_to(root)
    for line_number, line in enumerate(text.splitlines(), 1):
        for cited in CITATION.findall(line):
            if not cited.split("/")[0].endswith(("_dir", "_path")) and not _resolves(cited, path, root):
                out.setdefault(line_number, f"{where}:{line_number} {cited}")
        for match in SECTION.finditer(line):
            before = line[max(0, match.start() - 40):match.start()]
            if not any(_resolves(cited, path, root) for cited in CITATION.findall(before)):
                name = before.split("(")[-1].split(",")[-1].strip()
                out.setdefault(line_number, f"{where}:{line_number} {name} {match.group()}")
    return list(out.values())


def report(package: Path) -> dict:
    root = package.parent
    per_folder = defaultdict(lambda: {"modules": 0, "long_docstrings": 0, "functions": 0, "hinted": 0})
    long_docstrings, unhinted, citations = [], [], []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        figures = per_folder[folder_of(path, package)]
        figures["modules"] += 1
        lines = docstring_lines(tree)
        if lines > MAX_DOCSTRING_LINES:
            figures["long_docstrings"] += 1
            long_docstrings.append(f"{path.relative_to(root)} ({lines} lines)")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                figures["functions"] += 1
                if is_hinted(node):
                    figures["hinted"] += 1
                else:
                    unhinted.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
        citations += missing_citations(text, path, root)
    return {"folders": dict(per_folder), "long_docstrings": long_docstrings, "unhinted": unhinted,
            "missing_citations": citations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default=str(REPO / "lensfm_hf"), help="package folder to measure")
    parser.add_argument("--details", action="store_true", help="list each long docstring and unhinted function")
    args = parser.parse_args()
    result = report(Path(args.package).resolve())
    total = {"modules": 0, "long_docstrings": 0, "functions": 0, "hinted": 0}
    print(f"{'folder':<16} {'modules':>7} {'docstrings > 5 lines':>21} {'functions':>9} {'hinted':>7}")
    for folder, figures in sorted(result["folders"].items()):
        for key in total:
            total[key] += figures[key]
        share = figures["hinted"] / figures["functions"] if figures["functions"] else 1.0
        print(f"{folder:<16} {figures['modules']:>7} {figures['long_docstrings']:>21} {figures['functions']:>9} "
              f"{share:>7.0%}")
    share = total["hinted"] / total["functions"] if total["functions"] else 1.0
    print(f"{'all':<16} {total['modules']:>7} {total['long_docstrings']:>21} {total['functions']:>9} {share:>7.0%}")
    print(f"comments citing files not in the repository: {len(result['missing_citations'])}")
    for line in result["missing_citations"]:
        print(f"  {line}")
    if args.details:
        print("module docstrings over 5 lines:", *result["long_docstrings"], sep="\n  ")
        print("functions with an unannotated parameter:", *result["unhinted"], sep="\n  ")


if __name__ == "__main__":
    main()
