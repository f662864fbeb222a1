#!/usr/bin/env bash
# Installs what cupworld needs on a fresh Debian/Ubuntu machine; safe to rerun (skips what is there).
#  - Mesa's Vulkan drivers (lavapipe): bevy renders on the CPU when there is no GPU.
#  - Xvfb (a virtual X display) and the X11 client libraries winit loads: the viewer's tests
#    open a real window on it.
#  - A project-local Python venv (.venv) with pyarrow (the tests read datasets with it), the
#    PyPI torch 2.13.0 wheel, whose libtorch the `agent` crate (tch 0.26) links against, and what
#    the Python package's tests use (gymnasium, numpy, pillow, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in mesa-vulkan-drivers libvulkan1 python3-venv xvfb xauth libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 libx11-xcb1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python3 ] || python3 -m venv .venv
if ! .venv/bin/python3 -c "import pyarrow" 2>/dev/null; then
  echo "setup: installing pyarrow into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check "pyarrow>=15"
fi
if ! .venv/bin/python3 -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 into .venv (libtorch for tch; ~5 GB, once)" >&2
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
fi
if ! .venv/bin/python3 -c "import gymnasium, numpy, PIL, pytest" 2>/dev/null; then
  echo "setup: installing gymnasium, numpy, pillow and pytest into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check "gymnasium>=1.0,<2" "numpy>=1.24" pillow pytest
fi
