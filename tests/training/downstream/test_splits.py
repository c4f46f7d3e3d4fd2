"""Fine-tuning splits: each target kind prepared from fake-simulated rows, exact (de)standardisation, seeded
train/validation cuts and label subsets, the batch dataset."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from split_fakes import NAMES, separable_split

from lensfm_hf.data.loading import load_lensing_dataset
from lensfm_hf.models import LensImageProcessor
from lensfm_hf.training.downstream.splits import (
    LensTensorDataset,
    TensorSplit,
    collate_batch,
    few_label_subset,
    load_processor,
    prepare_split,
    split_train_validation,
    standardise_targets,
    task_rows,
    train_validation_indices,
)
from lensfm_hf.training.downstream.tasks import TASKS


def _rows(dataset_dir, config, split="train"):
    return load_lensing_dataset(dataset_dir, config, split=split)


# ----------------------------------------------------------------------------- prepare_split per target kind


def test_class_split_has_labels_names_and_the_encoder_size(dataset_dir):
    rows = _rows(dataset_dir, "model1")  # 24 px images
    split = prepare_split(task_rows(rows, TASKS["classification"]), TASKS["classification"], LensImageProcessor(), 16)
    assert split.pixel_values.shape == (36, 1, 16, 16) and split.pixel_values.dtype == torch.float32
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == list(rows["label"])
    assert split.label_names == NAMES
    assert float(split.pixel_values.amin()) >= -1e-6 and float(split.pixel_values.amax()) <= 1 + 1e-6  # min-max


def test_scalar_split_is_log10_of_the_axion_rows_only(dataset_dir):
    task = TASKS["regression"]
    rows = _rows(dataset_dir, "model3")
    kept = task_rows(rows, task)
    assert len(kept) == 12 and set(kept["label"]) == {NAMES.index("axion")}  # no_sub and cdm have NaN masses
    split = prepare_split(kept, task, LensImageProcessor(), 16)
    assert split.labels.shape == (12, 1) and split.labels.dtype == torch.float32 and split.label_names is None
    expected = np.log10(np.asarray(kept["axion_mass"], dtype=np.float64))
    np.testing.assert_allclose(split.labels.numpy().ravel(), expected, atol=1e-5)
    assert -24 <= expected.min() and expected.max() <= -22
    np.testing.assert_allclose(split.physical_targets(), expected, atol=1e-5)


@pytest.mark.parametrize("image_size", [16, 8])
def test_image_split_has_targets_at_twice_the_size_in_the_inputs_units(dataset_dir, image_size):
    task = TASKS["super_resolution"]
    rows = task_rows(_rows(dataset_dir, "super_resolution"), task)
    split = prepare_split(rows, task, LensImageProcessor(), image_size)
    assert split.pixel_values.shape == (36, 1, image_size, image_size)
    assert split.labels.shape == (36, 1, 2 * image_size, 2 * image_size) and split.labels.dtype == torch.float32
    # The fake's 2x2 high-res blocks sum to the low-res pixel (+ <= 4% noise): scaled by f^2 and normalised with the
    # low-res image's statistics, a block's mean is the input pixel; after resizing, an image's mean brightness is.
    brightness = (split.labels.mean((1, 2, 3)) - split.pixel_values.mean((1, 2, 3))).abs()
    assert float(brightness.max()) < 0.05, brightness
    if image_size == 16:
        difference = (F.avg_pool2d(split.labels, 2) - split.pixel_values).abs()
        assert float(difference.max()) < 0.06, float(difference.max())
    as_counts = prepare_split(rows, task, LensImageProcessor(), image_size, flux_per_pixel=False)
    assert float((as_counts.labels.mean((1, 2, 3)) - as_counts.pixel_values.mean((1, 2, 3))).abs().min()) > 0.2


def test_task_rows_say_what_is_missing(dataset_dir):
    regression = TASKS["regression"]
    with pytest.raises(ValueError, match="lacks") as err:  # lens finding has no axion class
        task_rows(_rows(dataset_dir, "lens_finding"), regression, "lf (train)")
    assert "'axion'" in str(err.value) and "lf (train)" in str(err.value)
    with pytest.raises(ValueError, match="has no column 'high_resolution'") as err:
        task_rows(_rows(dataset_dir, "model3"), TASKS["super_resolution"], "m3 (train)")
    assert "m3 (train)" in str(err.value) and "pixel_values" in str(err.value)
    no_sub = _rows(dataset_dir, "model3").filter(lambda row: row["label"] == 0)
    with pytest.raises(ValueError, match="no rows of .* usable 'axion_mass'"):
        task_rows(no_sub, regression)
    classes = _rows(dataset_dir, "model3")
    assert task_rows(classes, TASKS["classification"]) is classes  # every row has a label


def test_prepare_split_of_no_rows_fails_clearly(dataset_dir):
    empty = _rows(dataset_dir, "model3").select([])
    with pytest.raises(ValueError, match="empty"):
        prepare_split(empty, TASKS["classification"], LensImageProcessor(), 16)


# ----------------------------------------------------------------------------- standardisation


def _scalar_split(values):
    values = torch.as_tensor(values, dtype=torch.float32).reshape(-1, 1)
    return TensorSplit(torch.zeros(len(values), 1, 4, 4), values)


def test_standardised_and_physical_targets_round_trip():
    physical = np.array([-23.7, -23.1, -22.9, -22.2, -22.05])
    split = _scalar_split(physical)
    standard = split.standardised(-23.0, 0.5)
    np.testing.assert_allclose(standard.labels.numpy().ravel(), (split.physical_targets() + 23.0) / 0.5, atol=1e-6)
    np.testing.assert_allclose(standard.physical_targets(), split.physical_targets(), atol=1e-6)
    again = standard.standardised(1.0, 3.0)  # from physical units, not from the standardised values
    np.testing.assert_allclose(again.physical_targets(), split.physical_targets(), atol=1e-6)
    assert standard.labels.shape == split.labels.shape
    np.testing.assert_allclose(standard.to_physical([0.0, 2.0]), [-23.0, -22.0])


def test_standardise_targets_uses_train_statistics_for_every_split():
    train, test = _scalar_split([-24.0, -23.0, -22.0]), _scalar_split([-22.5])
    train_s, test_s = standardise_targets(train, test)
    assert float(train_s.labels.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(train_s.labels.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)
    assert (test_s.target_mean, test_s.target_std) == (train_s.target_mean, train_s.target_std)
    assert test_s.physical_targets()[0] == pytest.approx(-22.5, abs=1e-6)
    constant, = standardise_targets(_scalar_split([-23.0, -23.0]))
    assert constant.target_std == 1.0 and constant.labels.abs().max() == 0  # no division by zero
    # an empty validation split (validation_fraction 0) standardises to an empty split of the same shape
    _, empty = standardise_targets(train, _scalar_split([]))
    assert empty.labels.shape == (0, 1) and empty.physical_targets().shape == (0,)


# ----------------------------------------------------------------------------- validation cuts and label subsets


def test_few_label_subsets_are_balanced_and_seeded():
    split = separable_split(90)
    a, b, c = (few_label_subset(split, 7, seed) for seed in (0, 0, 1))
    assert np.bincount(a.labels.numpy()).tolist() == [7, 7, 7]
    assert torch.equal(a.pixel_values, b.pixel_values)
    assert not torch.equal(a.pixel_values, c.pixel_values)
    with pytest.raises(ValueError, match="fewer than"):
        few_label_subset(split, 31, 0)
    with pytest.raises(ValueError, match="at least 1"):
        few_label_subset(split, 0, 0)


def test_few_label_subset_of_a_datasets_dataset():
    from datasets import ClassLabel, Dataset, Features, Value

    dataset = Dataset.from_dict(
        {"label": [i % 3 for i in range(60)], "index": list(range(60))},
        features=Features({"label": ClassLabel(names=NAMES), "index": Value("int64")}),
    )
    first, same, other = (few_label_subset(dataset, 5, seed) for seed in (3, 3, 4))
    assert np.bincount(first["label"]).tolist() == [5, 5, 5]
    assert first["index"] == same["index"] and first["index"] != other["index"]


def test_a_few_label_cut_trains_on_the_budget_and_selects_on_at_most_as_many_per_class():
    split = separable_split(120, size=4)
    full_train, full_validation = split_train_validation(split, 0.25, seed=0)
    train, validation = split_train_validation(split, 0.25, seed=0, labels_per_class=4)
    assert np.bincount(train.labels.numpy()).tolist() == [4, 4, 4]
    assert np.bincount(validation.labels.numpy()).tolist() == [4, 4, 4]
    rows = {tuple(x.flatten().tolist()) for x in full_validation.pixel_values}
    assert all(tuple(x.flatten().tolist()) in rows for x in validation.pixel_values)  # drawn from the same cut
    _, capped = split_train_validation(split, 0.25, seed=0, labels_per_class=20)
    assert np.bincount(capped.labels.numpy()).tolist() == [10, 10, 10]  # capped by the validation cut


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(3), 40)
    train, validation = train_validation_indices(labels, 0.25, seed=0)
    assert len(np.intersect1d(train, validation)) == 0 and len(train) + len(validation) == 120
    assert np.bincount(labels[validation]).tolist() == [10, 10, 10]
    again, _ = train_validation_indices(labels, 0.25, seed=0)
    other, _ = train_validation_indices(labels, 0.25, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    everything, none = train_validation_indices(labels, 0.0, seed=0)
    assert len(everything) == 120 and len(none) == 0
    with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\)"):
        train_validation_indices(labels, 1.0, seed=0)


def test_split_train_validation_of_scalar_targets_is_a_random_cut():
    split = _scalar_split(np.linspace(-24, -22, 40))
    train, validation = split_train_validation(split, 0.25, seed=0)
    assert len(train) == 30 and len(validation) == 10
    merged = np.sort(np.r_[train.physical_targets(), validation.physical_targets()])
    np.testing.assert_allclose(merged, np.sort(split.physical_targets()))


# ----------------------------------------------------------------------------- batches and processors


def test_tensor_dataset_returns_batches_and_collate_passes_them_through():
    split = TensorSplit(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    dataset = LensTensorDataset(split)
    batch = dataset.__getitems__([0, 3, 5])
    assert batch["pixel_values"].shape == (3, 1, 8, 8) and batch["labels"].tolist() == [0, 1, 1]
    assert collate_batch(batch) == batch
    stacked = collate_batch([dataset[0], dataset[3]])
    assert stacked["pixel_values"].shape == (2, 1, 8, 8) and stacked["labels"].tolist() == [0, 1]


def test_augmented_batches_move_image_targets_with_their_images():
    images = torch.arange(4 * 4 * 4, dtype=torch.float32).reshape(4, 1, 4, 4)
    targets = F.interpolate(images, scale_factor=2, mode="nearest")
    torch.manual_seed(0)
    batch = LensTensorDataset(TensorSplit(images, targets), augment=True).__getitems__([0, 1, 2, 3])
    torch.testing.assert_close(batch["labels"][..., ::2, ::2], batch["pixel_values"])  # the same D4 element
    assert not torch.equal(batch["pixel_values"], images)  # seed 0 does transform some
    assert sorted(batch["pixel_values"].flatten().tolist()) == sorted(images.flatten().tolist())


def test_load_processor_reads_the_encoders_or_falls_back(tiny_encoder_dir, tmp_path, caplog):
    saved = LensImageProcessor(size=16, stretch="asinh")
    saved.save_pretrained(tiny_encoder_dir)
    processor = load_processor(str(tiny_encoder_dir), 32)
    assert processor.size == 32 and processor.stretch == "asinh"
    with caplog.at_level(logging.INFO, logger="lensfm_hf.training.downstream.splits"):
        default = load_processor(str(tmp_path / "no-processor"), 24)
    assert default.size == 24 and "default min-max processor" in caplog.text
    assert load_processor(None, 8).size == 8


def test_a_lens_finding_split_keeps_the_columns_its_plots_split_by(dataset_dir):
    rows = _rows(dataset_dir, "lens_finding", split="test")
    task = TASKS["lens_finding"]
    split = prepare_split(task_rows(rows, task), task, LensImageProcessor(), 16)
    assert set(split.columns) == {"einstein_radius"}  # arc_snr: absent from these (fake) rows, so not kept
    np.testing.assert_allclose(split.columns["einstein_radius"].numpy(), np.asarray(rows["einstein_radius"]), rtol=1e-6)
    assert split.select([1, 0]).columns["einstein_radius"].tolist() == split.columns["einstein_radius"][[1, 0]].tolist()
    outputs = task.outputs(np.zeros((len(split), 2)), split)
    assert outputs["column_einstein_radius"].shape == (len(split),)
