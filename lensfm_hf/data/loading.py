"""Load lensing datasets (local repo-shaped folder or hub repo) and feed them to torch fast.

Batches come from `.with_format("torch")` slicing, which stacks whole columns at once: 0.08 s against 1.1 s for
a DataLoader over single rows (4096 images of 64×64 in batches of 256, one CPU thread).
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
from datasets import Dataset, IterableDataset, get_dataset_config_names, load_dataset

from .verify import verify_config_folder


def available_configs(path_or_repo_id: str | os.PathLike) -> list[str]:
    """Config names declared in the dataset card of a folder or hub repo."""
    return list(get_dataset_config_names(str(path_or_repo_id)))


def load_lensing_dataset(
    path_or_repo_id: str | os.PathLike,
    config: str,
    split: str | None = None,
    streaming: bool = False,
    **load_kwargs,
):
    """`datasets.load_dataset(path_or_repo_id, config, split=..., streaming=...)` with a clear missing-config error.

    A local folder's config is first checked against its manifest (`verify.verify_config_folder`: shard hashes
    and row counts). Returns a DatasetDict (split=None) or a Dataset; IterableDataset(Dict) when streaming.
    `load_kwargs` go to `load_dataset` unchanged (e.g. `cache_dir`).
    """
    target = str(path_or_repo_id)
    if os.path.isdir(target) and not os.path.exists(os.path.join(target, "README.md")):
        raise FileNotFoundError(
            f"{target} has no README.md, so it declares no configs; build it with `lensfm simulate --out {target}` "
            "or `lensfm import-deeplensesim`"
        )
    if os.path.isdir(os.path.join(target, config)):
        verify_config_folder(os.path.join(target, config))  # once per folder and process; refuses a damaged shard
    configs = available_configs(target)
    if config not in configs:
        raise ValueError(
            f"{target} has no config {config!r}; available: {', '.join(configs) or 'none'}. "
            f"Add it with `lensfm simulate --config {config} --out {target}`"
        )
    return load_dataset(target, config, split=split, streaming=streaming, **load_kwargs)


def dataset_to_tensors(dataset: Dataset, columns: Sequence[str] | None = None) -> dict:
    """Every row of `dataset` as stacked tensors: {column: Tensor}, e.g. `pixel_values` (N, 1, H, W) float32.

    Loads the whole split into memory (Model II's 90k training images are 1.4 GiB); use
    `iter_torch_batches` when that is too much.
    """
    columns = list(columns) if columns is not None else list(dataset.column_names)
    return dataset.with_format("torch", columns=columns)[:]


def iter_torch_batches(
    dataset: Dataset | IterableDataset,
    batch_size: int,
    columns: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> Iterator[dict]:
    """Yield {column: Tensor} batches of `batch_size` rows (the last may be smaller unless `drop_last`).

    A map-style `Dataset` is sliced directly (contiguous slices when not shuffled; with `shuffle`,
    one permutation from `seed`, gathered per batch). An `IterableDataset` (streaming) is read in
    order through `.iter(batch_size=)`; shuffle it upstream with `.shuffle(buffer_size=)`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    names = list(columns) if columns is not None else None
    if isinstance(dataset, IterableDataset):
        if shuffle:
            raise ValueError("shuffle a streaming dataset upstream with dataset.shuffle(seed=..., buffer_size=...)")
        stream = dataset.select_columns(names) if names else dataset
        for batch in stream.with_format("torch").iter(batch_size=batch_size, drop_last_batch=drop_last):
            yield batch
        return
    formatted = dataset.with_format("torch", columns=names or list(dataset.column_names))
    num_rows = len(formatted)
    order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed)) if shuffle else None
    stop = num_rows - num_rows % batch_size if drop_last else num_rows
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, num_rows)
        if order is None:
            yield formatted[start:end]
        else:
            yield formatted[order[start:end].tolist()]
