"""`lensfm`: a fast --help with defaults, one-line errors that name the file and the fix, progress lines that say
where outputs went, and the shipped recipes found by name."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lensfm_hf import cli
from lensfm_hf.resources import recipes_dir, resolve_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_imports_neither_torch_nor_transformers_and_shows_defaults():
    # what makes --help fast (no wall-time assertion): the console script parses before importing lensfm_hf
    code = (
        "import sys, lensfm_cli\n"
        "try:\n    lensfm_cli.main(['simulate', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'lensfm_hf') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(default: 1000)" in result.stdout and "(default: 200)" in result.stdout
    assert result.stdout.strip().endswith("HEAVY=")


def test_shipped_recipes_resolve_by_name_and_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("mae", "pretrain") == recipes_dir() / "pretrain" / "mae.yaml"
    assert resolve_recipe("model3_classification", "finetune").name == "model3_classification.yaml"
    assert resolve_recipe("recipes/benchmark/quick.yaml", "benchmark") == recipes_dir() / "benchmark" / "quick.yaml"
    (tmp_path / "mine.yaml").write_text("model: {}\n")
    assert resolve_recipe("mine.yaml", "finetune") == Path("mine.yaml")
    with pytest.raises(FileNotFoundError, match="shipped pretrain recipe .*mae_tiny"):
        resolve_recipe("maee", "pretrain")


def one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_finetune_encoder_mistakes_name_the_recipe_and_the_fix(capsys, tmp_path):
    run = tmp_path / "run"
    (run / "encoder").mkdir(parents=True)
    (run / "encoder" / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, "finetune", "model3_classification", f"model.encoder={tmp_path / 'missing'}")
    assert code == 2
    one_line_error(err, "model.encoder=", "does not exist", "model3_classification.yaml", "encoder/ folder")
    code, _, err = run_cli(capsys, "finetune", "model3_classification", f"model.encoder={run}")
    one_line_error(err, "is a pretraining run folder", f"model.encoder={run / 'encoder'}")
    # a hub id that is not in the (empty) cache, offline: in a fresh process, as HF reads its settings at import
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT="http://127.0.0.1:9")
    code = ("import sys, lensfm_cli\nsys.exit(lensfm_cli.main(['finetune', 'model3_classification', "
            f"'model.encoder=lensfm/nosuch', 'training.output_dir={tmp_path / 'out'}']))")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr, "model.encoder=lensfm/nosuch", "lensfm zoo")
    assert not (tmp_path / "out" / "data").exists()  # refused before simulating anything


def test_malformed_yaml_names_the_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  encoder: null\n   preset: micro\n")
    code, _, err = run_cli(capsys, "finetune", str(bad))
    assert code == 2
    one_line_error(err, str(bad), "not valid YAML", "line 3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_cuda_on_a_cpu_only_torch(capsys, tmp_path):
    code, _, err = run_cli(capsys, "simulate", "--device", "cuda", "--out", str(tmp_path / "data"))
    assert code == 2
    one_line_error(err, "--device cuda", "--device cpu")
    assert not (tmp_path / "data").exists()


def test_unknown_recipe_lists_the_shipped_ones(capsys):
    code, _, err = run_cli(capsys, "pretrain", "byol")
    assert code == 2
    one_line_error(err, "recipe byol does not exist", "mae_tiny")


@pytest.mark.parametrize("command,hint", [
    ("simulate", "pass --overwrite"), ("finetune", "set data.simulate_overwrite=true"),
    ("benchmark", "benchmark.results_dir"),
])
def test_overwrite_hint_names_the_real_flag_or_key(command, hint):
    err = ValueError("/x/model3 was built with different parameters; or pass overwrite=True to rebuild this config")
    text = cli._one_line(command, err, None)
    assert "overwrite=True" not in text and hint in text


def test_pretrain_names_the_method_and_prints_the_encoder_path(capsys, tmp_path):
    out_dir = tmp_path / "mae"
    code, out, err = run_cli(capsys, "pretrain", "mae_tiny", "training.max_steps=1",
                             "training.per_device_train_batch_size=4", f"training.output_dir={out_dir}")
    assert code == 0, err
    assert "[lensfm pretrain] method mae, recipe" in out
    assert f"encoder saved to {out_dir / 'encoder'}" in out
    assert json.loads((out_dir / "encoder" / "config.json").read_text())["model_type"] == "lens_vit"


@pytest.mark.slow  # builds a wheel (~30 s)
def test_wheel_ships_the_recipes_and_the_launcher(tmp_path):
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO_ROOT)], check=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "lensfm_cli.py", "lensfm_hf/recipes/pretrain/mae.yaml", "lensfm_hf/recipes/finetune/model3_classification.yaml",
        "lensfm_hf/recipes/benchmark/quick.yaml", "lensfm_hf/templates/model_card.md",
    } <= names


@pytest.mark.parametrize("command, recipe", [("pretrain", "mae_tiny"), ("finetune", "model3_classification"),
                                             ("benchmark", "mini")])
def test_the_override_example_in_each_help_is_one_the_command_accepts(command, recipe):
    import re

    from lensfm_hf.training.benchmark import load_benchmark_recipe
    from lensfm_hf.training.downstream.finetune_recipe import parse_finetune_recipe
    from lensfm_hf.training.pretrain.recipe import load_pretraining_recipe

    parser = cli.build_parser()
    subparser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    help_text = next(a.help for a in subparser._actions if a.dest == "overrides")
    examples = re.search(r"e\.g\. (.+)$", help_text).group(1).split()
    assert examples and all("=" in e for e in examples)
    load = {"pretrain": load_pretraining_recipe, "finetune": parse_finetune_recipe, "benchmark": load_benchmark_recipe}
    load[command](str(resolve_recipe(recipe, command)), examples)  # raises if the example is refused


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_prints_one_line_naming_what_is_saved_and_how_to_resume(capsys, tmp_path, monkeypatch):
    """Issue 20.7: Ctrl-C exits 130 with one line (what is saved, how to resume), not a traceback."""
    from safetensors.torch import save_file

    from lensfm_hf.training import benchmark
    from lensfm_hf.training.downstream import finetune_recipe
    from lensfm_hf.training.pretrain import run as pretrain_run

    out_dir = tmp_path / "mae"

    def stopped_after_a_checkpoint(recipe, overrides=None):
        checkpoint = out_dir / "checkpoint-4"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text('{"global_step": 4}')
        save_file({"w": torch.zeros(1)}, str(checkpoint / "model.safetensors"))
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_run, "run_pretraining", _interrupted)
    code, _, err = run_cli(capsys, "pretrain", "mae_tiny", f"training.output_dir={out_dir}")
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert "no checkpoint" in err and "lensfm pretrain mae_tiny" in err
    monkeypatch.setattr(pretrain_run, "run_pretraining", stopped_after_a_checkpoint)
    code, _, err = run_cli(capsys, "pretrain", "mae_tiny", f"training.output_dir={out_dir}")
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert str(out_dir / "checkpoint-4") in err
    assert f"lensfm pretrain mae_tiny training.output_dir={out_dir} training.resume_from_checkpoint=last" in err

    monkeypatch.setattr(benchmark, "run_benchmark", _interrupted)
    code, _, err = run_cli(capsys, "benchmark", "quick", f"benchmark.results_dir={tmp_path / 'results'}")
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert str(tmp_path / "results" / "quick") in err and "resume" in err

    monkeypatch.setattr(finetune_recipe, "run_finetune", _interrupted)
    code, _, err = run_cli(capsys, "finetune", "model3_classification")
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert "lensfm finetune model3_classification" in err


@pytest.mark.parametrize("text", ["model: [1, 2]\n", "model:\n  preset: micro\ndata: 3\n"])
def test_a_recipe_section_that_is_not_a_mapping_is_one_line_naming_the_file(capsys, tmp_path, text):
    """Issue 21 items 16, 17: a non-mapping finetune section was a TypeError traceback ('dictionary update sequence')."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, _, err = run_cli(capsys, "finetune", str(bad))
    assert code == 2
    one_line_error(err, str(bad), "must be a mapping of field: value")


@pytest.mark.parametrize("error, expected", [
    (OSError(28, "No space left on device"), "the disk is full"),
    (OSError(30, "Read-only file system"), "the file system is read-only"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1234 vs 1200"), "disk is full"),
])
def test_disk_errors_name_the_disk_not_offline_mode(capsys, monkeypatch, error, expected):
    """Issue 21 item 15: a full or read-only disk was reported as 'HF_HUB_OFFLINE is set: only folders and repos ...',
    and ENOSPC while pretraining as torch's 'unexpected pos'."""
    import lensfm_hf.data.build as build

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(build, "simulate_dataset", fail)
    code, _, err = run_cli(capsys, "simulate", "--out", "/nonexistent-out")
    assert code == 2
    one_line_error(err, expected)
    assert "HF_HUB_OFFLINE" not in err


def test_a_task_that_is_not_a_name_is_one_line(capsys, tmp_path):
    """Issue 21 item 16: `data.task: [1]` gave a TypeError traceback (unhashable type: 'list')."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  task: [1]\n")
    code, _, err = run_cli(capsys, "finetune", str(bad))
    assert code == 2
    one_line_error(err, "unknown task [1]")
