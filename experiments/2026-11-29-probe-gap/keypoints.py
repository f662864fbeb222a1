"""What each keypoint of a trained `encoder.keypoints` model follows: R² of a linear map from the
keypoint's (x, y) to the cup's, the paw's and the goal's table-plane positions, on held-out
frames with the cup on the table; then a keypoint-only probe fit on training frames.
Usage: keypoints.py CHECKPOINT.safetensors"""
import os, sys, json, struct
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder import checkpoint_tensors
CACHE = os.environ.get('CACHE', 'out/probe-gap')


def online_encoder(path):
    """The online encoder's float tensors of a checkpoint, by name (`stem.weight`, ...)."""
    return checkpoint_tensors(path, 'online.encoder.')


def on_table_rows(name, every=1):
    """Frames, environment state and paw state of a cached dataset, cup-on-table rows only."""
    d = np.load(f'{CACHE}/{name}.npz')
    y0 = {}
    for e, y in zip(d['ep'], d['S'][:, 1]):
        y0.setdefault(e, y)
    on = np.array([d['S'][i, 1] >= y0[d['ep'][i]] - 0.02 for i in range(len(d['ep']))])
    return d['X'][on][::every], d['S'][on][::every], d['P'][on][::every]


def keypoints(w, frames, batch=2048):
    """Keypoints as world_model/src/model.rs computes them: ([n, K] x, [n, K] y, mean peak weight)."""
    xs_, ys_, peaks = [], [], []
    with torch.no_grad():
        for j in range(0, len(frames), batch):
            x = (torch.from_numpy(frames[j:j + batch]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
            n, _, h, wd = x.shape
            cx = torch.linspace(-1, 1, wd).view(1, 1, 1, wd).expand(n, 1, h, wd)
            cy = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(n, 1, h, wd)
            x = torch.cat([x, cx, cy], 1)
            s = F.gelu(F.group_norm(F.conv2d(x, w['stem.weight'], w['stem.bias'], stride=4), 8, w['stem_norm.weight'], w['stem_norm.bias']))
            m = F.conv2d(F.gelu(F.conv2d(s, w['kp_conv.weight'], w['kp_conv.bias'], padding=1)), w['kp_maps.weight'], w['kp_maps.bias'])
            k, g = m.shape[1], m.shape[2]
            p = m.flatten(2).softmax(-1).view(n, k, g, g)
            lin = torch.linspace(-1, 1, g)
            xs_.append((p * lin.view(1, 1, 1, g)).sum((2, 3)).numpy())
            ys_.append((p * lin.view(1, 1, g, 1)).sum((2, 3)).numpy())
            peaks.append(p.flatten(2).max(-1).values.mean().item() * n)
    return np.concatenate(xs_), np.concatenate(ys_), sum(peaks) / len(frames), g


def r2(feat, y):
    a = np.c_[feat, np.ones(len(feat))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = ((a @ coef - y) ** 2).sum(0); tot = ((y - y.mean(0)) ** 2).sum(0)
    return (1 - res / tot).mean()


w = online_encoder(sys.argv[1])
parts = {name: on_table_rows(name) for name in ['heldout-push-to-goal', 'heldout-knock-off']}
X = np.concatenate([p[0] for p in parts.values()])
S = np.concatenate([p[1] for p in parts.values()])
P = np.concatenate([p[2] for p in parts.values()])
goal_task = np.concatenate([np.full(len(p[0]), name.endswith('goal')) for name, p in parts.items()])
kx, ky, peak, g = keypoints(w, X)
k = kx.shape[1]

targets = {'cup': S[:, [0, 2]], 'paw': P[:, :2]}
rows = []
for i in range(k):
    f = np.c_[kx[:, i], ky[:, i]]
    r = {t: r2(f, y) for t, y in targets.items()}
    r['goal'] = r2(f[goal_task], S[goal_task][:, 7:9])
    r['std'] = float(f.std(0).mean())
    rows.append(r)
best = {t: round(float(max(r[t] for r in rows)), 3) for t in ['cup', 'paw', 'goal']}
follows = {t: int(sum(max(('cup', 'paw', 'goal'), key=lambda u: r[u]) == t and r[t] > 0.5 for r in rows)) for t in ['cup', 'paw', 'goal']}
all_kp = np.c_[kx, ky]
print(json.dumps({'keypoints': k, 'best_single_r2': best, 'keypoints_following (r2 > 0.5)': follows,
                  'all_keypoints_r2': {t: round(float(r2(all_kp, y)), 3) for t, y in targets.items()}}, indent=1))

# The same keypoint-only probe fit on (every other) training frame and tested on the held-out ones.
train = [on_table_rows(name, every=2) for name in ['train-push-to-goal', 'train-knock-off']]
tx, ty, _, _ = keypoints(w, np.concatenate([t[0] for t in train]))
ytr = np.concatenate([t[1] for t in train])[:, [0, 2]]
coef, *_ = np.linalg.lstsq(np.c_[tx, ty, np.ones(len(tx))], ytr, rcond=None)
pred = np.c_[all_kp, np.ones(len(all_kp))] @ coef
y = targets['cup']
print('keypoint-only probe, fit on training frames, held-out R² (x, z):',
      np.round(1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0), 3))
print(f'keypoint spread: mean std of a coordinate {np.mean([r["std"] for r in rows]):.3f}; mean peak softmax weight {peak:.3f} (uniform: {1 / (g * g):.4f})')
