#!/usr/bin/env bash
# The test command (README): installs what is missing, checks crate boundaries, runs every test
# (the Rust workspace's, then the Python package's against the same build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
export CUPWORLD_PYTHON="$PWD/.venv/bin/python3"
bash scripts/check_deps.sh
cargo test --workspace --all-targets
bash python/tests/run.sh
