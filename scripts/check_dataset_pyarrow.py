"""Reads a cupworld dataset with plain pyarrow, as a Python user would, and checks it.

Usage: python3 scripts/check_dataset_pyarrow.py DATASET_DIR
Prints a JSON summary; exits non-zero (with the reason) on any mismatch.
"""
import glob
import json
import os
import sys

import pyarrow.parquet as pq

root = sys.argv[1]
info = json.load(open(os.path.join(root, "meta", "info.json")))
assert info["codebase_version"] == "v3.0", info["codebase_version"]
files = sorted(glob.glob(os.path.join(root, "data", "chunk-*", "file-*.parquet")))
assert files, "no data files"
table = pq.read_table(files)  # unchanged: no schema given
features = info["features"]
assert set(table.column_names) == set(features), (table.column_names, list(features))
assert table.num_rows == info["total_frames"], (table.num_rows, info["total_frames"])
img = table.column("observation.image")[0].as_py()
assert img["bytes"][:8] == b"\x89PNG\r\n\x1a\n", "image bytes are not PNG"
for key, ft in features.items():
    if ft["dtype"] == "float32" and ft["shape"] != [1]:
        first = table.column(key)[0].as_py()
        assert len(first) == ft["shape"][0], (key, first)
index = table.column("index").to_pylist()
assert index == list(range(len(index))), "index is not 0..n-1"
episodes = pq.read_table(os.path.join(root, "meta", "episodes", "chunk-000", "file-000.parquet"))
assert episodes.num_rows == info["total_episodes"]
tasks = pq.read_table(os.path.join(root, "meta", "tasks.parquet"))
assert tasks.column("task_index").to_pylist() == [0], tasks
print(json.dumps({
    "rows": table.num_rows,
    "episodes": episodes.num_rows,
    "columns": table.column_names,
    "schema": {f.name: str(f.type) for f in table.schema},
}))
