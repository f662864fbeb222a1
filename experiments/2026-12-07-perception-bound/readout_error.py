"""How far a policy's state read-out is from the truth in its own episodes: from eval-agent's
episodes.jsonl written at commit e929e47 (each trace step holds `readout`: paw, cup, goal x, z),
the median and root-mean-square 2-D error in cm of each quantity (the goal in push-to-goal
only), over every step and over each episode's first 5.

    python3 readout_error.py EPISODES_JSONL...
"""
import json
import math
import sys


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else float("nan")


for path in sys.argv[1:]:
    rows = [json.loads(line) for line in open(path)]
    every, first = {}, {}
    for r in rows:
        for i, step in enumerate(r.get("trace", [])):
            read = step.get("readout")
            if read is None:
                continue
            for name, at in (("paw", 0), ("cup", 2), ("goal", 4)):
                if name == "goal" and "push" not in path:
                    continue
                d = math.dist(read[at:at + 2], step[name]) * 100
                every.setdefault(name, []).append(d)
                if i < 5:
                    first.setdefault(name, []).append(d)
    summary = ", ".join(
        f"{k} median {median(v):.1f} RMS {math.sqrt(sum(x * x for x in v) / len(v)):.1f}" for k, v in every.items())
    print(f"{path}: {summary}; first 5 steps median " + ", ".join(f"{k} {median(v):.1f}" for k, v in first.items()))
