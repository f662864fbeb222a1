"""Top-down pictures of agent episodes from `eval-agent`'s episodes.jsonl (the `trace` of each):
the table, the paw's path (blue), the cup's (orange, a ring where it ended), the push-to-goal disc
(green), and every 5th step the agent's action (black) beside the expert's in that state (red).

    python3 draw_traces.py EPISODES_JSONL OUT_PNG [--agent policy] [--first 12] [--task knock-off]

It also prints the squared action error against the expert by stretch of the episode, the
figure that tells whether the agent errs from its first steps or only once it has drifted.
"""
import argparse
import json

from PIL import Image, ImageDraw

p = argparse.ArgumentParser()
p.add_argument("episodes")
p.add_argument("out")
p.add_argument("--agent", default="policy")
p.add_argument("--first", type=int, default=12)
p.add_argument("--task", default="push-to-goal", help="knock-off draws no goal disc")
a = p.parse_args()

rows = [json.loads(l) for l in open(a.episodes)]
rows = [r for r in rows if r["agent"] == a.agent and r.get("trace")]
if not rows:
    raise SystemExit(f"{a.episodes}: no traced episodes of agent {a.agent!r}")

for lo, hi in [(0, 3), (3, 8), (8, 15), (15, 30), (30, 150)]:
    e = [(s["action"][0] - s["expert"][0]) ** 2 + (s["action"][1] - s["expert"][1]) ** 2
         for r in rows for s in r["trace"][lo:hi]]
    if e:
        print(f"steps {lo:3d}-{hi:3d}: action error against the expert {sum(e) / len(e):.3f} ({len(e)} steps)")

CELL, SCALE = 240, 200.0  # pixels per episode, pixels per metre
shown = rows[: a.first]
cols = 4
img = Image.new("RGB", (cols * CELL, ((len(shown) + cols - 1) // cols) * CELL), "white")
d = ImageDraw.Draw(img)
for k, r in enumerate(shown):
    ox, oy = (k % cols) * CELL + CELL // 2, (k // cols) * CELL + CELL // 2
    at = lambda p: (ox + p[0] * SCALE, oy + p[1] * SCALE)
    hw, hd = r.get("table_half_size") or [0.5, 0.4]
    d.rectangle([at((-hw, -hd)), at((hw, hd))], outline=(120, 90, 60), width=2)
    tr = r["trace"]
    g = tr[0]["goal"]
    if a.task == "push-to-goal":
        d.ellipse([at((g[0] - 0.03, g[1] - 0.03)), at((g[0] + 0.03, g[1] + 0.03))], outline=(0, 160, 0), width=2)
    d.line([at(s["paw"]) for s in tr], fill=(40, 90, 220), width=1)
    d.line([at(s["cup"]) for s in tr], fill=(240, 130, 0), width=2)
    c = tr[-1]["cup"]
    d.ellipse([at((c[0] - 0.03, c[1] - 0.03)), at((c[0] + 0.03, c[1] + 0.03))], outline=(240, 130, 0), width=2)
    for s in tr[::5]:
        x, y = at(s["paw"])
        d.line([(x, y), (x + s["action"][0] * 12, y + s["action"][1] * 12)], fill=(0, 0, 0), width=1)
        d.line([(x, y), (x + s["expert"][0] * 12, y + s["expert"][1] * 12)], fill=(220, 0, 0), width=1)
    ok = "success" if r["success_once"] else "failure"
    d.text((ox - CELL // 2 + 4, oy - CELL // 2 + 4), f"seed {r['seed']}: {ok}, {r['length']} steps", fill=(0, 0, 0))
img.save(a.out)
print(f"wrote {a.out} ({len(shown)} episodes)")
