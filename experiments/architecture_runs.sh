#!/usr/bin/env bash
# Trains the architecture flagfiles of the README's DCGAN table one after another (one training at
# a time: on 2 cores parallel runs only slow each other down), then scores each run's final
# checkpoint with gan.evaluate. Usage, from the repository root:
#   bash experiments/architecture_runs.sh [RUNS_DIR] [NAME:SEED ...]
# Default: every row of the table. Each run goes to RUNS_DIR/<name>_s<seed> (default runs/);
# a finished run is skipped (gan.train resumes an interrupted one). Wall time, the whole of
# `gan.train` (evaluations and checkpoints included), goes to <logdir>/wall_seconds.
# Then: python experiments/architecture_table.py RUNS_DIR   (the markdown table and the grids)
set -euo pipefail
runs_dir=${1:-runs}
shift || true
jobs=("$@")
if [ ${#jobs[@]} -eq 0 ]; then
  jobs=(dcgan:0 cond_dcgan:0 dcgan:1 cond_dcgan:1 dcgan_hinge_sn:0 fashion_dcgan:0
        fashion_cond_dcgan:0 dcgan_wgan_gp:0)
fi
for job in "${jobs[@]}"; do
  name=${job%%:*}
  seed=${job##*:}
  logdir="$runs_dir/${name}_s$seed"
  if [ -f "$logdir/final_eval.json" ]; then
    echo "skipping $logdir: finished"
    continue
  fi
  echo "=== $name, seed $seed -> $logdir ($(date -u +%H:%M:%S))"
  start=$(date +%s)
  python -m gan.train --flagfile="experiments/$name.flags" --seed="$seed" --logdir="$logdir"
  echo $(( $(date +%s) - start )) > "$logdir/wall_seconds"
  python -m gan.evaluate --logdir="$logdir" --output="$logdir/final_eval.json"
done
