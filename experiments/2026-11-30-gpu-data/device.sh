#!/usr/bin/env bash
# One device call: is the predictor's held-out failure a data problem? Predictor-only runs on the
# main job's frozen encoder (carried), on 1x and 3x the training episodes (rendered here on the
# GPU), evaluated as the main job on its own held-out episodes (carried). Writes to $OUT.
set -u
date
REAL_OUT=$OUT; O=/tmp/o; mkdir -p $O
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET:-540}))
left() { echo $((DEADLINE - $(date +%s))); }
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
[ -z "${LOCAL:-}" ] && { for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; }
[ -z "${LOCAL:-}" ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
  __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
TL=${TL:-$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')}
export LD_LIBRARY_PATH=$TL
mkdir -p /tmp/bin && xz -dc .dev/cupworld.xz > /tmp/bin/cupworld && chmod +x /tmp/bin/cupworld
B=/tmp/bin/cupworld; DEV=${DEV:-cuda}; N1=${N1:-400}; N2=${N2:-800}; STEPS=${STEPS:+--steps $STEPS}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $O/gpu.txt
python3 -c 'import torch;print("device torch", torch.__version__)'
rm -rf /tmp/data /tmp/A /tmp/B /tmp/C; D=/tmp/data; H=.dev/heldout
gen() { $B gen --task $1 --episodes $2 --seed $3 --linger-steps 6 --out $4 --json > $O/gen_$(basename $4).json 2>> $O/gen.err; }
stamp "gen 1x"
gen push-to-goal $N1 0 $D/a-push & P1=$!; gen knock-off $N1 0 $D/a-knock & P2=$!; wait $P1 $P2
cat $O/gen_a-push.json | head -c 400; echo
[ -f $D/a-knock/manifest.json ] || { tail -20 $O/gen.err; tar czf $REAL_OUT/results.tgz -C $O .; exit 1; }
VAL="--val-data $H/heldout-push-to-goal --val-data $H/heldout-knock-off"
train() { # name config data...
  local n=$1 c=$2; shift 2
  local data=""; for d in "$@"; do data="$data --data $d"; done
  timeout $(($(left) - 100)) $B train-wm --config $c $data --init-encoder .dev/enc.safetensors $VAL \
    $STEPS --device $DEV --checkpoint-every 500 --out /tmp/$n > $O/train_$n.log 2>&1
  stamp "train $n rc=$?"; tail -2 $O/train_$n.log
  timeout $(($(left) - 5)) $B eval-wm --checkpoint /tmp/$n --out /tmp/$n/eval --device $DEV \
    --data $H/heldout-push-to-goal --data $H/heldout-knock-off \
    --probe-data $D/a-push --probe-data $D/a-knock \
    --voe-pairs ${PAIRS:-120} --horizons 8 --voe-horizon 4 > $O/eval_$n.log 2>&1
  stamp "eval $n rc=$?"; tail -6 $O/eval_$n.log
  cp /tmp/$n/plots/validation.png $O/val_$n.png; cp /tmp/$n/eval/report.md $O/report_$n.md; cp /tmp/$n/metrics.jsonl $O/metrics_$n.jsonl; cp /tmp/$n/eval/report.json $O/report_$n.json
}
stamp "start A (1x, 5000 steps)"
train A .dev/pred.json $D/a-push $D/a-knock &
stamp "gen extra 2x"
gen push-to-goal $N2 20000 $D/b-push & P1=$!; gen knock-off $N2 20000 $D/b-knock & P2=$!; wait $P1 $P2
stamp "gen done"; nvidia-smi --query-gpu=utilization.gpu,clocks.sm,memory.used --format=csv
stamp "start B (3x, 5000 steps)"
train B .dev/pred.json $D/a-push $D/a-knock $D/b-push $D/b-knock &
sleep ${PEEK:-60}; nvidia-smi --query-gpu=utilization.gpu,clocks.sm,memory.used --format=csv; grep -c '"step"' /tmp/A/metrics.jsonl /tmp/B/metrics.jsonl
wait
stamp "all done, $(left) s left"
tar czf $REAL_OUT/results.tgz -C $O .; ls -la $O
