#!/usr/bin/env bash
# One device call: CUDA checks of the tch path and the main job on the GPU. Writes to $OUT.
set -u
date
REAL_OUT=$OUT; OUT=/tmp/o; mkdir -p $OUT
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET:-520}))
left() { echo $((DEADLINE - $(date +%s))); }
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
TL=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$TL
mkdir -p /tmp/bin && xz -dc .dev/cupworld.xz > /tmp/bin/cupworld && chmod +x /tmp/bin/cupworld
B=/tmp/bin/cupworld
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c 'import torch;print("device torch", torch.__version__)'
nproc
echo "== bench wm cuda" ; timeout 120 $B bench wm --preset small --device cuda --json > $OUT/bench_wm_cuda.json 2> $OUT/bench_wm_cuda.err; echo rc=$?; cat $OUT/bench_wm_cuda.json | head -40; tail -5 $OUT/bench_wm_cuda.err
echo "== demo tiny cuda ($(left) s left)"; timeout 120 $B demo --scale tiny --device cuda --out /tmp/tiny > $OUT/tiny.log 2>&1; echo rc=$?; tail -8 $OUT/tiny.log
if ! grep -q "report:" $OUT/tiny.log; then
  echo "== tiny demo failed: CUDA train/eval on carried tiny data"
  T=.dev/tinydata
  $B train-wm --preset tiny --steps 20 --data $T/train-push-to-goal --data $T/train-knock-off --device cuda --out /tmp/tt > $OUT/tt_train.log 2>&1; echo rc=$?; tail -3 $OUT/tt_train.log
  $B eval-wm --checkpoint /tmp/tt --data $T/heldout-push-to-goal --data $T/heldout-knock-off --voe-pairs 2 --device cuda --out /tmp/tt/eval > $OUT/tt_eval.log 2>&1; echo rc=$?; tail -5 $OUT/tt_eval.log
fi
echo "== demo small cuda ($(left) s left)"; timeout $(($(left) - 15)) $B demo --device cuda --out /tmp/demo > $OUT/demo.log 2>&1; echo rc=$?; tail -25 $OUT/demo.log
cp /tmp/demo/timing.json $OUT/ 2>/dev/null; cp /tmp/demo/eval/report.json $OUT/ 2>/dev/null; cp /tmp/demo/eval/report.md $OUT/ 2>/dev/null
ls /tmp/demo/world_model 2>/dev/null | head; tail -2 /tmp/demo/world_model/metrics.jsonl 2>/dev/null
# Variant: the same recipe and data, 4x the steps of both phases (is the main job compute-bound?).
D=/tmp/demo/data
python3 - <<'PY'
import json
c = json.load(open('/tmp/demo/world_model/config.json'))['model']
c['encoder_steps'] *= 4; c['steps'] = c['encoder_steps'] + 4 * 2500
json.dump(c, open('/tmp/x4.json', 'w'), indent=1)
PY
echo "== x4 train ($(left) s left)"
timeout $(($(left) - 90)) $B train-wm --config /tmp/x4.json --data $D/train-push-to-goal --data $D/train-knock-off --counterfactual-data $D/train-push-to-goal-cf --counterfactual-data $D/train-knock-off-cf --device cuda --out /tmp/x4 > $OUT/x4_train.log 2>&1; echo rc=$?; tail -3 $OUT/x4_train.log
cp /tmp/x4/metrics.jsonl $OUT/x4_metrics.jsonl 2>/dev/null
echo "== x4 eval ($(left) s left)"
timeout $(($(left) - 5)) $B eval-wm --checkpoint /tmp/x4 --data $D/heldout-push-to-goal --data $D/heldout-knock-off --probe-data $D/train-push-to-goal --probe-data $D/train-knock-off --device cuda --out /tmp/x4/eval > $OUT/x4_eval.log 2>&1; echo rc=$?; tail -12 $OUT/x4_eval.log
cp /tmp/x4/eval/report.json $OUT/x4_report.json 2>/dev/null
echo "done, $(left) s left"
cp /tmp/demo/world_model/metrics.jsonl $OUT/demo_metrics.jsonl 2>/dev/null
mkdir -p /tmp/o/x4 /tmp/o/demo_eval; cp /tmp/demo/world_model/*.png $OUT/ 2>/dev/null; cp /tmp/x4/*.png /tmp/o/x4/ 2>/dev/null; cp /tmp/demo/eval/*.png /tmp/o/demo_eval/ 2>/dev/null; cp /tmp/x4/eval/report.md /tmp/o/x4/ 2>/dev/null
tar czf $REAL_OUT/results.tgz -C /tmp/o . ; ls -la /tmp/o
