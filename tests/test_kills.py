"""Kill at random points, rerun, and compare with an uninterrupted run (issue 21, "Done when").

Each case runs its command in a fresh interpreter, SIGKILLs it at a random moment after its imports (seeded, so a
failure reproduces its kill delays, though not the exact instruction the kill lands on), N times, then lets a rerun
finish; the result must equal the uninterrupted run's byte for byte (simulate) or tensor for tensor (pretrain).
A real full disk (a 1 MiB tmpfs, where mounting is allowed) checks the ENOSPC path end to end. Slow: every start
pays the package import (~10 s on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
KILLS = 4

SIMULATE = """
import sys
from lensfm_hf.data import simulate_dataset
print("ready", flush=True)
simulate_dataset(sys.argv[1], "model2", train_per_class=4, test_per_class=2, seed=0, shard_size=2)
"""

HOLD = """
import sys, time
from lensfm_hf.files import folder_lock
with folder_lock(sys.argv[1], "finetune"):
    print("ready", flush=True)
    time.sleep(120)
"""

PRETRAIN = """
import json, sys
import torch
torch.set_num_threads(1)
from lensfm_hf.training.pretrain.run import run_pretraining
print("ready", flush=True)
run_pretraining(json.loads(sys.argv[1]), overrides=sys.argv[2:])
"""


def _run(script: str, *args: str, kill_after: float | None = None) -> int | None:
    """Run `script` with `args`; SIGKILL it `kill_after` seconds after it prints "ready" (None: let it finish).
    Returns its exit code (negative: killed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "ready"
    if kill_after is None:
        return process.wait(timeout=600)
    time.sleep(kill_after)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60)


def _kill_then_finish(script: str, args: list[str], max_delay: float, seed: int) -> list[int | None]:
    rng = random.Random(seed)
    codes = [_run(script, *args, kill_after=rng.uniform(0, max_delay)) for _ in range(KILLS)]
    assert _run(script, *args) == 0
    return codes


@pytest.mark.slow
def test_simulate_killed_at_random_points_ends_identical(tmp_path):
    from lensfm_hf.data.verify import verify_config_folder

    assert _run(SIMULATE, str(tmp_path / "straight")) == 0
    codes = _kill_then_finish(SIMULATE, [str(tmp_path / "killed")], max_delay=4.0, seed=21)
    assert any(code == -signal.SIGKILL for code in codes)  # at least one kill landed mid-run
    straight, killed = tmp_path / "straight" / "model2", tmp_path / "killed" / "model2"
    shards = sorted(p.name for p in straight.glob("*.parquet"))
    assert sorted(p.name for p in killed.glob("*.parquet")) == shards
    for name in shards:
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name
    verify_config_folder(killed)
    assert not list((tmp_path / "killed").rglob(".tmp-*")) and not (tmp_path / "killed" / ".lensfm").exists()


@pytest.mark.slow
def test_pretrain_killed_at_random_points_resumes_to_the_same_weights(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "pretraining"))
    from tiny_data import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", train=48, test=12, size=32)

    def recipe(out):
        return json.dumps({
            "model": {"method": "ijepa", "preset": "micro", "image_size": 32, "patch_size": 8},
            "data": {"source": str(data), "config": "model2", "in_memory": True},
            "training": {"output_dir": str(out), "max_steps": 8, "save_strategy": "steps", "save_steps": 2,
                         "per_device_train_batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 1,
                         "logging_steps": 1, "disable_tqdm": True, "seed": 0},
        })

    start = time.perf_counter()
    assert _run(PRETRAIN, recipe(tmp_path / "straight")) == 0
    duration = time.perf_counter() - start
    _kill_then_finish(PRETRAIN, [recipe(tmp_path / "killed"), "training.resume_from_checkpoint=last"],
                      max_delay=duration, seed=21)
    # One more rerun of the finished run must not train again (issue 21 item 4).
    assert _run(PRETRAIN, recipe(tmp_path / "killed"), "training.resume_from_checkpoint=last") == 0
    for sub in ("encoder/model.safetensors", "encoder/pretraining/model.safetensors"):
        got, expected = load_file(str(tmp_path / "killed" / sub)), load_file(str(tmp_path / "straight" / sub))
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), sub
    state = json.loads((tmp_path / "killed" / "trainer_state.json").read_text())
    assert state["global_step"] == 8


@pytest.mark.slow
def test_a_second_process_on_a_locked_output_folder_is_refused_naming_the_holder(tmp_path):
    from lensfm_hf.files import FolderInUseError, folder_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(FolderInUseError, match=rf"pid {holder.pid}"), folder_lock(tmp_path / "run", "finetune"):
            pass
        holder.send_signal(signal.SIGKILL)  # a killed holder leaves no stale lock
        holder.wait(timeout=30)
        with folder_lock(tmp_path / "run", "finetune"):
            pass
    finally:
        holder.kill()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk (needs root and mount rights; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                      check=False).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_simulate_on_a_disk_that_fills_up_fails_in_one_line_and_resumes_identical(tiny_disk, tmp_path, fake_sim,
                                                                                 monkeypatch):
    """A real ENOSPC (not a mocked one) halfway through a super-resolution build: an OSError naming the folder, no
    partial shard; once space is freed the rerun resumes and ends byte-identical to a build on a roomy disk."""
    from lensfm_hf.data import build, simulate_dataset

    def simulate(out):
        return simulate_dataset(out, "super_resolution", train_per_class=8, test_per_class=2, seed=0, shard_size=2)

    simulate(tmp_path / "roomy")
    real, calls, filler = build._simulate_shard, [], tiny_disk / "filler"

    def fill_the_disk_after_two_shards(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # another process takes the space the free-space check saw
            with open(filler, "wb", buffering=0) as handle:
                try:
                    while True:
                        handle.write(bytes(4096))
                except OSError:  # the disk is full now
                    pass
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "_simulate_shard", fill_the_disk_after_two_shards)
    with pytest.raises(OSError, match=r"no space left in .*super_resolution while writing shard"):
        simulate(tiny_disk / "ds")
    config = tiny_disk / "ds" / "super_resolution"
    assert len(list(config.glob("*.parquet"))) == 2 and not list(config.glob(".tmp-*"))
    filler.unlink()
    monkeypatch.setattr(build, "_simulate_shard", real)
    simulate(tiny_disk / "ds")
    roomy = tmp_path / "roomy" / "super_resolution"
    names = sorted(p.name for p in roomy.glob("*.parquet"))
    assert sorted(p.name for p in config.glob("*.parquet")) == names
    assert all((config / n).read_bytes() == (roomy / n).read_bytes() for n in names)
