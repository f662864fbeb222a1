# Proxy counterfactuals: the cup cut out (colour mask) and pasted 4-12 px away on the table.
import numpy as np, sys
CACHE='out/probe-gap'
rng=np.random.default_rng(0)
paw=np.array([0.37,0.59,1.0])
for name in ['train-push-to-goal','train-knock-off']:
    d=np.load(f'{CACHE}/{name}.npz'); X=d['X']; CF=X.copy(); ok=np.zeros(len(X),bool)
    for i in range(len(X)):
        x=X[i].astype(np.float32)/255; mx=x.max(2); sat=(mx-x.min(2))/(mx+1e-6)
        ispaw=(np.abs(x/(mx[...,None]+1e-6)-paw).max(2)<0.08)
        m=(sat>0.5)&~ispaw
        ys,xs=np.where(m)
        if len(ys)<4 or len(ys)>80: continue
        img=X[i].copy()
        # fill: the nearest unmasked pixel 6 to the right or left in the same row
        for y,xx in zip(ys,xs):
            for off in (6,-6,9,-9):
                if 0<=xx+off<64 and not m[y,xx+off]: img[y,xx]=X[i][y,xx+off]; break
        for _ in range(10):
            dy,dx=rng.integers(-8,9),rng.integers(-12,13)
            if abs(dy)+abs(dx)<4: continue
            ny,nx=ys+dy,xs+dx
            if ny.min()<0 or nx.min()<0 or ny.max()>63 or nx.max()>63: continue
            # destination must be table-coloured (like the fill source)
            tgt=X[i][ny,nx].astype(np.float32)/255; tm=tgt.max(1); ts=(tm-tgt.min(1))/(tm+1e-6)
            if (np.abs(ts-0.37)>0.1).any(): continue
            img[ny,nx]=X[i][ys,xs]; CF[i]=img; ok[i]=True; break
    np.savez(f'{CACHE}/{name}-cf.npz',CF=CF,ok=ok); print(name,ok.mean())
