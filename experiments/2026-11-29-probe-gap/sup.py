import os
DATA = os.environ.get('DATA', 'out/demo/data')
CACHE = os.environ.get('CACHE', 'out/probe-gap')
import sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder import Enc
import numpy as np, torch, torch.nn as nn, time, sys
torch.manual_seed(0); torch.set_num_threads(2)
def get(names):
    Xs,Ys=[],[]
    for n in names:
        d=np.load(CACHE+'/'+n+'.npz'); S=d['S']; ep=d['ep']
        y0 = {}
        for i,(e,y) in enumerate(zip(ep,S[:,1])): y0.setdefault(e,y)
        on = np.array([S[i,1] >= y0[ep[i]]-0.02 for i in range(len(ep))])
        Xs.append(d['X'][on]); Ys.append(S[on][:,[0,2]])
    return np.concatenate(Xs), np.concatenate(Ys)
Xtr,Ytr=get(['train-push-to-goal','train-knock-off']); Xte,Yte=get(['heldout-push-to-goal','heldout-knock-off'])
print(Xtr.shape, Xte.shape)
Xtr=torch.from_numpy(Xtr).permute(0,3,1,2).contiguous(); Xte=torch.from_numpy(Xte).permute(0,3,1,2).contiguous()
Ytr=torch.from_numpy(Ytr); Yte=torch.from_numpy(Yte)
ym,ys=Ytr.mean(0),Ytr.std(0)
enc=nn.Sequential(Enc(), nn.Flatten(1)); lin=nn.Linear(1024,2)
opt=torch.optim.AdamW(list(enc.parameters())+list(lin.parameters()),1e-3)
t0=time.time(); step=0
while time.time()-t0 < float(sys.argv[1]):
    i=torch.randint(len(Xtr),(64,)); loss=((lin(enc(Xtr[i]))-(Ytr[i]-ym)/ys)**2).mean()
    opt.zero_grad(); loss.backward(); opt.step(); step+=1
print('steps',step,'loss',loss.item())
with torch.no_grad():
    Ftr=torch.cat([enc(Xtr[j:j+1024]) for j in range(0,len(Xtr),1024)]).double(); Fte=torch.cat([enc(Xte[j:j+1024]) for j in range(0,len(Xte),1024)]).double()
# ridge probe (as eval): standardise, fit
mu,sd=Ftr.mean(0),Ftr.std(0)+1e-6; A=(Ftr-mu)/sd; B=(Fte-mu)/sd
yc=(Ytr.double()-Ytr.double().mean(0))
for lam in [1e-2,1,100]:
    W=torch.linalg.solve(A.T@A+lam*torch.eye(A.shape[1],dtype=A.dtype),A.T@yc)
    P=B@W+Ytr.double().mean(0)
    r2=1-((P-Yte)**2).sum(0)/((Yte-Yte.mean(0))**2).sum(0)
    print('lam',lam,'R2',r2.numpy())
