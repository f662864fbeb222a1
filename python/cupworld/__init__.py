"""cupworld from Python: push-the-cup as Gymnasium environments.

The simulator (rapier3d) and the headless renderer (bevy, on a GPU or on the CPU through
lavapipe) run in Rust; this package hands them to Gymnasium::

    import gymnasium as gym
    import cupworld  # registers the environments

    env = gym.make("cupworld/PushToGoal-v0")
    envs = gym.make_vec("cupworld/KnockOff-v0", num_envs=16, vectorization_mode="vector_entry_point")

Beside the environments: the scripted experts (`expert_action`), each episode's goal image
(`goal_image`) and the violation-of-expectation pairs `cupworld eval-wm` scores (`voe_pairs`,
`voe_score`).
"""

from gymnasium.envs.registration import register

from .envs import CupworldEnv, CupworldVectorEnv, expert_action, goal_image
from .voe import voe_pairs, voe_score

__all__ = ["CupworldEnv", "CupworldVectorEnv", "expert_action", "goal_image", "voe_pairs", "voe_score"]

for _name, _task in (("PushToGoal", "push-to-goal"), ("KnockOff", "knock-off")):
    register(
        id=f"cupworld/{_name}-v0",
        entry_point="cupworld.envs:CupworldEnv",
        vector_entry_point="cupworld.envs:CupworldVectorEnv",
        kwargs={"task": _task},
    )
