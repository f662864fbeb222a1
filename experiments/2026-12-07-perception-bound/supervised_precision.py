"""How precisely can anything locate the cup and the paw in a frame of a given size? A small CNN
trained *supervised* on frames and the simulator's positions (no world model), scored on frames
of other episodes: a ceiling for what a frozen encoder of those frames can pass to an agent.

Frames come from the Gymnasium vector env (both tasks, the expert's actions with noise and some
random ones, so paw and cup cover the table); the cup is scored only while it stands.

    PYTHONPATH=<staged python package> python3 supervised_precision.py SIZE [STEPS] [STEPS_PER_ENV]

(training frames: 2 tasks × 16 environments × STEPS_PER_ENV, default 500; test frames: 4,000.)
"""
import sys
import time

import numpy as np
import torch
from torch import nn

from cupworld.envs import CupworldVectorEnv

SIZE = int(sys.argv[1])
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
STEPS_PER_ENV = int(sys.argv[3]) if len(sys.argv) > 3 else 500
SCALE = 4.0  # metres to target units
torch.manual_seed(0)
torch.set_num_threads(2)


def collect(seed, steps_per_env, envs=16):
    frames, targets, known = [], [], []
    rng = np.random.default_rng(seed)
    for task in ("push-to-goal", "knock-off"):
        env = CupworldVectorEnv(envs, task, width=SIZE, height=SIZE, privileged=True)
        obs, info = env.reset(seed=seed)
        start_y = obs["environment_state"][:, 1].copy()
        for _ in range(steps_per_env):
            fresh = info["step"] == 0
            start_y[fresh] = obs["environment_state"][fresh, 1]
            e = obs["environment_state"]
            frames.append(obs["pixels"].copy())
            targets.append(np.stack([obs["state"][:, 0], obs["state"][:, 1], e[:, 0], e[:, 2]], 1) * SCALE)
            up = (e[:, 1] > start_y - 0.05).astype(np.float32)
            known.append(np.stack([np.ones_like(up), np.ones_like(up), up, up], 1))
            a = env.expert_action() + rng.normal(0, 0.3, (envs, 2)).astype(np.float32)
            wild = rng.random(envs) < 0.2
            a[wild] = rng.uniform(-1, 1, (wild.sum(), 2))
            obs, _, _, _, info = env.step(np.clip(a, -1, 1).astype(np.float32))
        env.close()
    x = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.concatenate(targets)).float(), torch.from_numpy(np.concatenate(known))


def network():
    layers, c, s = [], 3, SIZE
    for width in (32, 64, 64, 128, 128, 128):
        if s <= 4:
            break
        layers += [nn.Conv2d(c, width, 3, 2, 1), nn.GroupNorm(8, width), nn.ReLU()]
        c, s = width, s // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, 256), nn.ReLU(), nn.Linear(256, 4))


t0 = time.time()
x, y, k = collect(0, STEPS_PER_ENV)
xt, yt, kt = collect(10_000, 125)
print(f"{SIZE}x{SIZE}: {len(x)} training frames, {len(xt)} test frames, collected in {time.time() - t0:.0f} s")
net = network()
opt = torch.optim.AdamW(net.parameters(), 5e-4, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
t0 = time.time()
for step in range(STEPS):
    i = torch.randint(0, len(x), (64,))
    pred = net(x[i].float() / 255.0)
    loss = (((pred - y[i]) ** 2) * k[i]).sum() / k[i].sum()
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % 500 == 0:
        print(f"step {step}: loss {loss.item():.4f}", flush=True)
net.eval()
with torch.no_grad():
    pred = torch.cat([net(xt[i:i + 256].float() / 255.0) for i in range(0, len(xt), 256)])
err = ((pred - yt) ** 2 * kt).sum(0) / kt.sum(0)
rmse = (err.sqrt() / SCALE * 100).tolist()
print(f"{SIZE}x{SIZE}, {STEPS} steps in {time.time() - t0:.0f} s: test RMSE (cm) paw x {rmse[0]:.2f} z {rmse[1]:.2f}, "
      f"cup x {rmse[2]:.2f} z {rmse[3]:.2f}")
