# Build environment for cupworld, sourced by the scripts (and by you before a hand-run cargo):
#   source scripts/env.sh && cargo build
# tch builds against the project venv's torch (torch-sys asks that python3 where libtorch is);
# the binaries then carry libtorch on their rpath and run without any of this.
_cupworld_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LIBTORCH_USE_PYTORCH=1
export PATH="$_cupworld_root/.venv/bin:$PATH"
export CARGO_INCREMENTAL=0
