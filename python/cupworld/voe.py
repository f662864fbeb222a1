"""The violation-of-expectation pairs `cupworld eval-wm` scores, as numpy arrays."""

from __future__ import annotations

import numpy as np

from . import _native


def voe_pairs(per_category=120, seed=7000, categories=None, context=16, size=64):
    """Matched pairs of clips: the same episode as physics plays it ("possible") and with one rule
    broken from frame `break_at` on ("impossible"). Frames before `break_at` are identical.

    The defaults are `eval-wm`'s, so a model scored here is scored on the same pairs. Categories:
    teleport, vanish, levitate, pass-through, recolor. Returns a list of dicts with `category`,
    `seed`, `break_at`, `possible` and `impossible` (uint8 [T, size, size, 3]) and `actions`
    (float32 [T, 2]; action t is taken after frame t).
    """
    pairs = _native.voe_pairs(per_category, seed, categories, context, size)
    for p in pairs:
        t = p["frames"]
        for twin in ("possible", "impossible"):
            p[twin] = np.frombuffer(p[twin], np.uint8).reshape(t, size, size, 3)
        p["actions"] = np.frombuffer(p["actions"], np.float32).reshape(t, 2)
    return pairs


def voe_score(possible, impossible):
    """Pairwise accuracy and AUROC of a model's surprise on each pair's two twins (one number per
    pair and twin, higher = more surprised), as `eval-wm` reports them."""
    return _native.voe_score([float(v) for v in possible], [float(v) for v in impossible])
