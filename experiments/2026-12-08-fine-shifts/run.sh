#!/usr/bin/env bash
# Can self-supervision keep positions finer? The recipe's encoder phase alone (5,000 steps, one
# thread each, two arms side by side) on this checkout's data, with the counterfactual companions
# moved 3-25 cm (the recipe) or 0.5-25 cm, with and without the counterfactual shift head
# (`loss.counterfactual_shift`); then `latent_readout` on each encoder.
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
arm base cf & arm fine cf-fine & wait
arm shift cf loss.counterfactual_shift=1.0 & arm shift-fine cf-fine loss.counterfactual_shift=1.0 & wait
readout base & readout fine & wait
readout shift & readout shift-fine & wait
