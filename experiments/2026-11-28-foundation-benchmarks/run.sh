#!/usr/bin/env bash
# Reproduces REPORT.md's tables (2-core CPU-only machine, lavapipe). Writes JSON next to this file.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build --quiet --bin cupworld
bin=target/debug/cupworld
out=experiments/2026-11-28-foundation-benchmarks
$bin bench sim --seconds 2 --repeats 3 --json > $out/sim.json
$bin bench render --frames 1024 --slots 1,8,32 --sizes 64,128 --renderers 1 --json > $out/render_1.json
$bin bench render --frames 1024 --slots 8,32 --sizes 64,128 --renderers 2 --json > $out/render_2.json
$bin bench render --frames 512 --slots 32 --sizes 64 --renderers 2 --shadows --json > $out/render_shadows.json
$bin bench gen --episodes 64 --renderers 1 --json > $out/gen_1.json
$bin bench gen --episodes 64 --renderers 2 --json > $out/gen_2.json
for t in push-to-goal knock-off; do for p in expert random mixed; do
  $bin rollout --task $t --policy $p --episodes 200 --seed 0 --json > $out/rollout_${t}_${p}.json
done; done
