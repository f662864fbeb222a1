"""Throughput of cupworld's vector environment from Python, beside what it costs in Rust alone and
beside MuJoCo's Gymnasium environment rendering the same 64x64 frames offscreen (software GL).

    MUJOCO_GL=egl python python/examples/bench.py [--steps 200] [--mujoco] [--cupworld-bin PATH] [--json OUT]

Steps/s counts environment steps, each with its 64x64 RGB observation. "native" runs the same
vector steps (simulators on Rust threads, one renderer update for all frames) without Python:
the Python layer's cost is 1 - python / native. With --cupworld-bin, `cupworld bench gen` runs
in the same session (simulate, render and write a dataset) for a third figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

import gymnasium as gym
import numpy as np

import cupworld  # noqa: F401  (registers the environments)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cupworld_rates(n, steps):
    envs = gym.make_vec("cupworld/PushToGoal-v0", num_envs=n, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    for a in actions[:5]:  # warm-up
        envs.step(a)
    start = time.perf_counter()
    for a in actions:
        obs, *_ = envs.step(a)
    python = n * steps / (time.perf_counter() - start)
    native = n * steps / envs.unwrapped._sim.time_native_steps(steps)
    adapter = envs.unwrapped._sim.adapter
    envs.close()
    return {"num_envs": n, "python_steps_per_s": python, "native_steps_per_s": native,
            "python_layer_cost": 1 - python / native, "adapter": adapter}


def mujoco_rate(n, steps):
    """Gymnasium's MuJoCo Pusher (a 7-DoF arm pushing a puck), a frame rendered every step."""
    kwargs = {"render_mode": "rgb_array", "width": 64, "height": 64}
    if n == 1:
        env = gym.make("Pusher-v5", **kwargs)
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            frame = env.render()
            if terminated or truncated:
                env.reset()
        rate = steps / (time.perf_counter() - start)
        env.close()
    else:
        envs = gym.make_vec("Pusher-v5", num_envs=n, vectorization_mode="sync", **kwargs)
        envs.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(envs.action_space.sample())
            frame = envs.render()[0]
        rate = n * steps / (time.perf_counter() - start)
        envs.close()
    assert frame.shape == (64, 64, 3)
    return {"num_envs": n, "steps_per_s": rate}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200, help="vector steps per measurement")
    parser.add_argument("--sizes", default="1,16,64")
    parser.add_argument("--mujoco", action="store_true", help="also time MuJoCo's Pusher-v5 (pip install 'gymnasium[mujoco]')")
    parser.add_argument("--cupworld-bin", default="", help="also run `cupworld bench gen`")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "cupworld": [], "mujoco": []}
    for n in sizes:
        steps = max(20, args.steps // max(1, n // 16))
        result["cupworld"].append(cupworld_rates(n, steps))
        print(json.dumps(result["cupworld"][-1]), flush=True)
        if args.mujoco:
            result["mujoco"].append(mujoco_rate(n, max(20, steps // 4)))
            print(json.dumps({"mujoco": result["mujoco"][-1], "MUJOCO_GL": os.environ.get("MUJOCO_GL")}), flush=True)
    if args.cupworld_bin:
        out = subprocess.run([args.cupworld_bin, "bench", "gen", "--json"], check=True, capture_output=True, text=True)
        result["bench_gen"] = json.loads(out.stdout)
        print(json.dumps({"bench_gen": result["bench_gen"]}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
