"""LensingStream: class balance, labels and per-rank/worker seeding."""

import itertools
from types import SimpleNamespace

import pytest
import torch

from lensfm_hf.simulation import LensingStream, get_recipe
from lensfm_hf.simulation import stream as stream_module

SMALL = get_recipe("model2", image_size=16)


def _first(stream, count=1):
    return list(itertools.islice(iter(stream), count))


def test_batches_are_balanced_and_labelled():
    batches = _first(LensingStream(SMALL, batch_size=7, seed=0), 3)
    for batch in batches:
        assert batch["pixel_values"].shape == (7, 1, 16, 16) and batch["pixel_values"].dtype == torch.float32
        assert batch["labels"].dtype == torch.int64
        counts = torch.bincount(batch["labels"], minlength=3)
        assert counts.min() >= 2 and counts.max() <= 3
    total = torch.bincount(torch.cat([b["labels"] for b in batches]), minlength=3)
    assert total.tolist() == [7, 7, 7]


def test_subset_labels_index_the_recipe_classes():
    (batch,) = _first(LensingStream(SMALL, batch_size=4, class_names=("axion",)))
    assert (batch["labels"] == 2).all()
    with pytest.raises(ValueError):
        LensingStream(SMALL, batch_size=4, class_names=("wdm",))
    with pytest.raises(ValueError):
        LensingStream(SMALL, batch_size=0)


def test_seeded_per_seed_rank_and_worker(monkeypatch):
    def first_images(**kwargs):
        return _first(LensingStream(SMALL, batch_size=3, **kwargs))[0]["pixel_values"]

    reference = first_images(seed=1)
    assert torch.equal(reference, first_images(seed=1))
    assert not torch.equal(reference, first_images(seed=2))
    monkeypatch.setenv("RANK", "1")
    assert not torch.equal(reference, first_images(seed=1))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(stream_module, "get_worker_info", lambda: SimpleNamespace(id=1, num_workers=2))
    assert not torch.equal(reference, first_images(seed=1))


def test_num_batches_and_dataloader():
    stream = LensingStream(SMALL, batch_size=2, num_batches=3)
    assert len(list(stream)) == 3
    loader = torch.utils.data.DataLoader(stream, batch_size=None)
    assert len(list(loader)) == 3


def test_super_resolution_stream_has_pairs():
    recipe = get_recipe("super_resolution", image_size=12)
    (batch,) = _first(LensingStream(recipe, batch_size=3))
    assert batch["high_resolution"].shape == (3, 1, 24, 24)
