"""The benchmark: every pretraining method on Model 2, every registered downstream task and protocol, one table each.

`run_benchmark("recipes/benchmark/quick.yaml")` (`lensfm benchmark RECIPE [key=value ...]`). One concern per module:
`recipe` (the YAML sections), `protocols` (the protocol records), `markers` and `encoders` (data, pretraining,
health), `cells` (cached results per encoder, task, protocol and budget), `report` (tables, plots, cards), `run`.
"""

from .cells import CELL_FORMAT_VERSION, SplitCache, TaskData, compute_cell, evaluate_encoder, read_cell, summarise_seeds
from .encoders import ensure_encoder, pretrain_overrides, random_encoder
from .markers import encoder_marker, encoder_ready, file_fingerprint, mark_encoder_ready
from .recipe import (
    RANDOM_INIT,
    BenchmarkArguments,
    BenchmarkDataArguments,
    BenchmarkModelArguments,
    BenchmarkPretrainArguments,
    BenchmarkProtocolArguments,
    BenchmarkRecipe,
    Evaluation,
    load_benchmark_recipe,
)
from .protocols import PROTOCOLS, Protocol, SeedRun, get_protocol, register_protocol
from .report import card_results, detailed_table, make_plots, markdown_table, write_cards, write_readme_table
from .run import run_benchmark

__all__ = [
    "CELL_FORMAT_VERSION",
    "PROTOCOLS",
    "Protocol",
    "SeedRun",
    "get_protocol",
    "register_protocol",
    "RANDOM_INIT",
    "BenchmarkArguments",
    "BenchmarkDataArguments",
    "BenchmarkModelArguments",
    "BenchmarkPretrainArguments",
    "BenchmarkProtocolArguments",
    "BenchmarkRecipe",
    "Evaluation",
    "SplitCache",
    "TaskData",
    "card_results",
    "compute_cell",
    "detailed_table",
    "encoder_marker",
    "encoder_ready",
    "ensure_encoder",
    "evaluate_encoder",
    "file_fingerprint",
    "load_benchmark_recipe",
    "make_plots",
    "mark_encoder_ready",
    "markdown_table",
    "pretrain_overrides",
    "random_encoder",
    "read_cell",
    "run_benchmark",
    "summarise_seeds",
    "write_cards",
    "write_readme_table",
]
