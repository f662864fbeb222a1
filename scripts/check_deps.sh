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
forbid types bevy rapier3d tch parquet
forbid sim bevy tch parquet
forbid render rapier3d tch parquet
forbid dataset bevy rapier3d tch
forbid agent bevy rapier3d parquet
forbid world_model bevy rapier3d parquet
[ $status -eq 0 ] && echo "check_deps: crate boundaries hold"
exit $status
