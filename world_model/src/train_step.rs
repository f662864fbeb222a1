//! One optimisation step: losses, backward, the gradient clip, AdamW, the EMA target and the
//! predictor's weight average, with the non-finite guard.

use tch::Tensor;

use crate::WorldModel;
use crate::config::Phase;
use crate::loss::{Clips, Counterfactual, LossTerms};
use crate::model::{Collapse, collapse_stats};

/// What one optimisation step did.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct StepReport {
    pub loss: f64,
    #[serde(flatten)]
    pub terms: LossTerms,
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
        let mut report =
            StepReport { loss, terms: parts.terms, grad_norm: f64::NAN, lr, momentum, skipped: true, collapse };
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
