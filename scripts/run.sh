#!/usr/bin/env bash
# The main job (README) on its embedded defaults: generate a small rendered push-the-cup dataset,
# verify it and write a contact sheet of its frames into out/demo. No GPU, display or services.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo run --quiet --bin cupworld -- demo --out out/demo "$@"
