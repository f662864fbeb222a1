"""Per-episode cup-probe error against the cup's hue (read off each episode's first frame).

    pip install --target /tmp/pa pyarrow numpy pillow
    PYTHONPATH=/tmp/pa python3 hues.py EVAL_DIR/probe_cup.csv DATASET_DIR [DATASET_DIR ...]

`probe_cup.csv` is what `cupworld eval-wm` writes; the datasets are the held-out ones it tested
on. Twin episodes (push-to-goal and knock-off of one seed) share the cup, so errors are grouped
by seed and the hue is read from the first dataset that has the seed.
"""
import colorsys, csv, glob, gzip, io, math, statistics, sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def u64(s):
    s = int(s)
    return s + 2**64 if s < 0 else s


def main(csv_path, datasets):
    opener = gzip.open if csv_path.endswith(".gz") else open
    err = {}
    with opener(csv_path, "rt") as f:
        for r in csv.DictReader(f):
            e = math.hypot(float(r["probe_x"]) - float(r["cup_x"]), float(r["probe_z"]) - float(r["cup_z"]))
            err.setdefault(u64(r["episode_seed"]), []).append(e)
    hues = {}
    for ds in datasets:
        meta = pq.read_table(glob.glob(f"{ds}/meta/episodes/*/*.parquet")[0]).to_pydict()
        images = pa.concat_tables(
            [pq.read_table(p, columns=["observation.image"]) for p in sorted(glob.glob(f"{ds}/data/*/*.parquet"))]
        ).column("observation.image")
        for i, seed in enumerate(meta["episode_seed"]):
            seed = u64(seed)
            if seed in hues or seed not in err:
                continue
            png = images[meta["dataset_from_index"][i]].as_py()["bytes"]
            px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3) / 255.0
            hsv = np.array([colorsys.rgb_to_hsv(*p) for p in px])
            # Saturated pixels that are not the pusher's blue: the cup (the table, floor, sky and
            # goal marker are unsaturated).
            cup = (hsv[:, 1] > 0.45) & ~((hsv[:, 0] > 0.5) & (hsv[:, 0] < 0.75))
            hues[seed] = (float(np.median(hsv[cup, 0])) if cup.any() else float("nan"), int(cup.sum()))
    print("| cup hue (rendered) | cup pixels | frames | mean probe error (cm) |\n|---|---|---|---|")
    for seed, (h, n) in sorted(hues.items(), key=lambda kv: kv[1][0]):
        print(f"| {h:.3f} | {n} | {len(err[seed])} | {100 * statistics.mean(err[seed]):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
