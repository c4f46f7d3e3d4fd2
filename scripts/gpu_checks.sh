#!/usr/bin/env bash
# The GPU checks as one prepared run (at most 9.5 minutes by its step limits; the device tool allows 10 per command):
#   1. simulator throughput, eager and compiled, model2 at batch 4096 (target: >= 1,000,000 images/s for cdm);
#   2. the simulator's correctness on the GPU (scripts/check_device.py: float64 CPU reference, determinism,
#      noise statistics, gradients, stream) and the tests marked `gpu`;
#   3. pretraining throughput of every method at ViT-S / 64 px / batch 512, bare step and through the Trainer,
#      with transformers' ViTMAEForPreTraining timed in the same run as the reference.
# Needs only torch and transformers (no install: the repository is put on PYTHONPATH). Results are written to
# $OUT (the device tool's output folder) or ./gpu_results; each step has its own time limit so that one slow
# step cannot take the others' results with it.
#
#     bash scripts/gpu_checks.sh
#     DRY_RUN=1 bash scripts/gpu_checks.sh      # the same steps on the CPU with tiny sizes, to test the script
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
if [ "${DRY_RUN:-0}" = 1 ]; then
    DEVICE=cpu
    # The dry run checks the script, not the speed: no step limits (timeout 0 = none), so a busy machine cannot fail it.
    SIMULATION_SECONDS=${SIMULATION_SECONDS:-0} CHECK_SECONDS=${CHECK_SECONDS:-0} PRETRAINING_SECONDS=${PRETRAINING_SECONDS:-0}
    CHECK_ARGS=(--recipes model2 --num-images 2 --noise-images 8 --compile-recipes)
    SIMULATION_ARGS=(--batch-size 64 --repeats 1)
    PRETRAINING_ARGS=(--preset micro --batch-size 8 --warmup 1 --steps 2 --methods mae ijepa --no-reference)
else
    DEVICE=cuda
    CHECK_ARGS=()
    SIMULATION_ARGS=(--batch-size 4096 --repeats 10)
    PRETRAINING_ARGS=(--preset small --batch-size 512 --steps 10)
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } 2>&1 | tee "$OUT/gpu.txt"
$PYTHON -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)" \
    2>&1 | tee -a "$OUT/gpu.txt"

status=0
# Most important first: the simulator target of the simulation issue, then correctness, then pretraining speed.
timeout "${SIMULATION_SECONDS:-150}" $PYTHON scripts/benchmark_simulation.py --device $DEVICE "${SIMULATION_ARGS[@]}" \
    --compile --skip-lenstronomy 2>&1 | tee "$OUT/simulation.txt" || status=1
timeout "${CHECK_SECONDS:-120}" $PYTHON scripts/check_device.py --device $DEVICE "${CHECK_ARGS[@]}" \
    --json "$OUT/check_device.json" 2>&1 | tee "$OUT/check_device.txt" || status=1
if [ "$DEVICE" = cuda ]; then  # the tests marked gpu (skipped without CUDA)
    timeout "${PYTEST_SECONDS:-150}" $PYTHON -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 \
        | tee "$OUT/pytest_gpu.txt" || status=1
fi
timeout "${PRETRAINING_SECONDS:-150}" $PYTHON scripts/benchmark_pretraining.py --device $DEVICE "${PRETRAINING_ARGS[@]}" \
    --trainer --json "$OUT/pretraining.json" 2>&1 | tee "$OUT/pretraining.txt" || status=1
exit $status
