"""PPO from pixels on cupworld's vector environment, in the shape of CleanRL's `ppo_continuous_action.py`
(one file, the whole algorithm in view), written here against Gymnasium 1.x's next-step autoreset.

    python python/examples/ppo.py --out runs/ppo           # 98k steps; --total-timesteps 16384 for a quick one

The policy sees the frame (64x64 RGB, a small CNN) and the paw's own position and velocity; the
cup's position it must find in the pixels. At the end it is scored against the uniform random
policy and against standing still on the same held-out seeds, and a JSON line says the mean returns.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from torch.distributions.normal import Normal

import cupworld  # noqa: F401  (registers the environments)


@dataclass
class Args:
    env_id: str = "cupworld/PushToGoal-v0"
    # Step limit per episode: 50 rather than the environment's 150, so that a 16k-step run sees
    # hundreds of episodes (the paw reaches the cup in about 10 steps).
    max_steps: int = 50
    num_envs: int = 16
    num_steps: int = 64
    total_timesteps: int = 98_304
    learning_rate: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    # The dense reward moves by about 0.01 a step; scaled, the value loss is not negligible.
    reward_scale: float = 10.0
    seed: int = 1
    eval_episodes: int = 32
    eval_seed: int = 1_000_000
    torch_threads: int = 2
    out: str = ""


def layer(module, std=np.sqrt(2), bias=0.0):
    nn.init.orthogonal_(module.weight, std)
    nn.init.constant_(module.bias, bias)
    return module


class Agent(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            layer(nn.Conv2d(3, 16, 8, stride=4)),
            nn.ReLU(),
            layer(nn.Conv2d(16, 32, 4, stride=2)),
            nn.ReLU(),
            nn.Flatten(),
            layer(nn.Linear(32 * 6 * 6, 256)),
            nn.ReLU(),
        )
        self.critic = nn.Sequential(layer(nn.Linear(256 + 4, 64)), nn.Tanh(), layer(nn.Linear(64, 1), std=1.0))
        self.actor_mean = nn.Sequential(layer(nn.Linear(256 + 4, 64)), nn.Tanh(), layer(nn.Linear(64, 2), std=0.01))
        self.actor_logstd = nn.Parameter(torch.zeros(1, 2))

    def features(self, pixels, state):
        x = self.cnn(pixels.permute(0, 3, 1, 2).float() / 255.0)
        return torch.cat([x, state], dim=1)

    def value(self, pixels, state):
        return self.critic(self.features(pixels, state)).squeeze(-1)

    def act(self, pixels, state, action=None):
        h = self.features(pixels, state)
        mean = self.actor_mean(h)
        dist = Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.critic(h).squeeze(-1), mean


def evaluate(env_id, max_steps, policy, episodes, seed):
    """Mean return and success of one episode per environment, `episodes` environments seeded
    seed, seed+1, …"""
    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="vector_entry_point", max_steps=max_steps)
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(episodes)
    done = np.zeros(episodes, bool)
    success = np.zeros(episodes, bool)
    while not done.all():
        obs, reward, terminated, truncated, info = envs.step(policy(obs))
        returns += np.where(done, 0.0, reward)
        success |= info["success"] & ~done
        done |= terminated | truncated
    envs.close()
    return float(returns.mean()), float(success.mean())


def train(args: Args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    envs = gym.make_vec(
        args.env_id, num_envs=args.num_envs, vectorization_mode="vector_entry_point", max_steps=args.max_steps
    )
    agent = Agent()
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    n, t_len = args.num_envs, args.num_steps
    pixels = torch.zeros((t_len, n, 64, 64, 3), dtype=torch.uint8)
    states = torch.zeros((t_len, n, 4))
    actions = torch.zeros((t_len, n, 2))
    logprobs, rewards, values = (torch.zeros((t_len, n)) for _ in range(3))
    dones = torch.zeros((t_len, n))  # this step ended the episode
    valid = torch.zeros((t_len, n))  # this step was acted (not the autoreset step after an end)

    obs, _ = envs.reset(seed=args.seed)
    prev_done = np.zeros(n, bool)
    iterations = args.total_timesteps // (n * t_len)
    curve, start, episode_returns, running = [], time.time(), [], np.zeros(n)
    for it in range(iterations):
        for step in range(t_len):
            px, st = torch.from_numpy(obs["pixels"].copy()), torch.from_numpy(obs["state"].copy())
            with torch.no_grad():
                action, logprob, _, value, _ = agent.act(px, st)
            pixels[step], states[step], actions[step], logprobs[step], values[step] = px, st, action, logprob, value
            valid[step] = torch.from_numpy(~prev_done).float()
            obs, reward, terminated, truncated, _ = envs.step(action.clamp(-1, 1).numpy())
            done = terminated | truncated
            rewards[step] = torch.from_numpy(reward * args.reward_scale).float()
            dones[step] = torch.from_numpy(done).float()
            running += np.where(prev_done, 0.0, reward)
            for i in np.flatnonzero(done):
                episode_returns.append(running[i])
                running[i] = 0.0
            prev_done = done

        with torch.no_grad():
            next_value = agent.value(torch.from_numpy(obs["pixels"].copy()), torch.from_numpy(obs["state"].copy()))
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(t_len)):
                nextvalues = next_value if t == t_len - 1 else values[t + 1]
                nonterminal = 1.0 - dones[t]
                delta = rewards[t] + args.gamma * nextvalues * nonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nonterminal * lastgaelam
            returns = advantages + values

        keep = valid.reshape(-1).bool()
        b_px, b_st = pixels.reshape(-1, 64, 64, 3)[keep], states.reshape(-1, 4)[keep]
        b_actions, b_logprobs = actions.reshape(-1, 2)[keep], logprobs.reshape(-1)[keep]
        b_adv, b_returns, b_values = advantages.reshape(-1)[keep], returns.reshape(-1)[keep], values.reshape(-1)[keep]
        batch = b_adv.shape[0]
        minibatch = max(1, batch // args.num_minibatches)
        for _ in range(args.update_epochs):
            order = torch.randperm(batch)
            # Whole minibatches only: autoreset steps are masked out, so the batch size varies, and a
            # remainder of one sample has no advantage spread to normalise by.
            for s in range(0, batch - minibatch + 1, minibatch):
                mb = order[s : s + minibatch]
                _, newlogprob, entropy, newvalue, _ = agent.act(b_px[mb], b_st[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                adv = b_adv[mb]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        recent = float(np.mean(episode_returns[-32:])) if episode_returns else float("nan")
        curve.append({"steps": (it + 1) * n * t_len, "seconds": time.time() - start, "episode_return": recent})
        print(json.dumps(curve[-1]), flush=True)
    envs.close()

    def deterministic(o):
        with torch.no_grad():
            *_, mean = agent.act(torch.from_numpy(o["pixels"].copy()), torch.from_numpy(o["state"].copy()))
        return mean.clamp(-1, 1).numpy()

    rng = np.random.default_rng(args.eval_seed)
    trained = evaluate(args.env_id, args.max_steps, deterministic, args.eval_episodes, args.eval_seed)
    random = evaluate(
        args.env_id,
        args.max_steps,
        lambda o: rng.uniform(-1, 1, (len(o["state"]), 2)).astype(np.float32),
        args.eval_episodes,
        args.eval_seed,
    )
    # Standing still earns exactly 0 (no progress, no loss): a policy must beat it as well.
    zero = evaluate(args.env_id, args.max_steps, lambda o: np.zeros((len(o["state"]), 2), np.float32), args.eval_episodes, args.eval_seed)
    result = {
        "args": asdict(args),
        "trained_return": trained[0],
        "trained_success": trained[1],
        "random_return": random[0],
        "random_success": random[1],
        "zero_return": zero[0],
        "train_seconds": time.time() - start,
        "curve": curve,
    }
    if args.out:
        import os

        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in asdict(Args()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    result = train(Args(**vars(parser.parse_args())))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "args")}))


if __name__ == "__main__":
    main()
