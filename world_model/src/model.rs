//! Encoder, EMA target encoder, and the action-conditioned frame-causal predictor.

use std::collections::VecDeque;

use tch::{Device, Kind, Tensor, nn};

use crate::config::Phase;
use crate::{Result, WmConfig, WmError};

/// GroupNorm after a convolution (8 groups where the channels allow).
fn group_norm(p: nn::Path, c: i64) -> nn::GroupNorm {
    let groups = if c % 8 == 0 { 8 } else { 1 };
    nn::group_norm(p, groups, c, Default::default())
}

/// Convolutional patch encoder: a patchify stem (as a ViT's patch embedding), 3×3 stages, then a
/// 1×1 projection to one latent per patch. Convolutions are much cheaper than
/// attention on a 2-core CPU at 64×64, and keep the spatial grid DINO-WM found essential.
#[derive(Debug)]
struct Encoder {
    stem: nn::Conv2D,
    stem_norm: nn::GroupNorm,
    stages: Vec<(nn::Conv2D, nn::GroupNorm)>,
    head: nn::Conv2D,
    coords: bool,
}

impl Encoder {
    fn new(p: nn::Path, cfg: &WmConfig) -> Encoder {
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
    fn forward(&self, frames: &Tensor) -> Tensor {
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

#[derive(Debug)]
struct Block {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, w: i64, heads: i64, mlp_ratio: i64, dropout: f64) -> Block {
        Block {
            ln1: nn::layer_norm(&p / "ln1", vec![w], Default::default()),
            qkv: nn::linear(&p / "qkv", w, 3 * w, Default::default()),
            proj: nn::linear(&p / "proj", w, w, Default::default()),
            ln2: nn::layer_norm(&p / "ln2", vec![w], Default::default()),
            fc1: nn::linear(&p / "fc1", w, mlp_ratio * w, Default::default()),
            fc2: nn::linear(&p / "fc2", mlp_ratio * w, w, Default::default()),
            heads,
            dropout,
        }
    }

    /// Tokens `x [b, n, w]` that attend each other under `mask` (`[n, m + n]`) and, before
    /// themselves, the `past` keys and values `[b, heads, m, w / heads]` of earlier tokens. Returns
    /// the output and the keys and values of the past and `x` together (the extended cache).
    /// `train`: apply dropout to the residual branches.
    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        past: Option<&(Tensor, Tensor)>,
        train: bool,
    ) -> (Tensor, (Tensor, Tensor)) {
        let (b, n, w) = x.size3().expect("[b, n, w]");
        let qkv =
            x.apply(&self.ln1).apply(&self.qkv).reshape([b, n, 3, self.heads, w / self.heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let (k, v) = match past {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2)),
        };
        let a = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, false);
        let x = x + a.transpose(1, 2).reshape([b, n, w]).apply(&self.proj).dropout(self.dropout, train);
        let m = x.apply(&self.ln2).apply(&self.fc1).gelu("none").apply(&self.fc2).dropout(self.dropout, train);
        (x + m, (k, v))
    }
}

/// Keys and values of every predictor block for the tokens of the frames seen so far
/// (`[b, heads, tokens, w / heads]` each): what a later frame attends to.
type KvCache = Vec<(Tensor, Tensor)>;

/// Frame-causal transformer: every frame contributes its patch tokens and one action token (the
/// action taken at that frame, V-JEPA 2-AC's action tokens); a token at frame t sees all tokens of
/// frames ≤ t. The patch tokens of frame t predict frame t+1 as a residual on frame t's target
/// latents, so an untrained predictor is exactly "copy the last latent".
#[derive(Debug)]
struct Predictor {
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
    fn new(p: nn::Path, cfg: &WmConfig) -> Predictor {
        let (w, d, pc) = (cfg.predictor.width, cfg.encoder.latent_dim, &cfg.predictor);
        let init = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        Predictor {
            input: nn::linear(&p / "input", d, w, Default::default()),
            action: nn::linear(&p / "action", cfg.step_action_dim(), w, Default::default()),
            patch_pos: p.var("patch_pos", &[cfg.patches(), w], init),
            action_pos: p.var("action_pos", &[1, w], init),
            time_pos: p.var("time_pos", &[cfg.max_frames(), 1, w], init),
            blocks: (0..pc.depth)
                .map(|i| Block::new(&p / format!("block{i}"), w, pc.heads, pc.mlp_ratio, pc.dropout))
                .collect(),
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
    fn forward(&self, z: &Tensor, base: &Tensor, a: &Tensor, train: bool) -> Tensor {
        self.forward_cached(z, base, a, None, train).0
    }

    /// [`Predictor::forward`] on frames that follow the ones in `past` (their cache): the new frames
    /// take the next time positions and see every cached token. Returns the predictions and the
    /// cache extended by the new frames. Exactly the predictions of a pass over all the frames:
    /// under the block-causal mask earlier frames' keys and values do not depend on later frames.
    /// `train`: dropout on (`predictor.dropout`).
    fn forward_cached(
        &self,
        z: &Tensor,
        base: &Tensor,
        a: &Tensor,
        past: Option<&KvCache>,
        train: bool,
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
            let (out, kv) = block.forward(&x, &mask, past.map(|c| &c[i]), train);
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

/// A surprise curve from a per-patch map `[T, P]`: the mean over patches per frame, NaN at frame 0
/// (nothing predicts it).
pub fn frame_curve(map: &Tensor) -> Vec<f64> {
    per_frame(&map.mean_dim(-1, false, Kind::Float))
}

/// One value per frame `[T]` as a curve, NaN at frame 0 (nothing predicts it).
pub fn per_frame(values: &Tensor) -> Vec<f64> {
    let mut curve: Vec<f64> =
        Vec::<f32>::try_from(values.to_device(Device::Cpu)).expect("float curve").into_iter().map(f64::from).collect();
    curve[0] = f64::NAN;
    curve
}

/// Layer norm over the latent dimension without affine parameters (targets and inputs alike).
pub fn layer_norm(z: &Tensor) -> Tensor {
    let d = *z.size().last().expect("non-scalar");
    z.layer_norm([d], None::<Tensor>, None::<Tensor>, 1e-5, false)
}

/// The model's time step (`frameskip`): every `skip`-th frame of `frames [.., T, 3, H, W]` from
/// `offset` on, and with each the `skip` actions of `actions [.., T, A]` taken from it until the
/// next kept frame, side by side (zeros past the end): `([.., n, 3, H, W], [.., n, skip·A])` with
/// `n = ⌈(T − offset) / skip⌉`. At `skip` 1 and `offset` 0 the input, unchanged.
pub fn model_steps(frames: &Tensor, actions: &Tensor, skip: i64, offset: i64) -> (Tensor, Tensor) {
    let fd = frames.dim() as i64 - 4;
    let ad = actions.dim() as i64 - 2;
    let t = frames.size()[fd as usize];
    assert!(skip >= 1 && (0..t).contains(&offset), "offset {offset} of {t} frames, skip {skip}");
    let n = (t - offset + skip - 1) / skip;
    let kept = frames.slice(fd, offset, t, skip);
    let mut shape = actions.size();
    let (have, a_dim) = (shape[ad as usize], shape[ad as usize + 1]);
    let need = offset + n * skip;
    let padded = if need > have {
        shape[ad as usize] = need - have;
        Tensor::cat(&[actions.shallow_clone(), Tensor::zeros(&shape, (actions.kind(), actions.device()))], ad)
    } else {
        actions.shallow_clone()
    };
    let steps = padded.narrow(ad, offset, n * skip);
    let mut blocks = steps.size();
    blocks[ad as usize] = n;
    blocks[ad as usize + 1] = skip * a_dim;
    (kept, steps.reshape(&blocks))
}

/// A batch of training clips: frames `[b, T, 3, H, W]`, or (with the encoder frozen) their
/// online and target latents `[b, T, P, D]`.
#[derive(Clone, Copy)]
pub enum Clips<'a> {
    Frames(&'a Tensor),
    Latents { online: &'a Tensor, target: &'a Tensor },
}

/// The losses of one training batch.
#[derive(Debug)]
pub struct LossParts {
    /// The weighted sum to back-propagate.
    pub total: Tensor,
    pub teacher: f64,
    pub rollout: f64,
    pub variance: f64,
    pub covariance: f64,
    /// The counterfactual contrast on the encoder (unweighted; 0 without counterfactual frames).
    /// ln 2 ≈ 0.693 means "cannot tell a frame from its counterfactual".
    pub counterfactual_encoder: f64,
    /// The graded counterfactual term (unweighted; 0 = distances exactly proportional to shifts).
    pub counterfactual_metric: f64,
    /// The inverse-dynamics MSE (unweighted; 0 when off, frozen, or with one frame per clip).
    pub inverse_dynamics: f64,
    /// Target latents of the batch `[b, t, P, D]` (no grad), for collapse statistics.
    pub targets: Tensor,
}

/// Counterfactual views of a clip batch (or of one episode): `frames [.., T, 3, H, W]`, the same
/// moments drawn by the simulator with the cup moved, and `shift [.., T]`, how far it was moved
/// in the table plane (metres; 0 where it could not be).
pub struct Counterfactual {
    pub frames: Tensor,
    pub shift: Tensor,
}

/// The prediction terms' distance between predicted and target latents (`loss.distance`), the
/// mean over every element.
pub fn prediction_distance(loss: &crate::LossConfig, a: &Tensor, b: &Tensor) -> Tensor {
    match loss.distance {
        crate::config::Distance::L1 => (a - b).abs().mean(Kind::Float),
        crate::config::Distance::Mse => (a - b).square().mean(Kind::Float),
        crate::config::Distance::Huber => a.smooth_l1_loss(b, tch::Reduction::Mean, loss.huber_beta),
    }
}

/// Signs of representation collapse in a set of latents.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Collapse {
    /// Mean over latent dimensions of the standard deviation across samples (0 = collapsed).
    pub mean_std: f64,
    /// Effective rank (exp of the entropy of the normalised singular values) of per-frame pooled
    /// latents; at most `latent_dim`.
    pub effective_rank: f64,
}

/// Collapse statistics of `latents [b, t, P, D]`.
pub fn collapse_stats(latents: &Tensor) -> Collapse {
    tch::no_grad(|| {
        let d = *latents.size().last().expect("non-scalar");
        let tokens = latents.reshape([-1, d]);
        let mean_std = tokens.std_dim(0, true, false).mean(Kind::Float).double_value(&[]);
        let pooled = latents.mean_dim(-2, false, Kind::Float).reshape([-1, d]);
        let centred = &pooled - pooled.mean_dim(0, true, Kind::Float);
        // Singular values from the eigenvalues of the Gram matrix (svdvals' driver is CUDA-only in tch).
        let gram = centred.transpose(0, 1).matmul(&centred);
        let Ok(eig) = Tensor::f_linalg_eigvalsh(&gram, "L") else {
            // Non-finite latents (a poisoned batch): nothing meaningful to report.
            return Collapse { mean_std, effective_rank: f64::NAN };
        };
        let s = eig.clamp_min(0.0).sqrt();
        let p = &s / (s.sum(Kind::Float) + 1e-12);
        let entropy = -(&p * (&p + 1e-12).log()).sum(Kind::Float);
        Collapse { mean_std, effective_rank: entropy.exp().double_value(&[]) }
    })
}

/// The world model: online encoder and predictor (trained), target encoder (EMA, never trained).
pub struct WorldModel {
    pub cfg: WmConfig,
    /// Online encoder (`encoder.*`) and predictor (`predictor.*`).
    pub vs: nn::VarStore,
    /// Target encoder, same names as the online `encoder.*`.
    pub target_vs: nn::VarStore,
    encoder: Encoder,
    target: Encoder,
    predictor: Predictor,
    /// Reads the action between two frames from their latents (`loss.inverse_dynamics` > 0).
    inverse: Option<nn::Sequential>,
    /// The Polyak average of the predictor's weights (`predictor.average` > 0), by the names of
    /// `vs`'s `predictor.*` variables.
    pub(crate) average: Option<std::collections::BTreeMap<String, Tensor>>,
}

impl WorldModel {
    /// A freshly initialised model; initialisation depends on `cfg.seed` only.
    pub fn new(cfg: &WmConfig, device: Device) -> Result<WorldModel> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let encoder = Encoder::new(vs.root() / "encoder", cfg);
        let predictor = Predictor::new(vs.root() / "predictor", cfg);
        let inverse = (cfg.loss.inverse_dynamics > 0.0).then(|| {
            let p = vs.root() / "inverse";
            let width = 2 * cfg.patches() * cfg.encoder.latent_dim;
            nn::seq()
                .add(nn::linear(&p / "hidden", width, 128, Default::default()))
                .add_fn(|x| x.gelu("none"))
                .add(nn::linear(&p / "output", 128, cfg.action_dim, Default::default()))
        });
        let mut target_vs = nn::VarStore::new(device);
        let target = Encoder::new(target_vs.root() / "encoder", cfg);
        target_vs.freeze();
        let average = (cfg.predictor.average > 0.0).then(|| {
            let vars = vs.variables().into_iter().filter(|(name, _)| name.starts_with("predictor."));
            vars.map(|(name, t)| (name, t.detach().copy())).collect()
        });
        let mut model = WorldModel { cfg: cfg.clone(), vs, target_vs, encoder, target, predictor, inverse, average };
        model.ema_update(0.0); // the target starts as a copy of the online encoder
        Ok(model)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Online latents, layer-normed: `frames [n, 3, H, W]` → `[n, P, D]`.
    pub fn encode(&self, frames: &Tensor) -> Tensor {
        layer_norm(&self.encoder.forward(&frames.to_device(self.device())))
    }

    /// Target latents (EMA encoder, no gradient), layer-normed.
    pub fn encode_target(&self, frames: &Tensor) -> Tensor {
        tch::no_grad(|| layer_norm(&self.target.forward(&frames.to_device(self.device()))))
    }

    /// Online and target latents of clips `frames [b, T, 3, H, W]`: two `[b, T, P, D]`, without
    /// autograd (for scoring).
    pub fn encode_clips(&self, frames: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let (b, t) = (frames.size()[0], frames.size()[1]);
            let flat = frames.flatten(0, 1);
            let z = self.encode(&flat);
            let (p, d) = (z.size()[1], z.size()[2]);
            (z.reshape([b, t, p, d]), self.encode_target(&flat).reshape([b, t, p, d]))
        })
    }

    /// Pooled (mean over patches) online latent per frame: `[n, D]`.
    pub fn encode_pooled(&self, frames: &Tensor) -> Tensor {
        self.encode(frames).mean_dim(1, false, Kind::Float)
    }

    /// Teacher-forced predictions: online latents `z [b, t, P, D]`, their target latents `base`,
    /// actions `a [b, t, A]` → predicted target latents of frames 1..=t.
    pub fn predict(&self, z: &Tensor, base: &Tensor, a: &Tensor) -> Tensor {
        self.predictor.forward(z, base, &a.to_device(self.device()).to_kind(Kind::Float), false)
    }

    /// Autoregressive rollout: from real latents `z [b, c, P, D]` (online) and `base` (target) and
    /// actions `a [b, c + k − 1, A]`, predict `k` frames feeding each prediction back in (as both).
    /// The window keeps the last `clip_len − 1` frames, as in training. Returns `[b, k, P, D]`.
    pub fn rollout(&self, z: &Tensor, base: &Tensor, a: &Tensor, k: i64) -> Tensor {
        self.rollout_from(z, base, a, k, None, false)
    }

    /// [`WorldModel::rollout`], its first prediction given (`[b, 1, P, D]`) when the caller already
    /// has it: the teacher-forced pass's prediction from the same `c` frames is that prediction
    /// (the mask lets it see no more), so training need not run the predictor on them again.
    /// `train`: dropout on.
    fn rollout_from(
        &self,
        z: &Tensor,
        base: &Tensor,
        a: &Tensor,
        k: i64,
        first: Option<Tensor>,
        train: bool,
    ) -> Tensor {
        let a = a.to_device(self.device()).to_kind(Kind::Float);
        let window = self.cfg.clip_len - 1;
        let c = z.size()[1];
        let (mut seq, mut seq_base) = (z.shallow_clone(), base.shallow_clone());
        let mut out = Vec::with_capacity(k as usize);
        let skip_first = first.is_some();
        if let Some(next) = first {
            out.push(next.shallow_clone());
            seq = Tensor::cat(&[&seq, &next], 1);
            seq_base = Tensor::cat(&[&seq_base, &next], 1);
        }
        for i in i64::from(skip_first)..k {
            let len = seq.size()[1];
            let from = (len - window).max(0);
            let n = len - from;
            let acts = a.narrow(1, c + i - n, n);
            let next = self
                .predictor
                .forward(&seq.narrow(1, from, n), &seq_base.narrow(1, from, n), &acts, train)
                .select(1, n - 1)
                .unsqueeze(1);
            out.push(next.shallow_clone());
            seq = Tensor::cat(&[&seq, &next], 1);
            seq_base = Tensor::cat(&[&seq_base, &next], 1);
        }
        Tensor::cat(&out, 1)
    }

    /// [`WorldModel::rollout_from`] with its first prediction `first [b, 1, P, D]` given and the
    /// predictor's cache of the `c` real frames `z [b, c, P, D]` (from the teacher-forced pass over
    /// the same frames): each further step runs the predictor on its one new frame, attending to
    /// the cache. The same predictions as `rollout_from` while its window does not slide
    /// (`c + k − 1 ≤ clip_len − 1`); actions `a [b, ≥ c + k − 1, A]`. `train`: dropout on.
    fn rollout_cached(&self, z: &Tensor, a: &Tensor, k: i64, first: Tensor, cache: KvCache, train: bool) -> Tensor {
        let c = z.size()[1];
        let mut cache = cache;
        let mut out = vec![first];
        for i in 1..k {
            let frame = out[out.len() - 1].shallow_clone(); // frame c + i − 1, fed back as latents and base
            let (next, extended) =
                self.predictor.forward_cached(&frame, &frame, &a.narrow(1, c + i - 1, 1), Some(&cache), train);
            cache = extended;
            out.push(next);
        }
        Tensor::cat(&out, 1)
    }

    /// The predictor's terms on a batch of clips' latents (online `z`, `targets`, `[b, t, P, D]`;
    /// actions `a [b, t, A]`): the teacher-forced predictions of frames 1..t, their distance to the
    /// targets, and the `rollout_steps`-step rollout's. Without `teacher_grad` the teacher-forced
    /// pass runs without autograd (still logged) and the rollout runs in full. Dropout is on
    /// (`predictor.dropout`); the cached rollout reuses the teacher pass's draws for the real frames.
    pub fn prediction_terms(
        &self,
        z: &Tensor,
        targets: &Tensor,
        a: &Tensor,
        teacher_grad: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let cfg = &self.cfg;
        let (t, p) = (z.size()[1], z.size()[2]);
        let dist = |a: &Tensor, b: &Tensor| prediction_distance(&cfg.loss, a, b);
        let teacher_forced = || {
            self.predictor.forward_cached(
                &z.narrow(1, 0, t - 1),
                &targets.narrow(1, 0, t - 1),
                &a.narrow(1, 0, t - 1),
                None,
                true,
            )
        };
        let (pred, teacher_cache) = match teacher_grad {
            true => {
                let (pred, cache) = teacher_forced();
                (pred, Some(cache))
            }
            false => (tch::no_grad(teacher_forced).0, None),
        };
        let teacher = dist(&pred, &targets.narrow(1, 1, t - 1));
        let k = cfg.rollout_steps;
        if k == 0 {
            return (pred, teacher, Tensor::zeros([], (Kind::Float, z.device())));
        }
        let c = t - k;
        // The teacher-forced pass (when it carries gradients) holds the rollout's first step, its
        // prediction from frames 0..c, and the predictor's keys and values of those frames: while
        // the rollout's window does not slide (c + k − 1 ≤ clip_len − 1, always so on training
        // clips) each further step runs on its one new frame only.
        let window = cfg.clip_len - 1;
        let first = || pred.narrow(1, c - 1, 1);
        let roll = match teacher_cache {
            Some(cache) if c + k - 1 <= window => {
                let n = c * (p + 1); // the tokens of the c real frames
                let cache = cache.iter().map(|(ck, cv)| (ck.narrow(2, 0, n), cv.narrow(2, 0, n))).collect();
                self.rollout_cached(&z.narrow(1, 0, c), &a.narrow(1, 0, t - 1), k, first(), cache, true)
            }
            cache => {
                let first = cache.filter(|_| c <= window).map(|_| first());
                self.rollout_from(&z.narrow(1, 0, c), &targets.narrow(1, 0, c), &a.narrow(1, 0, t - 1), k, first, true)
            }
        };
        let rollout = dist(&roll, &targets.narrow(1, c, k));
        (pred, teacher, rollout)
    }

    /// The training losses on clips `frames [b, T, 3, H, W]` with `actions [b, T, A]` in `phase`,
    /// and the clips' counterfactuals when the counterfactual terms are on. In the encoder phase
    /// the predictor is not run (its terms are 0); in the joint phase with the encoder frozen
    /// (`optim.encoder_lr_scale` 0) the encoder runs without autograd.
    pub fn losses(
        &self,
        frames: &Tensor,
        actions: &Tensor,
        counterfactual: Option<&Counterfactual>,
        phase: Phase,
    ) -> LossParts {
        self.losses_on(Clips::Frames(frames), actions, counterfactual, phase)
    }

    /// [`WorldModel::losses`] on clips given as frames or, with the encoder frozen, as the two
    /// encoders' latents of those frames (the same losses, without encoding them again).
    pub fn losses_on(
        &self,
        clips: Clips,
        actions: &Tensor,
        counterfactual: Option<&Counterfactual>,
        phase: Phase,
    ) -> LossParts {
        let cfg = &self.cfg;
        let l = &cfg.loss;
        let frozen = cfg.encoder_frozen_in(phase);
        let (z, targets) = match clips {
            Clips::Frames(frames) => {
                let (b, t) = (frames.size()[0], frames.size()[1]);
                let flat = frames.flatten(0, 1);
                let z = if frozen { tch::no_grad(|| self.encode(&flat)) } else { self.encode(&flat) };
                let (p, d) = (z.size()[1], z.size()[2]);
                (z.reshape([b, t, p, d]), self.encode_target(&flat).reshape([b, t, p, d]))
            }
            Clips::Latents { online, target } => {
                // A caller bug, not user input: latents carry no gradient to an encoder in training.
                assert!(frozen, "clips as latents need the encoder frozen (the predictor phase, encoder_lr_scale 0)");
                (online.to_device(self.device()), target.to_device(self.device()))
            }
        };
        let (b, t, p, d) = (z.size()[0], z.size()[1], z.size()[2], z.size()[3]);
        let a = actions.to_device(self.device()).to_kind(Kind::Float);
        let zero = || Tensor::zeros([], (Kind::Float, self.device()));

        let (teacher, rollout) = match phase {
            Phase::Predictor => {
                let terms = self.prediction_terms(&z, &targets, &a, l.teacher > 0.0);
                (terms.1, terms.2)
            }
            Phase::Encoder => (zero(), zero()),
        };
        // Variance hinge on the online latents' dimensions and covariance penalty, across tokens.
        let tokens = z.reshape([-1, d]);
        let std = (tokens.var_dim(0, true, false) + 1e-4).sqrt();
        let variance = (-&std + cfg.loss.std_target).relu().mean(Kind::Float);
        let centred = &tokens - tokens.mean_dim(0, true, Kind::Float);
        let n = tokens.size()[0].max(2);
        let cov = centred.transpose(0, 1).matmul(&centred) / (n - 1) as f64;
        let off = &cov - cov.diagonal(0, 0, 1).diag_embed(0, 0, 1);
        let covariance = off.square().sum(Kind::Float) / d as f64;
        // Counterfactual terms. Contrast: softplus((d(x, own) − d(x, counterfactual)) / tau) per
        // frame, d the mean L1 over the frame's tokens; ln 2 when the two targets are the same.
        // Metric: the distance to the counterfactual, over its batch mean, against the cup's
        // shift over its batch mean.
        let frame_l1 = |x: &Tensor, y: &Tensor| (x - y).abs().mean_dim(&[-2i64, -1][..], false, Kind::Float);
        // With the encoder frozen the encoder terms would cost a third encoder pass per step for
        // constants.
        let needed = !frozen && l.uses_counterfactuals();
        let (cf_enc, cf_metric) = match counterfactual.filter(|_| needed) {
            Some(cf) => {
                let cf_targets = self.encode_target(&cf.frames.flatten(0, 1)).reshape([b, t, p, d]);
                let contrast = |x: &Tensor, own: &Tensor, other: &Tensor| {
                    ((frame_l1(x, own) - frame_l1(x, other)) / l.counterfactual_tau).softplus().mean(Kind::Float)
                };
                let on_enc = if l.counterfactual_encoder > 0.0 { contrast(&z, &targets, &cf_targets) } else { zero() };
                let metric = if l.counterfactual_metric > 0.0 {
                    let dist = frame_l1(&z, &cf_targets); // [b, t]
                    let shift = cf.shift.to_device(self.device()).to_kind(Kind::Float);
                    let rel_dist = &dist / (dist.mean(Kind::Float).detach() + 1e-6);
                    let rel_shift = &shift / (shift.mean(Kind::Float) + 1e-6);
                    (rel_dist - rel_shift).square().mean(Kind::Float)
                } else {
                    zero()
                };
                (on_enc, metric)
            }
            None => (zero(), zero()),
        };
        // Inverse dynamics: the action between frames t and t + 1 from their latents.
        let inverse = match &self.inverse {
            // Per frame only: at frameskip > 1 the joint phase's clips hold model steps (the
            // encoder phase's pairs are always consecutive frames with one action).
            Some(head) if t > 1 && !frozen && a.size()[2] == cfg.action_dim => {
                let pairs = Tensor::cat(&[z.narrow(1, 0, t - 1), z.narrow(1, 1, t - 1)], 2).flatten(2, 3);
                pairs.apply(head).mse_loss(&a.narrow(1, 0, t - 1), tch::Reduction::Mean)
            }
            _ => zero(),
        };
        let total = &teacher * l.teacher
            + &rollout * l.rollout
            + &variance * l.variance
            + &covariance * l.covariance
            + &cf_enc * l.counterfactual_encoder
            + &cf_metric * l.counterfactual_metric
            + &inverse * l.inverse_dynamics;
        LossParts {
            total,
            teacher: teacher.double_value(&[]),
            rollout: rollout.double_value(&[]),
            variance: variance.double_value(&[]),
            covariance: covariance.double_value(&[]),
            counterfactual_encoder: cf_enc.double_value(&[]),
            counterfactual_metric: cf_metric.double_value(&[]),
            inverse_dynamics: inverse.double_value(&[]),
            targets,
        }
    }

    /// Moves the target encoder towards the online one: `θ̄ ← m·θ̄ + (1 − m)·θ`.
    pub fn ema_update(&mut self, momentum: f64) {
        let online = self.vs.variables();
        tch::no_grad(|| {
            for (name, mut t) in self.target_vs.variables() {
                let o = online.get(&name).expect("target names mirror encoder.*");
                t.copy_(&(&t * momentum + o * (1.0 - momentum)));
            }
        });
    }

    /// Moves the predictor's average towards its weights after predictor update `n` (0-based),
    /// with decay `min(predictor.average, (1 + n) / (10 + n))` so that the early average follows
    /// the weights rather than the initialisation (as TensorFlow's `ExponentialMovingAverage`).
    fn average_update(&mut self, n: u64) {
        let Some(average) = &self.average else { return };
        let decay = self.cfg.predictor.average.min((1.0 + n as f64) / (10.0 + n as f64));
        let online = self.vs.variables();
        tch::no_grad(|| {
            for (name, a) in average {
                let mut a = a.shallow_clone();
                let _ = a.lerp_(&online[name], 1.0 - decay);
            }
        });
    }

    /// Exchanges the predictor's weights and their average (a no-op without one); twice restores
    /// both exactly. Evaluation predicts with the average: [`crate::load_model`] swaps once.
    pub fn swap_predictor_average(&mut self) -> bool {
        let Some(average) = &self.average else { return false };
        let online = self.vs.variables();
        tch::no_grad(|| {
            for (name, a) in average {
                let (mut a, mut w) = (a.shallow_clone(), online[name].shallow_clone());
                let held = w.copy();
                w.copy_(&a);
                a.copy_(&held);
            }
        });
        true
    }

    /// `f` on the model predicting with the predictor's average (as evaluation does; the model as
    /// it is without one); the trained weights are back in place afterwards, exactly.
    pub fn with_predictor_average<R>(&mut self, f: impl FnOnce(&WorldModel) -> R) -> R {
        self.swap_predictor_average();
        let result = f(self);
        self.swap_predictor_average();
        result
    }

    /// Per-frame surprise of one episode: L1 between the predicted and the target latents of every
    /// frame t ≥ 1, the prediction made from the last `clip_len − 1` real frames (Garrido et al.).
    /// `frames [T, 3, H, W]`, `actions [T, A]`; entry 0 is NaN (nothing predicts the first frame).
    /// Also returns the per-patch surprise map `[T, P]` (entry 0 zero). With `frameskip` s > 1,
    /// frame t is predicted from frames t − s, t − 2s, … (each of the s phases of the episode is
    /// scored at the model's step), and frames 1..s, which nothing predicts, are NaN.
    pub fn surprise(&self, frames: &Tensor, actions: &Tensor) -> (Vec<f64>, Tensor) {
        let map = self
            .by_phase(&frames.unsqueeze(0), &actions.unsqueeze(0), &|f, a| {
                self.surprise_steps(&f.squeeze_dim(0), &a.squeeze_dim(0)).unsqueeze(0)
            })
            .squeeze_dim(0);
        (frame_curve(&map), map)
    }

    /// Runs `maps(frames, actions) → [B, n, P]` (row 0 of each zero: nothing predicts it) at the
    /// model's time step on each of the `frameskip` phases of `frames [B, T, 3, H, W]` and
    /// `actions [B, T, A]`, and lays the rows back on the frames they score: `[B, T, P]`, row 0
    /// zero, rows 1..frameskip NaN.
    fn by_phase(&self, frames: &Tensor, actions: &Tensor, maps: &dyn Fn(&Tensor, &Tensor) -> Tensor) -> Tensor {
        let s = self.cfg.frameskip;
        if s == 1 {
            return maps(frames, actions);
        }
        let (b, t) = (frames.size()[0], frames.size()[1]);
        let mut out = Tensor::full([b, t, self.cfg.patches()], f64::NAN, (Kind::Float, self.device()));
        let _ = out.select(1, 0).fill_(0.0);
        for offset in 0..s.min(t) {
            if t - offset <= s {
                continue; // one frame in this phase: nothing to predict
            }
            let (f, a) = model_steps(frames, actions, s, offset);
            let m = maps(&f, &a);
            let n = m.size()[1];
            let rows = Tensor::arange_start(1, n, (Kind::Int64, self.device())) * s + offset;
            let _ = out.index_copy_(1, &rows, &m.narrow(1, 1, n - 1));
        }
        out
    }

    /// [`WorldModel::surprise`]'s map at the model's time step: `frames [n, 3, H, W]`, actions
    /// `[n, frameskip·A]` → `[n, P]`, row 0 zero.
    fn surprise_steps(&self, frames: &Tensor, actions: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let t = frames.size()[0];
            let z = self.encode(frames);
            let target = self.encode_target(frames);
            let a = actions.to_device(self.device()).to_kind(Kind::Float);
            let w = (self.cfg.clip_len - 1).min(t - 1).max(1);
            let mut maps = vec![Tensor::zeros([1, z.size()[1]], (Kind::Float, self.device()))];
            // Frames 1..w: one growing prefix run gives all their predictions.
            if t > 1 {
                let pre = self
                    .predict(
                        &z.narrow(0, 0, w).unsqueeze(0),
                        &target.narrow(0, 0, w).unsqueeze(0),
                        &a.narrow(0, 0, w).unsqueeze(0),
                    )
                    .squeeze_dim(0);
                maps.push((&pre - target.narrow(0, 1, w)).abs().mean_dim(-1, false, Kind::Float));
            }
            // Frames w+1..T-1: full windows, batched.
            let rest = t - 1 - w;
            if rest > 0 {
                let idx = Tensor::arange(rest, (Kind::Int64, self.device())).unsqueeze(1)
                    + Tensor::arange(w, (Kind::Int64, self.device())).unsqueeze(0)
                    + 1; // windows start at 1..=rest
                let idx = idx.flatten(0, 1);
                let zw = z.index_select(0, &idx).reshape([rest, w, z.size()[1], z.size()[2]]);
                let bw = target.index_select(0, &idx).reshape([rest, w, z.size()[1], z.size()[2]]);
                let aw = a.index_select(0, &idx).reshape([rest, w, -1]);
                let pred = self.predict(&zw, &bw, &aw).select(1, w - 1);
                maps.push((&pred - target.narrow(0, w + 1, rest)).abs().mean_dim(-1, false, Kind::Float));
            }
            Tensor::cat(&maps, 0)
        })
    }

    /// Per-frame surprise with the prediction of frame t made `horizon` frames ahead: from the real
    /// frames up to t − horizon (at most `clip_len − 1` of them), rolled forward with the actions
    /// taken since (frames before `horizon` are predicted from frame 0, nearer). Garrido et al.
    /// score the predicted latents of the next frames given context frames; at horizon 1 this is
    /// [`WorldModel::surprise`]. A model that knows what a push or an unsupported cup does is
    /// surprised a few frames later when it does not happen, where a one-step prediction can only
    /// say "much as before". Returns the curve (entry 0 NaN) and the per-patch map `[T, P]`.
    pub fn surprise_ahead(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> (Vec<f64>, Tensor) {
        let map = self.surprise_ahead_maps(&frames.unsqueeze(0), &actions.unsqueeze(0), horizon).squeeze_dim(0);
        (frame_curve(&map), map)
    }

    /// [`WorldModel::surprise_ahead`]'s per-patch maps `[B, T, P]` for `B` episodes of the same
    /// length at once (`frames [B, T, 3, H, W]`, `actions [B, T, A]`; entry 0 of each is zero).
    /// `horizon` counts model steps (`frameskip` frames each); see [`WorldModel::surprise`] for
    /// how the phases are scored.
    pub fn surprise_ahead_maps(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> Tensor {
        self.by_phase(frames, actions, &|f, a| self.surprise_ahead_steps(f, a, horizon))
    }

    /// [`WorldModel::surprise_ahead_maps`] at the model's time step.
    fn surprise_ahead_steps(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> Tensor {
        let horizon = horizon.max(1);
        tch::no_grad(|| {
            let (z, target) = self.encode_clips(frames);
            let (b, t, p, d) = z.size4().expect("[b, T, P, D]");
            let a = actions.to_device(self.device()).to_kind(Kind::Float);
            let w = self.cfg.clip_len - 1;
            let map = Tensor::zeros([b, t, p], (Kind::Float, self.device()));
            let err = |pred: &Tensor, target: &Tensor| (pred - target).abs().mean_dim(-1, false, Kind::Float);
            // Targets whose context is a full window `horizon` frames back: one batched rollout.
            let first_full = w - 1 + horizon;
            if t > first_full {
                let n = t - first_full;
                let dev = (Kind::Int64, self.device());
                let windows = |len: i64| {
                    (Tensor::arange(n, dev).unsqueeze(1) + Tensor::arange(len, dev).unsqueeze(0)).flatten(0, 1)
                };
                let (idx, aidx) = (windows(w), windows(w + horizon - 1)); // window i starts at frame i
                let zw = z.index_select(1, &idx).reshape([b * n, w, p, d]);
                let bw = target.index_select(1, &idx).reshape([b * n, w, p, d]);
                let aw = a.index_select(1, &aidx).reshape([b * n, w + horizon - 1, -1]);
                let pred = self.rollout(&zw, &bw, &aw, horizon).select(1, horizon - 1).reshape([b, n, p, d]);
                map.narrow(1, first_full, n).copy_(&err(&pred, &target.narrow(1, first_full, n)));
            }
            // Frames 1..=horizon: one rollout from frame 0 predicts them all.
            let k = horizon.min(t - 1).min(first_full - 1);
            if k > 0 {
                let pred = self.rollout(&z.narrow(1, 0, 1), &target.narrow(1, 0, 1), &a.narrow(1, 0, k), k);
                map.narrow(1, 1, k).copy_(&err(&pred, &target.narrow(1, 1, k)));
            }
            // The rest before the first full window: contexts of 2..w − 1 frames.
            for i in horizon + 1..t.min(first_full) {
                let end = i - horizon; // last real frame
                let from = (end + 1 - w).max(0);
                let c = end + 1 - from;
                let pred = self
                    .rollout(
                        &z.narrow(1, from, c),
                        &target.narrow(1, from, c),
                        &a.narrow(1, from, c + horizon - 1),
                        horizon,
                    )
                    .select(1, horizon - 1);
                map.select(1, i).copy_(&err(&pred, &target.select(1, i)));
            }
            map
        })
    }

    /// One frame for acting and the viewer: encodes `frame [3, H, W]`, scores it against the
    /// prediction made for it (its surprise), then records `action` (the action now taken) and
    /// predicts the latents of the next model step. With `frameskip` s > 1 only every s-th frame
    /// is a model step: the frames between are not encoded (their surprise is `None`), their
    /// actions join the step's action block, and the prediction is made once the block is full.
    pub fn step(&self, history: &mut LatentHistory, frame: &Tensor, action: [f32; 2]) -> Option<f64> {
        tch::no_grad(|| {
            let s = self.cfg.frameskip as u64;
            let mut surprise = None;
            if history.frames_seen.is_multiple_of(s) {
                let f = frame.unsqueeze(0);
                let z = self.encode(&f).squeeze_dim(0);
                let target = self.encode_target(&f).squeeze_dim(0);
                surprise =
                    history.pending.take().map(|pred| (pred - &target).abs().mean(Kind::Float).double_value(&[]));
                history.current = Some((z, target));
                history.block.clear();
            }
            history.frames_seen += 1;
            history.block.extend_from_slice(&action[..self.cfg.action_dim as usize]);
            if history.block.len() as i64 == self.cfg.step_action_dim() {
                let (z, target) = history.current.take().expect("a model step's frame comes first");
                let a = Tensor::from_slice(&history.block).to_device(self.device());
                history.push(z, target, a);
                let stack = |v: &VecDeque<Tensor>| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0).unsqueeze(0);
                let (zs, bs, acts) = (stack(&history.latents), stack(&history.targets), stack(&history.actions));
                let n = zs.size()[1];
                history.pending = Some(self.predict(&zs, &bs, &acts).select(1, n - 1).squeeze_dim(0));
            }
            surprise
        })
    }

    /// Number of trainable parameters (online encoder + predictor).
    pub fn parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Checks that a tensor batch has the shape this model expects; the error names it.
    pub fn check_frames(&self, frames: &Tensor) -> Result<()> {
        let s = frames.size();
        let n = self.cfg.image_size;
        if s.len() < 3 || s[s.len() - 3..] != [3, n, n] {
            return Err(WmError::Config(format!("frames of shape {s:?}; this model takes [.., 3, {n}, {n}]")));
        }
        Ok(())
    }
}

/// The cached history of `step`: latents and actions of the last frames, and the pending
/// prediction of the next frame. Memory is bounded by the predictor's window.
pub struct LatentHistory {
    capacity: usize,
    latents: VecDeque<Tensor>,
    targets: VecDeque<Tensor>,
    actions: VecDeque<Tensor>,
    pending: Option<Tensor>,
    /// Frames given to `step` so far (every `frameskip`-th is a model step).
    frames_seen: u64,
    /// The current model step's latents, waiting for its action block to fill.
    current: Option<(Tensor, Tensor)>,
    /// The actions taken since the current model step's frame.
    block: Vec<f32>,
}

impl LatentHistory {
    pub fn new(cfg: &WmConfig) -> LatentHistory {
        LatentHistory {
            capacity: (cfg.clip_len - 1).max(1) as usize,
            latents: VecDeque::new(),
            targets: VecDeque::new(),
            actions: VecDeque::new(),
            pending: None,
            frames_seen: 0,
            current: None,
            block: vec![],
        }
    }

    fn push(&mut self, z: Tensor, target: Tensor, a: Tensor) {
        if self.latents.len() == self.capacity {
            self.latents.pop_front();
            self.targets.pop_front();
            self.actions.pop_front();
        }
        self.latents.push_back(z);
        self.targets.push_back(target);
        self.actions.push_back(a);
    }

    /// The predicted latents of the next model step's frame `[P, D]`, once a step's actions are in.
    pub fn prediction(&self) -> Option<&Tensor> {
        self.pending.as_ref()
    }

    /// True when the last `step` completed a model step (encoded its frame, had its action block
    /// and predicted the next); between model steps the frames only add actions.
    pub fn completed_model_step(&self) -> bool {
        self.frames_seen > 0 && self.current.is_none()
    }

    pub fn len(&self) -> usize {
        self.latents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latents.is_empty()
    }
}

/// What one optimisation step did.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct StepReport {
    pub loss: f64,
    pub teacher: f64,
    pub rollout: f64,
    pub variance: f64,
    pub covariance: f64,
    pub counterfactual_encoder: f64,
    pub counterfactual_metric: f64,
    pub inverse_dynamics: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub momentum: f64,
    /// True when the loss or a gradient was not finite: nothing was updated.
    pub skipped: bool,
    pub collapse: Collapse,
}

impl WorldModel {
    pub fn zero_grad(&self) {
        for p in self.vs.trainable_variables() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One training step at optimiser step `step`: losses, backward, AdamW, EMA. A non-finite loss
    /// or gradient norm skips the update (the caller counts these).
    pub fn train_step(
        &mut self,
        opt: &mut crate::AdamW,
        frames: &Tensor,
        actions: &Tensor,
        counterfactual: Option<&Counterfactual>,
        step: u64,
    ) -> StepReport {
        self.train_step_on(opt, Clips::Frames(frames), actions, counterfactual, step)
    }

    /// [`WorldModel::train_step`] on clips as frames or, where the encoder is frozen
    /// ([`WmConfig::encoder_frozen_at`]), as latents computed once: the same update.
    pub fn train_step_on(
        &mut self,
        opt: &mut crate::AdamW,
        clips: Clips,
        actions: &Tensor,
        counterfactual: Option<&Counterfactual>,
        step: u64,
    ) -> StepReport {
        // Dropout draws from libtorch's generator: seeded by (seed, step), a resumed run draws
        // what the uninterrupted one did.
        tch::manual_seed((self.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step) as i64);
        let parts = self.losses_on(clips, actions, counterfactual, self.cfg.phase_at(step));
        let loss = parts.total.double_value(&[]);
        let collapse = collapse_stats(&parts.targets);
        // A frozen encoder's target is frozen too: momentum 1, as logged.
        let momentum = if self.cfg.encoder_frozen_at(step) { 1.0 } else { self.cfg.ema_at(step) };
        let lr = self.cfg.lr_at(step);
        let mut report = StepReport {
            loss,
            teacher: parts.teacher,
            rollout: parts.rollout,
            variance: parts.variance,
            covariance: parts.covariance,
            counterfactual_encoder: parts.counterfactual_encoder,
            counterfactual_metric: parts.counterfactual_metric,
            inverse_dynamics: parts.inverse_dynamics,
            grad_norm: f64::NAN,
            lr,
            momentum,
            skipped: true,
            collapse,
        };
        if !loss.is_finite() {
            return report;
        }
        self.zero_grad();
        parts.total.backward();
        report.grad_norm = crate::AdamW::grad_norm(&self.vs);
        if !report.grad_norm.is_finite() {
            self.zero_grad();
            return report;
        }
        // `encoder_lr_scale` holds once the predictor trains; in the encoder phase the encoder
        // is all there is to train.
        let mut optim = self.cfg.optim.clone();
        if self.cfg.phase_at(step) == Phase::Encoder {
            optim.encoder_lr_scale = 1.0;
        }
        opt.step(&self.vs, lr, &optim);
        // The target follows the online encoder while that trains and stops with it: a frozen
        // encoder's frames then have fixed latents and targets, which training can compute once.
        if momentum < 1.0 {
            self.ema_update(momentum);
        }
        if self.cfg.phase_at(step) == Phase::Predictor {
            self.average_update(step - self.cfg.encoder_steps);
        }
        report.skipped = false;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The training rollout that runs the predictor on one new frame per step against the teacher
    /// pass's keys and values predicts what the full rollout (every frame again) does, and both
    /// differ from copy-last (so the check has teeth).
    #[test]
    fn cached_rollout_matches_the_full_rollout() {
        let mut cfg = WmConfig::preset("tiny").unwrap();
        cfg.clip_len = 5;
        let model = WorldModel::new(&cfg, Device::Cpu).unwrap();
        // The output layer starts at zero (every prediction copy-last): give it weights.
        tch::no_grad(|| {
            for (name, mut v) in model.vs.variables() {
                if name.contains("predictor.output") {
                    v.copy_(&(v.randn_like() * 0.5));
                }
            }
        });
        let (b, c, k, p, d) = (3, 2, 3, cfg.patches(), cfg.encoder.latent_dim);
        let z = layer_norm(&Tensor::randn([b, c, p, d], (Kind::Float, Device::Cpu)));
        let base = layer_norm(&Tensor::randn([b, c, p, d], (Kind::Float, Device::Cpu)));
        let a = Tensor::randn([b, c + k - 1, cfg.step_action_dim()], (Kind::Float, Device::Cpu));
        let full = model.rollout(&z, &base, &a, k);
        let (pred, cache) = model.predictor.forward_cached(&z, &base, &a.narrow(1, 0, c), None, false);
        let cached = model.rollout_cached(&z, &a, k, pred.narrow(1, c - 1, 1), cache, false);
        assert_eq!(cached.size(), [b, k, p, d]);
        let gap = (&cached - &full).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "cached rollout differs by {gap}");
        let moved = (&full.narrow(1, 1, k - 1) - full.narrow(1, 0, k - 1)).abs().mean(Kind::Float).double_value(&[]);
        assert!(moved > 1e-2, "the rollout barely moves ({moved}), the check is void");
    }

    /// The predictor's average moves by the decay of its step, swapping it in twice restores both
    /// exactly, and a checkpoint keeps it: `load_model` predicts with it, `load_model_online`
    /// with the trained weights.
    #[test]
    fn predictor_average_is_kept_swapped_and_loaded() {
        let cfg = WmConfig::preset("tiny").unwrap();
        assert!(cfg.predictor.average > 0.0);
        let mut model = WorldModel::new(&cfg, Device::Cpu).unwrap();
        let predictor = |m: &WorldModel| {
            let vars = m.vs.variables().into_iter().filter(|(n, _)| n.starts_with("predictor."));
            vars.map(|(n, t)| (n, t.copy())).collect::<std::collections::BTreeMap<_, _>>()
        };
        let start = predictor(&model);
        tch::no_grad(|| {
            for (name, mut v) in model.vs.variables() {
                if name.starts_with("predictor.") {
                    let _ = v.g_add_scalar_(1.0);
                }
            }
        });
        // Update 0 has decay min(0.9, 1/10) = 0.1: the average moves 0.9 of the way.
        model.average_update(0);
        for (name, a) in model.average.as_ref().unwrap() {
            let moved = (a - &start[name]).mean(Kind::Float).double_value(&[]);
            assert!((moved - 0.9).abs() < 1e-5, "{name}: the average moved {moved}, expected 0.9");
        }
        let trained = predictor(&model);
        assert!(model.swap_predictor_average());
        let swapped = predictor(&model);
        assert!(model.swap_predictor_average());
        for (name, t) in predictor(&model) {
            assert!(t.equal(&trained[&name]), "{name}: two swaps did not restore the weights");
            assert!(!swapped[&name].equal(&trained[&name]), "{name}: the swap changed nothing");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.safetensors");
        crate::save_checkpoint(&path, &model, &crate::AdamW::new(&model.vs), &serde_json::json!({})).unwrap();
        let averaged = predictor(&crate::load_model(&path, Device::Cpu).unwrap());
        let online = predictor(&crate::load_model_online(&path, Device::Cpu).unwrap());
        for (name, t) in &trained {
            assert!(online[name].equal(t), "{name}: load_model_online does not hold the trained weights");
            assert!(averaged[name].equal(&swapped[name]), "{name}: load_model does not hold the average");
        }
    }
}
