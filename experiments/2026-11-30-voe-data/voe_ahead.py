"""Would a predictor that does learn the 4-step change on the main job's frozen latents pass the
VoE pairs? Trains horizon.py's one-shot network (MODE=direct: [z_t, z_t - z_{t-1}] and the 4
actions a_t..a_{t+3} -> the target latents of frame t+4, residual on T_t, zero-initialised output
= copy-last) for SECS seconds on the training frames, then scores the pairs `cupworld voe` wrote
exactly as `eval-wm --voe-horizon 4` scores them: frame t (from the breaking point on) predicted
from frame t-4, surprise = mean L1 to its target latents over the 16 patches, per episode the max
(and mean) over frames; pairwise accuracy = the possible twin less surprising. Reports the same
for copy-last 4 frames back (T_t predicts T_{t+4}), which is what a predictor that learnt nothing
scores.
Usage: [SECS=200] [CACHE=out/cache] [VOE=out/voe] [FALLS=1] voe_ahead.py CHECKPOINT
FALLS=w draws training pairs whose cup drops by > 2 cm within the 4 frames w times as often."""
import io, json, os, sys, time
import numpy as np, pyarrow.parquet as pq, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '../2026-11-29-probe-gap'))
from encoder import encoder_weights, encode

torch.set_num_threads(2)
K = 4
SECS = float(os.environ.get('SECS', '200'))
CACHE = os.environ.get('CACHE', 'out/cache')
VOE = os.environ.get('VOE', 'out/voe')
FALLS = float(os.environ.get('FALLS', '1'))
online = encoder_weights(sys.argv[1], 'online.encoder.')
target = encoder_weights(sys.argv[1], 'target.encoder.')

# Training frames (the main job's training sets, cached by probe-gap/load.py).
Z, T, A, S, EP = [], [], [], [], []
for j, n in enumerate(['push-to-goal', 'knock-off']):
    d = np.load(f'{CACHE}/train-{n}.npz')
    Z.append(encode(online, d['X'])); T.append(encode(target, d['X']))
    A.append(d['A']); S.append(d['S']); EP.append(d['ep'] + 100000 * j)
Z, T, A, S, EP = torch.cat(Z), torch.cat(T), np.concatenate(A), np.concatenate(S), np.concatenate(EP)
i = np.arange(1, len(EP) - K)
itr = i[(EP[i - 1] == EP[i]) & (EP[i + K] == EP[i])]
drops = S[itr, 1] - S[itr + K, 1] > 0.02
weights = np.where(drops, FALLS, 1.0)
weights /= weights.sum()
print(f'{len(itr)} training pairs, {drops.mean():.1%} with the cup dropping > 2 cm in {K} frames; falls drawn x{FALLS:g}',
      flush=True)


class Net(nn.Module):  # horizon.py's MODE=direct network
    def __init__(s, w=128):
        super().__init__()
        s.inp = nn.Linear(128, w); s.act = nn.Linear(2 * K, w); s.pos = nn.Parameter(torch.randn(16, w) * 0.02)
        s.tf = nn.TransformerEncoder(nn.TransformerEncoderLayer(w, 4, 4 * w, 0.0, batch_first=True, norm_first=True), 3,
                                     enable_nested_tensor=False)
        s.out = nn.Linear(w, 64); nn.init.zeros_(s.out.weight); nn.init.zeros_(s.out.bias)

    def forward(s, z, zp, a):
        return s.out(s.tf(s.inp(torch.cat([z, z - zp], -1)) + s.pos + s.act(a).unsqueeze(1)))


def block(As, i):
    return torch.from_numpy(np.stack([As[i + j] for j in range(K)], 1).reshape(len(i), -1))


torch.manual_seed(0)
net = Net()
opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
t0, step = time.time(), 0
while time.time() - t0 < SECS:
    b = np.random.choice(itr, 256, p=weights)
    bt = torch.from_numpy(b)
    pred = F.layer_norm(T[bt] + net(Z[bt], Z[bt - 1], block(A, b)), [64])
    loss = (pred - T[bt + K]).abs().mean()
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
print(f'trained {step} steps in {time.time() - t0:.0f} s, last batch L1 {loss.item():.4f}', flush=True)


def episodes(d):
    t = pq.read_table(f'{d}/data/chunk-000/file-000.parquet',
                      columns=['observation.image', 'action', 'episode_index']).to_pydict()
    X = np.stack([np.array(Image.open(io.BytesIO(im['bytes']))) for im in t['observation.image']])
    A_, ep = np.array(t['action'], dtype=np.float32), np.array(t['episode_index'])
    return [(X[ep == e], A_[ep == e]) for e in np.unique(ep)]


pairs = json.load(open(f'{VOE}/pairs.json'))
twins = [episodes(f'{VOE}/possible'), episodes(f'{VOE}/impossible')]


def surprise(X, As, brk, learnt):
    """Per-frame surprise from the breaking point on, each frame predicted K frames back."""
    z, tg = encode(online, X), encode(target, X)
    s = torch.arange(brk - K, len(X) - K)
    with torch.no_grad():
        pred = F.layer_norm(tg[s] + net(z[s], z[s - 1], block(As, s.numpy())), [64]) if learnt else tg[s]
    return (pred - tg[s + K]).abs().mean((1, 2))


def forecast(X, As, brk):
    """How much of the possible twin's change from the break on the predictor foresees: the
    predicted change's size relative to the real change (summed over the frames), and their
    cosine (mean over the frames)."""
    z, tg = encode(online, X), encode(target, X)
    s = torch.arange(brk - K, len(X) - K)
    with torch.no_grad():
        pred = F.layer_norm(tg[s] + net(z[s], z[s - 1], block(As, s.numpy())), [64])
    dp, dr = (pred - tg[s]).flatten(1), (tg[s + K] - tg[s]).flatten(1)
    return dp.norm(dim=1).sum().item() / dr.norm(dim=1).sum().item(), F.cosine_similarity(dp, dr).mean().item()


for c in ('levitate', 'pass-through'):
    f = np.array([forecast(*twins[0][p['episode']], p['break_at']) for p in pairs if p['category'] == c])
    if len(f):
        print(f'{c}: the predicted change is {f[:, 0].mean():.2f} of the real one in size, cosine {f[:, 1].mean():.2f}')

res = {}
for learnt in (False, True):
    for p in pairs:
        k = p['episode']
        cur = [surprise(*twins[w][k], p['break_at'], learnt) for w in (0, 1)]
        for red, f in (('max', lambda c: c.max().item()), ('mean', lambda c: c.mean().item())):
            ok = f(cur[0]) < f(cur[1])
            res.setdefault((learnt, red, p['category']), []).append(ok)
cats = [c for c in ['teleport', 'vanish', 'levitate', 'pass-through', 'recolor'] if any(c == p['category'] for p in pairs)]
print(f'{len(pairs)} pairs; pairwise accuracy (possible less surprising), each frame predicted {K} ahead:')
print('| scorer | ' + ' | '.join(cats) + ' | overall |')
print('|---|' + '---|' * (len(cats) + 1))
for learnt in (False, True):
    for red in ('max', 'mean'):
        accs = [100 * np.mean(res[(learnt, red, c)]) for c in cats]
        name = ('one-shot 4-step predictor' if learnt else 'copy-last') + f' ({red})'
        print(f'| {name} | ' + ' | '.join(f'{a:.1f}%' for a in accs) + f' | {np.mean(accs):.1f}% |')
