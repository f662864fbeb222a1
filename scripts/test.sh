#!/usr/bin/env bash
# The test command (README): installs what is missing, checks crate boundaries, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_INCREMENTAL=0
# tch builds against the venv's torch (torch-sys finds it through python3); binaries carry an rpath.
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv/bin:$PATH"
export CUPWORLD_PYTHON="$PWD/.venv/bin/python3"
bash scripts/check_deps.sh
cargo test --workspace --all-targets
