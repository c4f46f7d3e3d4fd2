"""`lensfm` command line: thin argument parsing that calls the library functions.

Each subcommand (simulate, import-deeplensesim, pretrain, finetune, benchmark, release, zoo, demo, push, install-cache) is one
function, so the CLI is scriptable. Imports live inside the commands: the console script loads this file alone, so
`--help` and argument errors answer at once, without loading torch and transformers.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# What a user passes instead of the data layer's `overwrite=True` keyword, per command.
OVERWRITE_HINTS = {
    "simulate": "pass --overwrite",
    "import-deeplensesim": "pass --overwrite",
    "finetune": "set data.simulate_overwrite=true",
    "benchmark": "delete that folder (it is simulated again) or set benchmark.results_dir to another folder",
}


def _say(command: str, text: str) -> None:
    print(f"[lensfm {command}] {text}", flush=True)


def _check_device(device: str | None, option: str) -> None:
    """Refuse a CUDA device on a torch build without CUDA before anything runs (torch's own error is a traceback)."""
    if device and str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible CUDA device"
            raise RuntimeError(
                f"{option} {device}: this torch {torch.__version__} has {build}; use {option} cpu, or install a "
                "CUDA build of torch on a machine with a GPU"
            )


def _recipe(args: argparse.Namespace, kind: str) -> str:
    from .resources import resolve_recipe

    return str(resolve_recipe(args.recipe, kind))


def _recipe_section_value(path: str, section: str, key: str):
    """One value of a recipe file, for the progress line (the full parse happens in the library)."""
    from .resources import load_yaml

    data = load_yaml(path) or {}
    values = data.get(section) if isinstance(data, dict) else None
    return values.get(key) if isinstance(values, dict) else None  # the library names a malformed section


def _overrides_value(overrides: Sequence[str] | None, *keys: str) -> str | None:
    for item in overrides or []:
        name, _, value = item.partition("=")
        if name in keys:
            return value
    return None


def _setting(args: argparse.Namespace, recipe: str, section: str, key: str):
    """`section.key` as the run will see it: a command-line override (`section.key=` or `key=`), else the recipe's."""
    value = _overrides_value(args.overrides, f"{section}.{key}", key)
    return value if value is not None else _recipe_section_value(recipe, section, key)


def _simulate(args: argparse.Namespace):
    _check_device(args.device, "--device")
    from .data.build import simulate_dataset

    _say("simulate", f"{args.config}: {args.train_per_class} train / {args.test_per_class} test images per class, "
         f"seed {args.seed}, {args.engine} engine on {args.device} -> {args.out}")
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
    _say("simulate", f"dataset written to {path} (load_dataset({str(path)!r}, {args.config!r}))")


def _import(args: argparse.Namespace):
    from .data.importer import import_deeplensesim

    _say("import-deeplensesim", f"{args.path} as {args.config} -> {args.out}")
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


def _pretrain(args: argparse.Namespace):
    if args.continue_from:
        _continue(args)
        return
    if args.recipe is None:
        raise ValueError("lensfm pretrain needs a RECIPE (e.g. mae_tiny), or --continue zoo/<method>")
    recipe = _recipe(args, "pretrain")
    method, seed = _setting(args, recipe, "model", "method"), _setting(args, recipe, "training", "seed")
    _say("pretrain", f"method {method}, recipe {recipe}, seed {seed if seed is not None else 42}")
    from .training.pretrain.run import run_pretraining

    result = run_pretraining(recipe, overrides=args.overrides)
    _say("pretrain", f"{result.get('method', method)}: {result.get('global_step')} steps, train loss "
         f"{result.get('train_loss')}")
    _say("pretrain", f"encoder saved to {result['encoder_dir']} (AutoModel.from_pretrained({result['encoder_dir']!r}); "
         f"lensfm finetune model3_classification model.encoder={result['encoder_dir']})")
    _say("pretrain", f"full pretraining state in {result.get('pretraining_dir')}")


def _continue(args: argparse.Namespace):
    overrides = [*([args.recipe] if args.recipe else []), *args.overrides]  # no recipe: the first is an override
    _say("pretrain", f"continuing {args.continue_from} for {args.steps or 'the recipe max_steps'} more steps")
    from .training.pretrain.zoo_continue import continue_summary, continue_zoo_model

    record = continue_zoo_model(args.continue_from, steps=args.steps, overrides=overrides)
    _say("pretrain", f"{args.continue_from} written back: {continue_summary(record)}")


def _release(args: argparse.Namespace):
    from .training.benchmark.zoo import release_benchmark

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    released = release_benchmark(args.results_dir, zoo_dir=args.zoo_dir, methods=methods)
    _say("release", f"released {', '.join(str(p) for p in released.values())}; install with `lensfm zoo`")


def _finetune(args: argparse.Namespace):
    recipe = _recipe(args, "finetune")
    task, config = _setting(args, recipe, "data", "task"), _setting(args, recipe, "data", "config")
    encoder, seed = _setting(args, recipe, "model", "encoder"), _setting(args, recipe, "training", "seed")
    _say("finetune", f"task {task} on {config}, encoder {encoder or 'none (random init)'}, recipe {recipe}, "
         f"seed {seed if seed is not None else 42}")
    from .training.downstream.finetune_recipe import run_finetune
    from .training.downstream.tasks import get_task

    result = run_finetune(recipe, overrides=args.overrides)
    _say("finetune", f"load it anywhere: pipeline('image-classification', model={result['model_dir']!r}, "
         "trust_remote_code=True)" if get_task(result["task"]).has_classes else
         f"load it with trust_remote_code=True from {result['model_dir']}")


def _benchmark(args: argparse.Namespace):
    recipe = _recipe(args, "benchmark")
    _say("benchmark", f"recipe {recipe}")
    from .training.benchmark import run_benchmark

    result = run_benchmark(recipe, overrides=args.overrides)
    cards = result.get("cards") or []
    _say("benchmark", f"table: {result.get('table_path')}; results: {result.get('results_path')}; "
         f"plots under {result.get('results_dir')}/plots; "
         + (f"{len(cards)} cards in {Path(cards[0]).parent.parent}" if cards else "no cards"))
    if result.get("failures"):
        # The table lacks the failed methods' rows; a zero exit would pass it off as complete.
        failed = ", ".join(f"{f['method']} ({f['stage']})" for f in result["failures"])
        raise RuntimeError(f"{failed} failed; see the 'Failed methods' section of {result.get('table_path')}")


def _zoo(args: argparse.Namespace):
    from .training.benchmark.zoo import build_zoo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    installed = build_zoo(methods, results_dir=args.results_dir, output_dir=args.output_dir,
                          reuse=not args.no_reuse, overrides=args.overrides, cache_dir=args.cache_dir,
                          zoo_dir=args.zoo_dir, retrain=args.retrain)
    names = ", ".join(info["repo_id"] for info in installed.values())
    _say("zoo", f"installed {names} in the local HF cache; offline: HF_HUB_OFFLINE=1 and "
         f"AutoModel.from_pretrained({next(iter(installed.values()))['repo_id']!r})")


def _demo(args: argparse.Namespace):
    from .demo.serve import serve

    _say("demo", f"serving on http://{args.host}:{args.port} (Ctrl-C stops)")
    serve(args.model or None, args.classifier or (), zoo_dir=args.zoo_dir, results_root=args.results,
          host=args.host, port=args.port, reference_per_class=args.reference_per_class)


def _push(args: argparse.Namespace):
    from .hub.push import push_folder

    url = push_folder(
        args.folder, repo_id=args.repo, repo_type=args.repo_type, private=args.private, timeout=args.timeout
    )
    _say("push", f"pushed {args.folder} to {url}")


def _install_cache(args: argparse.Namespace):
    from .hub.cache import install_cache

    path = install_cache(args.folder, repo_id=args.repo, repo_type=args.repo_type, cache_dir=args.cache_dir)
    _say("install-cache", f"installed {args.folder} as {args.repo} in the local hub cache at {path}")


def build_parser() -> argparse.ArgumentParser:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="lensfm", description=__doc__.splitlines()[0], formatter_class=defaults)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate a DeepLenseSim-compatible dataset folder (parquet + card)",
                       formatter_class=defaults)
    p.add_argument("--config", default="model2", help="model1 | model2 | model3 | lens_finding | super_resolution | model2_varied")
    p.add_argument("--train-per-class", type=int, default=1000, help="training images per class")
    p.add_argument("--test-per-class", type=int, default=200, help="test images per class")
    p.add_argument("--seed", type=int, default=0, help="simulation seed")
    p.add_argument("--engine", default="torch", choices=["torch", "lenstronomy"], help="simulator")
    p.add_argument("--device", default="cpu", help="torch device of the torch engine (cpu, cuda, cuda:1)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per parquet shard (the unit of resumption)")
    p.add_argument("--out", required=True, help="dataset folder (repo-shaped); rerunning resumes")
    p.add_argument("--overwrite", action="store_true", help="replace this config's shards instead of resuming")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("import-deeplensesim", help="convert real DeepLenseSim .npy folders to our dataset schema",
                       formatter_class=defaults)
    p.add_argument("path", help="folder of the DeepLenseSim class folders")
    p.add_argument("--config", default="model2", help="dataset config the images belong to")
    p.add_argument("--out", required=True, help="dataset folder (repo-shaped)")
    p.add_argument("--strict", action="store_true", help="stop at the first corrupt or wrong-shape file")
    p.add_argument("--shard-size", type=int, default=1000, help="images per parquet shard")
    p.add_argument(
        "--test-fraction", type=float, default=0.1, help="share sent to test when the folders have no test split"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing import of this config")
    p.set_defaults(func=_import)

    # The override examples are ones each command accepts (tests/test_cli.py parses them with a shipped recipe).
    for name, func, what, example, override in [
        ("pretrain", _pretrain, "self-supervised pretraining from a YAML recipe; exports a hub-ready encoder",
         "mae_tiny (shipped: <method> for a GPU, <method>_tiny for a CPU) or a path such as my_recipe.yaml",
         "training.max_steps=10"),
        ("finetune", _finetune, "fine-tune an encoder on a downstream task from a YAML recipe",
         "model3_classification (shipped: model1_classification, model3_classification, lens_finding, "
         "axion_regression, super_resolution) or a path", "training.max_steps=10"),
        ("benchmark", _benchmark, "pretrain every method and run every protocol; writes results/<preset>/",
         "quick (shipped: mini, quick, full) or a path",
         "benchmark.seeds=[0] benchmark.methods=[mae,dino] protocols.finetune.max_steps=10"),
    ]:
        p = sub.add_parser(name, help=what, description=what, formatter_class=defaults)
        p.add_argument("recipe", nargs="?" if name == "pretrain" else None,
                       help=f"a shipped recipe name, e.g. {example}")
        p.add_argument("overrides", nargs="*", help=f"KEY=VALUE overrides of recipe fields, e.g. {override}")
        p.set_defaults(func=func)
        if name == "pretrain":
            p.add_argument("--continue", dest="continue_from", metavar="ZOO_FOLDER", default=None,
                           help="continue a released model (zoo/<method>) with its recipe, then write it back with "
                           "provenance updated (a warm restart: weights kept, optimizer and schedule restarted)")
            p.add_argument("--steps", type=int, default=None,
                           help="with --continue: optimiser steps to add (default: the recipe's max_steps)")

    p = sub.add_parser(
        "zoo", formatter_class=defaults,
        help="build every method's encoder on this machine and install it in the local HF cache as lensfm/<method>",
        description="Installs the released zoo/<method> folders (hashes checked, no training) as lensfm/<method>. "
        "A method not released (or all, with --retrain) reuses a finished study/quick benchmark encoder under "
        "--results-dir, else pretrains with the shipped <method>_tiny recipe.",
    )
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of the <method>_tiny recipes, e.g. "
                   "training.max_steps=100")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: all seven)")
    p.add_argument("--results-dir", default="results", help="where benchmark encoders are looked for")
    p.add_argument("--output-dir", default="outputs/zoo", help="pretraining output folders, one per method")
    p.add_argument("--no-reuse", action="store_true", help="pretrain even where a benchmark encoder exists")
    p.add_argument("--zoo-dir", default=None, help="released models (default: ./zoo, else the checkout's zoo/)")
    p.add_argument("--retrain", action="store_true",
                   help="ignore the released zoo/ folders: reuse benchmark encoders or pretrain, as before")
    p.add_argument("--cache-dir", default=None, help="hub cache (default: $HF_HUB_CACHE, i.e. $HF_HOME/hub)")
    p.set_defaults(func=_zoo)

    p = sub.add_parser("demo", formatter_class=defaults,
                       help="serve a page that shows what each zoo model infers of one lens image (extra [demo])",
                       description="Upload or simulate a lens; see the processor's input, class probabilities, the "
                       "attention map, the embedding beside reference images and, for ijepa-physics, the inferred "
                       "lens, its render and the residual. Released zoo/ folders are installed first.")
    p.add_argument("--model", action="append", default=[], help="an encoder (hub id or folder); repeat for more "
                   "(default: every lensfm/* model installed)")
    p.add_argument("--classifier", action="append", default=[], help="a fine-tuned classifier folder (lensfm "
                   "finetune); repeat for more")
    p.add_argument("--zoo-dir", default=None, help="released models (default: ./zoo, else the checkout's zoo/)")
    p.add_argument("--results", default=None, help="benchmark results folders (default: docs/results)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--reference-per-class", type=int, default=200,
                   help="simulated reference images per class for the embedding plot")
    p.set_defaults(func=_demo)

    p = sub.add_parser("release", formatter_class=defaults,
                       help="release a finished benchmark's encoders into zoo/<method>/ (Hub layout, provenance)")
    p.add_argument("results_dir", help="the benchmark's results folder, e.g. results/study")
    p.add_argument("--zoo-dir", default=None, help="where the model folders go (default: ./zoo, else the checkout's)")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every method it pretrained)")
    p.set_defaults(func=_release)

    p = sub.add_parser("push", help="upload a hub-ready model or dataset folder", formatter_class=defaults)
    p.add_argument("folder")
    p.add_argument("--repo", "--repo-id", dest="repo", required=True, help="ORG/NAME")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--private", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds any one request to the Hub may stall before the push fails")
    p.set_defaults(func=_push)

    p = sub.add_parser("install-cache", help="place a folder in the local HF hub cache (works with HF_HUB_OFFLINE=1)",
                       formatter_class=defaults)
    p.add_argument("folder")
    p.add_argument("--repo", "--repo-id", dest="repo", required=True, help="ORG/NAME")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--cache-dir", default=None, help="hub cache (default: $HF_HUB_CACHE, i.e. $HF_HOME/hub)")
    p.set_defaults(func=_install_cache)
    return parser


def _one_line(command: str, err: BaseException, recipe: str | None) -> str:
    """The error as one line that names the file and the fix."""
    import yaml

    if isinstance(err, yaml.YAMLError):
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        return (f"recipe {getattr(mark, 'name', None) or recipe} is not valid YAML{where}: {problem}; fix the "
                "syntax there (indent with spaces, `key: value`)")
    text = " ".join(str(err).split())
    if "pass overwrite=True" in text and command in OVERWRITE_HINTS:
        text = text.replace("pass overwrite=True", OVERWRITE_HINTS[command])
    disk = _disk_problem(err)
    if disk is not None:
        return f"{disk}: {text}"
    if (isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.errno is None
            and os.environ.get("HF_HUB_OFFLINE")):  # the hub's "cannot find" errors carry no errno
        text += " (HF_HUB_OFFLINE is set: only folders and repos already in the local cache load; see `lensfm zoo`)"
    return text


# OS error numbers that mean the disk refused a write, with what to say instead of blaming the network.
DISK_ERRORS = {
    errno.ENOSPC: "the disk is full (no space left on device); free some space and rerun, which resumes",
    errno.EDQUOT: "the disk quota is exceeded; free some space and rerun, which resumes",
    errno.EROFS: "the file system is read-only; write the output to another folder",
    errno.EACCES: "permission denied; write the output to a folder you may write to",
}


def _disk_problem(err: BaseException) -> str | None:
    """What went wrong on the disk, when `err` (or what it was raised from) is a refused write; None otherwise.
    torch's checkpoint writer turns ENOSPC into "[enforce fail at inline_container.cc] ... unexpected pos"."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_ERRORS:
            return DISK_ERRORS[seen.errno]
        if isinstance(seen, RuntimeError) and "inline_container" in str(seen):
            return ("writing a torch file failed, which torch reports this way when the disk is full; free some "
                    "space and rerun, which resumes")
        seen = seen.__cause__ or seen.__context__
    return None


def _command_line(args: argparse.Namespace, *extra: str) -> str:
    """The `lensfm` command line that reruns `args` (recipe, overrides, then `extra` overrides replacing theirs)."""
    keys = {item.partition("=")[0] for item in extra}
    overrides = [item for item in args.overrides or [] if item.partition("=")[0] not in keys]
    return " ".join(["lensfm", args.command, args.recipe, *overrides, *extra])


def _pretrain_interrupted(args: argparse.Namespace) -> str:
    from .training.pretrain.checkpoints import last_complete_checkpoint

    recipe = _recipe(args, "pretrain")
    output_dir = _setting(args, recipe, "training", "output_dir") or f"outputs/pretrain/{Path(recipe).stem}"
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        return (f"no checkpoint was saved in {output_dir} (set training.save_steps to save some); rerun "
                f"`{_command_line(args)}` to start again")
    return f"{checkpoint} is saved; resume from it with `{_command_line(args, 'training.resume_from_checkpoint=last')}`"


def _benchmark_interrupted(args: argparse.Namespace) -> str:
    recipe = _recipe(args, "benchmark")
    results = _setting(args, recipe, "benchmark", "results_dir") or "results"
    preset = _setting(args, recipe, "benchmark", "preset") or "quick"
    return (f"the data, encoders and evaluated cells under {Path(results) / preset} are saved; rerun "
            f"`{_command_line(args)}` to resume where it stopped")


def _finetune_interrupted(args: argparse.Namespace) -> str:
    recipe = _recipe(args, "finetune")
    output_dir = _setting(args, recipe, "training", "output_dir") or f"outputs/finetune/{Path(recipe).stem}"
    return (f"a fine-tune does not resume, but the data it simulated under {output_dir} are kept and reused; rerun "
            f"`{_command_line(args)}` to start it again")


def _rerun_resumes(args: argparse.Namespace) -> str:
    return f"the finished shards under {args.out} are saved; rerun the same command to resume"


def _rerun(args: argparse.Namespace) -> str:
    return "what finished is kept; rerun the same command to complete it"


# What a Ctrl-C leaves behind and how to go on, per command: one line instead of a traceback.
INTERRUPTED = {
    "simulate": _rerun_resumes,
    "import-deeplensesim": lambda args: "the previous import (if any) is untouched; rerun the same command",
    "pretrain": _pretrain_interrupted,
    "finetune": _finetune_interrupted,
    "benchmark": _benchmark_interrupted,
    "zoo": _rerun,
    "push": _rerun,
    "install-cache": _rerun,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        try:
            note = INTERRUPTED.get(args.command, _rerun)(args)
        except Exception:  # noqa: BLE001  (the note must never turn a Ctrl-C back into a traceback)
            note = "rerun the same command to go on"
        print(f"\nlensfm {args.command}: interrupted; {note}", file=sys.stderr)
        return 130
    except Exception as err:
        import yaml

        # Library errors say what is wrong and how to fix it; the traceback is noise for these kinds.
        from safetensors import SafetensorError

        if not isinstance(err, (ValueError, OSError, RuntimeError, yaml.YAMLError, SafetensorError)):
            raise
        print(f"lensfm {args.command}: error: {_one_line(args.command, err, getattr(args, 'recipe', None))}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
