import json, numpy as np, sys
d=sys.argv[1]
pairs=json.load(open(f'{d}/pairs.json'))
P=json.load(open(f'{d}/s_possible/surprise.json'))['episodes']
I=json.load(open(f'{d}/s_impossible/surprise.json'))['episodes']
def arr(c): return np.array([np.nan if x is None else x for x in c])
res={}
for p,a,b in zip(pairs,P,I):
    ca,cb=arr(a['curve']),arr(b['curve']); k=p['break_at']
    for agg in ['max','mean']:
        f=np.nanmax if agg=='max' else np.nanmean
        sa,sb=f(ca[k:]),f(cb[k:])
        res.setdefault((p['category'],agg),[]).append(1.0 if sa<sb else 0.5 if sa==sb else 0.0)
    res.setdefault((p['category'],'pre'),[]).append(np.nanmean(ca[:k]))
    res.setdefault((p['category'],'post_pos'),[]).append(np.nanmean(ca[k:]))
    res.setdefault((p['category'],'post_imp'),[]).append(np.nanmean(cb[k:]))
for k,v in sorted(res.items()): print(k, round(float(np.mean(v)),3), len(v))
