//! The three solvers. Each takes the plan to start from (`[H, W]`), the action bound, the
//! planner's generator and `score` (candidates `[N, H, W]` → energies `[N]`), and returns the plan
//! it found and how many candidates it scored.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::{AgentError, Result};

type Score<'a> = &'a dyn Fn(&Tensor) -> Tensor;

fn bad(key: &str, why: String) -> Result<()> {
    Err(AgentError::Config(format!("planner {key}: {why}")))
}

/// The sampling budget CEM and MPPI share.
fn sampling(samples: i64, elites: i64, iterations: usize) -> Result<()> {
    if !(2..=65_536).contains(&samples) {
        return bad("samples", format!("{samples} must be within 2..=65536"));
    }
    if !(1..=samples).contains(&elites) {
        return bad("elites", format!("{elites} must be within 1..=samples ({samples})"));
    }
    if !(1..=1000).contains(&iterations) {
        return bad("iterations", format!("{iterations} must be within 1..=1000"));
    }
    Ok(())
}

/// Cross-entropy method: sample around a Gaussian, refit it to the elites, repeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CemConfig {
    pub samples: i64,
    pub elites: i64,
    pub iterations: usize,
    /// The first iteration's standard deviation, in units of the action bound.
    pub init_std: f64,
    /// Weight of the old mean and deviation in each refit (0: the elites' alone).
    pub momentum: f64,
}

impl Default for CemConfig {
    fn default() -> Self {
        CemConfig { samples: 64, elites: 8, iterations: 3, init_std: 0.5, momentum: 0.1 }
    }
}

impl CemConfig {
    pub fn validate(&self) -> Result<()> {
        sampling(self.samples, self.elites, self.iterations)?;
        if !(self.init_std.is_finite() && self.init_std > 0.0) {
            return bad("init_std", format!("{} must be positive", self.init_std));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("{} must be within [0, 1)", self.momentum));
        }
        Ok(())
    }
}

/// Model-predictive path integral: the new mean is the elites' average weighted by
/// `exp(−energy / temperature)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MppiConfig {
    pub samples: i64,
    pub elites: i64,
    pub iterations: usize,
    /// Sampling standard deviation, in units of the action bound.
    pub noise_std: f64,
    /// In units of energy: small follows the best elite, large averages them evenly.
    pub temperature: f64,
}

impl Default for MppiConfig {
    fn default() -> Self {
        MppiConfig { samples: 64, elites: 16, iterations: 3, noise_std: 0.5, temperature: 0.01 }
    }
}

impl MppiConfig {
    pub fn validate(&self) -> Result<()> {
        sampling(self.samples, self.elites, self.iterations)?;
        if !(self.noise_std.is_finite() && self.noise_std > 0.0) {
            return bad("noise_std", format!("{} must be positive", self.noise_std));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", format!("{} must be positive", self.temperature));
        }
        Ok(())
    }
}

/// Gradient descent on the action sequence through the dynamics (Adam), from `restarts` starts
/// optimised side by side: the warm start and noisy copies of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GdConfig {
    pub restarts: i64,
    pub steps: usize,
    pub lr: f64,
    /// Noise on the restarts' starts, in units of the action bound.
    pub init_std: f64,
}

impl Default for GdConfig {
    fn default() -> Self {
        GdConfig { restarts: 8, steps: 10, lr: 0.1, init_std: 0.3 }
    }
}

impl GdConfig {
    pub fn validate(&self) -> Result<()> {
        if !(1..=4096).contains(&self.restarts) {
            return bad("restarts", format!("{} must be within 1..=4096", self.restarts));
        }
        if !(1..=10_000).contains(&self.steps) {
            return bad("steps", format!("{} must be within 1..=10000", self.steps));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} must be positive", self.lr));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return bad("init_std", format!("{} must be 0 or positive", self.init_std));
        }
        Ok(())
    }
}

/// Standard normal draws from the planner's generator (Box–Muller), shaped `shape`.
fn normals(rng: &mut ChaCha8Rng, shape: &[i64], like: &Tensor) -> Tensor {
    let n: i64 = shape.iter().product();
    let mut v = Vec::with_capacity(n as usize);
    while (v.len() as i64) < n {
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
        let r = (-2.0 * u1.ln()).sqrt();
        v.push((r * (std::f64::consts::TAU * u2).cos()) as f32);
        v.push((r * (std::f64::consts::TAU * u2).sin()) as f32);
    }
    v.truncate(n as usize);
    Tensor::from_slice(&v).reshape(shape).to_device(like.device())
}

/// Candidates around `mean [H, W]`: the mean itself first, then `n − 1` draws with `std`.
fn around(mean: &Tensor, std: &Tensor, n: i64, bound: f64, rng: &mut ChaCha8Rng) -> Tensor {
    let (h, w) = (mean.size()[0], mean.size()[1]);
    let noisy = mean.unsqueeze(0) + std.unsqueeze(0) * normals(rng, &[n - 1, h, w], mean);
    Tensor::cat(&[mean.unsqueeze(0), noisy], 0).clamp(-bound, bound)
}

/// The `k` lowest energies' indices, lowest first.
fn lowest(energies: &Tensor, k: i64) -> Tensor {
    energies.topk(k, 0, false, true).1
}

pub(crate) fn cem(c: &CemConfig, start: &Tensor, bound: f64, rng: &mut ChaCha8Rng, score: Score) -> (Tensor, usize) {
    tch::no_grad(|| {
        let mut mean = start.shallow_clone();
        let mut std = start.full_like(c.init_std * bound);
        let (mut best, mut best_energy) = (start.shallow_clone(), f64::INFINITY);
        for _ in 0..c.iterations {
            let samples = around(&mean, &std, c.samples, bound, rng);
            let energies = score(&samples).nan_to_num(f64::INFINITY, None, None);
            let idx = lowest(&energies, c.elites);
            let top = energies.double_value(&[idx.int64_value(&[0])]);
            if top < best_energy {
                (best, best_energy) = (samples.select(0, idx.int64_value(&[0])), top);
            }
            let elites = samples.index_select(0, &idx);
            let (e_mean, e_std) = (elites.mean_dim(0, false, Kind::Float), elites.std_dim(0, false, false));
            mean = &mean * c.momentum + e_mean * (1.0 - c.momentum);
            std = &std * c.momentum + e_std * (1.0 - c.momentum);
        }
        // The best candidate scored, not the last mean, which was never imagined.
        (best, c.iterations * c.samples as usize)
    })
}

/// MPPI's weights over the `elites` lowest `energies [N]`: `softmax(−(e − min) / temperature)`.
/// Returns the elites' indices and their weights (which sum to 1).
pub fn mppi_weights(energies: &Tensor, temperature: f64, elites: i64) -> (Tensor, Tensor) {
    let idx = lowest(energies, elites);
    let e = energies.index_select(0, &idx);
    let w = ((e.min() - &e) / temperature).softmax(0, Kind::Float);
    (idx, w)
}

pub(crate) fn mppi(c: &MppiConfig, start: &Tensor, bound: f64, rng: &mut ChaCha8Rng, score: Score) -> (Tensor, usize) {
    tch::no_grad(|| {
        let mut mean = start.shallow_clone();
        let std = start.full_like(c.noise_std * bound);
        for _ in 0..c.iterations {
            let samples = around(&mean, &std, c.samples, bound, rng);
            let energies = score(&samples).nan_to_num(f64::INFINITY, None, None);
            let (idx, w) = mppi_weights(&energies, c.temperature, c.elites);
            let elites = samples.index_select(0, &idx);
            mean = (elites * w.view([-1, 1, 1])).sum_dim_intlist(&[0i64][..], false, Kind::Float);
        }
        (mean, c.iterations * c.samples as usize)
    })
}

pub(crate) fn gd(c: &GdConfig, start: &Tensor, bound: f64, rng: &mut ChaCha8Rng, score: Score) -> (Tensor, usize) {
    let (h, w) = (start.size()[0], start.size()[1]);
    let noise = normals(rng, &[c.restarts - 1, h, w], start) * (c.init_std * bound);
    let init = Tensor::cat(&[start.unsqueeze(0), start.unsqueeze(0) + noise], 0).clamp(-bound, bound);
    let mut x = init.detach().set_requires_grad(true);
    let (mut m, mut v) = (x.zeros_like(), x.zeros_like());
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    for t in 1..=c.steps {
        let energies = score(&x);
        let grad = Tensor::run_backward(&[energies.sum(Kind::Float)], &[&x], false, false).remove(0);
        tch::no_grad(|| {
            let grad = grad.nan_to_num(0.0, None, None);
            m = &m * b1 + &grad * (1.0 - b1);
            v = &v * b2 + grad.square() * (1.0 - b2);
            let m_hat = &m / (1.0 - b1.powi(t as i32));
            let v_hat = &v / (1.0 - b2.powi(t as i32));
            let step = m_hat / (v_hat.sqrt() + eps) * c.lr;
            x -= step;
            let _ = x.clamp_(-bound, bound);
        });
    }
    // The last update was not scored yet: score every restart once more and keep the best.
    let final_energies = tch::no_grad(|| score(&x.detach()).nan_to_num(f64::INFINITY, None, None));
    let best = final_energies.argmin(0, false).int64_value(&[]);
    (x.detach().select(0, best), (c.steps + 1) * c.restarts as usize)
}
