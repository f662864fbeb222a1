"""Loads a cupworld dataset with LeRobot's own loader (offline) and checks a few items.

Usage: <lerobot venv>/bin/python scripts/check_dataset_lerobot.py DATASET_DIR
"""
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

root = sys.argv[1]
ds = LeRobotDataset("local/cupworld", root=root)
info = json.load(open(os.path.join(root, "meta", "info.json")))
assert len(ds) == info["total_frames"], (len(ds), info["total_frames"])
assert ds.num_episodes == info["total_episodes"]
item = ds[len(ds) - 1]
shapes = {k: tuple(v.shape) for k, v in item.items() if hasattr(v, "shape")}
assert shapes["observation.image"] == (3, info["features"]["observation.image"]["shape"][0], info["features"]["observation.image"]["shape"][1]), shapes
assert shapes["action"] == (2,), shapes
print(json.dumps({"frames": len(ds), "episodes": ds.num_episodes, "task": item["task"], "shapes": {k: list(v) for k, v in shapes.items()}}))
