import os
DATA = os.environ.get('DATA', 'out/demo/data')
CACHE = os.environ.get('CACHE', 'out/probe-gap')
import sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder import Enc
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F, time, argparse, json
p=argparse.ArgumentParser()
p.add_argument('--secs',type=float,default=150); p.add_argument('--nobase',action='store_true')
p.add_argument('--frozen',action='store_true'); p.add_argument('--nce',type=float,default=0)
p.add_argument('--perpatch',action='store_true'); p.add_argument('--var',type=float,default=1.0)
p.add_argument('--tau',type=float,default=0.1); p.add_argument('--threads',type=int,default=1)
p.add_argument('--hard',action='store_true'); p.add_argument('--mlp',action='store_true'); p.add_argument('--ahead',type=int,default=1); p.add_argument('--name',default='run'); p.add_argument('--ema',type=float,default=0.99); p.add_argument('--cf',type=float,default=0); p.add_argument('--ecf',type=float,default=0); p.add_argument('--ctau',type=float,default=0.02); p.add_argument('--bnce',type=float,default=0)
a=p.parse_args()
torch.manual_seed(0); torch.set_num_threads(a.threads)
def load(names):
    out=[]
    for n in names:
        d=np.load(CACHE+'/'+n+'.npz'); out.append({k:d[k] for k in d.files})
    X=np.concatenate([o['X'] for o in out]); S=np.concatenate([o['S'] for o in out]); A=np.concatenate([o['A'] for o in out])
    ep=np.concatenate([o['ep']+1000*i for i,o in enumerate(out)]); fi=np.concatenate([o['fi'] for o in out])
    return torch.from_numpy(X).permute(0,3,1,2).contiguous(), S, torch.from_numpy(A), ep, fi
Xtr,Str,Atr,eptr,fitr=load(['train-push-to-goal','train-knock-off'])
Xte,Ste,Ate,epte,fite=load(['heldout-push-to-goal','heldout-knock-off'])
cfs=[np.load(CACHE+'/'+n+'-cf.npz') for n in ['train-push-to-goal','train-knock-off']]
CFtr=torch.from_numpy(np.concatenate([c['CF'] for c in cfs])).permute(0,3,1,2).contiguous()
K=a.ahead
nxt=np.where(eptr[K:]==eptr[:-K])[0]  # index i with i+K in the same episode
class Pred(nn.Module):
    def __init__(s,w=128):
        super().__init__()
        s.inp=nn.Linear(64,w); s.act=nn.Linear(2*K,w); s.pos=nn.Parameter(torch.randn(16,w)*0.02)
        s.tf=nn.TransformerEncoder(nn.TransformerEncoderLayer(w,4,4*w,0.0,batch_first=True,norm_first=True,activation='gelu'),3)
        s.out=nn.Linear(w,64); nn.init.zeros_(s.out.weight); nn.init.zeros_(s.out.bias)
    def forward(s,z,act): return s.out(s.tf(s.inp(z)+s.pos+s.act(act).unsqueeze(1)))
enc=Enc(); tgt=Enc(); tgt.load_state_dict(enc.state_dict()); [q.requires_grad_(False) for q in tgt.parameters()]
pred=Pred()
opt=torch.optim.AdamW(list(enc.parameters())+list(pred.parameters()),1e-3,weight_decay=0.01)
t0=time.time(); step=0; B=64; loss=torch.tensor(0.)
while time.time()-t0<a.secs:
    if a.hard:
        # 8 episodes × 8 moments each: the negatives include the same scene at other times
        starts=np.random.choice(nxt,8)
        i=torch.from_numpy(np.concatenate([np.random.choice(nxt[(eptr[nxt]==eptr[s0])],8) for s0 in starts]))
    else:
        i=torch.from_numpy(np.random.choice(nxt,B))
    x0,x1=Xtr[i],Xtr[i+K]; ac=torch.cat([Atr[i+j] for j in range(K)],1)
    z0=enc(x0)
    with torch.no_grad(): t0_,t1=tgt(x0),tgt(x1); tc=tgt(CFtr[i+K])
    d=pred(z0,ac)
    pr=F.layer_norm((0 if a.nobase else t0_)+d,[64])
    loss=F.smooth_l1_loss(pr,t1,beta=0.05)
    zz=torch.cat([z0,enc(x1)]) if a.nce else z0
    if a.perpatch: std=(zz.var(0)+1e-4).sqrt()
    else: std=(zz.reshape(-1,64).var(0)+1e-4).sqrt()
    loss=loss+a.var*F.relu(0.5-std).mean()
    tok=zz.reshape(-1,64); c=tok-tok.mean(0); cov=c.T@c/(len(tok)-1); off=cov-torch.diag(torch.diag(cov))
    loss=loss+0.04*(off**2).sum()/64
    if a.cf:
        dp=(pr-t1).abs().mean((1,2)); dn=(pr-tc).abs().mean((1,2))
        loss=loss+a.cf*F.softplus((dp-dn)/a.ctau).mean()
    if a.ecf:
        z1=enc(x1); dp=(z1-t1).abs().mean((1,2)); dn=(z1-tc).abs().mean((1,2))
        loss=loss+a.ecf*F.softplus((dp-dn)/a.ctau).mean()
    if a.bnce:
        z1=enc(x1); D=torch.cat([(z1[:,None]-t1[None]).abs().mean((2,3)),(z1-tc).abs().mean((1,2))[:,None]],1)
        loss=loss+a.bnce*F.cross_entropy(-D/a.ctau,torch.arange(len(z1)))
    if a.nce:
        # predicted next latents vs online-encoded next frames in the batch (InfoNCE over flattened grids)
        q=F.normalize(pr.flatten(1),dim=1); k=F.normalize(zz[B:].flatten(1),dim=1)
        logits=q@k.T/a.tau; loss=loss+a.nce*F.cross_entropy(logits,torch.arange(B))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(list(enc.parameters())+list(pred.parameters()),1.0); opt.step()
    if not a.frozen:
        with torch.no_grad():
            for pt,po in zip(tgt.parameters(),enc.parameters()): pt.mul_(a.ema).add_(po,alpha=1-a.ema)
    step+=1
def feats(net,X):
    with torch.no_grad(): return torch.cat([net(X[j:j+1024]).flatten(1) for j in range(0,len(X),1024)]).double()
def onmask(S,ep):
    y0={}
    for e,y in zip(ep,S[:,1]): y0.setdefault(e,y)
    return np.array([S[i,1]>=y0[ep[i]]-0.02 for i in range(len(ep))])
mtr,mte=onmask(Str,eptr),onmask(Ste,epte)
# fit on a subsample of training frames (speed), test on held-out
sub=np.where(mtr)[0][::3]
Ftr=feats(enc,Xtr[torch.from_numpy(sub)]); Fte=feats(enc,Xte[torch.from_numpy(np.where(mte)[0])])
Ytr=torch.from_numpy(Str[sub][:,[0,2]]).double(); Yte=torch.from_numpy(Ste[mte][:,[0,2]]).double()
mu,sd=Ftr.mean(0),Ftr.std(0)+1e-6; A_=(Ftr-mu)/sd; B_=(Fte-mu)/sd; ym=Ytr.mean(0)
best=None
for lam in [1,100,1e4]:
    W=torch.linalg.solve(A_.T@A_+lam*torch.eye(A_.shape[1],dtype=A_.dtype),A_.T@(Ytr-ym))
    P=B_@W+ym; r2=(1-((P-Yte)**2).sum(0)/((Yte-Yte.mean(0))**2).sum(0)).numpy()
    if best is None or r2.mean()>best.mean(): best=r2
print(json.dumps({'name':a.name,'steps':step,'loss':round(loss.item(),4),'r2':[round(float(v),3) for v in best]}))
if a.mlp:
    torch.manual_seed(1)
    m=nn.Sequential(nn.Linear(A_.shape[1],256),nn.GELU(),nn.Linear(256,2)).double()
    o=torch.optim.AdamW(m.parameters(),1e-3,weight_decay=1e-2); ys_=(Ytr-ym).std(0)
    t1=time.time()
    while time.time()-t1<40:
        j=torch.randint(len(A_),(256,)); l=((m(A_[j])-(Ytr[j]-ym)/ys_)**2).mean(); o.zero_grad(); l.backward(); o.step()
    with torch.no_grad(): P=m(B_)*ys_+ym
    print('mlp probe r2',(1-((P-Yte)**2).sum(0)/((Yte-Yte.mean(0))**2).sum(0)).numpy())
