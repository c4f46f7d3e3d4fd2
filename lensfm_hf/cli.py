"""`lensfm` command line: thin argument parsing that calls the library functions.

Every subcommand maps to one Python function, so anything the CLI does is scriptable:
simulate, import-deeplensesim, pretrain, finetune, benchmark, push, install-cache.
"""

from __future__ import annotations

import argparse
import sys


def _simulate(args):
    from .data.build import simulate_dataset

    path = simulate_dataset(
        out_dir=args.out,
        config=args.config,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        seed=args.seed,
        engine=args.engine,
        device=args.device,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
    )
    print(f"dataset written to {path}")


def _import(args):
    from .data.importer import import_deeplensesim

    stats = import_deeplensesim(
        args.path,
        config=args.config,
        out_dir=args.out,
        strict=args.strict,
        shard_size=args.shard_size,
        test_fraction=args.test_fraction,
        overwrite=args.overwrite,
    )
    print(stats)


def _pretrain(args):
    from .training.pretrain import run_pretraining

    run_pretraining(args.recipe, overrides=args.overrides)


def _finetune(args):
    from .training.finetune import run_finetune

    run_finetune(args.recipe, overrides=args.overrides)


def _benchmark(args):
    from .training.benchmark import run_benchmark

    result = run_benchmark(args.recipe, overrides=args.overrides)
    if result["failures"]:
        # The table is written without the failed methods; a zero exit would pass it off as complete.
        failed = ", ".join(f"{f['method']} ({f['stage']})" for f in result["failures"])
        raise RuntimeError(f"{failed} failed; see the 'Failed methods' section of {result['table_path']}")


def _push(args):
    from .hub.push import push_folder

    url = push_folder(
        args.folder, repo_id=args.repo, repo_type=args.repo_type, private=args.private, timeout=args.timeout
    )
    print(f"pushed to {url}")


def _install_cache(args):
    from .hub.cache import install_cache

    path = install_cache(args.folder, repo_id=args.repo, repo_type=args.repo_type, cache_dir=args.cache_dir)
    print(f"installed in the local hub cache at {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lensfm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate a DeepLenseSim-compatible dataset folder (parquet + card)")
    p.add_argument("--config", default="model2", help="model1 | model2 | model3 | lens_finding | super_resolution")
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", default="torch", choices=["torch", "lenstronomy"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--shard-size", type=int, default=1000, help="images per parquet shard (the unit of resumption)")
    p.add_argument("--out", required=True, help="dataset folder (repo-shaped); rerunning resumes")
    p.add_argument("--overwrite", action="store_true", help="replace this config's shards instead of resuming")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("import-deeplensesim", help="convert real DeepLenseSim .npy folders to our dataset schema")
    p.add_argument("path")
    p.add_argument("--config", default="model2")
    p.add_argument("--out", required=True)
    p.add_argument("--strict", action="store_true", help="stop at the first corrupt or wrong-shape file")
    p.add_argument("--shard-size", type=int, default=1000, help="images per parquet shard")
    p.add_argument(
        "--test-fraction", type=float, default=0.1, help="share sent to test when the folders have no test split"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing import of this config")
    p.set_defaults(func=_import)

    for name, func, what in [
        ("pretrain", _pretrain, "self-supervised pretraining from a YAML recipe"),
        ("finetune", _finetune, "fine-tune an encoder on a downstream task from a YAML recipe"),
        ("benchmark", _benchmark, "pretrain every method and run every protocol; writes results/<preset>/"),
    ]:
        p = sub.add_parser(name, help=what)
        p.add_argument("recipe", help="path to a YAML recipe, e.g. recipes/pretrain/mae.yaml")
        p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of recipe fields, e.g. max_steps=10")
        p.set_defaults(func=func)

    p = sub.add_parser("push", help="upload a hub-ready model or dataset folder")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, help="ORG/NAME")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--private", action="store_true")
    p.add_argument(
        "--timeout", type=float, default=60.0,
        help="seconds any one request to the Hub may stall before the push fails (default: %(default)s)",
    )
    p.set_defaults(func=_push)

    p = sub.add_parser("install-cache", help="place a folder in the local HF hub cache (works with HF_HUB_OFFLINE=1)")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, help="ORG/NAME")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_install_cache)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Library errors already say what is wrong and how to fix it; no traceback needed.
        print(f"lensfm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
