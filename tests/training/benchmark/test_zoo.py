"""`lensfm zoo` at toy size into a temporary HF_HOME: the README's Tour then runs as written, offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hub_env import offline_env

from lensfm_hf.training.benchmark.zoo import build_zoo

README = Path(__file__).resolve().parents[3] / "README.md"
TOY = ["training.max_steps=1", "training.per_device_train_batch_size=4", "training.logging_steps=1"]


def test_build_zoo_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="unknown pretraining method 'byol'"):
        build_zoo(["mae", "byol"], cache_dir="/nonexistent")


def test_build_zoo_accepts_its_own_repo_names(tmp_path, monkeypatch):
    from lensfm_hf.training.benchmark import zoo

    monkeypatch.setattr(zoo, "find_benchmark_encoder", lambda method, results_dir: (tmp_path / method, "quick"))
    monkeypatch.setattr(zoo, "install_zoo_encoder", lambda encoder_dir, method, **kwargs: encoder_dir)
    installed = build_zoo(["lensfm/ijepa-physics", "ijepa-physics"], cache_dir=tmp_path, zoo_dir=tmp_path / "no-zoo",
                          output_dir=tmp_path / "out")
    assert installed == {"ijepa_physics": {"repo_id": "lensfm/ijepa-physics", "encoder_dir": str(tmp_path / "ijepa_physics"),
                                           "snapshot": str(tmp_path / "ijepa_physics"), "source": "reused from the quick benchmark"}}


@pytest.mark.slow  # two toy pretrainings and two fresh interpreters: ~45 s on 2 cores
def test_zoo_installs_what_the_readme_tour_loads_offline(tmp_path):
    tour = re.search(r"## Tour.*?```python\n(.*?)```", README.read_text(), flags=re.S).group(1)
    repos = set(re.findall(r'"(lensfm/[\w-]+)"', tour))
    assert repos == {"lensfm/ijepa-physics"}, repos  # the Tour names only repos the zoo builds
    env = offline_env(tmp_path)
    installed = build_zoo(
        ["ijepa_physics", "mae"], results_dir=tmp_path / "no-results", output_dir=tmp_path / "zoo",
        overrides=TOY, cache_dir=Path(env["HF_HOME"]) / "hub", zoo_dir=tmp_path / "no-zoo",
    )
    assert {info["repo_id"] for info in installed.values()} == {"lensfm/ijepa-physics", "lensfm/mae"}
    card = (Path(installed["mae"]["snapshot"]) / "README.md").read_text()
    assert 'repo = "lensfm/mae"' in card

    work = tmp_path / "user"
    work.mkdir()
    load_mae = (
        "from transformers import AutoModel\n"
        "print(type(AutoModel.from_pretrained('lensfm/mae', trust_remote_code=True)).__name__)\n"
    )
    for code in (tour, load_mae):
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("LensViTModel")
