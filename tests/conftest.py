"""Shared test fixtures: the fake simulator (tests/fake_simulation.py) behind `lensfm_hf.data`, and a local fake
Hugging Face Hub (tests/hub/fake_hub.py) for push/pull tests.

HF libraries read HF_ENDPOINT when first imported, so run Hub clients in a subprocess with
`fake_hub_env` (see `fake_hub.run_client`); the server itself lives in the test process.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two threads spin-wait on each other
# (a micro training step went from 17 ms to 1.1 s); subprocess tests set their own thread counts.
torch.set_num_threads(1)

# The suite imports torch, transformers, datasets and matplotlib: ~0.5 M long-lived objects that every full garbage
# collection walks, and accelerate runs one at each Trainer.train (0.25-0.5 s a call, ~20% of a fine-tune test).
# Freezing what is alive after each test that imported new modules moves them out of the collector's way.
_modules_when_frozen = 0


def pytest_runtest_setup(item):
    """Freeze the objects alive now (gc.freeze) when the previous test imported modules; garbage is collected first."""
    global _modules_when_frozen
    if len(sys.modules) != _modules_when_frozen:
        gc.collect()
        gc.freeze()
        _modules_when_frozen = len(sys.modules)

REPO_ROOT = Path(__file__).resolve().parents[1]

# Importable as `fake_hub` from any test module, as one module object.
if "fake_hub" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("fake_hub", Path(__file__).parent / "hub" / "fake_hub.py")
    sys.modules["fake_hub"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["fake_hub"])
from fake_hub import FakeHub, client_env
from fake_simulation import FAKE_RECIPES, fake_sim_api


@pytest.fixture
def fake_recipes() -> dict:
    """The recipes `fake_sim` serves: tiny images by default; a test folder overrides this fixture for others."""
    return FAKE_RECIPES


@pytest.fixture
def fake_sim(monkeypatch, fake_recipes):
    """Route `lensfm_hf.data.build` to the fake simulator; `.calls` logs every simulate call."""
    # Here, not at the top: collecting a test that needs no data (tests/test_architecture.py) stays quick.
    from lensfm_hf.data import build

    api = fake_sim_api([], fake_recipes)
    monkeypatch.setattr(build, "_simulation_api", lambda: api)
    return api


@pytest.fixture
def fake_hub_server():
    """A running `FakeHub` (in-memory repos; `.url`, `.files(repo_id, repo_type)`, `.requests`)."""
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def fake_hub(fake_hub_server) -> str:
    """The endpoint URL of a running fake Hub, e.g. http://127.0.0.1:PORT."""
    return fake_hub_server.url


@pytest.fixture
def fake_hub_env(fake_hub, tmp_path) -> dict[str, str]:
    """Environment for a client subprocess: this one's, plus HF_ENDPOINT/HF_TOKEN/no-xet/a fresh HF_HOME
    pointing at the fake Hub, and the repo root on PYTHONPATH so `import lensfm_hf` works."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(client_env(fake_hub, tmp_path / "hf_home"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return env
