//! A causal self-attention block of the same width as a Mamba block, with a KV cache for
//! step-by-step decoding: the contrast in `cupworld bench seq`.
//!
//! Dimension letters: `b` batch, `l` length, `d` width, `h` heads, `c` head width.

use tch::{Tensor, nn, nn::Module};

use crate::mamba::RmsNorm;

#[derive(Debug)]
pub struct AttentionBlock {
    norm: RmsNorm,
    qkv: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

/// Keys and values of every past position: grows with `t` (unlike Mamba's state).
#[derive(Debug, Default)]
pub struct KvCache {
    k: Option<Tensor>, // [b, h, t, c]
    v: Option<Tensor>,
}

impl KvCache {
    pub fn bytes(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.numel() * 8)
    }
}

impl AttentionBlock {
    pub fn new(p: nn::Path, d: i64, heads: i64) -> AttentionBlock {
        assert!(d % heads == 0, "width {d} must divide into {heads} heads");
        AttentionBlock {
            norm: RmsNorm::new(&p / "norm", d, 1e-5),
            qkv: nn::linear(&p / "qkv", d, 3 * d, nn::LinearConfig { bias: false, ..Default::default() }),
            out: nn::linear(&p / "out", d, d, nn::LinearConfig { bias: false, ..Default::default() }),
            heads,
        }
    }

    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, l, d) = x.size3().expect("[b, l, d]");
        x.view([b, l, self.heads, d / self.heads]).transpose(1, 2) // [b, h, l, c]
    }

    /// `x: [b, l, d]` → `x + attn(norm(x))`, causal.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (b, l, d) = x.size3().expect("[b, l, d]");
        let qkv = x.apply(&self.norm).apply(&self.qkv).split(d, -1);
        let (q, k, v) = (self.split_heads(&qkv[0]), self.split_heads(&qkv[1]), self.split_heads(&qkv[2]));
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, true, None, false);
        x + y.transpose(1, 2).reshape([b, l, d]).apply(&self.out)
    }

    /// One position `x: [b, d]` attending to the cache plus itself; appends to the cache.
    pub fn step(&self, x: &Tensor, cache: &mut KvCache) -> Tensor {
        let (b, d) = x.size2().expect("[b, d]");
        let qkv = x.unsqueeze(1).apply(&self.norm).apply(&self.qkv).split(d, -1);
        let (q, k, v) = (self.split_heads(&qkv[0]), self.split_heads(&qkv[1]), self.split_heads(&qkv[2]));
        let k = match cache.k.take() {
            Some(old) => Tensor::cat(&[old, k], 2),
            None => k,
        };
        let v = match cache.v.take() {
            Some(old) => Tensor::cat(&[old, v], 2),
            None => v,
        };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        cache.k = Some(k);
        cache.v = Some(v);
        x + y.transpose(1, 2).reshape([b, d]).apply(&self.out)
    }
}

impl Module for AttentionBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        AttentionBlock::forward(self, x)
    }
}
