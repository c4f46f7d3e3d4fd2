"""The Space folder deploys as is: its README header is a valid Spaces card for the gradio SDK, and app.py builds the
app over every zoo model by name (lensfm/<method>), each released in zoo/."""

from __future__ import annotations

import runpy
from pathlib import Path

from huggingface_hub import SpaceCard

import lensfm_hf.demo
from lensfm_hf.pretraining.registry import (
    PRETRAINING_METHODS,
    hub_spelling,
    zoo_repo_id,
)

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "lensfm-demo"
REPO = SPACE.parents[1]


def test_space_card_header_is_valid_for_the_gradio_sdk():
    card = SpaceCard.load(SPACE / "README.md")
    data = card.data.to_dict()
    assert data["sdk"] == "gradio" and (SPACE / data["app_file"]).is_file()
    major = int(str(data["sdk_version"]).split(".")[0])
    assert major >= 5 and len(str(data["sdk_version"]).split(".")) == 3
    assert len(data["short_description"]) <= 60 and data["license"] == "apache-2.0"
    assert data["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert data["models"] == [zoo_repo_id(m) for m in PRETRAINING_METHODS]
    assert "lensfm-hf[demo" in (SPACE / "requirements.txt").read_text()


def test_space_app_loads_the_zoo_by_name(monkeypatch):
    built = {}
    monkeypatch.setattr(lensfm_hf.demo, "build_app", lambda models, classifiers=(), **kw: built.update(models=models))
    runpy.run_path(str(SPACE / "app.py"), run_name="space_app")  # not __main__: builds, does not launch
    assert built["models"] == [zoo_repo_id(m) for m in PRETRAINING_METHODS]
    released = {p.name for p in (REPO / "zoo").iterdir() if (p / "provenance.json").is_file()}
    assert {hub_spelling(m).replace("-", "_") for m in PRETRAINING_METHODS} <= released
