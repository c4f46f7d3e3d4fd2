"""The demo in a real browser: `lensfm demo` serves on 127.0.0.1 and headless Chromium (Debian's package, driven by
Playwright; nothing downloaded) simulates an image, uploads one and uploads a bad file, checks every output and saves
screenshots. Models: a tiny physics I-JEPA trained 80 steps (so its render explains the image) and a classifier on
it, or the ones named by LENSFM_DEMO_MODELS (comma-separated) and LENSFM_DEMO_CLASSIFIER; screenshots go to
LENSFM_DEMO_SCREENSHOTS (default: the test's tmp folder). Needs `pip install -e ".[demo,demo-test]"`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240  # importing torch, transformers and gradio on a loaded 2-core machine
OUTPUT_TIMEOUT_MS = 240_000  # the first look simulates the reference images


def _trained_physics_encoder(folder: Path) -> str:
    """A micro physics I-JEPA pretrained 80 steps on 64 Model 3 images (physics weight 1), exported."""
    from lensfm_hf.models import LensImageProcessor
    from lensfm_hf.pretraining import (
        LensPhysicsIJEPAConfig,
        LensPhysicsIJEPAForPreTraining,
    )
    from lensfm_hf.simulation import simulate
    from lensfm_hf.training.pretrain.run import export_encoder

    config = LensPhysicsIJEPAConfig.from_preset("micro", image_size=64, patch_size=8, num_hidden_layers=2,
                                                predictor_num_hidden_layers=1, data_recipe="model3",
                                                physics_weight=1.0)
    torch.manual_seed(0)
    model = LensPhysicsIJEPAForPreTraining(config)
    processor = LensImageProcessor(size=64)
    images = processor(torch.cat([simulate("model3", c, 32, seed=5)["pixel_values"] for c in ("no_sub", "axion")]))
    images = images["pixel_values"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(80):
        loss = model(images[torch.randint(0, len(images), (16,))]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    export_encoder(model.eval(), folder, {"method": "ijepa_physics"}, processor)
    return str(folder)


def _classifier(encoder: str, folder: Path) -> str:
    from lensfm_hf.models import LensImageProcessor, LensViTForImageClassification

    classes = ("no_sub", "cdm", "axion")
    model = LensViTForImageClassification.from_pretrained(
        encoder, num_labels=3, id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
    model.save_pretrained(folder)
    LensImageProcessor(size=64).save_pretrained(folder)
    return str(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """URL of `lensfm demo` running in a subprocess on 127.0.0.1 (stopped after the module)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("needs Debian's chromium package (apt-get install -y chromium)")
    pytest.importorskip("gradio")
    pytest.importorskip("playwright")
    work = tmp_path_factory.mktemp("demo_browser")
    models = [m for m in os.environ.get("LENSFM_DEMO_MODELS", "").split(",") if m]
    classifier = os.environ.get("LENSFM_DEMO_CLASSIFIER")
    if not models:
        models = [_trained_physics_encoder(work / "ijepa_physics")]
        classifier = classifier or _classifier(models[0], work / "classifier")
    port = _free_port()
    command = [sys.executable, "-c", "import sys; from lensfm_cli import main; sys.exit(main(sys.argv[1:]))", "demo",
               "--port", str(port), "--reference-per-class", os.environ.get("LENSFM_DEMO_PER_CLASS", "20"),
               "--results", str(REPO / "docs" / "results")]
    for model in models:
        command += ["--model", model]
    not_a_model = work / "not_a_model"  # offered first, so the page opens on the real classifier (the last)
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("not a model")
    command += ["--classifier", str(not_a_model)]
    if classifier:
        command += ["--classifier", classifier]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO)}
    log = (work / "server.log").open("w")
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"lensfm demo did not serve {url}:\n{(work / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield {"url": url, "work": work, "models": models, "not_a_model": str(not_a_model),
               "classifier": classifier}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(served, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium")), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1500, "height": 1300})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(served["url"])
            tab.wait_for_selector("#look-simulated")
            yield tab
        finally:
            context.close()


def _shots(served) -> Path:
    folder = Path(os.environ.get("LENSFM_DEMO_SCREENSHOTS") or served["work"] / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _summary(page, expected: str) -> dict:
    page.wait_for_function(
        "text => (document.querySelector('#summary textarea') || {}).value?.includes(text)", arg=expected,
        timeout=OUTPUT_TIMEOUT_MS)
    return json.loads(page.input_value("#summary textarea"))


def _clear_upload(page):
    try:
        page.locator("#upload button[aria-label*='clear' i]").first.click(timeout=20_000)
    except Exception:
        print(page.inner_html("#upload"))
        raise
    page.wait_for_selector("#upload input[type=file]", state="attached")


def _check_pictures(page, names):
    for name in names:
        picture = page.locator(f"#{name} img").first
        picture.wait_for(state="visible")
        assert picture.evaluate("img => img.naturalWidth") > 0, name


def test_simulate_upload_and_a_bad_file_in_chromium(served, page):
    shots = _shots(served)
    page.click("#look-simulated")
    numbers = _summary(page, "simulated model3")
    _check_pictures(page, ["image", "processed", "attention", "embedding"])
    assert sum(numbers["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert numbers["probability_sum"] == pytest.approx(1.0, abs=1e-4)
    if numbers["method"] == "ijepa_physics":
        _check_pictures(page, ["render", "residual"])
        assert 0 < numbers["residual_energy"] < numbers["image_energy"]
        assert "einstein_radius" in page.inner_text("#parameters")
    page.screenshot(path=str(shots / "demo_simulated.png"), full_page=True)

    upload = served["work"] / "lens.npy"
    from lensfm_hf.simulation import simulate

    np.save(upload, simulate("model3", "axion", 1, seed=11)["pixel_values"][0, 0].numpy())
    page.set_input_files("#upload input[type=file]", str(upload))
    page.wait_for_selector("#upload :text('lens.npy')")
    page.click("#look-upload")
    numbers = _summary(page, "upload lens.npy")
    assert numbers["input_shape"] == [64, 64] and "truth" not in numbers
    page.screenshot(path=str(shots / "demo_upload.png"), full_page=True)

    bad = served["work"] / "broken.npy"
    image = np.ones((64, 64))
    image[10, 10] = np.nan
    np.save(bad, image)
    _clear_upload(page)
    page.set_input_files("#upload input[type=file]", str(bad))
    page.wait_for_selector("#upload :text('broken.npy')")
    page.click("#look-upload")
    page.wait_for_selector("#message :text('broken.npy: 1 of 4096 pixels are NaN')")
    assert page.input_value("#summary textarea") == ""
    page.screenshot(path=str(shots / "demo_bad_file.png"), full_page=True)
    _clear_upload(page)  # the Compare tab then uses the simulation

    _pick(page, "#classifier", served["not_a_model"])
    page.click("#look-simulated")
    page.wait_for_selector("#message :text('not a classifier')")
    _pick(page, "#classifier", served["classifier"] or "(none)")


def _pick(page, dropdown: str, value: str):
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=value, exact=True).click()
    assert page.input_value(f"{dropdown} input") == value


def test_compare_tab_shows_every_model_and_the_benchmark(served, page):
    page.get_by_role("tab", name="Compare").click()
    page.click("#compare")
    page.wait_for_selector("#compare-message :text('Compared')")
    assert page.locator("#compare-gallery img").count() >= len(served["models"])
    page.wait_for_selector("#results-message :text('cells from docs/results')")
    page.screenshot(path=str(_shots(served) / "demo_compare.png"), full_page=True)


def test_a_request_naming_a_server_file_reads_nothing(served, tmp_path):
    """The HTTP API, bypassing the page: a FileData naming a file outside the uploads is refused, its text never sent."""
    secret = tmp_path / "secret.npy"
    np.save(secret, np.full((64, 64), 7.0))
    file_data = {"path": str(secret), "orig_name": "secret.npy", "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [file_data, served["models"][0], "(none)", "model3", 5]}).encode()
    request = urllib.request.Request(served["url"] + "gradio_api/call/look_at_upload", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(served["url"] + f"gradio_api/call/look_at_upload/{event}", timeout=240) as response:
        stream = response.read().decode()
    assert "event: error" in stream or "not a file uploaded through this page" in stream
    assert "Showing" not in stream and '"source": "upload secret.npy"' not in stream
