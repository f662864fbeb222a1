#!/usr/bin/env bash
# The scripted expert made a continuous function of the state (commit 66f2b57), measured twice: how
# far its action moves under position noise against the modal expert this checkout keeps, and the
# whole main job rerun on it from an empty output directory (its datasets driven and labelled by
# that expert; world model, policy and evaluations as the recipe has them).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
here=$PWD/experiments/2026-12-07-smooth-expert
sensitivity() { cargo run --quiet --example expert_sensitivity -- 200 0.015 && cargo run --quiet --example expert_sensitivity -- 200 0.008; }
sensitivity > "$here/sensitivity-modal.txt"
# The smooth expert in a scratch worktree, measured by this checkout's tool.
git worktree add -f /tmp/cw-smooth-expert 66f2b57
cp sim/examples/expert_sensitivity.rs /tmp/cw-smooth-expert/sim/examples/
(cd /tmp/cw-smooth-expert && sensitivity) > "$here/sensitivity.txt"
# The main job there, on an empty directory.
rm -rf out/smooth && (cd /tmp/cw-smooth-expert && cargo run --quiet --bin cupworld -- demo --out "$OLDPWD/out/smooth")
for t in push-to-goal knock-off; do
  "${PYTHON:-.venv/bin/python3}" experiments/2026-12-07-generalisation/draw_traces.py \
    "out/smooth/agent-eval-$t/episodes.jsonl" "$here/traces-$t.png" --first 8 --task "$t"
done
python3 experiments/2026-12-07-smooth-expert/goal_direction.py out/smooth/agent-eval-push-to-goal/episodes.jsonl > "$here/goal-direction.txt"
