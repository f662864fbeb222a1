"""Draws PPO's training curve (mean return of the last 32 episodes against environment steps) with
Pillow, beside the random policy's and standing still's held-out returns as flat lines (a
`result.json`), or the curve alone (a `.jsonl` of the lines ppo.py prints while training).

    python plot_curve.py RESULT_JSON_OR_CURVE_JSONL OUT_PNG
"""
import json
import sys

from PIL import Image, ImageDraw

if sys.argv[1].endswith(".jsonl"):
    result = {"curve": [json.loads(line) for line in open(sys.argv[1])]}
    refs = {}
else:
    result = json.load(open(sys.argv[1]))
    refs = {"random (held out)": result["random_return"], "standing still": result["zero_return"],
            "trained, deterministic (held out)": result["trained_return"]}
points = [(c["steps"], c["episode_return"]) for c in result["curve"] if c["episode_return"] == c["episode_return"]]
w, h, pad = 640, 400, 60
xs = [p[0] for p in points]
ys = [p[1] for p in points] + list(refs.values())
x0, x1, y0, y1 = 0, max(xs), min(ys) - 0.02, max(ys) + 0.02
img = Image.new("RGB", (w, h), "white")
d = ImageDraw.Draw(img)


def px(x, y):
    return pad + (x - x0) / (x1 - x0) * (w - 2 * pad), h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)


d.rectangle([pad, pad, w - pad, h - pad], outline="black")
for k in range(5):
    y = y0 + (y1 - y0) * k / 4
    d.text((5, px(0, y)[1] - 6), f"{y:.2f}", fill="black")
    x = x0 + (x1 - x0) * k / 4
    d.text((px(x, y0)[0] - 15, h - pad + 8), f"{int(x):,}", fill="black")
d.line([px(*p) for p in points], fill=(30, 90, 200), width=2)
colors = {"random (held out)": (200, 60, 40), "standing still": (120, 120, 120),
          "trained, deterministic (held out)": (30, 150, 60)}
for i, (name, v) in enumerate(refs.items()):
    d.line([px(x0, v), px(x1, v)], fill=colors[name], width=1)
    d.text((pad + 8, pad + 8 + 14 * (i + 1)), f"{name}: {v:.3f}", fill=colors[name])
d.text((pad + 8, pad + 8), "PPO training return (last 32 episodes)", fill=(30, 90, 200))
d.text((w // 2 - 60, h - 25), "environment steps", fill="black")
img.save(sys.argv[2])
