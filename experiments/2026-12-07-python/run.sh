#!/usr/bin/env bash
# Reruns this experiment from the repository root: the Python throughput benchmark beside
# MuJoCo's Pusher-v5 (software GL) and `cupworld bench gen`, and the longer PPO run with its curve.
# Needs the workspace build (bash scripts/test.sh, or cargo build) and the package staged by
# python/tests/run.sh, or `pip install ./python`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
here=experiments/2026-12-07-python
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
.venv/bin/pip install -q --disable-pip-version-check "gymnasium[mujoco]"
export PYTHONPATH="$target/python-package"
MUJOCO_GL=egl .venv/bin/python3 python/examples/bench.py --mujoco --cupworld-bin "$target/debug/cupworld" --json "$here/bench.json"
.venv/bin/python3 python/examples/ppo.py --eval-episodes 64 --out "$here/ppo"  # 98,304 steps, 16 envs, 50-step episodes
.venv/bin/python3 "$here/plot_curve.py" "$here/ppo/result.json" "$here/ppo/curve.png"
