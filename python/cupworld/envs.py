"""Gymnasium `Env` and `VectorEnv` over the Rust simulator and batch renderer (`_native`).

Observations: a dict of `pixels` (uint8 [H, W, 3], the camera the world model sees), `state`
(float32 [4]: paw x, z and its velocity) and, with `privileged=True`, `environment_state` (float32
[9]: cup position, cup quaternion x y z w, goal x z). Actions: the paw's velocity in [-1, 1]^2.
Rewards are the simulator's dense reward (progress of the cup towards its goal, progress of the
paw towards the cup, a bonus on success).

Seeds follow `cupworld gen`: `reset(seed=s)` begins the episode `gen --seed s` records first,
and each later `reset()` the next one, so the same seed gives the same frames, byte for byte.
"""

from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _native

_INFO_KEYS = ("success", "episode_seed", "step", "diverged")


def _spaces(width, height, privileged):
    obs = {
        "pixels": spaces.Box(0, 255, (height, width, 3), np.uint8),
        # The paw stays within 0.63 m of the table's centre and moves at most 0.3 m/s.
        "state": spaces.Box(-1.0, 1.0, (4,), np.float32),
    }
    if privileged:
        # The simulator truncates an episode (`diverged`) before any coordinate passes 20 m.
        obs["environment_state"] = spaces.Box(-20.0, 20.0, (9,), np.float32)
    return spaces.Dict(obs), spaces.Box(-1.0, 1.0, (2,), np.float32)


def _checked_actions(actions, shape):
    """float32 C-ordered actions of exactly `shape`, or a ValueError naming what is wrong."""
    try:
        a = np.asarray(actions, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"action: cannot be read as float32 numbers ({e})") from None
    if a.shape != shape:
        raise ValueError(f"action has shape {a.shape}; expected {shape} (paw velocity x, z in [-1, 1])")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"action{list(index)} is {a[index]}: actions must be finite numbers")
    return np.ascontiguousarray(a)


class _Decoded:
    """One native batch as numpy arrays (views of the bytes Rust returned, no per-env loop)."""

    __slots__ = ("obs", "reward", "terminated", "truncated", "info")

    def __init__(self, raw, n, height, width, privileged):
        self.obs = {
            "pixels": np.frombuffer(raw["pixels"], np.uint8).reshape(n, height, width, 3),
            "state": np.frombuffer(raw["state"], np.float32).reshape(n, 4),
        }
        if privileged:
            self.obs["environment_state"] = np.frombuffer(raw["environment_state"], np.float32).reshape(n, 9)
        self.reward = np.frombuffer(raw["reward"], np.float32).astype(np.float64)
        self.terminated = np.frombuffer(raw["terminated"], np.bool_)
        self.truncated = np.frombuffer(raw["truncated"], np.bool_)
        self.info = {
            "success": np.frombuffer(raw["success"], np.bool_),
            "episode_seed": np.frombuffer(raw["episode_seed"], np.uint64),
            "step": np.frombuffer(raw["step"], np.uint32).astype(np.int64),
            "diverged": np.frombuffer(raw["diverged"], np.bool_),
        }


class CupworldEnv(gym.Env):
    """One push-the-cup environment. `task`: "push-to-goal" or "knock-off"."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task="push-to-goal", render_mode=None, width=64, height=64, privileged=False, max_steps=None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode = {render_mode!r}: cupworld renders 'rgb_array' only")
        self._sim = _native.VectorSim(task, 1, width, height, max_steps, 1, 1)
        self.task, self.render_mode, self.privileged = task, render_mode, privileged
        self._size = (height, width)
        self.observation_space, self.action_space = _spaces(width, height, privileged)
        self._batch = None
        self._done = False
        self._seeded = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(0, 2**63))
        self._seeded = True
        self._batch = _Decoded(self._sim.reset([seed]), 1, *self._size, self.privileged)
        self._done = False
        return self._obs(), self._info()

    def step(self, action):
        if self._batch is None:
            raise gym.error.ResetNeeded("call reset before step")
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended (terminated or truncated): call reset")
        a = _checked_actions(action, (2,))
        b = self._batch = _Decoded(self._sim.step(a.tobytes()), 1, *self._size, self.privileged)
        terminated, truncated = bool(b.terminated[0]), bool(b.truncated[0])
        self._done = terminated or truncated
        return self._obs(), float(b.reward[0]), terminated, truncated, self._info()

    def render(self):
        return None if self._batch is None else self._batch.obs["pixels"][0]

    def expert_action(self):
        """The scripted expert's action for the current state (float32 [2]); it reads the
        simulator's privileged state. Taking it every step replays `gen --policy expert`."""
        return np.frombuffer(self._sim.expert_actions(), np.float32).copy()

    def goal_image(self):
        """This episode's goal image (uint8 [H, W, 3]) as it began: the cup on the goal disc with
        the paw where it started (push-to-goal), or the table without the cup (knock-off). The
        goal images `cupworld eval-agent` gives its agents."""
        return np.frombuffer(self._sim.goal_images(), np.uint8).reshape(*self._size, 3)

    def close(self):
        self._sim.close()
        super().close()

    def _obs(self):
        return {k: v[0] for k, v in self._batch.obs.items()}

    def _info(self):
        i = self._batch.info
        return {
            "success": bool(i["success"][0]),
            "episode_seed": int(i["episode_seed"][0]),
            "step": int(i["step"][0]),
            "diverged": bool(i["diverged"][0]),
        }


class CupworldVectorEnv(VectorEnv):
    """`num_envs` environments stepped together in Rust (simulator threads, one renderer update
    for all frames), with Gymnasium 1.x's next-step autoreset: the step after an episode ends
    resets that environment (its action is ignored, its reward 0).

    `reset(seed=s)` seeds environment i with s + i (Gymnasium's convention). `threads`: simulator
    threads (default: the CPU's cores). `renderers`: render threads, each drawing its share of the
    frames (default: the CPU's cores, at most 4); the frames do not depend on either.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs=1,
        task="push-to-goal",
        render_mode=None,
        width=64,
        height=64,
        privileged=False,
        max_steps=None,
        threads=None,
        renderers=None,
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode = {render_mode!r}: cupworld renders 'rgb_array' only")
        self._sim = _native.VectorSim(task, num_envs, width, height, max_steps, threads, renderers)
        self.num_envs, self.task, self.render_mode, self.privileged = num_envs, task, render_mode, privileged
        self._size = (height, width)
        self.single_observation_space, self.single_action_space = _spaces(width, height, privileged)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._batch = None
        self._seeded = False
        self._masks = {f"_{k}": np.ones(num_envs, np.bool_) for k in _INFO_KEYS}

    def reset(self, *, seed=None, options=None):
        n = self.num_envs
        one_seed = isinstance(seed, (int, np.integer))
        super().reset(seed=int(seed) if one_seed else None)
        if seed is None:
            seeds = [None] * n
        elif one_seed:
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = [None if s is None else int(s) for s in seed]
            if len(seeds) != n:
                raise ValueError(f"seed: {len(seeds)} seeds given for {n} environments")
        if not self._seeded:
            # An environment never seeded draws its seed from the vector's generator.
            seeds = [int(self.np_random.integers(0, 2**63)) if s is None else s for s in seeds]
        self._seeded = True
        self._batch = _Decoded(self._sim.reset(seeds), n, *self._size, self.privileged)
        return self._batch.obs, self._info()

    def step(self, actions):
        if self._batch is None:
            raise gym.error.ResetNeeded("call reset before step")
        a = _checked_actions(actions, (self.num_envs, 2))
        b = self._batch = _Decoded(self._sim.step(a.tobytes()), self.num_envs, *self._size, self.privileged)
        return b.obs, b.reward, b.terminated, b.truncated, self._info()

    def render(self):
        return None if self._batch is None else self._batch.obs["pixels"]

    def expert_action(self):
        """The scripted expert's action for every environment's current state (float32 [N, 2])."""
        return np.frombuffer(self._sim.expert_actions(), np.float32).reshape(self.num_envs, 2).copy()

    def goal_image(self):
        """Every environment's goal image for its current episode (uint8 [N, H, W, 3])."""
        return np.frombuffer(self._sim.goal_images(), np.uint8).reshape(self.num_envs, *self._size, 3)

    def close_extras(self, **kwargs):
        self._sim.close()

    def _info(self):
        return {**self._batch.info, **self._masks}


def expert_action(env):
    """The scripted expert's action for `env`'s current state: float32 [2] for an `Env` (wrappers
    allowed), [N, 2] for a `VectorEnv`."""
    return env.unwrapped.expert_action()


def goal_image(env):
    """`env`'s goal image for its current episode: uint8 [H, W, 3], or [N, H, W, 3] for a vector."""
    return env.unwrapped.goal_image()
