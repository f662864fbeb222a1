"""The native vector environment: batched observations, seeds, autoreset, threads."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import cupworld


def make(n, task="cupworld/KnockOff-v0", **kwargs):
    return gym.make_vec(task, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def test_batched_spaces_and_arrays():
    envs = make(4)
    assert isinstance(envs.unwrapped, cupworld.CupworldVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = envs.reset(seed=0)
    assert obs["pixels"].shape == (4, 64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert envs.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert reward.shape == (4,) and reward.dtype == np.float64
    assert terminated.dtype == np.bool_ and truncated.shape == (4,)
    assert info["_success"].all() and info["step"].tolist() == [1, 1, 1, 1]
    obs["pixels"][0, 0, 0] = 0  # the arrays are the user's to write
    envs.close()


def test_environment_i_is_the_single_env_seeded_s_plus_i():
    envs = make(3, "cupworld/PushToGoal-v0")
    vec_obs, vec_info = envs.reset(seed=40)
    actions = np.array([[0.5, -0.2], [-1.0, 0.3], [0.1, 1.0]], np.float32)
    for _ in range(4):
        vec_obs, *_ = envs.step(actions)
    for i in range(3):
        env = gym.make("cupworld/PushToGoal-v0")
        obs, info = env.reset(seed=40 + i)
        assert info["episode_seed"] == vec_info["episode_seed"][i]
        for _ in range(4):
            obs, *_ = env.step(actions[i])
        assert np.array_equal(obs["pixels"], vec_obs["pixels"][i]), i
        assert np.array_equal(obs["state"], vec_obs["state"][i]), i
        env.close()
    envs.close()


def test_threads_and_renderers_do_not_change_a_byte():
    runs = []
    for threads, renderers in ((1, 1), (2, 2), (2, 3)):
        envs = make(5, threads=threads, renderers=renderers)
        assert envs.unwrapped._sim.renderers == renderers
        envs.reset(seed=9)
        rng = np.random.default_rng(0)
        frames = [envs.step(rng.uniform(-1, 1, (5, 2)).astype(np.float32))[0]["pixels"].copy() for _ in range(6)]
        runs.append(np.stack(frames))
        envs.close()
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_next_step_autoreset():
    envs = make(2, max_steps=3)
    _, info = envs.reset(seed=5)
    first = info["episode_seed"].copy()
    zeros = np.zeros((2, 2), np.float32)
    for t in (1, 2):
        _, _, terminated, truncated, info = envs.step(zeros)
        assert not (terminated | truncated).any() and (info["step"] == t).all()
    _, _, terminated, truncated, info = envs.step(zeros)
    assert truncated.all() and not terminated.any()
    # The next step resets: its action is ignored, its reward 0, the next episode of the seed.
    obs, reward, terminated, truncated, info = envs.step(np.ones((2, 2), np.float32))
    assert (reward == 0).all() and not (terminated | truncated).any()
    assert (info["step"] == 0).all() and (info["episode_seed"] != first).all()
    single = gym.make("cupworld/KnockOff-v0", max_steps=3)
    single.reset(seed=5)
    obs1, info1 = single.reset()  # the second episode of seed 5
    assert info1["episode_seed"] == info["episode_seed"][0]
    assert np.array_equal(obs1["pixels"], obs["pixels"][0])
    single.close()
    envs.close()


def test_the_expert_knocks_every_cup_off():
    envs = make(4)
    envs.reset(seed=100)
    done = np.zeros(4, bool)
    success = np.zeros(4, bool)
    for _ in range(150):
        _, _, terminated, truncated, info = envs.step(cupworld.expert_action(envs))
        success |= info["success"] & ~done
        done |= terminated | truncated
        if done.all():
            break
    assert success.all(), success
    envs.close()


def test_bad_vector_actions_and_seeds():
    envs = make(2)
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="2 environments"):
        envs.reset(seed=[1, 2, 3])
    envs.reset(seed=[1, None])
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(2, 2\)"):
        envs.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"action\[1, 0\] is nan"):
        envs.step(np.array([[0, 0], [np.nan, 0]], np.float32))
    envs.close()
