"""What each keypoint of a trained `encoder.keypoints` model follows: R² of a linear map from the
keypoint's (x, y) to the cup's, the paw's and the goal's table-plane positions, on held-out
frames with the cup on the table. Usage: keypoints.py CHECKPOINT.safetensors"""
import os, sys, json, struct
import numpy as np, torch, torch.nn.functional as F
CACHE = os.environ.get('CACHE', 'out/probe-gap')

def safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k.startswith('online.encoder.') and v['dtype'] == 'F32':
            a, b = v['data_offsets']
            out[k[len('online.encoder.'):]] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(v['shape']).copy())
    return out

w = safetensors(sys.argv[1])
frames, S, P, ep = [], [], [], []
for name in ['heldout-push-to-goal', 'heldout-knock-off']:
    d = np.load(f'{CACHE}/{name}.npz')
    y0 = {}
    for e, y in zip(d['ep'], d['S'][:, 1]):
        y0.setdefault(e, y)
    on = np.array([d['S'][i, 1] >= y0[d['ep'][i]] - 0.02 for i in range(len(d['ep']))])
    frames.append(d['X'][on]); S.append(d['S'][on]); P.append(d['P'][on])
    ep.append(np.full(on.sum(), name.endswith('goal')))
X = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).float()
S, P, goal_task = np.concatenate(S), np.concatenate(P), np.concatenate(ep)
with torch.no_grad():
    x = (X / 255 - 0.5) / 0.25
    n, _, h, wd = x.shape
    xs = torch.linspace(-1, 1, wd).view(1, 1, 1, wd).expand(n, 1, h, wd)
    ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(n, 1, h, wd)
    x = torch.cat([x, xs, ys], 1)
    s = F.gelu(F.group_norm(F.conv2d(x, w['stem.weight'], w['stem.bias'], stride=4), 8, w['stem_norm.weight'], w['stem_norm.bias']))
    m = F.conv2d(F.gelu(F.conv2d(s, w['kp_conv.weight'], w['kp_conv.bias'], padding=1)), w['kp_maps.weight'], w['kp_maps.bias'])
    k, g = m.shape[1], m.shape[2]
    p = m.flatten(2).softmax(-1).view(n, k, g, g)
    lin = torch.linspace(-1, 1, g)
    kx, ky = (p * lin.view(1, 1, 1, g)).sum((2, 3)), (p * lin.view(1, 1, g, 1)).sum((2, 3))

def r2(feat, y):
    a = np.c_[feat, np.ones(len(feat))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = ((a @ coef - y) ** 2).sum(0); tot = ((y - y.mean(0)) ** 2).sum(0)
    return (1 - res / tot).mean()

targets = {'cup': S[:, [0, 2]], 'paw': P[:, :2]}
rows = []
for i in range(k):
    f = np.c_[kx[:, i].numpy(), ky[:, i].numpy()]
    r = {t: r2(f, y) for t, y in targets.items()}
    r['goal'] = r2(f[goal_task], S[goal_task][:, 7:9])
    r['std'] = float(f.std(0).mean())
    rows.append(r)
best = {t: round(float(max(r[t] for r in rows)), 3) for t in ['cup', 'paw', 'goal']}
follows = {t: int(sum(max(('cup', 'paw', 'goal'), key=lambda u: r[u]) == t and r[t] > 0.5 for r in rows)) for t in ['cup', 'paw', 'goal']}
all_kp = np.c_[kx.numpy(), ky.numpy()]
print(json.dumps({'keypoints': k, 'best_single_r2': best, 'keypoints_following (r2 > 0.5)': follows,
                  'all_keypoints_r2': {t: round(float(r2(all_kp, y)), 3) for t, y in targets.items()}}, indent=1))

# The same keypoint-only probe fit on the training frames and tested on the held-out ones.
def keypoints_of(names):
    fs, labels = [], []
    for name in names:
        d = np.load(f'{CACHE}/{name}.npz')
        y0 = {}
        for e, y in zip(d['ep'], d['S'][:, 1]):
            y0.setdefault(e, y)
        on = np.array([d['S'][i, 1] >= y0[d['ep'][i]] - 0.02 for i in range(len(d['ep']))])
        Xn = torch.from_numpy(d['X'][on][::2]).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            out = []
            for j in range(0, len(Xn), 2048):
                x = (Xn[j:j + 2048] / 255 - 0.5) / 0.25
                n = len(x)
                x = torch.cat([x, xs[:1].expand(n, -1, -1, -1), ys[:1].expand(n, -1, -1, -1)], 1)
                s = F.gelu(F.group_norm(F.conv2d(x, w['stem.weight'], w['stem.bias'], stride=4), 8, w['stem_norm.weight'], w['stem_norm.bias']))
                m = F.conv2d(F.gelu(F.conv2d(s, w['kp_conv.weight'], w['kp_conv.bias'], padding=1)), w['kp_maps.weight'], w['kp_maps.bias'])
                p = m.flatten(2).softmax(-1).view(n, k, g, g)
                out.append(np.c_[(p * lin.view(1, 1, 1, g)).sum((2, 3)).numpy(), (p * lin.view(1, 1, g, 1)).sum((2, 3)).numpy()])
        fs.append(np.concatenate(out)); labels.append(d['S'][on][::2][:, [0, 2]])
    return np.concatenate(fs), np.concatenate(labels)
ftr, ytr = keypoints_of(['train-push-to-goal', 'train-knock-off'])
a = np.c_[ftr, np.ones(len(ftr))]
coef, *_ = np.linalg.lstsq(a, ytr, rcond=None)
pred = np.c_[all_kp, np.ones(len(all_kp))] @ coef
y = targets['cup']
print('keypoint-only probe, fit on training frames, held-out R² (x, z):',
      np.round(1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0), 3))
peak = p.flatten(2).max(-1).values.mean().item()
print(f'keypoint spread: mean std of a coordinate {np.mean([r["std"] for r in rows]):.3f}; mean peak softmax weight {peak:.3f} (uniform: {1 / (g * g):.4f})')
