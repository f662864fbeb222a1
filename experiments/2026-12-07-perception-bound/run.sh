#!/usr/bin/env bash
# How precisely the agent must see, and how precisely the frozen world model lets it see.
# 1. The scripted expert under position noise (this checkout's modal expert, and the smooth one of
#    commit 66f2b57 measured by the same tool).
# 2. At commit e929e47 (the state read-out and the read-out switches, removed after it): two
#    cloning runs of 1,500 steps with and without the read-out, scored on the task protocol, and
#    the expert acting on the read-out or on the cup probe's reading of each frame.
# 3. How precisely the frames and the latents locate the paw and the cup: a CNN trained supervised
#    on frames of two sizes (Python, no world model) and read-outs of the frozen latents.
# Step 2 and the latents' read-out need the 2026-12-07 smooth-expert main job's out/demo (datasets, world model, probe):
# `experiments/2026-12-07-smooth-expert/run.sh` makes it (as out/smooth: set DEMO=out/smooth).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
here=$PWD/experiments/2026-12-07-perception-bound
demo=${DEMO:-out/demo}
out=out/perception-bound
cargo run --quiet --example expert_under_noise -- 100 > "$here/expert-under-noise-modal.txt"
git worktree add -f /tmp/cw-smooth 66f2b57
cp sim/examples/expert_under_noise.rs /tmp/cw-smooth/sim/examples/
(cd /tmp/cw-smooth && cargo run --quiet --example expert_under_noise -- 100) > "$here/expert-under-noise-smooth.txt"

git worktree add -f /tmp/cw-readout e929e47
(cd /tmp/cw-readout && cargo build --quiet --bin cupworld)
bin=$(cd /tmp/cw-readout && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/cupworld
wm=$demo/world_model/checkpoints/step-00019000.safetensors
mkdir -p $out && echo '{}' > $out/base.json && echo '{"state_dim": 6}' > $out/aux.json
for arm in base aux; do
  "$bin" train-agent --world-model $wm --data $demo/data/train-push-to-goal --data $demo/data/train-knock-off \
    --out $out/$arm --config $out/$arm.json --cloning-steps 1500 --dagger-rounds 0 --threads 1 &
done
wait
score() { # name, extra environment, policy run, task, episodes
  env $2 "$bin" eval-agent --agent policy --policy-run $out/$3/policy.safetensors --task $4 --protocol task \
    --episodes $5 --controls false --threads 1 --out $out/$1-$4
}
for t in push-to-goal knock-off; do
  score eval-base "" base $t 100 & score eval-aux "" aux $t 100; wait
  score readout-expert CUPWORLD_READOUT_EXPERT=1 aux $t 50 &
  score probe-expert "CUPWORLD_READOUT_EXPERT=probe CUPWORLD_PROBE=$demo/eval/probe.safetensors" aux $t 50; wait
  "$bin" eval-agent --agent expert --world-model $wm --task $t --protocol task --episodes 50 --controls false --out $out/expert-$t
done
"${PYTHON:-.venv/bin/python3}" $here/readout_error.py $out/readout-expert-*/episodes.jsonl > "$here/readout-error.txt"
"${PYTHON:-.venv/bin/python3}" experiments/2026-12-07-generalisation/draw_traces.py \
  $out/probe-expert-push-to-goal/episodes.jsonl "$here/traces-probe-expert-push-to-goal.png" --first 8
for r in readout-expert probe-expert eval-aux eval-base; do
  echo "$r: $(python3 experiments/2026-12-07-smooth-expert/goal_direction.py $out/$r-push-to-goal/episodes.jsonl)"
done > "$here/goal-direction.txt"

# The Python package staged with the extension cargo builds, as python/tests/run.sh does.
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --workspace --lib
stage=$target/python-package && rm -rf $stage && mkdir -p $stage && cp -r python/cupworld $stage/
ln -s $target/debug/libcupworld_native.so $stage/cupworld/_native.so
sp() { PYTHONPATH=$stage "${PYTHON:-.venv/bin/python3}" $here/supervised_precision.py "$@"; }
{ sp 64 4000; sp 128 4000; sp 64 8000 2000; } | grep -E 'frames|RMSE' > "$here/supervised-precision.txt"
cargo run --quiet --example latent_readout -- $wm $demo/data/train-push-to-goal,$demo/data/train-knock-off \
  $demo/data/heldout-push-to-goal,$demo/data/heldout-knock-off 20000 > "$here/latent-readout.txt"
# 5. The encoder phase alone, 5,000 steps, with the 4 x 4 grid and an 8 x 8 one, and their read-outs.
for g in 4 8; do
  strides='[4,1,2,2]'; [ $g = 8 ] && strides='[4,1,2,1]'
  cargo run --quiet --bin cupworld -- train-wm --data $demo/data/train-push-to-goal --data $demo/data/train-knock-off \
    --counterfactual-data $demo/data/train-push-to-goal-cf --counterfactual-data $demo/data/train-knock-off-cf \
    --set "encoder.strides=$strides" --set encoder_steps=5000 --set steps=5001 --threads 1 --out out/grid/grid$g &
done
wait
for g in 4 8; do
  echo "${g}x$g grid, 5,000 encoder steps:"
  cargo run --quiet --example latent_readout -- out/grid/grid$g/checkpoints/step-00005001.safetensors \
    $demo/data/train-push-to-goal,$demo/data/train-knock-off $demo/data/heldout-push-to-goal,$demo/data/heldout-knock-off 20000
done > "$here/latent-grid.txt"
