"""Feeding pretraining (`training/pretrain/data.py`): in-memory batches shard ranks and resume; simulated stream
batches depend only on (seed, rank, index), whichever DataLoader worker draws them."""

from __future__ import annotations

import torch

from lensfm_hf.models import LensImageProcessor
from lensfm_hf.training.pretrain import data as pretrain_data


def test_tensor_batches_shard_ranks_and_resume(monkeypatch):
    images = torch.arange(40, dtype=torch.float32).reshape(40, 1, 1, 1)

    def draw(rank, start=0, count=7):
        monkeypatch.setattr(pretrain_data, "rank", lambda: rank)
        monkeypatch.setattr(pretrain_data, "world_size", lambda: 2)
        batches = iter(pretrain_data.TensorBatches(images, batch_size=4, seed=1, start_batch=start))
        return [next(batches)["pixel_values"].flatten().int().tolist() for _ in range(count)]

    rank0, rank1 = draw(0), draw(1)
    epoch = [i for batch in rank0[:5] + rank1[:5] for i in batch]  # 40 // (4 * 2) = 5 batches per epoch
    assert sorted(epoch) == list(range(40)), "an epoch covers every image once, split between the ranks"
    assert rank0[5:] != rank0[:2], "the next epoch is reshuffled"
    assert draw(0, start=3, count=4) == rank0[3:7], "resuming at batch 3 continues the same sequence"


def test_stream_batches_depend_only_on_seed_rank_and_index():
    def stream(start=0, workers=0):
        batches = pretrain_data.StreamBatches("model2", batch_size=4, processor=LensImageProcessor(size=16),
                                              device="cpu", seed=3, start_batch=start)
        loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers)
        taken = []
        for batch in loader:
            taken.append(batch["pixel_values"])
            if len(taken) == 5 - start:
                return taken

    straight = stream()
    assert not torch.equal(straight[0], straight[1])
    for got, expected in zip(stream(start=3), straight[3:], strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for got, expected in zip(stream(start=1, workers=2), straight[1:], strict=True):  # whichever worker draws it
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_paired_stream_batches_hold_two_renders_of_each_lens():
    def batch(index):
        batches = pretrain_data.StreamBatches("model2_varied", batch_size=6, processor=LensImageProcessor(size=16),
                                              device="cpu", seed=3, paired=True)
        return batches.batch(index)

    first = batch(0)
    assert set(first) == {"pixel_values", "paired_pixel_values"}
    assert first["pixel_values"].shape == first["paired_pixel_values"].shape == (6, 1, 16, 16)
    assert not torch.allclose(first["pixel_values"], first["paired_pixel_values"])
    torch.testing.assert_close(batch(0)["paired_pixel_values"], first["paired_pixel_values"], rtol=0, atol=0)


def test_shuffles_of_different_seeds_never_share_an_epochs_order():
    """The epoch order is a named `derive_seed` part of (seed, epoch); the old `seed * 1_000_003 + epoch` gave seed 1's
    first epoch the order of seed 0's epoch 1_000_003."""
    images = torch.arange(64, dtype=torch.float32).reshape(64, 1, 1, 1)

    def first_batch(seed, epoch):  # 1 batch per epoch: start_batch is the epoch
        return next(iter(pretrain_data.TensorBatches(images, batch_size=64, seed=seed, start_batch=epoch)))

    assert not torch.equal(first_batch(1, 0)["pixel_values"], first_batch(0, 1_000_003)["pixel_values"])


def test_held_out_images_of_one_run_are_never_anothers(monkeypatch):
    """Health and evaluation images are drawn under their own named seeds: with the old salts (+2_000_003,
    +1_000_003), run 0's health images were run 1_000_000's evaluation images."""
    from types import SimpleNamespace

    seeds = []

    class Stream:
        def __init__(self, config, batch_size, device, seed, num_batches):
            seeds.append(seed)
            self.batch_size = batch_size

        def __iter__(self):
            yield {"pixel_values": torch.zeros(self.batch_size, 1, 4, 4)}

    monkeypatch.setattr(pretrain_data, "LensingStream", Stream)
    data_args = SimpleNamespace(is_stream=True, dataset_config="model2", num_health_images=4, num_eval_images=4,
                                stream_device="cpu", stream_compile=False, paired=False)
    processor = SimpleNamespace(process_tensor=lambda images: images)

    def args(seed):
        return SimpleNamespace(seed=seed, device="cpu", per_device_train_batch_size=4, gradient_accumulation_steps=1)

    pretrain_data.build_health_images(data_args, args(0), processor)
    health = seeds.pop()
    pretrain_data.build_datasets(data_args, args(1_000_000), processor)
    evaluation = seeds.pop()
    assert health != evaluation
