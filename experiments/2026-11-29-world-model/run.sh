#!/usr/bin/env bash
# Reproduces this experiment: the README's main job (generate → train → evaluate) and the
# world-model benchmark. Run from the repository root after `bash scripts/setup.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build --quiet --bin cupworld
time target/debug/cupworld demo --out out/demo                     # → out/demo/eval/report.{md,json}, timing.json
target/debug/cupworld bench wm --json > experiments/2026-11-29-world-model/bench_wm.json
