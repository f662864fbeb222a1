# Real counterfactual companions (gen --counterfactual) → out/probe-gap/<name>-cfreal.npz (CF frames, their cup states).
import os, sys, numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../2026-11-29-probe-gap'))
from load import load
CACHE = os.environ.get('CACHE', 'out/probe-gap'); CF = os.environ.get('CFDATA', 'out/cf')
for name in ['train-push-to-goal', 'train-knock-off']:
    X, S, ep, fi, A, P = load(f'{CF}/{name}-cf')
    real = np.load(f'{CACHE}/{name}.npz')
    assert (real['A'] == A).all() and (real['ep'] == ep).all(), name
    d = np.linalg.norm((S - real['S'])[:, [0, 2]], axis=1)
    print(name, X.shape, 'moved', np.mean(d > 0.02), 'median', np.median(d))
    np.savez(f'{CACHE}/{name}-cfreal.npz', CF=X, Scf=S)
