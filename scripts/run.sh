#!/usr/bin/env bash
# The main job (README) on its embedded defaults: generate a small rendered push-the-cup dataset,
# verify it and write a contact sheet of its frames into out/demo. No GPU, display or services.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_INCREMENTAL=0
# tch builds against the venv's torch (torch-sys finds it through python3); binaries carry an rpath.
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv/bin:$PATH"
cargo run --quiet --bin cupworld -- demo --out out/demo "$@"
