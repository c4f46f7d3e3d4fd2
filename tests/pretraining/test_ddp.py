"""Pretraining under `torchrun --nproc_per_node 2` on the CPU (gloo): the Trainer path runs unchanged, and
both ranks end with identical parameters, EMA teachers included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_data import write_tiny_dataset

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
REPO = Path(__file__).resolve().parents[2]


def _torchrun(out_dir: Path, recipes: list[dict], timeout: int = 300) -> list[list[dict]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), str(out_dir), json.dumps(recipes)]
    run = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"torchrun failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    return [[json.loads((out_dir / f"{i}-rank{r}.json").read_text()) for r in range(2)] for i in range(len(recipes))]


def _recipe(method: str, source: str, output_dir: Path) -> dict:
    return {
        "model": {"method": method, "preset": "micro", "image_size": 32, "patch_size": 8},
        "data": {"source": source, "config": "model2"},
        "training": {
            "output_dir": str(output_dir), "max_steps": 3, "per_device_train_batch_size": 6,
            "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "disable_tqdm": True,
            "ddp_backend": "gloo",
        },
    }


@pytest.mark.slow  # end to end, tens of seconds: run with -m slow
def test_two_rank_ddp_keeps_ranks_and_teachers_in_sync(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "data", train=48, test=12, size=32)
    methods = ["ijepa", "simclr"]
    recipes = [
        # EMA target encoder; map-style dataset, sharded across ranks by accelerate
        _recipe("ijepa", str(dataset), tmp_path / "ijepa"),
        # no teacher; the on-the-fly simulator, each rank simulating its own images
        _recipe("simclr", "stream:model2", tmp_path / "simclr"),
    ]
    for method, ranks in zip(methods, _torchrun(tmp_path / "ranks", recipes)):
        for record in ranks:
            assert record["world_size"] == 2 and record["step"] == 3, record
            assert record["parallel_mode"] == "ParallelMode.DISTRIBUTED", f"{method}: not trained with DDP: {record}"
        assert ranks[0]["student"] == ranks[1]["student"], f"{method}: ranks diverged"
        assert ranks[0]["teacher"] == ranks[1]["teacher"], f"{method}: EMA teachers diverged"
        assert ranks[0]["losses"] == ranks[1]["losses"]  # logged losses are averaged over ranks
        if method == "ijepa":
            assert ranks[0]["num_teacher_tensors"] > 0
        else:
            assert ranks[0]["first_batch"] != ranks[1]["first_batch"], f"{method}: ranks drew the same images"
        assert (tmp_path / method / "encoder" / "pretraining" / "config.json").is_file()
