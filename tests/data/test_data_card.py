"""data/card.py: the dataset card lists every finished config from the manifests, and the example figure."""

import pytest
import yaml

from lensfm_hf.data import simulate_dataset
from lensfm_hf.data.card import finished_configs, render_dataset_card, write_dataset_card, write_example_images
from lensfm_hf.data.folder import read_manifest, write_manifest


@pytest.fixture
def folder(tmp_path, fake_sim):
    out = tmp_path / "ds"
    simulate_dataset(out, "model2", train_per_class=2, test_per_class=1, seed=0)
    simulate_dataset(out, "model3", train_per_class=1, test_per_class=0, seed=0)
    return out


def _metadata(text: str) -> dict:
    return yaml.safe_load(text.split("---")[1])


def test_card_yaml_declares_every_config_with_its_splits(folder):
    metadata = _metadata((folder / "README.md").read_text())
    configs = {c["config_name"]: c for c in metadata["configs"]}
    assert configs["model2"]["data_files"] == [{"split": "train", "path": "model2/train-*"},
                                               {"split": "test", "path": "model2/test-*"}]
    assert configs["model2"].get("default") is True
    assert configs["model3"]["data_files"] == [{"split": "train", "path": "model3/train-*"}]
    infos = {info["config_name"]: info for info in metadata["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["model2"]["splits"]} == {"train": 6, "test": 3}
    assert metadata["license"] == "apache-2.0" and metadata["size_categories"] == "n<1K"


def test_unfinished_configs_are_left_out(folder):
    manifest = read_manifest(folder / "model3")
    write_manifest(folder / "model3", {**manifest, "complete": False})
    assert list(finished_configs(folder)) == ["model2"]
    assert "model3/" not in str(render_dataset_card(folder))


def test_card_names_the_repo_and_is_written_to_readme(folder):
    path = write_dataset_card(folder, repo_id="lensfm/deeplense-sims")
    assert path == folder / "README.md" and 'load_dataset("lensfm/deeplense-sims"' in path.read_text()


def test_empty_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="holds no finished config; run `lensfm simulate"):
        render_dataset_card(tmp_path)


def test_example_images(folder, tmp_path):
    path = write_example_images(folder, "model2", per_class=2)
    assert path == folder / "images" / "model2_examples.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert write_example_images(folder, "model1") is None  # no shard, no figure
