//! The training losses: prediction (teacher-forced and rollout), the collapse guards (variance,
//! covariance), the counterfactual contrast, graded and shift terms, inverse dynamics.

use tch::{Kind, Tensor};

use crate::WorldModel;
use crate::config::Phase;

/// A batch of training clips: frames `[b, T, 3, H, W]`, or (with the encoder frozen) their
/// online and target latents `[b, T, P, D]`.
#[derive(Clone, Copy)]
pub enum Clips<'a> {
    Frames(&'a Tensor),
    Latents { online: &'a Tensor, target: &'a Tensor },
}

/// Each loss term of one batch, unweighted (0 for a term that is off or not computed in this
/// phase). One struct, so a new term is added in one place: the step report and the trainer's
/// metrics log carry it as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossTerms {
    /// The teacher-forced next-step prediction distance.
    pub teacher: f64,
    /// The autoregressive rollout's distance.
    pub rollout: f64,
    /// The variance hinge and the covariance penalty on the encoder's latents.
    pub variance: f64,
    pub covariance: f64,
    /// The counterfactual contrast on the encoder (0 without counterfactual frames). ln 2 ≈ 0.693
    /// means "cannot tell a frame from its counterfactual".
    pub contrast: f64,
    /// The graded counterfactual term (0 = distances exactly proportional to shifts).
    pub graded: f64,
    /// The inverse-dynamics MSE (0 when off, frozen, or with one frame per clip).
    pub inverse_dynamics: f64,
    /// The counterfactual shift MSE (0 when off, frozen, or without counterfactual frames).
    #[serde(default)]
    pub counterfactual_shift: f64,
}

/// The losses of one training batch.
#[derive(Debug)]
pub struct LossParts {
    /// The weighted sum to back-propagate.
    pub total: Tensor,
    pub terms: LossTerms,
    /// Target latents of the batch `[b, t, P, D]` (no grad), for collapse statistics.
    pub targets: Tensor,
}

/// Counterfactual views of a clip batch (or of one episode): `frames [.., T, 3, H, W]`, the same
/// moments drawn by the simulator with the cup and the paw moved, `shift [.., T]`, how far they
/// were moved in the table plane (metres; 0 where they could not be), and `moves [.., T, 4]`,
/// the moves themselves (cup Δx, Δz, paw Δx, Δz, metres).
pub struct Counterfactual {
    pub frames: Tensor,
    pub shift: Tensor,
    pub moves: Tensor,
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

impl WorldModel {
    /// The predictor's terms on a batch of clips' latents (online `z`, `targets`, `[b, t, P, D]`;
    /// actions `a [b, t, A]`): the teacher-forced predictions of frames 1..t, their distance to the
    /// targets, and the `rollout_steps`-step rollout's. Without `teacher_grad` the teacher-forced
    /// pass runs without autograd (still logged) and the rollout runs in full.
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
                self.rollout_cached(&z.narrow(1, 0, c), &a.narrow(1, 0, t - 1), k, first(), cache)
            }
            cache => {
                let first = cache.filter(|_| c <= window).map(|_| first());
                self.rollout_from(&z.narrow(1, 0, c), &targets.narrow(1, 0, c), &a.narrow(1, 0, t - 1), k, first)
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
        let (cf_enc, cf_metric, cf_moves) = match counterfactual.filter(|_| needed) {
            Some(cf) => {
                let cf_targets = self.encode_target(&cf.frames.flatten(0, 1)).reshape([b, t, p, d]);
                let contrast = |x: &Tensor, own: &Tensor, other: &Tensor| {
                    ((frame_l1(x, own) - frame_l1(x, other)) / l.contrast_tau).softplus().mean(Kind::Float)
                };
                let on_enc = if l.contrast > 0.0 { contrast(&z, &targets, &cf_targets) } else { zero() };
                let metric = if l.graded > 0.0 {
                    let dist = frame_l1(&z, &cf_targets); // [b, t]
                    let shift = cf.shift.to_device(self.device()).to_kind(Kind::Float);
                    let rel_dist = &dist / (dist.mean(Kind::Float).detach() + 1e-6);
                    let rel_shift = &shift / (shift.mean(Kind::Float) + 1e-6);
                    (rel_dist - rel_shift).square().mean(Kind::Float)
                } else {
                    zero()
                };
                let moves = match &self.shift_head {
                    Some(head) => {
                        let pairs = Tensor::cat(&[&z, &cf_targets], 2).flatten(2, 3);
                        let truth = cf.moves.to_device(self.device()).to_kind(Kind::Float) * 4.0;
                        pairs.apply(head).mse_loss(&truth, tch::Reduction::Mean)
                    }
                    None => zero(),
                };
                (on_enc, metric, moves)
            }
            None => (zero(), zero(), zero()),
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
            + &cf_enc * l.contrast
            + &cf_metric * l.graded
            + &inverse * l.inverse_dynamics
            + &cf_moves * l.counterfactual_shift;
        LossParts {
            total,
            terms: LossTerms {
                teacher: teacher.double_value(&[]),
                rollout: rollout.double_value(&[]),
                variance: variance.double_value(&[]),
                covariance: covariance.double_value(&[]),
                contrast: cf_enc.double_value(&[]),
                graded: cf_metric.double_value(&[]),
                inverse_dynamics: inverse.double_value(&[]),
                counterfactual_shift: cf_moves.double_value(&[]),
            },
            targets,
        }
    }
}
