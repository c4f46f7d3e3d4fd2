"""Zoo repo ids; building the zoo (`lensfm_hf.training.benchmark.zoo.build_zoo`) is tested in tests/training/test_zoo.py."""

from __future__ import annotations

from lensfm_hf.hub.zoo import zoo_repo_id


def test_zoo_repo_ids():
    assert zoo_repo_id("mae") == "lensfm/mae"
    assert zoo_repo_id("ijepa_physics") == "lensfm/ijepa-physics"
