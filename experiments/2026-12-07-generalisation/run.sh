#!/usr/bin/env bash
# Why the cloned policy fails: eight 800-step cloning runs on the main job's datasets (one libtorch
# thread each, two at a time), each logging the action error on the held-out dataset episodes
# (every 20th); two of them scored on 50 task episodes a task; and the original policy's episodes
# traced (paw, cup, action, the expert's action in each visited state) and drawn.
# The options below (--window, --feature-dropout, --mirror, --privileged-state, the config
# overlays) exist at commit 53460c3: run this script with CUPWORLD pointing at a binary built
# there (REPORT.md); later commits keep only the held-out metric and the traces.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CUPWORLD:-target/debug/cupworld}
wm=out/demo/world_model
data=out/demo/data
out=${OUT:-out/reg}
mkdir -p "$out"
here=experiments/2026-12-07-generalisation
clone() { name=$1; shift; "$bin" train-agent --world-model "$wm" --data "$data/train-push-to-goal" \
  --data "$data/train-knock-off" --cloning-steps 800 --dagger-rounds 0 --threads 1 --out "$out/$name" "$@"; }
clone base & clone drop --feature-dropout 0.3; wait
clone win32 --window 32 --batch 32 & clone mirror --mirror; wait
clone mlp --config "$here/configs/mlp.json" & clone noprev --config "$here/configs/noprev.json"; wait
clone state --config "$here/configs/state.json" --privileged-state & clone bins --config "$here/configs/bins.json"; wait
# 1,200 more mixed episodes a task, for the data-scaling run.
"$bin" gen --task push-to-goal --policy mixed --episodes 1200 --seed 7 --out "$out/more-push-to-goal"
"$bin" gen --task knock-off --policy mixed --episodes 1200 --seed 7 --out "$out/more-knock-off"
clone more --data "$out/more-push-to-goal" --data "$out/more-knock-off"
# The classifying head trained on to 3,000 steps.
"$bin" train-agent --world-model "$wm" --data "$data/train-push-to-goal" --data "$data/train-knock-off" \
  --cloning-steps 2200 --dagger-rounds 0 --threads 2 --config "$here/configs/bins.json" \
  --init "$out/bins/policy.safetensors" --out "$out/bins-more"
for r in base more bins-more; do for t in knock-off push-to-goal; do
  "$bin" eval-agent --agent policy --policy-run "$out/$r/policy.safetensors" --task "$t" --protocol task \
    --episodes 50 --controls false --threads 1 --out "$out/eval-$r-$t"
done; done
# The original policy (experiments/2026-12-07-policy), traced.
for t in knock-off push-to-goal; do
  "$bin" eval-agent --agent policy --policy-run out/agent/run --task "$t" --protocol task --episodes 40 \
    --controls false --threads 1 --out "$out/trace-$t"
  "${PYTHON:-.venv/bin/python3}" "$here/draw_traces.py" "$out/trace-$t/episodes.jsonl" "$here/traces-$t.png" --first 8 --task "$t"
done
# Four more DAgger rounds from the trained policy (run at ca42fd8 for round 0, resumed at 34ad498).
"$bin" train-agent --world-model "$wm" --data "$data/train-push-to-goal" --data "$data/train-knock-off" \
  --init out/agent/run/policy.safetensors --cloning-steps 0 --dagger-rounds 4 --dagger-episodes 64 \
  --dagger-steps 600 --beta 0.1 --beta-decay 0.5 --out "$out/dagger" --threads 2
for t in knock-off push-to-goal; do
  "$bin" eval-agent --agent policy --policy-run "$out/dagger/policy.safetensors" --task "$t" --protocol task \
    --episodes 200 --controls false --threads 1 --out "$out/dagger-eval-$t"
done
