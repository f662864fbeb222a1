#!/usr/bin/env bash
# How the binary for the GPU machine was built. That machine has PyTorch 2.11 (no 2.13, and
# nothing can be fetched there); our tch 0.26 needs 2.13, and a 2.13-built binary on 2.11's
# libraries fails (`Tensor::from_slice`: "incoherent element sizes in bytes"). So: tch 0.26's
# torch-sys is compiled against the 2.11 wheel's headers with the 15 generated wrappers of ops
# 2.11 lacks (_philox_*, _upsample_lanczos2d_aa*, _flash_attention_forward_no_dropout_inplace,
# _scaled_dot_product_attention_math_for_mps) made to throw, in a copy of the workspace.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 -d /tmp/t211 torch==2.11.0
(cd /tmp/t211 && unzip -q -o torch-2.11.0-*.whl 'torch/include/*' 'torch/share/*' 'torch/lib/*')
rm -rf /tmp/torch-sys-211
cp -r ~/.cargo/registry/src/index.crates.io-*/torch-sys-0.26.0 /tmp/torch-sys-211
cd /tmp/torch-sys-211
c++ -fsyntax-only -I /tmp/t211/torch/include -I /tmp/t211/torch/include/torch/csrc/api/include -w \
  -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 libtch/torch_api_generated.cpp 2> /tmp/gen_err.txt || true
python3 - <<'PY'
import re
names = sorted(set(re.findall(r"In function ‘void (atg_\w+)\(", open('/tmp/gen_err.txt').read())))
p = 'libtch/torch_api_generated.cpp'
s = open(p).read()
for n in names:
    i = s.index('void ' + n + '(')
    j = s.index('{', i)
    depth, k = 0, j
    while True:
        depth += {'{': 1, '}': -1}.get(s[k], 0)
        if depth == 0:
            break
        k += 1
    s = s[:j] + '{\n  PROTECT(throw std::runtime_error("' + n + ': not in this libtorch");)\n}' + s[k + 1:]
open(p, 'w').write(s)
print(len(names), 'wrappers stubbed')
PY
cd "$REPO"
rm -rf /tmp/ws211 && mkdir /tmp/ws211 && git ls-files -z | xargs -0 -I{} cp --parents {} /tmp/ws211/
printf '\n[patch.crates-io]\ntorch-sys = { path = "/tmp/torch-sys-211" }\n' >> /tmp/ws211/Cargo.toml
cd /tmp/ws211
env -u LIBTORCH_USE_PYTORCH LIBTORCH=/tmp/t211/torch LIBTORCH_BYPASS_VERSION_CHECK=1 \
  CARGO_TARGET_DIR=/tmp/target211 cargo build --bin cupworld
strip -o /tmp/cw211 /tmp/target211/debug/cupworld && xz -T2 -6 -c /tmp/cw211 > "$REPO/.dev/cupworld.xz"  # ~18 MB, carried to the device
