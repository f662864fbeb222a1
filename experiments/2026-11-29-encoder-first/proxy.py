"""Encoder-first proxy (PyTorch, the world model's encoder as encoder.py): train the encoder alone on
real counterfactual pairs (no predictor over time), then probe it as eval-wm does.
  --ecf W     contrast: online(x) closer to target(x) than to target(cf)   (the Rust encoder term)
  --interv W  intervention prediction: from online(x) and the cup's displacement δ (metres, x/z)
              predict target(cf)  (a JEPA whose 'action' is the simulator moving the cup)
  --metric W  graded: the latent distance to the counterfactual proportional to the displacement
  --jepa W    the usual next-frame prediction term as jepa.py (0: no predictor at all)"""
import os, sys, time, json, argparse
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../2026-11-29-probe-gap'))
from encoder import Enc
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
CACHE = os.environ.get('CACHE', 'out/probe-gap')
p = argparse.ArgumentParser()
p.add_argument('--secs', type=float, default=150); p.add_argument('--threads', type=int, default=1)
p.add_argument('--ecf', type=float, default=0); p.add_argument('--interv', type=float, default=0)
p.add_argument('--jepa', type=float, default=0); p.add_argument('--ctau', type=float, default=0.02)
p.add_argument('--ema', type=float, default=0.99); p.add_argument('--var', type=float, default=1.0)
p.add_argument('--metric', type=float, default=0); p.add_argument('--cf', default='cfreal')
p.add_argument('--name', default='run'); p.add_argument('--seed', type=int, default=0)
a = p.parse_args()
torch.manual_seed(a.seed); np.random.seed(a.seed); torch.set_num_threads(a.threads)

def load(names, cf=False):
    out = [dict(np.load(f'{CACHE}/{n}.npz')) for n in names]
    if cf:
        for o, n in zip(out, names): o.update(dict(np.load(f'{CACHE}/{n}-{a.cf}.npz')))
    cat = lambda k: np.concatenate([o[k] for o in out])
    ep = np.concatenate([o['ep'] + 1000 * i for i, o in enumerate(out)])
    X = torch.from_numpy(cat('X')).permute(0, 3, 1, 2).contiguous()
    r = dict(X=X, S=cat('S'), A=torch.from_numpy(cat('A')), ep=ep)
    if cf:
        r['CF'] = torch.from_numpy(cat('CF')).permute(0, 3, 1, 2).contiguous()
        r['D'] = torch.from_numpy((cat('Scf') - cat('S'))[:, [0, 2]]).float() / 0.1  # ~unit scale
    return r
tr = load(['train-push-to-goal', 'train-knock-off'], cf=True)
te = load(['heldout-push-to-goal', 'heldout-knock-off'])
nxt = np.where(tr['ep'][1:] == tr['ep'][:-1])[0]

class Pred(nn.Module):
    """3-layer transformer over the 16 patch tokens, conditioned on a vector (action or δ)."""
    def __init__(s, cond, w=128):
        super().__init__()
        s.inp = nn.Linear(64, w); s.c = nn.Linear(cond, w); s.pos = nn.Parameter(torch.randn(16, w) * 0.02)
        s.tf = nn.TransformerEncoder(nn.TransformerEncoderLayer(w, 4, 4 * w, 0.0, batch_first=True, norm_first=True, activation='gelu'), 3)
        s.out = nn.Linear(w, 64); nn.init.zeros_(s.out.weight); nn.init.zeros_(s.out.bias)
    def forward(s, z, c): return s.out(s.tf(s.inp(z) + s.pos + s.c(c).unsqueeze(1)))

enc = Enc(); tgt = Enc(); tgt.load_state_dict(enc.state_dict()); [q.requires_grad_(False) for q in tgt.parameters()]
params = list(enc.parameters())
pred_t = Pred(2) if a.jepa else None; pred_i = Pred(2) if a.interv else None
for m in (pred_t, pred_i):
    if m is not None: params += list(m.parameters())
opt = torch.optim.AdamW(params, 1e-3, weight_decay=0.01)
t0 = time.time(); step = 0; B = 64; logs = {}
while time.time() - t0 < a.secs:
    i = torch.from_numpy(np.random.choice(nxt, B))
    x0, cf, d = tr['X'][i], tr['CF'][i], tr['D'][i]
    z0 = enc(x0)
    with torch.no_grad(): t0_, tc = tgt(x0), tgt(cf)
    loss = 0
    std = (z0.reshape(-1, 64).var(0) + 1e-4).sqrt(); loss = loss + a.var * F.relu(0.5 - std).mean()
    tok = z0.reshape(-1, 64); c = tok - tok.mean(0); cov = c.T @ c / (len(tok) - 1)
    loss = loss + 0.04 * ((cov - torch.diag(torch.diag(cov))) ** 2).sum() / 64
    if a.ecf:
        dp = (z0 - t0_).abs().mean((1, 2)); dn = (z0 - tc).abs().mean((1, 2))
        l = F.softplus((dp - dn) / a.ctau).mean(); loss = loss + a.ecf * l; logs['ecf'] = l.item()
    if a.metric:
        # graded: the latent distance to the counterfactual grows with how far the cup was moved
        dn = (z0 - tc).abs().mean((1, 2)); r = d.norm(dim=1)
        l = ((dn / dn.mean().detach() - r / r.mean()) ** 2).mean(); loss = loss + a.metric * l; logs['metric'] = l.item()
    if a.interv:
        pc = F.layer_norm(z0 + pred_i(z0, d), [64])
        l = F.smooth_l1_loss(pc, tc, beta=0.05); loss = loss + a.interv * l; logs['interv'] = l.item()
        logs['interv_copy'] = F.smooth_l1_loss(t0_, tc, beta=0.05).item()
    if a.jepa:
        with torch.no_grad(): t1 = tgt(tr['X'][i + 1])
        pr = F.layer_norm(t0_ + pred_t(z0, tr['A'][i]), [64])
        l = F.smooth_l1_loss(pr, t1, beta=0.05); loss = loss + a.jepa * l; logs['jepa'] = l.item()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    with torch.no_grad():
        for pt, po in zip(tgt.parameters(), enc.parameters()): pt.mul_(a.ema).add_(po, alpha=1 - a.ema)
    step += 1

def feats(net, X):
    with torch.no_grad(): return torch.cat([net(X[j:j + 1024]).flatten(1) for j in range(0, len(X), 1024)]).double()
def onmask(S, ep):
    y0 = {}
    for e, y in zip(ep, S[:, 1]): y0.setdefault(e, y)
    return np.array([S[k, 1] >= y0[ep[k]] - 0.02 for k in range(len(ep))])
mtr, mte = onmask(tr['S'], tr['ep']), onmask(te['S'], te['ep'])
sub = np.where(mtr)[0][::3]
res = {}
for label, net in (('online', enc), ('target', tgt)):
    Ftr = feats(net, tr['X'][torch.from_numpy(sub)]); Fte = feats(net, te['X'][torch.from_numpy(np.where(mte)[0])])
    Ytr = torch.from_numpy(tr['S'][sub][:, [0, 2]]).double(); Yte = torch.from_numpy(te['S'][mte][:, [0, 2]]).double()
    mu, sd = Ftr.mean(0), Ftr.std(0) + 1e-6; A_ = (Ftr - mu) / sd; B_ = (Fte - mu) / sd; ym = Ytr.mean(0)
    best = None
    for lam in [1, 100, 1e4]:
        W = torch.linalg.solve(A_.T @ A_ + lam * torch.eye(A_.shape[1], dtype=A_.dtype), A_.T @ (Ytr - ym))
        P = B_ @ W + ym; r2 = (1 - ((P - Yte) ** 2).sum(0) / ((Yte - Yte.mean(0)) ** 2).sum(0)).numpy()
        if best is None or r2.mean() > best.mean(): best = r2
    res[label] = [round(float(v), 3) for v in best]
print(json.dumps({'name': a.name, 'secs': a.secs, 'steps': step, **{k: round(v, 4) for k, v in logs.items()}, 'r2': res}), flush=True)
