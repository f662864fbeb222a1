//! The convolutional patch encoder (online and EMA target share its shape).

use tch::{Kind, Tensor, nn};

use crate::WmConfig;

/// GroupNorm after a convolution (8 groups where the channels allow).
fn group_norm(p: nn::Path, c: i64) -> nn::GroupNorm {
    let groups = if c % 8 == 0 { 8 } else { 1 };
    nn::group_norm(p, groups, c, Default::default())
}

/// Convolutional patch encoder: a patchify stem (as a ViT's patch embedding), 3×3 stages, then a
/// 1×1 projection to one latent per patch. Convolutions are much cheaper than
/// attention on a 2-core CPU at 64×64, and keep the spatial grid DINO-WM found essential.
#[derive(Debug)]
pub(crate) struct Encoder {
    stem: nn::Conv2D,
    stem_norm: nn::GroupNorm,
    stages: Vec<(nn::Conv2D, nn::GroupNorm)>,
    head: nn::Conv2D,
    coords: bool,
}

impl Encoder {
    pub(crate) fn new(p: nn::Path, cfg: &WmConfig) -> Encoder {
        let (ch, st) = (&cfg.encoder.channels, &cfg.encoder.strides);
        let inputs = if cfg.encoder.coords { 5 } else { 3 };
        let stem =
            nn::conv2d(&p / "stem", inputs, ch[0], st[0], nn::ConvConfig { stride: st[0], ..Default::default() });
        let stem_norm = group_norm(&p / "stem_norm", ch[0]);
        let stages = ch
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let conv = nn::conv2d(
                    &p / format!("stage{i}"),
                    w[0],
                    w[1],
                    3,
                    nn::ConvConfig { stride: st[i + 1], padding: 1, ..Default::default() },
                );
                (conv, group_norm(&p / format!("norm{i}"), w[1]))
            })
            .collect();
        let head =
            nn::conv2d(&p / "head", *ch.last().expect("validated"), cfg.encoder.latent_dim, 1, Default::default());
        Encoder { stem, stem_norm, stages, head, coords: cfg.encoder.coords }
    }

    /// `frames [n, 3, H, W]` as u8 or float in `[0, 255]` → raw patch latents `[n, P, D]`.
    pub(crate) fn forward(&self, frames: &Tensor) -> Tensor {
        let x = frames.to_kind(Kind::Float) / 255.0;
        let mut x = (x - 0.5) / 0.25;
        if self.coords {
            let (n, _, hgt, w) = x.size4().expect("[n, 3, H, W]");
            let opts = (Kind::Float, x.device());
            let xs = Tensor::linspace(-1.0, 1.0, w, opts).view([1, 1, 1, w]).expand([n, 1, hgt, w], false);
            let ys = Tensor::linspace(-1.0, 1.0, hgt, opts).view([1, 1, hgt, 1]).expand([n, 1, hgt, w], false);
            x = Tensor::cat(&[x, xs, ys], 1);
        }
        let mut h = x.apply(&self.stem).apply(&self.stem_norm).gelu("none");
        for (conv, norm) in &self.stages {
            h = h.apply(conv).apply(norm).gelu("none");
        }
        let h = h.apply(&self.head); // [n, D, g, g]
        h.flatten(2, 3).transpose(1, 2) // [n, g², D]
    }
}
