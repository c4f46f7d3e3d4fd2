"""The released zoo: `lensfm release` from a finished benchmark, `lensfm zoo` installing it by hash with no training,
`lensfm pretrain --continue` extending it, and `lensfm push` uploading exactly the folder. One tiny encoder (2 steps
of the mae_tiny recipe at 16 px, ~2 s) stands in for the study's."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard, parse_eval_result_entries

from lensfm_hf.cli import main
from lensfm_hf.hub.provenance import verify_provenance
from lensfm_hf.resources import resolve_recipe
from lensfm_hf.training.benchmark.markers import mark_encoder_ready
from lensfm_hf.training.benchmark.zoo import build_zoo, release_benchmark
from lensfm_hf.training.pretrain.zoo_continue import continue_seed

TINY = ["training.max_steps=2", "training.per_device_train_batch_size=4", "data.num_health_images=8",
        "model.image_size=16", "training.logging_steps=1"]


def _cell(metric_means: dict[str, float]) -> dict:
    return {"method": "mae", "task": "classification", "finetuning_set": "model3", "protocol": "linear",
            "label_budget": "all", "num_train": 30, "seeds": [0, 1, 2],
            "metrics": {k: {"mean": v, "std": 0.01} for k, v in metric_means.items()}}


@pytest.fixture(scope="session")
def benchmark(tmp_path_factory) -> Path:
    """A finished benchmark's results folder as `lensfm benchmark` leaves it: one encoder, its marker, results.json."""
    from lensfm_hf.training.pretrain.run import run_pretraining

    root = tmp_path_factory.mktemp("results") / "quick"
    run = run_pretraining(str(resolve_recipe("mae_tiny", "pretrain")),
                          overrides=[f"training.output_dir={root / 'pretrain' / 'mae'}", *TINY])
    encoder = Path(run["encoder_dir"])
    (encoder / "README.md").write_text("# the benchmark's card\n")
    (encoder / "eval_results.json").write_text("{}\n")
    mark_encoder_ready(encoder)
    results = {
        "preset": "quick", "created": "2026-12-07T23:00:00+0000", "device": "CPU (2 cores, 1 torch thread(s))",
        "methods": ["mae"], "health": {"mae": {"centred_rankme": 5.0, "learning": {"objective_ratio": 0.8}}},
        "encoders": {"mae": {"encoder_dir": "elsewhere/encoder", "runtime_s": 3.25, "global_step": 2},
                     "mae@seed1": {"encoder_dir": "elsewhere/encoder1", "runtime_s": 3.0, "global_step": 2}},
        "recipe": {"data": {}}, "cells": [_cell({"accuracy": 0.5, "roc_auc": 0.6})],
    }
    (root / "results.json").write_text(json.dumps(results))
    return root


@pytest.fixture
def released(benchmark, tmp_path) -> Path:
    assert main(["release", str(benchmark), "--zoo-dir", str(tmp_path / "zoo")]) == 0
    return tmp_path / "zoo" / "mae"


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_release_writes_the_hub_layout_with_the_benchmark_numbers(benchmark, tmp_path):
    before = _hashes(benchmark)
    folder = release_benchmark(benchmark, zoo_dir=tmp_path / "zoo")["mae"]
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["mae"]  # repeats are not released
    assert _hashes(benchmark) == before  # the benchmark's files are read, never edited
    names = set(_hashes(folder))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "configuration_lens_vit.py",
            "modeling_lens_vit.py", "image_processing_lens_vit.py", "README.md", "recipe.yaml", "provenance.json",
            "eval_results.json", "pretraining/model.safetensors", "pretraining/config.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]

    card = ModelCard.load(folder / "README.md")
    values = {(r.metric_type, r.metric_value) for r in card.data.eval_results}
    assert values == {("accuracy", 0.5), ("roc_auc", 0.6)}
    assert 'repo = "lensfm/mae"' in card.text
    eval_files = sorted((folder / ".eval_results").glob("*.yaml"))
    entries = [e for path in eval_files for e in parse_eval_result_entries(yaml.safe_load(path.read_text()))]
    assert len(eval_files) == 2 and {e.value for e in entries} == {0.5, 0.6}
    assert {e.dataset_id for e in entries} == {"lensfm/deeplense-sims"}
    assert {e.date for e in entries} == {"2026-12-07T23:00:00+00:00"}

    record = verify_provenance(folder)
    assert record["repo_id"] == "lensfm/mae" and record["steps"] == 2 and record["images_seen"] == 8
    assert record["wall_time_s"] == 3.25 and record["objective_ratio"] is not None
    assert record["health"] == {"centred_rankme": 5.0, "learning": {"objective_ratio": 0.8}}
    assert len(record["runs"]) == 1 and "git_commit" in record and "CPU (2 cores" in record["machine"]
    assert set(record["files"]) == names - {"provenance.json"}
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert recipe["model"]["method"] == "mae" and "output_dir" not in recipe["training"]


def test_release_refuses_a_zoo_over_its_size_limits(benchmark, tmp_path, monkeypatch):
    from lensfm_hf.hub import zoo

    (tmp_path / "zoo" / "dino").mkdir(parents=True)  # an earlier release of another model
    (tmp_path / "zoo" / "dino" / "provenance.json").write_bytes(b"x" * 2**20)
    monkeypatch.setattr(zoo, "MAX_ZOO_BYTES", 2 * 2**20)
    with pytest.raises(ValueError, match=r"mae: .*zoo would hold 2\.\d MiB, over the 2 MiB"):
        release_benchmark(benchmark, zoo_dir=tmp_path / "zoo")
    monkeypatch.setattr(zoo, "MAX_MODEL_BYTES", 2**20)
    with pytest.raises(ValueError, match=r"mae: the released folder would hold 1\.\d MiB, over the zoo's 1 MiB"):
        release_benchmark(benchmark, zoo_dir=tmp_path / "zoo")
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["dino"]  # nothing released, no staging left


def test_release_refuses_an_unfinished_benchmark(benchmark, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no results.json"):
        release_benchmark(tmp_path, zoo_dir=tmp_path / "zoo")
    with pytest.raises(ValueError, match=r"no encoder for \['dino'\]"):
        release_benchmark(benchmark, zoo_dir=tmp_path / "zoo", methods=["dino"])


def test_zoo_installs_released_folders_by_hash_without_training(released, tmp_path, monkeypatch, capsys):
    from lensfm_hf.training.benchmark import zoo

    def no_training(*args, **kwargs):
        raise AssertionError("lensfm zoo trained although the model is released")

    monkeypatch.setattr(zoo, "run_pretraining", no_training)
    cache = tmp_path / "cache"
    args = ["zoo", "--methods", "mae", "--zoo-dir", str(released.parent), "--cache-dir", str(cache),
            "--output-dir", str(tmp_path / "out")]
    assert main(args) == 0
    storage = cache / "models--lensfm--mae"
    commit = (storage / "refs" / "main").read_text()
    snapshot = storage / "snapshots" / commit
    assert (snapshot / "model.safetensors").read_bytes() == (released / "model.safetensors").read_bytes()
    assert _hashes(snapshot) == _hashes(released)  # exactly the folder: same files, same bytes

    (released / "model.safetensors").write_bytes((released / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "provenance.json" in err and len(err.strip().splitlines()) == 1
    assert (storage / "refs" / "main").read_text() == commit  # the refused model was not installed

    # --retrain keeps the old path (here: the benchmark-or-pretrain branch, which must be the one taken)
    with pytest.raises(AssertionError, match="trained although"):
        build_zoo(["mae"], zoo_dir=released.parent, retrain=True, results_dir=tmp_path / "none", cache_dir=cache,
                  output_dir=tmp_path / "out")


def test_continue_trains_on_and_rewrites_the_folder(released, capsys):
    first = verify_provenance(released)
    weights = (released / "model.safetensors").read_bytes()
    # 3 steps: the recipe's warmup (2 steps, from a learning rate of 0) restarts with the run
    assert main(["pretrain", "--continue", str(released), "--steps", "3", "data.num_health_images=8"]) == 0
    assert "2 runs, 5 steps" in capsys.readouterr().out
    record = verify_provenance(released)  # the hashes were rewritten with the files
    assert (released / "model.safetensors").read_bytes() != weights
    assert record["steps"] == 5 and record["images_seen"] == 20 and len(record["runs"]) == 2
    assert record["runs"][0] == first["runs"][0] and record["runs"][1]["steps"] == 3
    seeds = [run["seed"] for run in record["runs"]]
    assert seeds[1] == continue_seed(first, seeds[0]) and seeds[1] not in range(100)  # fresh stream images
    assert record["wall_time_s"] > first["wall_time_s"]
    config = json.loads((released / "config.json").read_text())
    assert config["pretraining"]["steps"] == 5
    card = (released / "README.md").read_text()
    assert "at step 2" in card and "to step 5" in card  # the card says its numbers predate the new steps
    assert not [p for p in released.parent.iterdir() if p.name != "mae"]  # no staging left behind


def test_continue_refuses_a_changed_model(released, capsys):
    (released / "recipe.yaml").write_text("model: {method: dino}\n")
    assert main(["pretrain", "--continue", str(released), "--steps", "1"]) == 2
    assert "recipe.yaml has SHA-256" in capsys.readouterr().err


@pytest.mark.slow  # a CLI subprocess against the fake Hub, ~18 s on 2 cores
def test_push_uploads_exactly_the_folder(released, fake_hub_server, fake_hub_env, tmp_path):
    from fake_hub import run_client

    code = f"from lensfm_hf.cli import main\nassert main(['push', {str(released)!r}, '--repo-id', 'lensfm/mae']) == 0\n"
    result = run_client(code, fake_hub_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    files = fake_hub_server.files("lensfm/mae")
    uploaded = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()
                if name != ".gitattributes"}
    assert uploaded == _hashes(released)


def test_zoo_folder_readme_explains_the_layout():
    readme = Path(__file__).resolve().parents[3] / "zoo" / "README.md"
    text = readme.read_text()
    assert "provenance.json" in text and "10 MB" in text and "lensfm release" in text


def test_continuing_from_a_damaged_pretraining_state_is_refused(released):
    """A pretraining state that lacks a tensor would train on from a random init of it: refused, naming it."""
    from safetensors.torch import load_file, save_file

    from lensfm_hf.training.pretrain.recipe import (
        PretrainModelArguments,
        build_pretraining_model,
    )

    path = released / "pretraining" / "model.safetensors"
    state = load_file(str(path))
    dropped = max(state)
    del state[dropped]
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=re.escape(dropped)):
        build_pretraining_model(PretrainModelArguments(method="mae", init_from=str(released)))


def test_continue_refuses_a_model_another_process_is_writing(released, capsys):
    """Two writers of one zoo folder would each swap in their own run and lose the other's: the second is refused."""
    import multiprocessing

    from lensfm_hf.files import folder_lock

    ready, done = multiprocessing.Event(), multiprocessing.Event()

    def hold():
        with folder_lock(released.parent, released.name):
            ready.set()
            done.wait(60)

    holder = multiprocessing.get_context("fork").Process(target=hold)
    holder.start()
    try:
        assert ready.wait(30)
        before = verify_provenance(released)
        assert main(["pretrain", "--continue", str(released), "--steps", "3", "data.num_health_images=8"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert verify_provenance(released) == before
    finally:
        done.set()
        holder.join(30)


def _benchmark_copy(benchmark: Path, destination: Path) -> Path:
    import shutil

    shutil.copytree(benchmark, destination)
    results = json.loads((destination / "results.json").read_text())
    results["encoders"]["mae"]["encoder_dir"] = str(destination / "pretrain" / "mae" / "encoder")
    (destination / "results.json").write_text(json.dumps(results))
    return destination


def test_release_writes_the_remote_code_the_encoder_folder_lacks(benchmark, tmp_path):
    """The committed study encoders hold no remote code (.gitignore): the release adds the package's own modules."""
    from lensfm_hf.hub.export import remote_code_files

    copy = _benchmark_copy(benchmark, tmp_path / "quick")
    for path in (copy / "pretrain" / "mae" / "encoder").glob("*.py"):
        path.unlink()
    folder = release_benchmark(copy, zoo_dir=tmp_path / "zoo")["mae"]
    for path in remote_code_files():
        assert (folder / path.name).read_bytes() == path.read_bytes()
    verify_provenance(folder)


def test_releasing_a_continued_model_again_keeps_its_runs_and_measures_its_card_anew(released, tmp_path):
    """A continued model, re-measured by a benchmark of its own weights and released again: every run stays in
    provenance, the recipe stays the one released, and the card's numbers are of the current step."""
    import shutil

    assert main(["pretrain", "--continue", str(released), "--steps", "3", "data.num_health_images=8"]) == 0
    continued = verify_provenance(released)
    recipe = (released / "recipe.yaml").read_bytes()
    root = tmp_path / "remeasure"
    encoder = root / "pretrain" / "mae" / "encoder"
    shutil.copytree(released, encoder)
    mark_encoder_ready(encoder)
    results = {"preset": "remeasure", "created": "2026-12-08T03:00:00+0000", "device": "CPU",
               "encoders": {"mae": {"encoder_dir": str(encoder), "runtime_s": None}},
               "recipe": {"data": {}}, "cells": [_cell({"accuracy": 0.55})]}
    (root / "results.json").write_text(json.dumps(results))
    folder = release_benchmark(root, zoo_dir=released.parent)["mae"]
    record = verify_provenance(folder)
    assert record["runs"] == continued["runs"] and record["steps"] == 5 and record["images_seen"] == 20
    assert record["wall_time_s"] == continued["wall_time_s"]
    assert record["benchmark"]["evaluated_at_steps"] == 5 and record["benchmark"]["preset"] == "remeasure"
    assert (folder / "recipe.yaml").read_bytes() == recipe
    assert (folder / "model.safetensors").read_bytes() == (encoder / "model.safetensors").read_bytes()
    card = (folder / "README.md").read_text()
    assert "to step 5" not in card
    assert {r.metric_value for r in ModelCard.load(folder / "README.md").data.eval_results} == {0.55}


def test_release_of_a_reused_encoder_takes_its_wall_time_from_the_trainer_state(benchmark, tmp_path):
    """A benchmark that reused a committed encoder records no runtime: the Trainer's own train_runtime is the run's."""
    copy = _benchmark_copy(benchmark, tmp_path / "quick")
    results = json.loads((copy / "results.json").read_text())
    results["encoders"]["mae"] = {"encoder_dir": results["encoders"]["mae"]["encoder_dir"], "reused": True}
    (copy / "results.json").write_text(json.dumps(results))
    (copy / "pretrain" / "mae" / "trainer_state.json").write_text(json.dumps(
        {"log_history": [{"loss": 1.0, "step": 1}, {"train_runtime": 363.08, "step": 2}]}))
    record = verify_provenance(release_benchmark(copy, zoo_dir=tmp_path / "zoo")["mae"])
    assert record["wall_time_s"] == 363.08 and record["runs"][0]["wall_time_s"] == 363.08
