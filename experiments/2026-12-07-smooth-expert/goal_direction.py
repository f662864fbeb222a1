"""Does an agent push the cup towards the goal? From eval-agent's push-to-goal episodes.jsonl: for
every step in which the cup moved more than 5 mm (and stood more than 3 cm from the goal), the
cosine between the cup's motion and the direction to the goal; and the share of episodes whose
cup ended at least 2 cm closer to the goal than it started.

    python3 goal_direction.py EPISODES_JSONL
"""
import json
import math
import sys

rows = [json.loads(l) for l in open(sys.argv[1])]
for agent in dict.fromkeys(r["agent"] for r in rows):
    cosines, episodes, closer = [], 0, 0
    for r in rows:
        if r["agent"] != agent or not r.get("trace"):
            continue
        trace = r["trace"]
        episodes += 1
        goal = trace[0]["goal"]
        closer += math.dist(trace[-1]["cup"], goal) < math.dist(trace[0]["cup"], goal) - 0.02
        for a, b in zip(trace, trace[1:]):
            v = (b["cup"][0] - a["cup"][0], b["cup"][1] - a["cup"][1])
            g = (goal[0] - a["cup"][0], goal[1] - a["cup"][1])
            if math.hypot(*v) > 0.005 and math.hypot(*g) > 0.03:
                cosines.append((v[0] * g[0] + v[1] * g[1]) / math.hypot(*v) / math.hypot(*g))
    if episodes:
        n = max(len(cosines), 1)
        print(f"{agent}: {episodes} episodes, {len(cosines)} steps moving the cup, mean cosine to the goal "
              f"{sum(cosines) / n:.2f}, cosine > 0.7 in {sum(c > 0.7 for c in cosines) / n:.2f}, "
              f"ending 2 cm closer in {closer / episodes:.2f}")
