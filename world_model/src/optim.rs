//! AdamW written out over tensors, so its moments can be checkpointed and a resumed run continues
//! bit for bit (tch's optimiser keeps its state inside libtorch, out of reach).

use std::collections::BTreeMap;

use tch::{Kind, Tensor, nn};

use crate::OptimConfig;

pub struct AdamW {
    /// First and second moments by variable name.
    pub m: BTreeMap<String, Tensor>,
    pub v: BTreeMap<String, Tensor>,
    /// Updates applied so far (bias correction).
    pub t: u64,
}

impl AdamW {
    pub fn new(vs: &nn::VarStore) -> AdamW {
        let zeros =
            || vs.variables().into_iter().map(|(k, v)| (k, v.zeros_like())).collect::<BTreeMap<String, Tensor>>();
        AdamW { m: zeros(), v: zeros(), t: 0 }
    }

    /// Global L2 norm of the gradients of `vs`.
    pub fn grad_norm(vs: &nn::VarStore) -> f64 {
        let sq: f64 = vs
            .trainable_variables()
            .iter()
            .map(|p| {
                let g = p.grad();
                if g.defined() { g.square().sum(Kind::Float).double_value(&[]) } else { 0.0 }
            })
            .sum();
        sq.sqrt()
    }

    /// One update with learning rate `lr`; clips the global gradient norm first. Returns the norm
    /// before clipping. Weight decay applies to tensors of rank ≥ 2 only (not biases or norms),
    /// as nanoGPT does.
    pub fn step(&mut self, vs: &nn::VarStore, lr: f64, cfg: &OptimConfig) -> f64 {
        let norm = Self::grad_norm(vs);
        let scale = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip { cfg.grad_clip / (norm + 1e-6) } else { 1.0 };
        self.t += 1;
        let bc1 = 1.0 - cfg.beta1.powi(self.t as i32);
        let bc2 = 1.0 - cfg.beta2.powi(self.t as i32);
        tch::no_grad(|| {
            for (name, mut p) in vs.variables() {
                let g = p.grad();
                // The encoder and its two heads (inverse dynamics, shift) at their scaled rate. At rate 0 (the
                // frozen encoder) a tensor and its moments stay as they are, whatever gradient it
                // still holds from the encoder phase: a run resumed there holds none, and Adam's
                // momentum would otherwise move the head in one run and not the other.
                let trains_encoder =
                    name.starts_with("encoder.") || name.starts_with("inverse.") || name.starts_with("shift.");
                let lr = if trains_encoder { lr * cfg.encoder_lr_scale } else { lr };
                if !p.requires_grad() || !g.defined() || lr == 0.0 {
                    continue;
                }
                let g = g * scale;
                let m = self.m.get_mut(&name).expect("moments for every variable");
                m.copy_(&(&*m * cfg.beta1 + &g * (1.0 - cfg.beta1)));
                let v = self.v.get_mut(&name).expect("moments for every variable");
                v.copy_(&(&*v * cfg.beta2 + g.square() * (1.0 - cfg.beta2)));
                let update = (&*m / bc1) / ((&*v / bc2).sqrt() + cfg.eps);
                if p.dim() >= 2 && cfg.weight_decay > 0.0 {
                    p.copy_(&(&p * (1.0 - lr * cfg.weight_decay)));
                }
                p.copy_(&(&p - update * lr));
            }
        });
        norm
    }
}
