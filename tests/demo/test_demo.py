"""The demo without a browser: uploads are checked into one image or refused with a message naming the file, and the
handlers show every output (probabilities summing to 1, the physics branch's render and residual) or a message."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from lensfm_hf.demo.app import (
    compare_models,
    look_at_simulation,
    look_at_upload,
    show_results,
)
from lensfm_hf.demo.inputs import DemoInputError, read_upload
from lensfm_hf.demo.views import results_files, results_table

PER_CLASS = 3  # reference images per class: enough for a 2-D projection, fast


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _hostile_npy(path, marker):
    """A .npy with a valid object-dtype header followed by a pickle that would run a shell command."""
    payload = pickle.dumps(_System(f"touch {marker}"), protocol=2)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    path.write_bytes(buffer.getvalue() + payload)


def test_uploads_are_read_as_one_checked_image(tmp_path):
    image = np.random.default_rng(0).random((64, 64))
    np.save(tmp_path / "plain.npy", image)
    assert read_upload(tmp_path / "plain.npy").shape == (64, 64)
    released = np.empty(2, dtype=object)
    released[0], released[1] = image, 1e-23  # DeepLenseSim's [image, axion_mass]
    np.save(tmp_path / "axion.npy", released, allow_pickle=True)
    np.testing.assert_allclose(read_upload(tmp_path / "axion.npy"), image.astype(np.float32))
    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "gray.png")
    assert read_upload(tmp_path / "gray.png").shape == (64, 64)
    from astropy.io import fits

    fits.PrimaryHDU(image.astype(np.float32)).writeto(tmp_path / "lens.fits")
    np.testing.assert_allclose(read_upload(tmp_path / "lens.fits"), image.astype(np.float32))


@pytest.mark.parametrize("case, match", [
    ("nan", r"bad\.npy: 1 of 4096 pixels are NaN"),
    ("colour", r"bad\.png: a colour image with 3 channels"),
    ("channels", r"bad\.npy: shape \(2, 64, 64\), not one single-band image"),
    ("small", r"bad\.npy: 8 x 8 pixels; each side must be 16 to 1024"),
    ("oblong", r"bad\.npy: 64 x 48 pixels, not square"),
    ("type", r"bad\.txt: unsupported file type"),
    ("garbage", r"bad\.png: not a readable image"),
])
def test_bad_uploads_are_refused_naming_the_file_and_the_problem(tmp_path, case, match):
    rng = np.random.default_rng(0)
    if case == "nan":
        image = rng.random((64, 64))
        image[3, 4] = np.nan
        path = tmp_path / "bad.npy"
        np.save(path, image)
    elif case == "colour":
        path = tmp_path / "bad.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    elif case in ("channels", "small", "oblong"):
        shape = {"channels": (2, 64, 64), "small": (8, 8), "oblong": (64, 48)}[case]
        path = tmp_path / "bad.npy"
        np.save(path, rng.random(shape))
    elif case == "type":
        path = tmp_path / "bad.txt"
        path.write_text("hello")
    else:
        path = tmp_path / "bad.png"
        path.write_bytes(b"\x89PNG not really")
    with pytest.raises(DemoInputError, match=match):
        read_upload(path)
    assert str(tmp_path) not in str(pytest.raises(DemoInputError, read_upload, path).value)


def test_a_hostile_npy_is_refused_in_the_page_and_never_runs(tmp_path, physics_encoder):
    marker = tmp_path / "pwned"
    _hostile_npy(tmp_path / "evil.npy", marker)
    message = look_at_upload(str(tmp_path / "evil.npy"), physics_encoder, "(none)", "model3", PER_CLASS)[0]
    assert "evil.npy: refused by the safe .npy reader" in message and "system" in message
    assert not marker.exists()


def test_simulated_image_shows_every_output(physics_encoder, classifier):
    outputs = look_at_simulation("model3", "cdm", 7, physics_encoder, classifier, PER_CLASS)
    message, shown, processed, attention, scatter, probabilities, parameters, render, residual, summary = outputs
    assert message.startswith("Showing **simulated model3 / cdm / seed 7**")
    for picture in (shown, processed, attention, scatter, render, residual):
        assert picture.ndim == 3 and picture.shape[-1] == 3 and picture.dtype == np.uint8
    numbers = json.loads(summary)
    assert set(probabilities) == {"no_sub", "cdm", "axion"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert numbers["residual_energy"] > 0 and numbers["image_energy"] > 0
    by_name = {row[0]: row for row in parameters}
    assert by_name["einstein_radius"][1] == "arcsec" and by_name["einstein_radius"][3] > 0  # the truth beside


def test_an_upload_without_physics_or_classifier_says_what_is_missing(tmp_path, physics_encoder):
    np.save(tmp_path / "lens.npy", np.random.default_rng(1).random((64, 64)))
    outputs = look_at_upload(str(tmp_path / "lens.npy"), physics_encoder, "(none)", "model3", PER_CLASS)
    assert "pick a fine-tuned classifier" in outputs[0] and outputs[5] is None
    assert all(row[3] is None for row in outputs[6])  # no truth for an upload


def test_a_folder_that_is_not_a_model_is_a_message(tmp_path, physics_encoder):
    (tmp_path / "notes.txt").write_text("not a model")
    message = look_at_simulation("model3", "cdm", 0, physics_encoder, str(tmp_path), PER_CLASS)[0]
    assert message.startswith("**Could not show this image.**") and "not a classifier" in message
    message = look_at_simulation("model3", "cdm", 0, str(tmp_path), "(none)", PER_CLASS)[0]
    assert "not an encoder" in message and "lensfm zoo" in message
    assert "seed 'x' is not an integer" in look_at_simulation("model3", "cdm", "x", physics_encoder, "(none)", 3)[0]


def test_compare_runs_every_model_and_reports_a_broken_one(tmp_path, physics_encoder):
    message, gallery, rows = compare_models(None, "model3", "no_sub", 1, [physics_encoder, str(tmp_path)])
    assert message.startswith("Compared 2 models")
    assert [caption.split(": ")[1] for _, caption in gallery] == ["attention", "residual"]
    assert rows[0][1] == "ijepa_physics" and rows[0][3] > 0 and rows[1][2].startswith("failed")


def test_benchmark_results_never_read_plots_outside_their_folder(tmp_path):
    study = tmp_path / "study"
    (study / "plots").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(study / "plots" / "roc.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "outside.png")
    cell = {"method_name": "MAE", "finetuning_set": "model3", "protocol_name": "kNN", "label_budget": "all",
            "seeds": [0, 1], "metrics": {"accuracy": {"mean": 0.5, "std": 0.01}}}
    (study / "results.json").write_text(json.dumps({"cells": [cell], "plots": ["plots/roc.png", "../outside.png"]}))
    files = results_files(tmp_path)
    rows, _, plots = results_table(files["study"])
    assert rows == [["MAE", "model3", "kNN", "all", 0.5, 0.01, 2]] and [c for _, c in plots] == ["roc"]
    _, table, pictures = show_results("study", files)
    assert table["data"] == rows and len(pictures) == 1
    assert show_results("../etc", files)[0] == "No results named '../etc'."


@pytest.mark.slow  # importing gradio alone takes ~2.5 s; the browser test builds and drives the app
def test_the_app_builds(physics_encoder, classifier, tmp_path):
    pytest.importorskip("gradio")
    from lensfm_hf.demo import build_app

    app = build_app([physics_encoder], [classifier], results_root=tmp_path, reference_per_class=PER_CLASS)
    assert app.title == "lensfm: look at a lens"


def test_a_request_may_name_only_files_under_the_upload_folder(tmp_path):
    from lensfm_hf.demo.app import only_uploads

    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    (uploads / "abc" / "lens.npy").write_bytes(b"")
    (tmp_path / "secret.npy").write_bytes(b"")
    (uploads / "abc" / "link.npy").symlink_to(tmp_path / "secret.npy")
    assert only_uploads(str(uploads / "abc" / "lens.npy"), uploads) == str(uploads / "abc" / "lens.npy")
    assert only_uploads(None, uploads) is None
    for path in (tmp_path / "secret.npy", uploads / ".." / "secret.npy", uploads / "abc" / "link.npy"):
        with pytest.raises(DemoInputError, match="not a file uploaded through this page"):
            only_uploads(str(path), uploads)


def test_lensfm_demo_offers_the_released_zoo_or_says_how_to_get_one(tmp_path):
    import shutil

    from lensfm_hf.demo.serve import demo_models

    assert demo_models(["my/encoder"], zoo_dir=tmp_path / "none", cache_dir=tmp_path / "cache") == ["my/encoder"]
    with pytest.raises(RuntimeError, match="no zoo model is installed; run `lensfm zoo`"):
        demo_models(None, zoo_dir=tmp_path / "none", cache_dir=tmp_path / "cache")
    zoo = tmp_path / "zoo"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "zoo", "simclr"), zoo / "simclr")
    assert demo_models(None, zoo_dir=zoo, cache_dir=tmp_path / "cache") == ["lensfm/simclr"]
