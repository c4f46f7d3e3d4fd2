"""data/loading.py: loading a built folder by config, clear errors, and torch batches that cover every row once."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from lensfm_hf.data import simulate_dataset
from lensfm_hf.data.loading import available_configs, dataset_to_tensors, iter_torch_batches, load_lensing_dataset


@pytest.fixture
def rows():
    return Dataset.from_dict({"pixel_values": np.arange(10 * 4, dtype=np.float32).reshape(10, 1, 2, 2),
                              "label": np.arange(10) % 3})


def test_load_by_config_and_missing_config_error(tmp_path, fake_sim, hf_cache):
    out = simulate_dataset(tmp_path / "ds", "model2", train_per_class=2, test_per_class=1, seed=0)
    assert available_configs(out) == ["model2"]
    train = load_lensing_dataset(out, "model2", split="train", cache_dir=hf_cache)
    assert len(train) == 6 and train.features["label"].names == ["no_sub", "cdm", "axion"]
    with pytest.raises(ValueError, match=r"has no config 'model3'; available: model2.*lensfm simulate --config model3"):
        load_lensing_dataset(out, "model3", cache_dir=hf_cache)


def test_folder_without_card_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no README.md"):
        load_lensing_dataset(tmp_path / "empty", "model2")


def test_dataset_to_tensors_stacks_columns(rows):
    tensors = dataset_to_tensors(rows, ["pixel_values"])
    assert set(tensors) == {"pixel_values"}
    assert torch.equal(tensors["pixel_values"], torch.arange(40, dtype=torch.float32).reshape(10, 1, 2, 2))


def test_batches_in_order_then_shuffled_cover_every_row_once(rows):
    batches = list(iter_torch_batches(rows, 4))
    assert [len(b["label"]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b["label"] for b in batches]), torch.arange(10) % 3)
    assert [len(b["label"]) for b in iter_torch_batches(rows, 4, drop_last=True)] == [4, 4]
    shuffled = [b["pixel_values"][:, 0, 0, 0] for b in iter_torch_batches(rows, 3, shuffle=True, seed=1)]
    firsts = torch.cat(shuffled)
    assert sorted(firsts.tolist()) == [4.0 * i for i in range(10)] and not torch.equal(firsts, torch.arange(10) * 4.0)
    again = torch.cat([b["pixel_values"][:, 0, 0, 0] for b in iter_torch_batches(rows, 3, shuffle=True, seed=1)])
    assert torch.equal(firsts, again)


def test_streaming_batches_and_bad_arguments(rows):
    stream = rows.to_iterable_dataset()
    assert [len(b["label"]) for b in iter_torch_batches(stream, 4, columns=["label"])] == [4, 4, 2]
    with pytest.raises(ValueError, match="shuffle a streaming dataset upstream"):
        next(iter_torch_batches(stream, 4, shuffle=True))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        next(iter_torch_batches(rows, 0))
