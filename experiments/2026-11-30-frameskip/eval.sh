#!/usr/bin/env bash
# Scores a run as the main job does (eval-wm with the main job's options): RUN OUT [THREADS]
set -euo pipefail
D=${DATA:-out/demo/data}   # the datasets the runs were evaluated on
target/debug/cupworld eval-wm --checkpoint "$1" --out "$2" --threads "${3:-2}" \
  --data $D/heldout-push-to-goal --data $D/heldout-knock-off \
  --probe-data $D/train-push-to-goal --probe-data $D/train-knock-off \
  --voe-pairs 120 --horizons 8 --voe-horizon 4
