//! The world model: online encoder, EMA target encoder and predictor, their construction,
//! encoding, prediction and rollouts, and the target's and the average's updates. Losses live in
//! `loss`, surprise in `surprise`, the optimisation step in `train_step`.

use tch::{Device, Kind, Tensor, nn};

use crate::encoder::Encoder;
use crate::predictor::{KvCache, Predictor};
use crate::{Result, WmConfig, WmError};

/// An RGB8 image (row-major, `height × width × 3` bytes, as the renderer gives it) as the
/// `[3, H, W]` uint8 tensor the encoder takes.
pub fn rgb_frame(rgb: &[u8], height: i64, width: i64) -> Tensor {
    Tensor::from_slice(rgb).reshape([height, width, 3]).permute([2, 0, 1]).contiguous()
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
    pub(crate) encoder: Encoder,
    pub(crate) target: Encoder,
    pub(crate) predictor: Predictor,
    /// Reads the action between two frames from their latents (`loss.inverse_dynamics` > 0).
    pub(crate) inverse: Option<nn::Sequential>,
    /// Reads a counterfactual's shift from the two frames' latents (`loss.counterfactual_shift` > 0).
    pub(crate) shift_head: Option<nn::Sequential>,
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
        // A small head on two frames' latents side by side (inverse dynamics, the shift head).
        let pair_head = |name: &str, outputs: i64| {
            let p = vs.root() / name;
            let width = 2 * cfg.tokens_per_frame() * cfg.encoder.latent_dim;
            nn::seq()
                .add(nn::linear(&p / "hidden", width, 128, Default::default()))
                .add_fn(|x| x.gelu("none"))
                .add(nn::linear(&p / "output", 128, outputs, Default::default()))
        };
        let inverse = (cfg.loss.inverse_dynamics > 0.0).then(|| pair_head("inverse", cfg.action_dim));
        let shift_head = (cfg.loss.counterfactual_shift > 0.0).then(|| pair_head("shift", 4));
        let mut target_vs = nn::VarStore::new(device);
        let target = Encoder::new(target_vs.root() / "encoder", cfg);
        target_vs.freeze();
        let average = (cfg.predictor.average > 0.0).then(|| {
            let vars = vs.variables().into_iter().filter(|(name, _)| name.starts_with("predictor."));
            vars.map(|(name, t)| (name, t.detach().copy())).collect()
        });
        let mut model =
            WorldModel { cfg: cfg.clone(), vs, target_vs, encoder, target, predictor, inverse, shift_head, average };
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
        self.predictor.forward(z, base, &a.to_device(self.device()).to_kind(Kind::Float))
    }

    /// Autoregressive rollout: from real latents `z [b, c, P, D]` (online) and `base` (target) and
    /// actions `a [b, c + k − 1, A]`, predict `k` frames feeding each prediction back in (as both).
    /// The window keeps the last `clip_len − 1` frames, as in training. Returns `[b, k, P, D]`.
    pub fn rollout(&self, z: &Tensor, base: &Tensor, a: &Tensor, k: i64) -> Tensor {
        self.rollout_from(z, base, a, k, None)
    }

    /// [`WorldModel::rollout`], its first prediction given (`[b, 1, P, D]`) when the caller already
    /// has it: the teacher-forced pass's prediction from the same `c` frames is that prediction
    /// (the mask lets it see no more), so training need not run the predictor on them again.
    pub(crate) fn rollout_from(&self, z: &Tensor, base: &Tensor, a: &Tensor, k: i64, first: Option<Tensor>) -> Tensor {
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
                .forward(&seq.narrow(1, from, n), &seq_base.narrow(1, from, n), &acts)
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
    /// (`c + k − 1 ≤ clip_len − 1`); actions `a [b, ≥ c + k − 1, A]`.
    pub(crate) fn rollout_cached(&self, z: &Tensor, a: &Tensor, k: i64, first: Tensor, cache: KvCache) -> Tensor {
        let c = z.size()[1];
        let mut cache = cache;
        let mut out = vec![first];
        for i in 1..k {
            let frame = out[out.len() - 1].shallow_clone(); // frame c + i − 1, fed back as latents and base
            let (next, extended) =
                self.predictor.forward_cached(&frame, &frame, &a.narrow(1, c + i - 1, 1), Some(&cache));
            cache = extended;
            out.push(next);
        }
        Tensor::cat(&out, 1)
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
    pub(crate) fn average_update(&mut self, n: u64) {
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
        let (b, c, k, p, d) = (3, 2, 3, cfg.tokens_per_frame(), cfg.encoder.latent_dim);
        let z = layer_norm(&Tensor::randn([b, c, p, d], (Kind::Float, Device::Cpu)));
        let base = layer_norm(&Tensor::randn([b, c, p, d], (Kind::Float, Device::Cpu)));
        let a = Tensor::randn([b, c + k - 1, cfg.step_action_dim()], (Kind::Float, Device::Cpu));
        let full = model.rollout(&z, &base, &a, k);
        let (pred, cache) = model.predictor.forward_cached(&z, &base, &a.narrow(1, 0, c), None);
        let cached = model.rollout_cached(&z, &a, k, pred.narrow(1, c - 1, 1), cache);
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
