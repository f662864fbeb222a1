#!/usr/bin/env bash
# The reruns of the REPORT's table: usage compare_reruns.sh CUPWORLD_BINARY OUT_DIR.
# Each pair is compared by this checkout's `dataset verify --against`.
set -uo pipefail
B=$1; D=$2; V="$(dirname "$0")/../../target/debug/cupworld"
rm -rf "$D"; mkdir -p "$D"
g() { "$B" gen --policy mixed "$@" >/dev/null 2>&1 || echo "gen failed: $*"; }
cmp() { echo "$1 vs $2: $("$V" dataset verify "$D/$1" --against "$D/$2" 2>&1 | tail -1)"; }
g --task knock-off --episodes 6 --seed 5 --out "$D/k1"
g --task knock-off --episodes 6 --seed 5 --out "$D/k2"
g --task knock-off --episodes 6 --seed 5 --renderers 1 --out "$D/k3"
g --task push-to-goal --episodes 40 --seed 1 --out "$D/p1"
g --task push-to-goal --episodes 40 --seed 1 --out "$D/p2"
g --task push-to-goal --episodes 40 --seed 1 --renderers 1 --out "$D/p3"
g --task push-to-goal --episodes 40 --seed 1 --renderers 1 --out "$D/p4"
g --task push-to-goal --episodes 40 --seed 1 --num-shards 2 --shard-index 0 --out "$D/sh"
g --task push-to-goal --episodes 40 --seed 1 --num-shards 2 --shard-index 1 --out "$D/sh"
"$V" dataset merge "$D/sh" --out "$D/pm" >/dev/null 2>&1 || echo "merge failed"
cmp k1 k2; cmp k1 k3; cmp p1 p2; cmp p1 p3; cmp p3 p4; cmp p1 pm
