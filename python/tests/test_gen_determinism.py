"""The same seed gives the same frames from Python as from `cupworld gen`, byte for byte."""
import glob
import io
import subprocess

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

import cupworld


def test_an_expert_episode_from_python_equals_gen(tmp_path, cupworld_bin):
    out = tmp_path / "gen"
    cmd = [cupworld_bin, "gen", "--task", "push-to-goal", "--policy", "expert", "--episodes", "1", "--seed", "21"]
    subprocess.run(cmd + ["--out", str(out)], check=True, capture_output=True)
    table = pq.read_table(sorted(glob.glob(str(out / "data" / "chunk-*" / "file-*.parquet"))))
    images = [np.asarray(Image.open(io.BytesIO(img["bytes"]))) for img in table.column("observation.image").to_pylist()]
    actions = np.asarray(table.column("action").to_pylist(), np.float32)
    states = np.asarray(table.column("observation.state").to_pylist(), np.float32)
    assert len(images) > 10

    env = gym.make("cupworld/PushToGoal-v0")
    obs, _ = env.reset(seed=21)
    for t, (image, action, state) in enumerate(zip(images, actions, states)):
        assert np.array_equal(obs["pixels"], image), f"frame {t} differs from gen's"
        assert np.array_equal(obs["state"], state), f"state {t} differs from gen's"
        # The exposed expert is gen's expert: the same action, bit for bit.
        assert np.array_equal(cupworld.expert_action(env), action), f"action {t}"
        obs, _, terminated, truncated, info = env.step(action)
    assert terminated and info["success"], "gen's episode ended where Python's did"
    env.close()
