//! The action-conditioned frame-causal transformer predictor, with its key/value cache.

use tch::{Device, Kind, Tensor, nn};

use crate::WmConfig;
use crate::model::layer_norm;

#[derive(Debug)]
struct Block {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
}

impl Block {
    fn new(p: nn::Path, w: i64, heads: i64, mlp_ratio: i64) -> Block {
        Block {
            ln1: nn::layer_norm(&p / "ln1", vec![w], Default::default()),
            qkv: nn::linear(&p / "qkv", w, 3 * w, Default::default()),
            proj: nn::linear(&p / "proj", w, w, Default::default()),
            ln2: nn::layer_norm(&p / "ln2", vec![w], Default::default()),
            fc1: nn::linear(&p / "fc1", w, mlp_ratio * w, Default::default()),
            fc2: nn::linear(&p / "fc2", mlp_ratio * w, w, Default::default()),
            heads,
        }
    }

    /// Tokens `x [b, n, w]` that attend each other under `mask` (`[n, m + n]`) and, before
    /// themselves, the `past` keys and values `[b, heads, m, w / heads]` of earlier tokens. Returns
    /// the output and the keys and values of the past and `x` together (the extended cache).
    fn forward(&self, x: &Tensor, mask: &Tensor, past: Option<&(Tensor, Tensor)>) -> (Tensor, (Tensor, Tensor)) {
        let (b, n, w) = x.size3().expect("[b, n, w]");
        let qkv =
            x.apply(&self.ln1).apply(&self.qkv).reshape([b, n, 3, self.heads, w / self.heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let (k, v) = match past {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2)),
        };
        let a = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, false);
        let x = x + a.transpose(1, 2).reshape([b, n, w]).apply(&self.proj);
        let m = x.apply(&self.ln2).apply(&self.fc1).gelu("none").apply(&self.fc2);
        (x + m, (k, v))
    }
}

/// Keys and values of every predictor block for the tokens of the frames seen so far
/// (`[b, heads, tokens, w / heads]` each): what a later frame attends to.
pub(crate) type KvCache = Vec<(Tensor, Tensor)>;

/// Frame-causal transformer: every frame contributes its patch tokens and one action token (the
/// action taken at that frame, V-JEPA 2-AC's action tokens); a token at frame t sees all tokens of
/// frames ≤ t. The patch tokens of frame t predict frame t+1 as a residual on frame t's target
/// latents, so an untrained predictor is exactly "copy the last latent".
#[derive(Debug)]
pub(crate) struct Predictor {
    input: nn::Linear,
    action: nn::Linear,
    patch_pos: Tensor,
    action_pos: Tensor,
    time_pos: Tensor,
    blocks: Vec<Block>,
    ln: nn::LayerNorm,
    output: nn::Linear,
    max_frames: i64,
}

impl Predictor {
    pub(crate) fn new(p: nn::Path, cfg: &WmConfig) -> Predictor {
        let (w, d, pc) = (cfg.predictor.width, cfg.encoder.latent_dim, &cfg.predictor);
        let init = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        Predictor {
            input: nn::linear(&p / "input", d, w, Default::default()),
            action: nn::linear(&p / "action", cfg.step_action_dim(), w, Default::default()),
            patch_pos: p.var("patch_pos", &[cfg.tokens_per_frame(), w], init),
            action_pos: p.var("action_pos", &[1, w], init),
            time_pos: p.var("time_pos", &[cfg.max_frames(), 1, w], init),
            blocks: (0..pc.depth).map(|i| Block::new(&p / format!("block{i}"), w, pc.heads, pc.mlp_ratio)).collect(),
            ln: nn::layer_norm(&p / "ln", vec![w], Default::default()),
            // Zero-initialised output: an untrained predictor says "nothing changes" (copy-last),
            // and training must earn every improvement over that baseline.
            output: nn::linear(
                &p / "output",
                w,
                d,
                nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true },
            ),
            max_frames: cfg.max_frames(),
        }
    }

    /// `z [b, t, P, D]` (layer-normed online latents), `base` (the same frames' target latents),
    /// `a [b, t, A]` → predictions of frames 1..=t, `[b, t, P, D]`.
    pub(crate) fn forward(&self, z: &Tensor, base: &Tensor, a: &Tensor) -> Tensor {
        self.forward_cached(z, base, a, None).0
    }

    /// [`Predictor::forward`] on frames that follow the ones in `past` (their cache): the new frames
    /// take the next time positions and see every cached token. Returns the predictions and the
    /// cache extended by the new frames. Exactly the predictions of a pass over all the frames:
    /// under the block-causal mask earlier frames' keys and values do not depend on later frames.
    pub(crate) fn forward_cached(
        &self,
        z: &Tensor,
        base: &Tensor,
        a: &Tensor,
        past: Option<&KvCache>,
    ) -> (Tensor, KvCache) {
        let (b, t, p, d) = z.size4().expect("[b, t, P, D]");
        let start = past.map_or(0, |cache| cache[0].0.size()[2] / (p + 1));
        assert!(
            start + t <= self.max_frames,
            "history of {} frames exceeds the trained {}",
            start + t,
            self.max_frames
        );
        let time = self.time_pos.narrow(0, start, t); // [t, 1, w]
        let act = a.apply(&self.action).unsqueeze(2); // [b, t, 1, w]
        // The action reaches every patch token directly (DINO-WM concatenates it to every patch)
        // as well as through its own token, so no attention has to be learned before it matters.
        let patches = z.apply(&self.input) + &self.patch_pos + &time + &act;
        let action = act + &self.action_pos + &time;
        let w = patches.size()[3];
        let mut x = Tensor::cat(&[patches, action], 2).reshape([b, t * (p + 1), w]);
        let own = block_causal_mask(t, p + 1, z.device());
        let mask = match start {
            0 => own,
            _ => Tensor::cat(&[Tensor::ones([t * (p + 1), start * (p + 1)], (Kind::Bool, z.device())), own], 1),
        };
        let mut cache = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let (out, kv) = block.forward(&x, &mask, past.map(|c| &c[i]));
            cache.push(kv);
            x = out;
        }
        let delta = x.apply(&self.ln).apply(&self.output).reshape([b, t, p + 1, d]).narrow(2, 0, p);
        (layer_norm(&(base + delta)), cache)
    }
}

/// `[n, n]` boolean, true where token i (of frame i / per_frame) may attend token j: frame(j) ≤ frame(i).
pub fn block_causal_mask(frames: i64, per_frame: i64, device: Device) -> Tensor {
    let f = Tensor::arange(frames * per_frame, (Kind::Int64, device)).divide_scalar_mode(per_frame, "floor");
    f.unsqueeze(0).le_tensor(&f.unsqueeze(1))
}
