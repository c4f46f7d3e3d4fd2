"""Lensing datasets: simulate or import into repo-shaped parquet folders with a card, then load them.

`simulate_dataset` / `import_deeplensesim` write `<out>/<config>/{train,test}-*.parquet` plus
README.md; `load_lensing_dataset` and `iter_torch_batches` read them back for training.
"""

from .build import lensing_features, shard_seed, simulate_dataset, write_shard
from .card import render_dataset_card, write_dataset_card, write_example_images
from .importer import ImportStats, import_deeplensesim
from .loading import available_configs, dataset_to_tensors, iter_torch_batches, load_lensing_dataset
from .npy import CorruptFileError, UnsafePickleError, read_npy

__all__ = [
    "CorruptFileError",
    "ImportStats",
    "UnsafePickleError",
    "available_configs",
    "dataset_to_tensors",
    "import_deeplensesim",
    "iter_torch_batches",
    "lensing_features",
    "load_lensing_dataset",
    "read_npy",
    "render_dataset_card",
    "shard_seed",
    "simulate_dataset",
    "write_dataset_card",
    "write_example_images",
    "write_shard",
]
