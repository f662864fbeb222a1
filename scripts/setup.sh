#!/usr/bin/env bash
# Installs what cupworld needs on a fresh Debian/Ubuntu machine; safe to rerun (skips what is there).
#  - Mesa's Vulkan drivers (lavapipe): bevy renders on the CPU when there is no GPU.
#  - A project-local Python venv (.venv) with pyarrow, used by the tests to read datasets.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in mesa-vulkan-drivers libvulkan1 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python3 ] || ! .venv/bin/python3 -c "import pyarrow" 2>/dev/null; then
  echo "setup: creating .venv with pyarrow" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "pyarrow>=15"
fi
