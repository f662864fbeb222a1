"""The world model's `small` encoder (world_model/src/model.rs) in PyTorch: CoordConv, a 4×4
patchify stem, two 3×3 stride-2 stages with GroupNorm, a 1×1 head to 64-d, layer-normed patch
latents [n, 16, 64]."""
import torch, torch.nn as nn, torch.nn.functional as F


class Enc(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Conv2d(5, 32, 4, 4); s.n0 = nn.GroupNorm(8, 32)
        s.c1 = nn.Conv2d(32, 64, 3, 2, 1); s.n1 = nn.GroupNorm(8, 64)
        s.c2 = nn.Conv2d(64, 128, 3, 2, 1); s.n2 = nn.GroupNorm(8, 128)
        s.head = nn.Conv2d(128, 64, 1)

    def forward(s, x):
        x = (x.float() / 255 - 0.5) / 0.25
        n, _, h, w = x.shape
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(n, 1, h, w)
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(n, 1, h, w)
        x = torch.cat([x, xs, ys], 1)
        x = F.gelu(s.n0(s.stem(x))); x = F.gelu(s.n1(s.c1(x))); x = F.gelu(s.n2(s.c2(x)))
        return F.layer_norm(s.head(x).flatten(2).transpose(1, 2), [64])  # [n, 16, 64]


def checkpoint_tensors(path, prefix):
    """The float tensors of a Rust checkpoint (safetensors) whose names start with `prefix`, by
    the rest of their name (`stem.weight`, ...)."""
    import json, struct
    import numpy as np
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k.startswith(prefix) and v['dtype'] == 'F32':
            a, b = v['data_offsets']
            out[k[len(prefix):]] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(v['shape']).copy())
    return out


class ChannelNorm(nn.LayerNorm):
    """encoder.norm = position: a layer norm over channels at each position."""
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def encoder_weights(path, prefix):
    """A checkpoint's encoder (`online.encoder.` or `target.encoder.`) as `Enc`; NORM=position for
    encoders trained with encoder.norm = position."""
    import os
    out = checkpoint_tensors(path, prefix)
    rename = {'stem.': 'stem.', 'stem_norm.': 'n0.', 'stage0.': 'c1.', 'norm0.': 'n1.', 'stage1.': 'c2.', 'norm1.': 'n2.', 'head.': 'head.'}
    sd = {}
    for k, v in out.items():
        for a, b in rename.items():
            if k.startswith(a):
                sd[b + k[len(a):]] = v
                break
    enc = Enc()
    if os.environ.get('NORM', 'group') == 'position':
        # encoder.norm = position: a layer norm over channels at each position.
        for name, c in [('n0', 32), ('n1', 64), ('n2', 128)]:
            setattr(enc, name, ChannelNorm(c))
    enc.load_state_dict(sd)
    return enc.eval()


def encode(enc, X):
    with torch.no_grad():
        return torch.cat([enc(torch.from_numpy(X[i:i + 512]).permute(0, 3, 1, 2)) for i in range(0, len(X), 512)])
