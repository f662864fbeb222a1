"""Is the next frame's latent predictable from this frame's latents and the action, for a trained
encoder? Encodes the cached training/held-out frames with a checkpoint's online and target encoders
and fits ridge maps [z_t, (z_t - z_{t-1}), a_t] -> T_{t+1} - T_t on training frames; reports the
held-out latent L1 of each against copy-last (T_{t+1} = T_t). If ridge beats copy-last, the latents
carry predictable dynamics and a predictor that ties copy-last is an optimisation problem.
Usage: [NORM=group|position] predictability.py CHECKPOINT.safetensors [every]"""
import os, sys, json, struct, time
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '../2026-11-29-probe-gap'))
from encoder import encoder_weights, encode
CACHE = os.environ.get('CACHE', 'out/diag/cache')
torch.set_num_threads(2)


ckpt = sys.argv[1]
every = int(sys.argv[2]) if len(sys.argv) > 2 else 2
names = os.environ.get('SETS', 'push-to-goal,knock-off').split(',')
online = encoder_weights(ckpt, 'online.encoder.')
try:
    target = encoder_weights(ckpt, 'target.encoder.')
except Exception as e:
    print('no target encoder in checkpoint', e); target = online


def rows(split):
    Z, T, A, S, P, EP = [], [], [], [], [], []
    off = 0
    for n in names:
        d = np.load(f'{CACHE}/{split}-{n}.npz')
        X = d['X']
        Z.append(encode(online, X)); T.append(encode(target, X))
        A.append(d['A']); S.append(d['S']); P.append(d['P']); EP.append(d['ep'] + off); off += 100000
    return (torch.cat(Z), torch.cat(T), np.concatenate(A), np.concatenate(S), np.concatenate(P), np.concatenate(EP))


t0 = time.time()
tr, ho = rows('train'), rows('heldout')
print(f'encoded in {time.time() - t0:.0f}s', tr[0].shape, ho[0].shape, flush=True)


def triples(data, stride):
    Z, T, A, S, P, EP = data
    i = np.arange(1, len(EP) - 1)
    i = i[(EP[i - 1] == EP[i]) & (EP[i + 1] == EP[i])][::stride]
    return i


def design(data, i, kinds):
    Z, T, A, S, P, EP = data
    parts = []
    if 'z' in kinds: parts.append(Z[i].flatten(1))
    if 'v' in kinds: parts.append((Z[i] - Z[i - 1]).flatten(1))
    if 'a' in kinds:
        a = torch.from_numpy(A[i]); parts.append(a * 10); parts.append((Z[i].flatten(1)[:, :256] * 0 + 1) * 0)  # keep shapes simple
    parts.append(torch.ones(len(i), 1))
    return torch.cat(parts, 1).double()


def ridge(X, Y, lam):
    XtX = X.T @ X
    return torch.linalg.solve(XtX + lam * torch.eye(X.shape[1], dtype=X.dtype) * XtX.diagonal().mean(), X.T @ Y)


itr, iho = triples(tr, every), triples(ho, 1)
Ttr = (tr[1][itr + 1] - tr[1][itr]).flatten(1).double()
Tho = (ho[1][iho + 1] - ho[1][iho]).flatten(1).double()
res = {'copy_last_l1': Tho.abs().mean().item(), 'train_pairs': len(itr), 'heldout_pairs': len(iho)}
# How much of the change happens where: share of held-out change in frames where the cup moves.
S = ho[3]
cup_move = np.linalg.norm(S[iho + 1][:, [0, 2]] - S[iho][:, [0, 2]], axis=1) + np.abs(S[iho + 1][:, 1] - S[iho][:, 1])
moving = cup_move > 1e-3
res['frames_cup_moving'] = float(moving.mean())
res['copy_last_l1_cup_moving'] = Tho[torch.from_numpy(moving)].abs().mean().item()
res['copy_last_l1_cup_still'] = Tho[torch.from_numpy(~moving)].abs().mean().item()
# Where the change is: latent change of patches whose 16x16 pixels did not change at all.
Xh = np.concatenate([np.load(f'{CACHE}/heldout-{n}.npz')['X'] for n in names]).astype(np.int16)
pix = np.abs(Xh[iho + 1] - Xh[iho]).max(-1).reshape(len(iho), 4, 16, 4, 16).max((2, 4)).reshape(len(iho), 16) > 0
lat = (ho[1][iho + 1] - ho[1][iho]).abs().mean(-1).numpy()
res['patches_with_pixel_change'] = float(pix.mean())
res['latent_change_share_in_unchanged_patches'] = float(lat[~pix].sum() / lat.sum())
res['latent_change_unchanged_patches'] = float(lat[~pix].mean())
res['latent_change_changed_patches'] = float(lat[pix].mean())
print({k: v for k, v in res.items()}, flush=True)
del Xh
for kinds in ['a', 'za', 'zva']:
    Xtr, Xho = design(tr, itr, kinds), design(ho, iho, kinds)
    best = None
    for lam in [1e-4, 1e-3, 1e-2, 1e-1]:
        W = ridge(Xtr, Ttr, lam)
        l1 = (Xho @ W - Tho).abs().mean().item()
        r = (Xho @ W - Tho)
        if best is None or l1 < best[0]:
            best = (l1, lam, r[torch.from_numpy(moving)].abs().mean().item(), r[torch.from_numpy(~moving)].abs().mean().item())
    res[f'ridge_{kinds}'] = {'l1': best[0], 'lambda': best[1], 'l1_cup_moving': best[2], 'l1_cup_still': best[3]}
    print(kinds, res[f'ridge_{kinds}'], flush=True)
print(json.dumps(res, indent=1))

# A small nonlinear predictor on the frozen latents (the Rust predictor's shape, one step, two
# frames of history): if it beats copy-last where ridge cannot, the dynamics are there but not linear.
if os.environ.get('NET', '1') == '1':
    import torch.nn as nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(s, w=128):
            super().__init__()
            s.inp = nn.Linear(128, w); s.act = nn.Linear(2, w); s.pos = nn.Parameter(torch.randn(16, w) * 0.02)
            s.tf = nn.TransformerEncoder(nn.TransformerEncoderLayer(w, 4, 4 * w, 0.0, batch_first=True, norm_first=True), 3)
            s.out = nn.Linear(w, 64); nn.init.zeros_(s.out.weight); nn.init.zeros_(s.out.bias)

        def forward(s, z, zp, a):
            return s.out(s.tf(s.inp(torch.cat([z, z - zp], -1)) + s.pos + s.act(a).unsqueeze(1)))

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
    itr = triples(tr, 1)
    Z, T, A = tr[0], tr[1], torch.from_numpy(tr[2])
    Zh, Th, Ah = ho[0], ho[1], torch.from_numpy(ho[2])
    loss_kind = os.environ.get('LOSS', 'l1')
    secs = float(os.environ.get('SECS', '150'))
    t0, step = time.time(), 0

    def evaluate():
        with torch.no_grad():
            out = torch.cat([net(Zh[iho[j:j + 1024]], Zh[iho[j:j + 1024] - 1], Ah[iho[j:j + 1024]]) for j in range(0, len(iho), 1024)])
            pred = F.layer_norm(Th[iho] + out, [64])
            e = (pred - Th[iho + 1]).abs()
            return e.mean().item(), e[torch.from_numpy(moving)].mean().item(), e[torch.from_numpy(~moving)].mean().item()
    while time.time() - t0 < secs:
        b = torch.from_numpy(np.random.choice(itr, 256))
        pred = F.layer_norm(T[b] + net(Z[b], Z[b - 1], A[b]), [64])
        tgt = T[b + 1]
        loss = (pred - tgt).abs().mean() if loss_kind == 'l1' else (pred - tgt).square().mean() if loss_kind == 'mse' else F.smooth_l1_loss(pred, tgt, beta=0.05)
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 500 == 0:
            print(step, f'{time.time() - t0:.0f}s', 'held-out L1 (all, cup moving, cup still):', evaluate(), flush=True)
    res['net'] = dict(zip(['l1', 'l1_cup_moving', 'l1_cup_still'], evaluate())); res['net']['steps'] = step; res['net']['loss'] = loss_kind
    print(json.dumps(res['net']))
