#!/usr/bin/env bash
# The Mamba-MoE policy on the main job's world model (out/demo/world_model): trained by cloning
# the expert on the main job's training datasets, then three DAgger rounds; scored on both tasks
# (task protocol) beside its cloning-only self, the planner and the controls, and on goal-frame
# pairs. Rerunning resumes the training from its checkpoint and each evaluation from its
# episodes.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CUPWORLD:-target/debug/cupworld}
wm=${WM:-out/demo/world_model}
data=${DATA:-out/demo/data}
out=${OUT:-out/agent}
mkdir -p "$out"
"$bin" train-agent --world-model "$wm" --data "$data/train-push-to-goal" --data "$data/train-knock-off" \
  --out "$out/run" --threads 2 2>&1 | grep -v ' INFO '
# Two evaluations at a time, one libtorch thread each.
run() { "$bin" eval-agent --agent policy --policy-run "$out/run" --threads 1 "$@" 2>&1 | grep -v ' INFO ' ; }
run --task push-to-goal --protocol task --episodes "${EPISODES:-200}" --control-episodes "${PLANNER_EPISODES:-10}" \
  --out "$out/task-push-to-goal" > "$out/task-push-to-goal.log" &
run --task knock-off --protocol task --episodes "${EPISODES:-200}" --control-episodes "${PLANNER_EPISODES:-10}" \
  --out "$out/task-knock-off" > "$out/task-knock-off.log"
wait
# Goal-frame pairs (the planner's 40 were scored in experiments/2026-12-07-planner).
run --task push-to-goal --protocol goal-frame --episodes "${GF_EPISODES:-100}" --control-episodes 0 \
  --out "$out/goal-frame-push-to-goal" > "$out/goal-frame.log"
"$bin" bench policy --preset small > "$out/bench-policy.txt"
