#!/usr/bin/env bash
# Keeps heavy dependencies where they belong (ARCHITECTURE.md). Fails naming the crate and the
# dependency that crossed a boundary.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() { # crate, forbidden dependencies...
  local crate=$1; shift
  local tree
  tree=$(cargo tree -p "$crate" -e normal --prefix none --offline 2>/dev/null || cargo tree -p "$crate" -e normal --prefix none)
  for dep in "$@"; do
    if echo "$tree" | grep -qE "^${dep} v"; then
      echo "check_deps: crate '$crate' depends on '$dep', which ARCHITECTURE.md forbids" >&2
      status=1
    fi
  done
}
# Windowing (winit, egui, the orbit camera) lives in `viewer` alone.
window="winit bevy_winit bevy_egui egui bevy_panorbit_camera"
forbid types bevy rapier3d tch parquet $window
forbid sim bevy tch parquet $window
forbid render rapier3d tch parquet $window
forbid dataset bevy rapier3d tch $window
forbid agent bevy rapier3d parquet $window
forbid world_model bevy rapier3d parquet $window
forbid datagen tch $window
forbid train $window
forbid eval $window
forbid bench $window
forbid demo $window
forbid viewer parquet
# The Python extension must not bring libtorch into a process where the user's own torch lives.
forbid cupworld-py tch parquet $window
# The command line holds no pipeline of its own: it reaches the simulator, the renderer and the
# datasets through the library crates above (checked by its size in lines, outside tests).
lines=$(cat cupworld/src/*.rs | wc -l)
if [ "$lines" -gt 1500 ]; then
  echo "check_deps: cupworld/src has $lines lines; the command line parses and calls (at most 1,500)" >&2
  status=1
fi
[ $status -eq 0 ] && echo "check_deps: crate boundaries hold"
exit $status
