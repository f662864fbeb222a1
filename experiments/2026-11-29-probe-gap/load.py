import os
DATA = os.environ.get('DATA', 'out/demo/data')
CACHE = os.environ.get('CACHE', 'out/probe-gap')
import pyarrow.parquet as pq, numpy as np, io, glob
from PIL import Image
def load(d, limit=None):
    t = pq.read_table(glob.glob(d+'/data/chunk-000/*.parquet')[0]).to_pydict()
    imgs = t['observation.image']
    n = len(imgs) if limit is None else min(limit, len(imgs))
    X = np.stack([np.array(Image.open(io.BytesIO(imgs[i]['bytes']))) for i in range(n)])
    S = np.array(t['observation.environment_state'][:n], dtype=np.float32)
    ep = np.array(t['episode_index'][:n])
    fi = np.array(t['frame_index'][:n])
    A = np.array(t['action'][:n], dtype=np.float32)
    P = np.array(t['observation.state'][:n], dtype=np.float32)
    return X, S, ep, fi, A, P
if __name__ == '__main__':
    os.makedirs(CACHE, exist_ok=True)
    import sys
    for name in ['train-push-to-goal','train-knock-off','heldout-push-to-goal','heldout-knock-off']:
        X,S,ep,fi,A,P = load(DATA+'/'+name)
        np.savez(CACHE+'/'+name+'.npz', X=X, S=S, ep=ep, fi=fi, A=A, P=P)
        print(name, X.shape, S[:2])
