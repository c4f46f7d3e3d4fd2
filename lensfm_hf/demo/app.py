"""The Gradio app (`lensfm demo`, and the Space in spaces/lensfm-demo/): look at one lens through the zoo's models.

Models and classifier folders are fixed when the app is built (dropdowns, never typed paths), so a request reads only
the file it uploads. Every handler catches everything: a bad input or a model that fails shows a message in the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..simulation import RECIPE_NAMES, get_recipe
from .analysis import (
    analyse,
    load_classifier,
    load_encoder,
    project,
    reference_embeddings,
)
from .inputs import ACCEPTED, DemoInputError, read_upload, simulate_image
from .views import colour_map, embedding_plot, results_files, results_table

DEMO_RECIPES = tuple(name for name in ("model1", "model2", "model3", "model2_varied", "lens_finding",
                                       "lens_finding_simple") if name in RECIPE_NAMES)
NO_CLASSIFIER = "(none)"
LOOK_OUTPUTS = 10  # message, input, processed, attention, embedding, probabilities, parameters, render, residual, summary


def installed_zoo_models(cache_dir: str | os.PathLike | None = None) -> list[str]:
    """Repo ids `lensfm/<name>` of the models in the local HF cache."""
    from huggingface_hub import scan_cache_dir

    from ..pretraining.registry import ZOO_ORG

    try:
        repos = scan_cache_dir(cache_dir).repos
    except Exception:  # noqa: BLE001  no cache yet
        return []
    return sorted(r.repo_id for r in repos if r.repo_type == "model" and r.repo_id.startswith(f"{ZOO_ORG}/"))


def only_uploads(upload: Any, upload_folder: str | os.PathLike) -> Any:
    """`upload` when it is a file under Gradio's upload folder (or None), else a `DemoInputError`: a request never
    names a server file (Gradio refuses such paths too; this is the app's own check)."""
    if upload is None:
        return None
    path = upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(upload_folder)):
        raise DemoInputError(f"{Path(str(path)).name}: not a file uploaded through this page; upload it.")
    return path


def _error(message: str) -> list[Any]:
    return [f"**Could not show this image.** {message}"] + [None] * (LOOK_OUTPUTS - 1)


def _look(image: np.ndarray, truth: dict | None, source: str, encoder_name: str, classifier_name: str,
          recipe: str, per_class: int) -> list[Any]:
    if not encoder_name:
        raise DemoInputError("no encoder picked; choose a zoo model.")
    encoder = load_encoder(encoder_name)
    classifier = None if classifier_name in (None, "", NO_CLASSIFIER) else load_classifier(classifier_name)
    result = analyse(image, encoder, classifier, truth)
    references, labels, classes = reference_embeddings(encoder_name, recipe, per_class)
    points, point = project(references, result.embedding)
    scatter = embedding_plot(points, labels, classes, point,
                             f"{per_class} {recipe} images per class, PCA")
    summary: dict[str, Any] = {"source": source, "encoder": encoder_name, "method": encoder.method,
                               "input_shape": list(image.shape), "model_input_shape": list(result.processed.shape)}
    if result.probabilities:
        summary["probabilities"] = result.probabilities
        summary["probability_sum"] = sum(result.probabilities.values())
    if result.residual is not None:
        summary["residual_energy"] = result.residual_energy
        summary["image_energy"] = result.image_energy
    message = f"Showing **{source}** through **{encoder_name}** ({encoder.method})"
    if encoder.physics is not None:
        config = encoder.physics.config
        message += (f"; its physics branch renders on {config.data_recipe}'s sky grid ({config.field_of_view:.2f} "
                    "arcsec a side), so on images of another config its arcsec scale by the ratio of the fields")
    if result.residual is None:
        message += "; lens parameters, render and residual need the physics-informed I-JEPA (ijepa-physics)"
    if not result.probabilities:
        message += "; pick a fine-tuned classifier for class probabilities"
    rows = [[r["parameter"], r["unit"], r["inferred"], r["truth"]] for r in result.parameters]
    return [
        message + ".",
        colour_map(image),
        colour_map(result.processed),
        colour_map(result.attention, "inferno"),
        scatter,
        result.probabilities or None,
        rows or None,
        None if result.render is None else colour_map(result.render),
        None if result.residual is None else colour_map(result.residual, "RdBu_r", symmetric=True),
        json.dumps(summary, indent=1),
    ]


def _safely(function, *args) -> list[Any]:
    try:
        return function(*args)
    except DemoInputError as err:
        return _error(str(err))
    except Exception as err:  # noqa: BLE001  the page never crashes: anything unforeseen is shown, not raised
        return _error(f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}")


def look_at_upload(upload: Any, encoder_name: str, classifier_name: str, recipe: str, per_class: int) -> list[Any]:
    """Handler of 'Look at the upload': reads only the uploaded file's path that Gradio hands over."""
    def run():
        if upload is None:
            raise DemoInputError("no file uploaded; upload a PNG, FITS or .npy image first.")
        path = upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")
        image = read_upload(path)
        return _look(image, None, f"upload {Path(path).name}", encoder_name, classifier_name, recipe, per_class)
    return _safely(run)


def look_at_simulation(recipe: str, class_name: str, seed: Any, encoder_name: str, classifier_name: str,
                       per_class: int) -> list[Any]:
    """Handler of 'Simulate and look': one image of `class_name` from `recipe` with `seed`, truth beside."""
    def run():
        try:
            seed_value = int(seed)
        except (TypeError, ValueError):
            raise DemoInputError(f"seed {seed!r} is not an integer.") from None
        image, truth = simulate_image(recipe, class_name, seed_value)
        return _look(image, truth, f"simulated {recipe} / {class_name} / seed {seed_value}", encoder_name,
                     classifier_name, recipe, per_class)
    return _safely(run)


def compare_models(upload: Any, recipe: str, class_name: str, seed: Any, encoders: Sequence[str]) -> list[Any]:
    """Handler of the Compare tab: each zoo model's attention (and residual) on the same image."""
    def run():
        if upload is not None:
            path = upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")
            image, truth, source = read_upload(path), None, Path(path).name
        else:
            image, truth = simulate_image(recipe, class_name, int(seed))
            source = f"{recipe} / {class_name} / seed {int(seed)}"
        gallery, rows = [], []
        for name in encoders:
            try:
                encoder = load_encoder(name)
                result = analyse(image, encoder, None, truth)
            except Exception as err:  # noqa: BLE001
                rows.append([name, "", f"failed: {str(err)[:120]}", None])
                continue
            gallery.append((colour_map(result.attention, "inferno"), f"{name}: attention"))
            ratio = None
            if result.residual is not None:
                gallery.append((colour_map(result.residual, "RdBu_r", symmetric=True), f"{name}: residual"))
                ratio = round(result.residual_energy / result.image_energy, 4)
            rows.append([name, encoder.method, f"embedding dim {result.embedding.shape[0]}", ratio])
        return [f"Compared {len(encoders)} models on {source}.", gallery, rows]
    try:
        return run()
    except Exception as err:  # noqa: BLE001
        return [f"**Could not compare.** {err}", None, None]


def show_results(name: str, files: dict[str, Path]) -> list[Any]:
    """The benchmark table and plots of one results.json that the app was built with."""
    from PIL import Image

    if name not in files:
        return [f"No results named {name!r}.", None, None]
    try:
        rows, headers, plots = results_table(files[name])
        pictures = []
        for path, caption in plots[:24]:
            with Image.open(path) as opened:
                pictures.append((np.asarray(opened.convert("RGB")), caption))
        return [f"{len(rows)} cells from docs/results/{name}/results.json.", {"headers": headers, "data": rows},
                pictures]
    except Exception as err:  # noqa: BLE001
        return [f"**Could not read {name}/results.json:** {err}", None, None]


def build_app(encoders: Sequence[str], classifiers: Sequence[str] = (), results_root: str | os.PathLike | None = None,
              reference_per_class: int = 200, title: str = "lensfm: look at a lens", default_encoder: str | None = None):
    """The Blocks app over the given encoders (hub ids or folders) and classifier folders; `default_encoder` is
    picked first (default: the first encoder)."""
    import gradio as gr

    encoders = list(encoders)
    classifier_choices = [NO_CLASSIFIER, *classifiers]
    files = results_files(results_root)
    from gradio.utils import get_upload_folder

    upload_folder = get_upload_folder()

    def upload_handler(upload, *args):
        try:
            path = only_uploads(upload, upload_folder)
        except DemoInputError as err:
            return _error(str(err))
        return look_at_upload(path, *args)

    def compare_handler(upload, *args):
        try:
            path = only_uploads(upload, upload_folder)
        except DemoInputError as err:
            return [f"**Could not compare.** {err}", None, None]
        return compare_models(path, *args, encoders)
    default_recipe = "model3" if "model3" in DEMO_RECIPES else DEMO_RECIPES[0]
    classes = list(get_recipe(default_recipe).class_names)
    with gr.Blocks(title=title) as app:
        per_class = gr.State(int(reference_per_class))
        gr.Markdown(f"# {title}\nUpload a lens image ({', '.join(ACCEPTED)}) or simulate one, pick a zoo model and a "
                    "fine-tuned classifier, and see what each model infers.")
        with gr.Tab("Look"):
            with gr.Row():
                with gr.Column(scale=1):
                    encoder = gr.Dropdown(encoders, value=default_encoder or (encoders[0] if encoders else None),
                                          label="Zoo model",
                                          elem_id="encoder")
                    classifier = gr.Dropdown(classifier_choices, value=classifier_choices[-1],
                                             label="Fine-tuned classifier", elem_id="classifier")
                    upload = gr.File(label="Upload an image", file_types=list(ACCEPTED), type="filepath",
                                     elem_id="upload")
                    look_upload = gr.Button("Look at the upload", elem_id="look-upload")
                    recipe = gr.Dropdown(list(DEMO_RECIPES), value=default_recipe, label="Simulation config",
                                         elem_id="recipe")
                    class_name = gr.Dropdown(classes, value=classes[-1], label="Class", elem_id="class")
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                    look_simulated = gr.Button("Simulate and look", variant="primary", elem_id="look-simulated")
                with gr.Column(scale=3):
                    message = gr.Markdown(elem_id="message")
                    with gr.Row():
                        shown = gr.Image(label="Image", elem_id="image", height=220)
                        processed = gr.Image(label="What the model sees (processor output)", elem_id="processed",
                                             height=220)
                        attention = gr.Image(label="Attention (last layer)", elem_id="attention", height=220)
                    with gr.Row():
                        render = gr.Image(label="Rendered smooth lens (physics branch)", elem_id="render", height=220)
                        residual = gr.Image(label="Residual (image - render)", elem_id="residual", height=220)
                        probabilities = gr.Label(label="Class probabilities", elem_id="probabilities")
                    with gr.Row():
                        parameters = gr.Dataframe(headers=["parameter", "unit", "inferred", "truth"],
                                                  label="Inferred lens beside the truth (arcsec where dimensional)",
                                                  elem_id="parameters")
                        scatter = gr.Image(label="Embedding beside reference images", elem_id="embedding",
                                           height=320)
                    summary = gr.Textbox(label="Numbers (JSON)", lines=4, max_lines=8, interactive=False,
                                         elem_id="summary")
            outputs = [message, shown, processed, attention, scatter, probabilities, parameters, render, residual,
                       summary]
            recipe.change(lambda r: gr.Dropdown(choices=list(get_recipe(r).class_names),
                                                value=get_recipe(r).class_names[-1]), recipe, class_name)
            look_upload.click(upload_handler, [upload, encoder, classifier, recipe, per_class], outputs,
                              api_name="look_at_upload")
            look_simulated.click(look_at_simulation, [recipe, class_name, seed, encoder, classifier, per_class],
                                 outputs, api_name="look_at_simulation")
        with gr.Tab("Compare"):
            gr.Markdown("Every zoo model on the same image (the upload if there is one, else the simulation).")
            compare = gr.Button("Compare the zoo", elem_id="compare")
            compare_message = gr.Markdown(elem_id="compare-message")
            compare_gallery = gr.Gallery(label="Attention and residual maps", columns=4, elem_id="compare-gallery")
            compare_table = gr.Dataframe(headers=["model", "method", "embedding", "residual / image energy"],
                                         elem_id="compare-table")
            compare.click(compare_handler, [upload, recipe, class_name, seed],
                          [compare_message, compare_gallery, compare_table], api_name="compare")
            study = gr.Dropdown(list(files), value=next(iter(files), None), label="Benchmark results",
                                elem_id="results")
            results_message = gr.Markdown(elem_id="results-message")
            results = gr.Dataframe(label="Benchmark table", elem_id="results-table")
            plots = gr.Gallery(label="Benchmark plots", columns=3, elem_id="results-plots")
            study.change(lambda n: show_results(n, files), study, [results_message, results, plots])
            app.load(lambda n: show_results(n, files) if n else ["No benchmark results found.", None, None],
                     study, [results_message, results, plots])
    return app


__all__ = ["build_app", "compare_models", "installed_zoo_models", "look_at_simulation", "look_at_upload",
           "show_results"]
