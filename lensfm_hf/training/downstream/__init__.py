"""Downstream evaluation: the task registry, splits, probes, LP-FT, fine-tuning with its recipe and export, metrics,
plots and the fine-tuning callbacks. Never imports `training.pretrain` (tests/test_architecture.py)."""
