"""Is the latent K frames ahead predictable from this frame's latents and the K actions between?
Encodes the cached frames (probe-gap/load.py) with a checkpoint's online and target encoders and
trains, for SECS seconds, a 3-layer transformer (the Rust predictor's width, one shot, no rollout)
to map [z_t, z_t - z_{t-1}] and a_t..a_{t+K-1} to T_{t+K}, residual on T_t; reports the held-out
latent L1 against copy-last (T_{t+K} = T_t), split by whether the cup moved in those K frames, and
the same on 4,000 training pairs (to tell overfitting from nothing to learn).
MODE=rollout trains the same network one step at a time instead, on the mean L1 of its own K-step
rollout (each prediction fed back as the next frame's latents, as the Rust predictor's rollout
loss does), and scores that rollout's K-th step.
Usage: [K=4] [SECS=200] [MODE=direct|rollout] [CACHE=out/diag/cache] [NORM=group|position] horizon.py CHECKPOINT"""
import os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '../2026-11-29-probe-gap'))
from encoder import encoder_weights, encode

torch.set_num_threads(2)
CACHE = os.environ.get('CACHE', 'out/diag/cache')
K = int(os.environ.get('K', '4'))
MODE = os.environ.get('MODE', 'direct')
STEP = K if MODE == 'direct' else 1  # actions the network reads per prediction
SECS = float(os.environ.get('SECS', '200'))
names = ['push-to-goal', 'knock-off']
online = encoder_weights(sys.argv[1], 'online.encoder.')
target = encoder_weights(sys.argv[1], 'target.encoder.')


def load(split):
    Z, T, A, S, EP = [], [], [], [], []
    for j, n in enumerate(names):
        d = np.load(f'{CACHE}/{split}-{n}.npz')
        Z.append(encode(online, d['X'])); T.append(encode(target, d['X']))
        A.append(d['A']); S.append(d['S']); EP.append(d['ep'] + 100000 * j)
    return torch.cat(Z), torch.cat(T), np.concatenate(A), np.concatenate(S), np.concatenate(EP)


def starts(EP):
    i = np.arange(1, len(EP) - K)
    return i[(EP[i - 1] == EP[i]) & (EP[i + K] == EP[i])]


def actions(A, i):
    return torch.from_numpy(np.stack([A[i + j] for j in range(K)], 1).reshape(len(i), -1))


(Z, T, A, _, EP), (Zh, Th, Ah, Sh, EPh) = load('train'), load('heldout')
itr, iho = starts(EP), starts(EPh)
moved = np.linalg.norm(Sh[iho + K][:, [0, 2]] - Sh[iho][:, [0, 2]], axis=1) + np.abs(Sh[iho + K][:, 1] - Sh[iho][:, 1])
moving = torch.from_numpy(moved > 1e-3)
sub = np.random.RandomState(1).choice(itr, min(4000, len(itr)), replace=False)
copy = (Th[iho + K] - Th[iho]).abs()
copy_train = (T[sub + K] - T[sub]).abs().mean().item()
print(f'{MODE}, K={K}: {len(itr)} training, {len(iho)} held-out pairs ({moving.float().mean().item():.0%} with the cup moving)')
print(f'copy-last held-out {copy.mean().item():.4f} (cup moving {copy[moving].mean().item():.4f}, still '
      f'{copy[~moving].mean().item():.4f}); training pairs {copy_train:.4f}', flush=True)


class Net(nn.Module):
    def __init__(s, w=128):
        super().__init__()
        s.inp = nn.Linear(128, w); s.act = nn.Linear(2 * STEP, w); s.pos = nn.Parameter(torch.randn(16, w) * 0.02)
        s.tf = nn.TransformerEncoder(nn.TransformerEncoderLayer(w, 4, 4 * w, 0.0, batch_first=True, norm_first=True), 3,
                                     enable_nested_tensor=False)
        s.out = nn.Linear(w, 64); nn.init.zeros_(s.out.weight); nn.init.zeros_(s.out.bias)  # starts as copy-last

    def forward(s, z, zp, a):
        return s.out(s.tf(s.inp(torch.cat([z, z - zp], -1)) + s.pos + s.act(a).unsqueeze(1)))


torch.manual_seed(0)
net = Net()
opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)


def predict(Zs, Ts, As, i):
    """[len(i), K, 16, 64] for rollout (steps 1..K), [len(i), 1, 16, 64] for direct (step K)."""
    if MODE == 'direct':
        return F.layer_norm(Ts[i] + net(Zs[i], Zs[i - 1], actions(As, i)), [64]).unsqueeze(1)
    z, zp, base, out = Zs[i], Zs[i - 1], Ts[i], []
    for j in range(K):
        nxt = F.layer_norm(base + net(z, zp, torch.from_numpy(As[i + j])), [64])
        out.append(nxt)
        z, zp, base = nxt, z, nxt
    return torch.stack(out, 1)


def l1(Zs, Ts, As, i):
    with torch.no_grad():
        return torch.cat([(predict(Zs, Ts, As, i[j:j + 1024])[:, -1] - Ts[i[j:j + 1024] + K]).abs() for j in range(0, len(i), 1024)])


def report(step):
    e = l1(Zh, Th, Ah, iho)
    print(f'{step} steps, {time.time() - t0:.0f} s: held-out {e.mean().item():.4f} (cup moving {e[moving].mean().item():.4f}, '
          f'still {e[~moving].mean().item():.4f}); training pairs {l1(Z, T, A, sub).mean().item():.4f}', flush=True)


t0, step = time.time(), 0
while time.time() - t0 < SECS:
    b = np.random.choice(itr, 256)
    bt = torch.from_numpy(b)
    pred = predict(Z, T, A, b)
    want = T[bt + K].unsqueeze(1) if MODE == 'direct' else torch.stack([T[bt + j + 1] for j in range(K)], 1)
    loss = (pred - want).abs().mean()
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
    if step % 300 == 0:
        report(step)
report(step)
