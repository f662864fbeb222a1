"""How well can a cup's table-plane position (x, z) be told from where its centre appears in the
64 x 64 frame, with the camera fixed in the room or mounted on the table?

Draws cups on the default scene ranges (sim/src/config.rs: table 0.9-1.2 x 0.6-0.8 m, top
0.6-0.8 m, cup height 0.07-0.11 m, starts 12 cm inside the edges), projects the cup's centre with
the default pinhole camera (types::CameraSpec: eye (0, 1.75, 0.95), target (0, 0.5, 0), fov 50 deg,
for a table top at 0.7 m), and fits the best map from image position to (x, z) there is: the mean
of (x, z) in each cell of a fine grid over the image (any function of the image position, not
only a linear one). R^2 below 1 is what no encoder can recover from the cup's image alone.
Run: python3 bound.py  (numpy)
"""
import numpy as np

rng = np.random.default_rng(0)
N = 400_000
top = rng.uniform(0.6, 0.8, N)
hw = rng.uniform(0.9, 1.2, N) / 2 - 0.12
hd = rng.uniform(0.6, 0.8, N) / 2 - 0.12
x = rng.uniform(-1, 1, N) * hw
z = rng.uniform(-1, 1, N) * hd
y = top + rng.uniform(0.07, 0.11, N) / 2


def image_position(dy):
    """(u, v) in [-1, 1] of the cup centres, camera raised by dy (per cup)."""
    eye = np.stack([np.zeros(N), 1.75 + dy, np.full(N, 0.95)], 1)
    target = np.stack([np.zeros(N), 0.5 + dy, np.zeros(N)], 1)
    f = target - eye
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    up = np.cross(r, f)
    rel = np.stack([x, y, z], 1) - eye
    depth = (rel * f).sum(1)
    t = np.tan(np.radians(25))
    return (rel * r).sum(1) / depth / t, (rel * up).sum(1) / depth / t


def best_map_r2(u, v, target, cells=128):
    iu = np.clip(((u + 1) / 2 * cells).astype(int), 0, cells - 1)
    iv = np.clip(((v + 1) / 2 * cells).astype(int), 0, cells - 1)
    k = iu * cells + iv
    half = N // 2  # fit on one half, score on the other
    s = np.bincount(k[:half], target[:half], cells * cells)
    c = np.bincount(k[:half], None, cells * cells)
    mean = np.where(c > 0, s / np.maximum(c, 1), target[:half].mean())
    res = target[half:] - mean[k[half:]]
    return 1 - res.var() / target[half:].var(), 100 * res.std()


for name, dy in [("room", np.zeros(N)), ("table", top - 0.7)]:
    u, v = image_position(dy)
    (rx, ex), (rz, ez) = best_map_r2(u, v, x), best_map_r2(u, v, z)
    print(f"camera on the {name:5}: x R2 {rx:.4f} (RMSE {ex:.2f} cm), z R2 {rz:.4f} (RMSE {ez:.2f} cm)")
