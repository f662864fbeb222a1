#!/usr/bin/env bash
# Runs the Python package's tests against the workspace build (scripts/test.sh calls it after
# `cargo test`): stages python/cupworld with the extension cargo built, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# The extension, with the features the tests were built with (so nothing compiles twice).
cargo build --workspace --lib
stage="$target/python-package"
rm -rf "$stage" && mkdir -p "$stage"
cp -r python/cupworld "$stage/"
ln -s "$target/debug/libcupworld_native.so" "$stage/cupworld/_native.so"
CUPWORLD_BIN="$target/debug/cupworld" PYTHONPATH="$stage" .venv/bin/python3 -m pytest -q -p no:cacheprovider python/tests "$@"
