#!/bin/bash
# physics I-JEPA on the varied stream, log stretch, render weight 1.0 vs the default 0.1: does the branch recover the varying parameters?
cd /tmp/phys2/snap
export OMP_NUM_THREADS=1 PYTHONPATH=/tmp/phys2/snap
for w in 1.0; do
/work/venv/bin/lensfm pretrain recipes/pretrain/ijepa_physics_tiny.yaml output_dir=/tmp/phys2/w$w \
  data.source=stream:model2_varied data.stretch=log data.stretch_scale=0.1 model.image_size=64 \
  model.method_config.patch_embedding_type=conv model.method_config.position_embedding_type=learned \
  model.method_config.physics_weight=$w \
  max_steps=600 per_device_train_batch_size=64 learning_rate=1e-3 warmup_steps=30 logging_steps=50 disable_tqdm=true > /tmp/phys2/w$w.log 2>&1
/work/venv/bin/python scripts/measure_physics_recovery.py /tmp/phys2/w$w/encoder/pretraining --per-class 100 --out /tmp/phys2/w$w.json --plot /tmp/phys2/w$w.png >> /tmp/phys2/w$w.log 2>&1
done
