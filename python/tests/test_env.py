"""One environment through Gymnasium: its checker, its spaces and the errors a user can hit."""
import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import cupworld
from cupworld import _native


@pytest.mark.parametrize("env_id", ["cupworld/PushToGoal-v0", "cupworld/KnockOff-v0"])
def test_check_env_passes(env_id):
    env = gym.make(env_id, render_mode="rgb_array", privileged=True)
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=1)
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (4,) and obs["environment_state"].shape == (9,)
    assert set(info) == {"success", "episode_seed", "step", "diverged"}
    assert np.array_equal(env.render(), obs["pixels"])
    env.close()


def test_reset_seed_replays_and_other_seeds_differ():
    env = gym.make("cupworld/PushToGoal-v0")
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    assert np.array_equal(a["pixels"], b["pixels"])
    assert not np.array_equal(a["pixels"], c["pixels"])
    env.close()


def test_the_expert_reaches_the_goal_and_the_episode_ends():
    env = gym.make("cupworld/PushToGoal-v0")
    env.reset(seed=3)
    for _ in range(150):
        obs, reward, terminated, truncated, info = env.step(cupworld.expert_action(env))
        if terminated or truncated:
            break
    assert terminated and info["success"], info
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.step(np.zeros(2, np.float32))
    env.close()


def test_goal_image_shows_the_task_goal():
    env = gym.make("cupworld/KnockOff-v0")
    obs, _ = env.reset(seed=2)
    goal = cupworld.goal_image(env)
    assert goal.shape == (64, 64, 3) and goal.dtype == np.uint8
    # The cup is gone from the goal image: some pixels differ, most do not.
    changed = np.any(goal != obs["pixels"], axis=-1).mean()
    assert 0.0 < changed < 0.05, changed
    env.close()


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(3, np.float32), r"shape \(3,\)"),
        (np.zeros((1, 2), np.float32), r"shape \(1, 2\)"),
        (np.array([0.0, np.nan], np.float32), r"action\[1\] is nan"),
        (np.array([np.inf, 0.0]), r"action\[0\] is inf"),
        ("left", "cannot be read as float32"),
    ],
)
def test_bad_actions_raise_value_error_naming_them(action, message):
    env = gym.make("cupworld/PushToGoal-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.unwrapped.step(action)
    env.close()


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="unknown task"):
        cupworld.CupworldEnv(task="stack-cups")
    with pytest.raises(ValueError, match="num_envs = 0"):
        cupworld.CupworldVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="512x4"):
        cupworld.CupworldEnv(width=512, height=4)
    with pytest.raises(ValueError, match="renderers = 0"):
        cupworld.CupworldVectorEnv(num_envs=2, renderers=0)
    with pytest.raises(ValueError, match="render_mode"):
        cupworld.CupworldEnv(render_mode="human")


def test_step_before_reset_and_after_close_raise():
    env = cupworld.CupworldEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    env.close()
    env.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=0)


def test_the_native_layer_refuses_bad_bytes_and_panics_become_runtime_errors():
    sim = _native.VectorSim("knock-off", 2)
    sim.reset([1, 2])
    with pytest.raises(ValueError, match=r"expected 2 × 2 float32 values \(16 bytes\), got 8"):
        sim.step(np.zeros(2, np.float32).tobytes())
    with pytest.raises(ValueError, match=r"action\[1\]\[0\] is inf"):
        sim.step(np.array([[0, 0], [np.inf, 0]], np.float32).tobytes())
    with pytest.raises(ValueError, match="the first reset needs a seed"):
        _native.VectorSim("knock-off", 1).reset([None])
    with pytest.raises(RuntimeError, match="deliberate panic"):
        _native._panic_for_test()
    sim.close()


def test_close_stops_the_threads_it_started():
    def threads():
        return len(os.listdir("/proc/self/task"))

    counts = []
    for _ in range(2):
        envs = cupworld.CupworldVectorEnv(num_envs=4, renderers=2)
        running = threads()
        envs.close()
        counts.append((running, threads()))
    # Each close ends at least the two render threads, and a second env leaks none beyond the
    # first (bevy keeps its process-wide task pools).
    assert all(running - closed >= 2 for running, closed in counts), counts
    assert counts[1] == counts[0], counts
