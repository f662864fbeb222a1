#!/usr/bin/env bash
# Companions that move the cup alone, the paw alone or both (a third each) instead of both,
# on the main job's data (out/demo/data, made by `bash scripts/run.sh`): the main job's encoder
# phase on them, then its probes. Run from the repository root after `source scripts/env.sh`.
set -euo pipefail
D=out/demo/data
O=out/one_at_a_time
mkdir -p $O
for task in push-to-goal knock-off; do
  target/debug/cupworld gen --task $task --episodes 400 --policy mixed --linger-steps 6 --seed 0 \
    --out $O/train-$task-cf --counterfactual --counterfactual-one-at-a-time
done
# The main job's encoder phase (7,500 steps of 64 frames); one predictor step, then stop.
target/debug/cupworld train-wm --data $D/train-push-to-goal --data $D/train-knock-off \
  --counterfactual-data $O/train-push-to-goal-cf --counterfactual-data $O/train-knock-off-cf \
  --preset small --steps 1 --out $O/run
target/debug/cupworld eval-wm --checkpoint $O/run/checkpoints/step-00007500.safetensors \
  --data $D/heldout-push-to-goal --data $D/heldout-knock-off \
  --probe-data $D/train-push-to-goal --probe-data $D/train-knock-off --out $O/eval --voe-pairs 2 --horizons 2
