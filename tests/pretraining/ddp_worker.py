"""One rank of the DDP pretraining test: `torchrun --nproc_per_node 2 ddp_worker.py OUT RECIPES_JSON`.

Runs `run_pretraining` unchanged on each recipe of the JSON list (one launch, to pay the start-up once) and
writes `OUT/<i>-rank<r>.json`: SHA-256 digests of the final parameters
(student and EMA-teacher tensors separately, BatchNorm running statistics left out), the final step, and a digest of the rank's first batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

TEACHER_WORDS = ("teacher", "momentum", "target", "ema")


def _digest(tensors) -> str:
    sha = hashlib.sha256()
    for name, tensor in tensors:
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def run_one(out_dir: str, index: int, recipe: dict) -> None:
    from transformers import TrainerCallback

    from lensfm_hf.training.pretrain import data as pretrain_data, run as pretrain

    record = {}

    class Checksums(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            # BatchNorm running statistics are per-rank between forwards by design (DDP re-broadcasts rank 0's
            # buffers at the start of each forward), so they are left out; every other tensor must agree.
            items = sorted(
                (k, v) for k, v in model.state_dict().items()
                if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
            )
            teacher = [(k, v) for k, v in items if any(w in k for w in TEACHER_WORDS)]
            student = [(k, v) for k, v in items if not any(w in k for w in TEACHER_WORDS)]
            record.update(
                student=_digest(student),
                teacher=_digest(teacher),
                num_teacher_tensors=len(teacher),
                step=state.global_step,
                world_size=args.world_size,
                parallel_mode=str(args.parallel_mode),
            )

    result = pretrain.run_pretraining(recipe, callbacks=[Checksums()])
    parsed = pretrain.load_pretraining_recipe(recipe)
    processor = pretrain_data.make_processor(parsed.data, parsed.model.image_size)
    train, _ = pretrain_data.build_datasets(parsed.data, parsed.training, processor)
    if isinstance(train, pretrain_data.BatchIterable):  # per-rank sources (map datasets are sharded by accelerate)
        first = next(iter(train))
        record["first_batch"] = _digest([("pixel_values", first["pixel_values"])])
    record["losses"] = [e["loss"] for e in result["log_history"] if "loss" in e]
    rank = int(os.environ.get("RANK", 0))
    Path(out_dir, f"{index}-rank{rank}.json").write_text(json.dumps(record))


def main(out_dir: str, recipes_json: str) -> None:
    for index, recipe in enumerate(json.loads(recipes_json)):
        run_one(out_dir, index, recipe)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
