#!/usr/bin/env bash
# The main job (README) on its embedded defaults: generate push-the-cup data, train the JEPA world
# model, evaluate it (prediction, probes, violation of expectation) and write out/demo/eval/report.md.
# No GPU, display or services. Extra arguments go to `cupworld demo` (e.g. --scale tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo run --quiet --bin cupworld -- demo --out out/demo "$@"
