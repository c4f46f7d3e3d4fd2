#!/usr/bin/env bash
# Model 3, from scratch, study backbone, log stretch, all labels (2,700 train/class after the 10% cut), 2,400 steps of 64.
set -e
S=$1
export OMP_NUM_THREADS=1 PYTHONPATH=/work/main
/work/venv/bin/lensfm finetune model3_classification training.seed=$S training.output_dir=/work/runs/m3log/s$S \
  data.simulate_dir=/work/runs/m3log/data data.simulate_train_per_class=3000 data.simulate_test_per_class=1000 \
  training.max_steps=2400 training.per_device_train_batch_size=64 training.eval_steps=400 training.warmup_steps=30 \
  training.logging_steps=100 training.disable_tqdm=true
