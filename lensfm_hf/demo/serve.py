"""`lensfm demo`: install the released zoo folders, then serve the app on `host:port` until interrupted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..hub.zoo import install_zoo_folder, zoo_folders, zoo_repo_id
from ..resources import default_zoo_dir
from .app import build_app, installed_zoo_models

DEFAULT_PORT = 7860  # Gradio's and the Hub Spaces' port


def default_results_root() -> Path:
    """`./docs/results` when the current folder has one, else the source checkout's."""
    here = Path("docs/results")
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "docs" / "results"


def demo_models(models: Sequence[str] | None, zoo_dir: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None) -> list[str]:
    """The models to offer: `models` as given, else every released zoo folder installed (hashes checked) and every
    `lensfm/*` model in the HF cache. Raises a RuntimeError naming the fix when there is none."""
    if models:
        return list(models)
    for folder in zoo_folders(zoo_dir if zoo_dir is not None else default_zoo_dir()):
        install_zoo_folder(folder, cache_dir=cache_dir)
    found = installed_zoo_models(cache_dir)
    if not found:
        raise RuntimeError("no zoo model is installed; run `lensfm zoo` first, or pass --model <encoder folder>.")
    return found


def serve(models: Sequence[str] | None = None, classifiers: Sequence[str] = (), *, zoo_dir: str | None = None,
          results_root: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          reference_per_class: int = 200) -> None:
    """Build the app over the zoo (or `models`) and `classifiers` folders and serve it (blocks)."""
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise RuntimeError("the demo needs gradio: pip install 'lensfm-hf[demo]'") from err
    models = demo_models(models, zoo_dir)
    physics = zoo_repo_id("ijepa_physics")  # shows every view: picked first when installed
    app = build_app(models, classifiers,
                    results_root=results_root if results_root is not None else default_results_root(),
                    reference_per_class=reference_per_class, default_encoder=physics if physics in models else None)
    app.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, show_error=False)


__all__ = ["DEFAULT_PORT", "default_results_root", "demo_models", "serve"]
