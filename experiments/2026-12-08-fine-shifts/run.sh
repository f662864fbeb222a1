#!/usr/bin/env bash
# Can self-supervision keep positions finer? The recipe's encoder phase alone (5,000 steps, one
# thread each, two arms side by side) on this checkout's data, with the counterfactual companions
# moved 3-25 cm (the recipe) or 0.5-25 cm, with and without the counterfactual shift head
# (`loss.counterfactual_shift`, set explicitly: the recipe turns it on from the commit after e52a979);
# then `latent_readout` on each encoder.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
here=$PWD/experiments/2026-12-08-fine-shifts
d=out/fine/data
cargo build --quiet --bin cupworld --example latent_readout
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/debug/cupworld
for t in push-to-goal knock-off; do
  g() { $bin gen --task $t --episodes 400 --seed 0 --policy mixed --linger-steps 6 "$@"; }
  g --out $d/train-$t
  g --out $d/train-$t-cf --counterfactual
  g --out $d/train-$t-cf-fine --counterfactual --counterfactual-range 0.005,0.25
  $bin gen --task $t --episodes 40 --seed 1000000 --policy mixed --linger-steps 6 --out $d/heldout-$t
done
arm() { # name, companions, extra --set
  $bin train-wm --data $d/train-push-to-goal --data $d/train-knock-off \
    --counterfactual-data $d/train-push-to-goal-$2 --counterfactual-data $d/train-knock-off-$2 \
    --set encoder_steps=5000 --set steps=5001 ${3:+--set $3} --threads 1 --out out/fine/$1
}
readout() {
  $target/debug/examples/latent_readout out/fine/$1/checkpoints/step-00005001.safetensors \
    $d/train-push-to-goal,$d/train-knock-off $d/heldout-push-to-goal,$d/heldout-knock-off 20000 > $here/readout-$1.txt
}
arm base cf loss.counterfactual_shift=0.0 & arm fine cf-fine loss.counterfactual_shift=0.0 & wait
arm shift cf loss.counterfactual_shift=1.0 & arm shift-fine cf-fine loss.counterfactual_shift=1.0 & wait
readout base & readout fine & wait
readout shift & readout shift-fine & wait

# 2. The whole recipe with the shift head (15,000 encoder + 4,000 predictor steps, one thread), its
#    evaluation as the main job scores it, and read-outs of its encoder (step 15,000, the end of the
#    encoder phase) beside the recipe's encoder without the head: the smooth-expert main job's
#    world model (DEMO, made by experiments/2026-12-07-smooth-expert/run.sh), on the same frames.
demo=${DEMO:-out/demo}
$bin train-wm --data $d/train-push-to-goal --data $d/train-knock-off \
  --counterfactual-data $d/train-push-to-goal-cf --counterfactual-data $d/train-knock-off-cf \
  --val-data $d/heldout-push-to-goal --val-data $d/heldout-knock-off \
  --set loss.counterfactual_shift=1.0 --threads 1 --out out/fine/full-shift &
while [ ! -f out/fine/full-shift/checkpoints/step-00015000.safetensors ]; do sleep 10; done; sleep 5
cp out/fine/full-shift/checkpoints/step-00015000.safetensors out/fine/shift-enc15000.safetensors
wait
$bin eval-wm --checkpoint out/fine/full-shift --data $d/heldout-push-to-goal --data $d/heldout-knock-off \
  --probe-data $d/train-push-to-goal --probe-data $d/train-knock-off \
  --probe-data $d/train-push-to-goal-cf --probe-data $d/train-knock-off-cf --voe-pairs 100 --out out/fine/full-shift-eval
ro15() { $target/debug/examples/latent_readout $2 $d/train-push-to-goal,$d/train-knock-off \
  $d/heldout-push-to-goal,$d/heldout-knock-off 20000 > $here/readout-$1.txt; }
ro15 recipe-15000 $demo/world_model/checkpoints/step-00019000.safetensors & ro15 shift-15000 out/fine/shift-enc15000.safetensors & wait

# 3. The policy cloned for 1,500 steps (no DAgger) on each encoder, 100 task episodes a task.
policy() { # name, world model
  $bin train-agent --world-model $2 --data $d/train-push-to-goal --data $d/train-knock-off \
    --out out/fine/policy-$1 --cloning-steps 1500 --dagger-rounds 0 --threads 1
  for t in push-to-goal knock-off; do
    $bin eval-agent --agent policy --policy-run out/fine/policy-$1/policy.safetensors --task $t --protocol task \
      --episodes 100 --controls false --threads 1 --out out/fine/eval-$1-$t
  done
}
policy recipe $demo/world_model/checkpoints/step-00019000.safetensors & policy shift out/fine/shift-enc15000.safetensors & wait
