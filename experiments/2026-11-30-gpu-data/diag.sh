#!/usr/bin/env bash
# Diagnostic: train-wm step time on the GPU, alone, by libtorch thread count; bench wm on CUDA.
set -u
TL=${TL:-$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')}
export LD_LIBRARY_PATH=$TL
mkdir -p /tmp/bin && xz -dc .dev/cupworld.xz > /tmp/bin/cupworld && chmod +x /tmp/bin/cupworld
B=/tmp/bin/cupworld; DEV=${DEV:-cuda}; S=${S:-300}; H=.dev/heldout
for th in 16 4; do
  rm -rf /tmp/t$th
  timeout ${TT:-50} $B train-wm --config .dev/pred.json --data $H/heldout-push-to-goal --data $H/heldout-knock-off \
    --init-encoder .dev/enc.safetensors --device $DEV --threads $th --steps $S --checkpoint-every 1000 --out /tmp/t$th > $OUT/t$th.log 2>&1
  echo "threads $th rc=$?"
  python3 -c "
import json; L=[json.loads(l) for l in open('/tmp/t$th/metrics.jsonl')]; a=min(20,len(L)-2)
print('threads $th', len(L), 'steps', round((L[-1]['elapsed_s']-L[a]['elapsed_s'])/(len(L)-1-a)*1000,1), 'ms/step')"
done
timeout ${TB:-70} $B bench wm --preset small --device $DEV --json > $OUT/bench_wm_cuda.json 2> $OUT/bench.err; echo "bench rc=$?"
cat $OUT/bench_wm_cuda.json
