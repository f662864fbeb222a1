#!/usr/bin/env bash
# The planner on the main job's world model (out/demo/world_model), both protocols, with its
# controls. Two evaluations at a time with one libtorch thread each (faster on 2 cores than one
# with two). Rerunning resumes each from its episodes.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CUPWORLD:-target/debug/cupworld}
wm=${WM:-out/demo/world_model}
out=${OUT:-out/planner}
mkdir -p "$out"
run() { "$bin" eval-agent --world-model "$wm" --threads 1 "$@" 2>&1 | grep -v ' INFO ' ; }
run --task push-to-goal --protocol goal-frame --episodes "${GF_EPISODES:-50}" --control-episodes "${GF_CONTROLS:-20}" \
  --out "$out/goal-frame-push-to-goal" > "$out-goal-frame.log" &
run --task push-to-goal --protocol task --episodes "${TASK_EPISODES:-20}" --control-episodes "${TASK_CONTROLS:-10}" \
  --out "$out/task-push-to-goal" > "$out-task-push.log"
wait
run --task knock-off --protocol task --episodes "${TASK_EPISODES:-20}" --control-episodes "${TASK_CONTROLS:-10}" \
  --out "$out/task-knock-off" > "$out-task-knock-off.log"
# Gradient descent against CEM at about the same wall-clock per replan (bench plan), goal-frame.
run --task push-to-goal --protocol goal-frame --planner gd --controls false --episodes "${GD_EPISODES:-20}" \
  --out "$out/goal-frame-push-to-goal-gd" > "$out-goal-frame-gd.log"
# The supervised probe cost (eval-wm's cup probe), goal-frame, reported apart.
run --task push-to-goal --protocol goal-frame --cost probe --probe "${PROBE:-out/demo/eval/probe.safetensors}" \
  --controls false --episodes "${GF_EPISODES:-50}" --out "$out/goal-frame-push-to-goal-probe" > "$out-goal-frame-probe.log"
