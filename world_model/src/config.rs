//! The world model's settings, one serde struct (unknown keys are refused, so typos are named).

use serde::{Deserialize, Serialize};

use crate::{Result, WmError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// Channels of the patchify stem, then of each 3×3 stage.
    pub channels: Vec<i64>,
    /// Strides: the stem's (its kernel too, as a ViT patch embedding), then each stage's (1 or 2).
    /// The patch grid side is `image_size / product(strides)`.
    pub strides: Vec<i64>,
    /// Width of one patch latent.
    pub latent_dim: i64,
    /// Append two coordinate channels (x, y in [-1, 1]) to the image (CoordConv), so features can
    /// say where inside a patch something is, not only which patch.
    pub coords: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        // A stride-1 stage at the stem's 16 × 16 grid before the two halvings, so the cup (3–5 px)
        // and the paw (2 px) keep cells of their own (experiments/2026-11-30-stride1).
        EncoderConfig { channels: vec![32, 32, 64, 128], strides: vec![4, 1, 2, 2], latent_dim: 64, coords: true }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictorConfig {
    pub width: i64,
    pub depth: i64,
    pub heads: i64,
    pub mlp_ratio: i64,
    /// Polyak average of the predictor's weights, the decay per predictor step (0.999 averages
    /// over ~1,000 steps; 0: off). Evaluation, `surprise` and the viewer predict with the average,
    /// which is steadier than the weights of any one step (experiments/2026-11-30-average).
    pub average: f64,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        PredictorConfig { width: 128, depth: 4, heads: 4, mlp_ratio: 4, average: 0.999 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Distance between predicted and target latents: `l1` (V-JEPA), `mse` (DINO-WM) or `huber`
    /// (L1 beyond `huber_beta`, quadratic below it). Because an unchanged patch is predicted
    /// exactly by the residual, L1's gradient there is sign noise of full size, which drowns
    /// the few patches that move; huber keeps L1's sharpness without that noise.
    pub distance: Distance,
    pub huber_beta: f64,
    /// Weight of the teacher-forced next-frame term.
    pub teacher: f64,
    /// Weight of the autoregressive rollout L1 (V-JEPA 2-AC, JEPA-WMs).
    pub rollout: f64,
    /// Weight of the variance hinge on the encoder's latents (VICReg/PLDM-style guard against
    /// collapse: every latent dimension keeps a standard deviation of at least `std_target`).
    pub variance: f64,
    pub std_target: f64,
    /// Weight of the off-diagonal covariance penalty (decorrelates latent dimensions).
    pub covariance: f64,
    /// Weight of the counterfactual contrast on the encoder: each frame's online latents closer
    /// to its own target latents than to those of its counterfactual, the same moment drawn by
    /// the simulator with the cup and the paw moved 3–25 cm (`gen --counterfactual`):
    /// `softplus((d(z, own) − d(z, counterfactual)) / tau)`, `d` the mean L1 over the frame's
    /// tokens. A latent-prediction loss alone lets the encoder drop a 3–4-pixel cup (what is not
    /// encoded need not be predicted); this term cannot be met without seeing it. 0 = off.
    pub contrast: f64,
    /// Temperature of the contrast, in units of mean L1 between latents.
    pub contrast_tau: f64,
    /// Weight of the graded counterfactual term on the encoder: each frame's latent distance to
    /// its counterfactual (mean L1 to its target latents), relative to the batch mean, should equal
    /// how far the cup was moved, relative to the batch mean:
    /// `mean((d_i / mean(d) − r_i / mean(r))²)`. The contrast alone is met by any feature that
    /// changes when the cup shifts (a hash of its position); asking distances to grow with the
    /// shift asks for a smooth code of where the cup is, which a linear map can read. 0 = off.
    pub graded: f64,
    /// Weight of an inverse-dynamics term on the encoder: a small head reads the action taken
    /// between two consecutive frames from their latents (MSE). The counterfactual terms make
    /// the encoder keep the cup but nothing asks it to keep the paw, and a predictor cannot
    /// foresee a push without knowing where the paw is; the action is what moves the paw.
    /// 0 = off (and no head: the checkpoint layout depends on it).
    pub inverse_dynamics: f64,
    /// Weight of a counterfactual shift term on the encoder: a small head reads how the cup and
    /// the paw were moved in the table plane (Δx, Δz each) from a frame's latents and its
    /// counterfactual's target latents (MSE, metres × 4). The counterfactual edit is to the
    /// companion what the action is to the next frame: the graded term asks only that distances
    /// grow with its length, this asks for its direction too. 0 = off (and no head).
    pub counterfactual_shift: f64,
}

impl LossConfig {
    /// True when a counterfactual term is on (the data must then carry counterfactual frames).
    pub fn uses_counterfactuals(&self) -> bool {
        self.contrast > 0.0 || self.graded > 0.0 || self.counterfactual_shift > 0.0
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            distance: Distance::Mse,
            huber_beta: 0.05,
            teacher: 1.0,
            rollout: 1.0,
            variance: 1.0,
            std_target: 0.5,
            covariance: 0.04,
            contrast: 0.0,
            contrast_tau: 0.02,
            graded: 0.0,
            inverse_dynamics: 0.0,
            counterfactual_shift: 0.0,
        }
    }
}

/// What a training step trains: the encoder alone (the first `encoder_steps`), or the predictor
/// (with the encoder frozen in the shipped recipe, or training along when `optim.encoder_lr_scale` > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Encoder,
    Predictor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    L1,
    Mse,
    Huber,
}

/// Target-encoder momentum, linear from `start` to `end` over the run (I-JEPA's schedule shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmaConfig {
    pub start: f64,
    pub end: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        EmaConfig { start: 0.99, end: 0.999 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip; 0 turns it off.
    pub grad_clip: f64,
    /// The encoder's learning rate relative to the predictor's while the predictor trains (0
    /// freezes it then: a fixed encoder, as V-JEPA 2-AC and DINO-WM train their predictors).
    /// It scales the inverse-dynamics head too, which trains only the encoder. During
    /// `encoder_steps` the encoder trains at the full rate.
    pub encoder_lr_scale: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 2e-3,
            min_lr: 1e-4,
            warmup_steps: 200,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            grad_clip: 1.0,
            encoder_lr_scale: 1.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WmConfig {
    pub image_size: i64,
    pub action_dim: i64,
    /// Frames per model step (DINO-WM's frameskip): the predictor sees every `frameskip`-th frame
    /// and, with each, the `frameskip` actions taken until the next one (concatenated), and
    /// predicts `frameskip` frames ahead: at 10 frames/s one frame moves a 4-pixel cup by a pixel
    /// or two, too little to foresee, and four frames move it enough
    /// (experiments/2026-11-30-frameskip). Horizons, rollouts and `clip_len` count model steps;
    /// 1: every frame.
    pub frameskip: i64,
    pub encoder: EncoderConfig,
    pub predictor: PredictorConfig,
    /// Frames per training clip. The predictor sees at most `clip_len − 1` frames of history.
    pub clip_len: i64,
    /// Steps of the autoregressive rollout loss, predicted from the first `clip_len − rollout_steps`
    /// real frames.
    pub rollout_steps: i64,
    pub batch_size: i64,
    pub steps: u64,
    /// Training clips that show the cup falling (its height 2 cm below where it started) are
    /// drawn this many times as often as others (1 = uniform). Falls are ~4% of clips.
    pub fall_weight: f64,
    /// Mirror each of the predictor's training clips left–right with probability ½ (frames
    /// flipped, the pusher's x velocity negated): the scene is symmetric about the camera's plane,
    /// so this doubles the distinct clips at no cost. The encoder phase's frames are not mirrored.
    pub mirror: bool,
    /// Steps, counted in `steps`, that train the encoder alone before the predictor starts: only
    /// the encoder's terms (variance, covariance, the counterfactual encoder terms) are taken and
    /// the predictor is not run, so a step costs a fraction of a full one. The learning-rate
    /// schedule (warm-up, cosine) runs once over these steps and again over the rest. 0: encoder
    /// and predictor train together from the start.
    pub encoder_steps: u64,
    /// Frames per step in the encoder phase, each drawn from its own place in the data (0: as
    /// many as a batch of clips holds, `batch_size × clip_len`). Smaller batches give more steps
    /// in the same time.
    pub encoder_batch: i64,
    pub loss: LossConfig,
    pub ema: EmaConfig,
    pub optim: OptimConfig,
    pub seed: u64,
}

/// Lays `over` onto `base` key by key (objects merge, anything else replaces); a key that `base`
/// does not have is refused with its dotted path.
/// Writes `over`'s keys onto `base` (JSON objects, recursively); a key `base` lacks is an error
/// naming it and the keys known there. How every config overlay file is applied.
pub fn overlay(base: &mut serde_json::Value, over: &serde_json::Value, path: &str) -> Result<()> {
    use serde_json::Value;
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let key = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get_mut(k) {
                    Some(slot) => overlay(slot, v, &key)?,
                    None => {
                        let known: Vec<&str> = b.keys().map(String::as_str).collect();
                        return Err(WmError::Config(format!("{key}: unknown key (known here: {})", known.join(", "))));
                    }
                }
            }
            Ok(())
        }
        (slot, v) => {
            if slot.is_object() && !v.is_object() {
                return Err(WmError::Config(format!("{path}: a section; give its keys, e.g. {path}.KEY")));
            }
            *slot = v.clone();
            Ok(())
        }
    }
}

/// The overlay that turns the counterfactual terms off (see [`WmConfig::without_counterfactuals`]).
pub const NO_COUNTERFACTUALS: &str = include_str!("../../assets/world_model/no-counterfactuals.json");

impl Default for WmConfig {
    fn default() -> Self {
        WmConfig::preset("small").expect("built-in preset")
    }
}

impl WmConfig {
    /// The shipped recipe at two sizes: `small` (the main job on a 2-core CPU) and `tiny` (CI:
    /// seconds), the same switches at a fraction of the width and steps.
    ///
    /// The recipe is encoder first: `encoder_steps` steps of 64 frames train the encoder alone on
    /// the counterfactual contrast, the graded and shift terms and inverse dynamics, then the predictor trains
    /// on the frozen encoder (as V-JEPA 2-AC and DINO-WM train predictors on fixed encoders) for
    /// the rest of `steps`. The JEPA terms alone let the encoder drop a 3–4-pixel cup; this way
    /// the cup's place is learnt first (experiments/2026-11-29-encoder-first). It needs
    /// counterfactual data (`gen --counterfactual`); `assets/world_model/no-counterfactuals.json`
    /// turns those terms off for data without it.
    pub fn preset(name: &str) -> Result<WmConfig> {
        let base = WmConfig {
            image_size: 64,
            action_dim: 2,
            frameskip: 4,
            encoder: EncoderConfig::default(),
            predictor: PredictorConfig::default(),
            // Short clips buy more predictor steps in the same time (experiments/2026-11-30-context);
            // more than 4,000 steps bought nothing measurable (experiments/2026-11-30-latent-cache).
            clip_len: 4,
            rollout_steps: 2,
            batch_size: 32,
            // The probe reads the cup and the paw to R² ≥ 0.95 only after ~15,000 encoder steps
            // (experiments/2026-12-01-table-camera); then 4,000 predictor steps.
            steps: 15_000 + 4_000,
            // Falls are what levitate asks about and few clips hold one
            // (experiments/2026-11-30-frameskip).
            fall_weight: 8.0,
            // Mirrored clips double the distinct clips, and held-out prediction stops worsening
            // with training (experiments/2026-11-30-mirror).
            mirror: true,
            encoder_steps: 15_000,
            encoder_batch: 64,
            // The predictor learns the mean next latent (DINO-WM's loss) rather than the median
            // (V-JEPA's L1): when a fall or a push is uncertain the median bets on "no move", which
            // makes the cup that does move the surprising twin (experiments/2026-11-30-mirror).
            // The shift head makes the encoder keep the cup and the paw ~1.5–2× more precisely
            // at equal steps (experiments/2026-12-08-fine-shifts).
            loss: LossConfig {
                contrast: 1.0,
                graded: 1.0,
                contrast_tau: 0.005,
                inverse_dynamics: 1.0,
                counterfactual_shift: 1.0,
                ..LossConfig::default()
            },
            ema: EmaConfig::default(),
            optim: OptimConfig { encoder_lr_scale: 0.0, ..OptimConfig::default() },
            seed: 0,
        };
        match name {
            "small" => Ok(base),
            // `small` narrowed and shortened; every switch as shipped, so CI runs the shipped path.
            "tiny" => Ok(WmConfig {
                encoder: EncoderConfig { channels: vec![8, 8, 16, 16], latent_dim: 16, ..base.encoder.clone() },
                predictor: PredictorConfig {
                    width: 32,
                    depth: 1,
                    heads: 2,
                    mlp_ratio: 2,
                    average: 0.9,
                    ..base.predictor.clone()
                },
                batch_size: 4,
                encoder_steps: 60,
                steps: 60 + 20,
                optim: OptimConfig { warmup_steps: 2, ..base.optim.clone() },
                ..base
            }),
            other => Err(WmError::Config(format!("unknown preset {other:?} (known: tiny, small)"))),
        }
    }

    /// A named preset with `overrides` (a JSON object, as a config file holds) laid over it key
    /// by key: a partial section changes only the keys it names, and an unknown key is refused
    /// by its path. The caller validates once every override is in.
    pub fn preset_with(name: &str, overrides: &serde_json::Value) -> Result<WmConfig> {
        WmConfig::preset(name)?
            .with_overrides(overrides)
            .map_err(|e| WmError::Config(format!("over preset {name}: {e}")))
    }

    /// `overrides` (a JSON object) laid over this config key by key, as [`WmConfig::preset_with`].
    pub fn with_overrides(&self, overrides: &serde_json::Value) -> Result<WmConfig> {
        let mut merged = serde_json::to_value(self).map_err(|e| WmError::Config(e.to_string()))?;
        overlay(&mut merged, overrides, "")?;
        serde_json::from_value(merged).map_err(|e| WmError::Config(e.to_string()))
    }

    /// This config without the counterfactual terms, for data that has no counterfactual frames
    /// (`train-wm --live`): encoder and predictor train together on the JEPA terms from the
    /// start. The overlay is the shipped `assets/world_model/no-counterfactuals.json`. Its encoder
    /// may drop the cup (experiments/2026-11-29-encoder-first).
    pub fn without_counterfactuals(&self) -> WmConfig {
        let overlay: serde_json::Value = serde_json::from_str(NO_COUNTERFACTUALS).expect("the shipped overlay is JSON");
        self.with_overrides(&overlay).expect("the shipped overlay names known keys")
    }

    /// Sets one key from a `a.b=value` string (`value` as JSON, or else a string), as `--set`
    /// gives it: an unknown key or a value of the wrong type is refused by name.
    pub fn set(&self, assignment: &str) -> Result<WmConfig> {
        let (path, value) = assignment
            .split_once('=')
            .ok_or_else(|| WmError::Config(format!("{assignment:?}: expected KEY=VALUE, e.g. predictor.depth=2")))?;
        let value: serde_json::Value =
            serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        let mut tree = value;
        for key in path.rsplit('.') {
            tree = serde_json::json!({ key: tree });
        }
        let mut merged = serde_json::to_value(self).map_err(|e| WmError::Config(e.to_string()))?;
        overlay(&mut merged, &tree, "")?;
        serde_json::from_value(merged).map_err(|e| WmError::Config(format!("{path}: {e}")))
    }

    /// Frames per step of the encoder phase.
    pub fn encoder_batch_frames(&self) -> i64 {
        if self.encoder_batch > 0 { self.encoder_batch } else { self.batch_size * self.clip_len }
    }

    /// Width of one model step's action: the `frameskip` frames' actions side by side.
    pub fn step_action_dim(&self) -> i64 {
        self.action_dim * self.frameskip
    }

    /// Frames a training clip of `clip_len` model steps spans.
    pub fn clip_frames(&self) -> i64 {
        (self.clip_len - 1) * self.frameskip + 1
    }

    /// Side of the square patch grid.
    pub fn grid(&self) -> i64 {
        self.image_size / self.encoder.strides.iter().product::<i64>().max(1)
    }

    /// Tokens per frame: the patch grid.
    pub fn tokens_per_frame(&self) -> i64 {
        self.grid() * self.grid()
    }

    /// The longest history the predictor is trained on (its positional table's length).
    pub fn max_frames(&self) -> i64 {
        self.clip_len
    }

    /// Checks every key; the error names it and its value.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(WmError::Config(format!("{key}: {why}")));
        if self.steps == 0 {
            return bad("steps", "0 must be positive".into());
        }
        if self.image_size <= 0 {
            return bad("image_size", format!("{} must be positive", self.image_size));
        }
        if !(self.fall_weight.is_finite() && (1.0..=1000.0).contains(&self.fall_weight)) {
            return bad("fall_weight", format!("{} must be within 1..=1000", self.fall_weight));
        }
        let e = &self.encoder;
        if e.channels.is_empty() || e.channels.len() != e.strides.len() {
            return bad(
                "encoder.strides",
                format!("{:?} must give one stride per entry of encoder.channels {:?}", e.strides, e.channels),
            );
        }
        if e.strides.iter().any(|&s| s < 1) || e.strides[1..].iter().any(|&s| s > 2) {
            return bad("encoder.strides", format!("{:?}: the stem's must be ≥ 1, the stages' 1 or 2", e.strides));
        }
        let total: i64 = e.strides.iter().product();
        if self.image_size <= 0 || self.image_size % total != 0 {
            return bad(
                "image_size",
                format!(
                    "{} is not divisible by {total}, the product of encoder.strides {:?}",
                    self.image_size, e.strides
                ),
            );
        }
        // Upper bounds far above any model this project trains, so a mistyped digit is refused
        // here instead of failing an allocation inside libtorch.
        let sizes = [
            ("action_dim", self.action_dim, 64),
            ("encoder.latent_dim", self.encoder.latent_dim, 4096),
            ("predictor.width", self.predictor.width, 4096),
            ("predictor.depth", self.predictor.depth, 64),
            ("predictor.heads", self.predictor.heads, 64),
            ("predictor.mlp_ratio", self.predictor.mlp_ratio, 16),
            ("batch_size", self.batch_size, 4096),
            ("image_size", self.image_size, 1024),
            ("clip_len", self.clip_len, 256),
            ("encoder_batch", self.encoder_batch.max(1), 65_536),
        ];
        for (key, v, max) in sizes {
            if !(1..=max).contains(&v) {
                return bad(key, format!("{v} must be within 1..={max}"));
            }
        }
        if self.encoder.channels.iter().any(|&c| !(1..=4096).contains(&c)) {
            return bad("encoder.channels", format!("{:?} must each be within 1..=4096", self.encoder.channels));
        }
        if e.strides[0] > 64 {
            return bad("encoder.strides", format!("{:?}: the stem's must be at most 64", e.strides));
        }
        if self.predictor.width % self.predictor.heads != 0 {
            return bad(
                "predictor.heads",
                format!("{} does not divide predictor.width {}", self.predictor.heads, self.predictor.width),
            );
        }
        if !(self.predictor.average.is_finite() && (0.0..1.0).contains(&self.predictor.average)) {
            return bad("predictor.average", format!("{} must be within [0, 1)", self.predictor.average));
        }
        if !(1..=16).contains(&self.frameskip) {
            return bad("frameskip", format!("{} must be within 1..=16 frames per model step", self.frameskip));
        }
        if self.clip_len < 2 {
            return bad("clip_len", format!("{} must be at least 2", self.clip_len));
        }
        if self.rollout_steps < 0 || self.rollout_steps >= self.clip_len {
            return bad("rollout_steps", format!("{} must be in [0, clip_len {})", self.rollout_steps, self.clip_len));
        }
        if self.encoder_batch < 0 {
            return bad(
                "encoder_batch",
                format!("{} must be 0 (batch_size × clip_len) or positive", self.encoder_batch),
            );
        }
        if self.encoder_steps >= self.steps {
            return bad(
                "encoder_steps",
                format!("{} must be below steps {} (the predictor trains after them)", self.encoder_steps, self.steps),
            );
        }
        if !(0.0..=1.0).contains(&self.ema.start) || !(0.0..=1.0).contains(&self.ema.end) {
            return bad("ema", format!("start {} and end {} must be in [0, 1]", self.ema.start, self.ema.end));
        }
        let nonneg = [
            ("loss.teacher", self.loss.teacher),
            ("loss.rollout", self.loss.rollout),
            ("loss.variance", self.loss.variance),
            ("loss.std_target", self.loss.std_target),
            ("loss.covariance", self.loss.covariance),
            ("loss.contrast", self.loss.contrast),
            ("loss.graded", self.loss.graded),
            ("loss.inverse_dynamics", self.loss.inverse_dynamics),
            ("loss.counterfactual_shift", self.loss.counterfactual_shift),
            ("optim.weight_decay", self.optim.weight_decay),
            ("optim.grad_clip", self.optim.grad_clip),
            ("optim.encoder_lr_scale", self.optim.encoder_lr_scale),
        ];
        for (key, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("{v} must be a finite number >= 0"));
            }
        }
        if !(self.loss.contrast_tau.is_finite() && self.loss.contrast_tau > 0.0) {
            return bad("loss.contrast_tau", format!("{} must be positive", self.loss.contrast_tau));
        }
        if !(self.loss.huber_beta.is_finite() && self.loss.huber_beta > 0.0) {
            return bad("loss.huber_beta", format!("{} must be positive", self.loss.huber_beta));
        }
        if !(self.optim.eps.is_finite() && self.optim.eps > 0.0) {
            return bad("optim.eps", format!("{} must be positive", self.optim.eps));
        }
        if !(self.optim.min_lr.is_finite() && self.optim.min_lr <= self.optim.lr) {
            return bad("optim.min_lr", format!("{} must be within 0..=optim.lr {}", self.optim.min_lr, self.optim.lr));
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0 && self.optim.min_lr >= 0.0) {
            return bad("optim.lr", format!("{} (min_lr {}) must be positive", self.optim.lr, self.optim.min_lr));
        }
        if !(0.0..1.0).contains(&self.optim.beta1) || !(0.0..1.0).contains(&self.optim.beta2) {
            return bad("optim.beta1/beta2", format!("{}, {} must be in [0, 1)", self.optim.beta1, self.optim.beta2));
        }
        Ok(())
    }

    /// Which phase `step` is in.
    pub fn phase_at(&self, step: u64) -> Phase {
        if step < self.encoder_steps { Phase::Encoder } else { Phase::Predictor }
    }

    /// Whether the encoder is frozen in `phase`: the predictor trains on it (`optim.encoder_lr_scale`
    /// 0). Its EMA target is frozen with it, so both encoders' latents of a frame never change.
    pub fn encoder_frozen_in(&self, phase: Phase) -> bool {
        phase == Phase::Predictor && self.optim.encoder_lr_scale == 0.0
    }

    /// Whether training needs counterfactual frames: a counterfactual term is on and the encoder
    /// trains at some point (a predictor on a given, frozen encoder needs none).
    pub fn needs_counterfactual_data(&self) -> bool {
        self.loss.uses_counterfactuals() && !(self.encoder_steps == 0 && self.encoder_frozen_in(Phase::Predictor))
    }

    /// [`WmConfig::encoder_frozen_in`] the phase of `step`.
    pub fn encoder_frozen_at(&self, step: u64) -> bool {
        self.encoder_frozen_in(self.phase_at(step))
    }

    /// Whether a training step at `step` can take its clips as latents computed once (see
    /// `WorldModel::train_step_on`): the encoder is frozen.
    pub fn latents_cacheable_at(&self, step: u64) -> bool {
        self.encoder_frozen_at(step)
    }

    /// Learning rate at `step`: linear warm-up, then cosine decay to `min_lr`, once over the
    /// encoder phase and once over the rest.
    pub fn lr_at(&self, step: u64) -> f64 {
        let o = &self.optim;
        let (step, steps) = match self.phase_at(step) {
            Phase::Encoder => (step, self.encoder_steps),
            Phase::Predictor => (step - self.encoder_steps, self.steps - self.encoder_steps),
        };
        if step < o.warmup_steps {
            return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = steps.saturating_sub(o.warmup_steps).max(1) as f64;
        let t = ((step - o.warmup_steps) as f64 / span).min(1.0);
        o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }

    /// Target-encoder momentum at `step`.
    pub fn ema_at(&self, step: u64) -> f64 {
        let t = (step as f64 / self.steps.max(1) as f64).min(1.0);
        self.ema.start + (self.ema.end - self.ema.start) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_config_is_the_preset() {
        for name in ["tiny", "small"] {
            assert_eq!(WmConfig::preset_with(name, &json!({})).unwrap(), WmConfig::preset(name).unwrap(), "{name}");
        }
        let plain: WmConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(plain, WmConfig::preset("small").unwrap());
    }

    #[test]
    fn a_one_key_override_changes_that_key_only() {
        let small = WmConfig::preset("small").unwrap();
        let cfg = WmConfig::preset_with("small", &json!({"predictor": {"depth": 2}})).unwrap();
        assert_eq!(cfg.predictor.depth, 2);
        assert_eq!(
            WmConfig { predictor: PredictorConfig { depth: small.predictor.depth, ..cfg.predictor.clone() }, ..cfg },
            small
        );
        let cfg = WmConfig::preset_with("small", &json!({"loss": {"rollout": 2.0}})).unwrap();
        assert_eq!((cfg.loss.rollout, cfg.loss.distance), (2.0, Distance::Mse));
        assert_eq!(WmConfig { loss: LossConfig { rollout: small.loss.rollout, ..cfg.loss.clone() }, ..cfg }, small);
        // A partial section serde reads on its own keeps the preset's other keys too.
        let cfg: WmConfig = serde_json::from_str(r#"{"predictor": {"depth": 2}}"#).unwrap();
        assert_eq!(cfg.predictor.average, small.predictor.average);
        let tiny = WmConfig::preset("tiny").unwrap();
        let set = tiny.set("optim.lr=0.01").unwrap();
        assert_eq!(WmConfig { optim: OptimConfig { lr: tiny.optim.lr, ..set.optim.clone() }, ..set }, tiny);
        assert_eq!(tiny.set("loss.distance=l1").unwrap().loss.distance, Distance::L1);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_name() {
        let e = WmConfig::preset_with("small", &json!({"predictor": {"dept": 2}})).unwrap_err().to_string();
        assert!(e.contains("predictor.dept: unknown key"), "{e}");
        let e = WmConfig::preset("tiny").unwrap().set("optim.lr=fast").unwrap_err().to_string();
        assert!(e.contains("optim.lr"), "{e}");
        let e = WmConfig::preset("tiny").unwrap().set("loss=1").unwrap_err().to_string();
        assert!(e.contains("loss: a section"), "{e}");
        let e = WmConfig::preset("tiny").unwrap().set("steps").unwrap_err().to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
    }
}
