//! Mixture-of-Experts feed-forward layer.
//!
//! Dimension letters: `t` tokens (batch and time flattened), `d` model width, `h` expert hidden
//! width, `E` experts, `k` experts per token.
//!
//! Router: softmax over `E`, keep the top `k`, renormalise their gates. Only the selected experts
//! compute for a token (gather with `index_select`, scatter back with `index_add`). Balancing:
//! Switch load-balancing loss `α·E·Σ f_i P_i`, router z-loss `mean(logsumexp(logits)²)`, optional
//! auxiliary-loss-free per-expert selection bias (DeepSeek-V3), optional capacity factor.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn, nn::Module};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoeConfig {
    pub d_model: i64,
    /// Hidden width of each expert MLP.
    pub d_hidden: i64,
    pub n_experts: i64,
    /// Experts per token.
    pub top_k: i64,
    /// An always-on expert every token also goes through (DeepSeekMoE).
    pub shared_expert: bool,
    /// Weight α of the Switch load-balancing loss.
    pub balance_loss_weight: f64,
    /// Weight of the router z-loss.
    pub z_loss_weight: f64,
    /// Auxiliary-loss-free balancing: a per-expert bias added to the scores for selection only.
    pub bias_balancing: bool,
    /// How far [`Moe::update_bias`] moves a bias per call.
    pub bias_update_rate: f64,
    /// Capacity per expert = ceil(tokens · k / E · factor); overflow tokens are dropped.
    pub capacity_factor: Option<f64>,
}

impl Default for MoeConfig {
    fn default() -> Self {
        MoeConfig {
            d_model: 256,
            d_hidden: 512,
            n_experts: 8,
            top_k: 2,
            shared_expert: false,
            balance_loss_weight: 0.01,
            z_loss_weight: 1e-3,
            bias_balancing: false,
            bias_update_rate: 1e-3,
            capacity_factor: None,
        }
    }
}

impl MoeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.d_model <= 0 || self.d_hidden <= 0 || self.n_experts <= 0 {
            return Err("moe.d_model, d_hidden and n_experts must be positive".into());
        }
        if !(1..=self.n_experts).contains(&self.top_k) {
            return Err(format!("moe.top_k = {} must be within 1..=n_experts ({})", self.top_k, self.n_experts));
        }
        if let Some(cf) = self.capacity_factor
            && !(cf.is_finite() && cf > 0.0)
        {
            return Err(format!("moe.capacity_factor = {cf} must be positive"));
        }
        Ok(())
    }
}

/// A two-layer SiLU MLP.
#[derive(Debug)]
pub struct Expert {
    up: nn::Linear,
    down: nn::Linear,
}

impl Expert {
    pub fn new(p: nn::Path, d: i64, h: i64) -> Expert {
        Expert {
            up: nn::linear(&p / "up", d, h, Default::default()),
            down: nn::linear(&p / "down", h, d, Default::default()),
        }
    }
}

impl Module for Expert {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.up).silu().apply(&self.down)
    }
}

/// Routing statistics of one forward pass, for logging.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MoeMetrics {
    /// Fraction of routed assignments per expert (sums to 1).
    pub load: Vec<f64>,
    /// Coefficient of variation of `load` (0 = perfectly balanced).
    pub load_cv: f64,
    /// Experts that received no token.
    pub dead_experts: usize,
    /// Mean entropy of the router's softmax (nats).
    pub router_entropy: f64,
    /// Assignments dropped by the capacity limit.
    pub dropped: usize,
    /// Token-expert evaluations actually computed (routed, not dropped); compute follows this.
    pub computed: usize,
}

pub struct MoeOutput {
    /// `[t, d]`.
    pub y: Tensor,
    /// Weighted balance loss + weighted z-loss (add to the training loss).
    pub aux_loss: Tensor,
    /// Unweighted Switch balance loss `E·Σ f_i P_i` (1 at uniform routing).
    pub balance_loss: Tensor,
    pub z_loss: Tensor,
    /// Selected experts `[t, k]` and their renormalised gates `[t, k]`.
    pub experts: Tensor,
    pub gates: Tensor,
    pub metrics: MoeMetrics,
}

#[derive(Debug)]
pub struct Moe {
    router: nn::Linear,
    experts: Vec<Expert>,
    shared: Option<Expert>,
    /// Selection bias per expert (no gradient; moved by `update_bias`).
    bias: Tensor,
    cfg: MoeConfig,
}

impl Moe {
    pub fn new(p: nn::Path, cfg: &MoeConfig) -> Moe {
        let router = nn::linear(
            &p / "router",
            cfg.d_model,
            cfg.n_experts,
            nn::LinearConfig { bias: false, ..Default::default() },
        );
        let experts = (0..cfg.n_experts).map(|i| Expert::new(&p / "experts" / i, cfg.d_model, cfg.d_hidden)).collect();
        let shared = cfg.shared_expert.then(|| Expert::new(&p / "shared", cfg.d_model, cfg.d_hidden));
        let bias = p.zeros_no_train("selection_bias", &[cfg.n_experts]);
        Moe { router, experts, shared, bias, cfg: cfg.clone() }
    }

    pub fn config(&self) -> &MoeConfig {
        &self.cfg
    }

    /// Router logits `[t, E]` (exposed for tests that force a routing).
    pub fn router_logits(&self, x: &Tensor) -> Tensor {
        x.apply(&self.router)
    }

    /// `x: [t, d]` → output and routing statistics.
    pub fn forward(&self, x: &Tensor) -> MoeOutput {
        self.forward_with_logits(x, &self.router_logits(x))
    }

    /// As `forward`, with given router logits `[t, E]`.
    pub fn forward_with_logits(&self, x: &Tensor, logits: &Tensor) -> MoeOutput {
        let (t, _) = x.size2().expect("x is [t, d]");
        let (n_e, k) = (self.cfg.n_experts, self.cfg.top_k);
        let probs = logits.softmax(-1, Kind::Float); // [t, E]
        let scores = if self.cfg.bias_balancing { &probs + &self.bias } else { probs.shallow_clone() };
        let (_, experts) = scores.topk(k, -1, true, true); // [t, k]
        let gates = probs.gather(1, &experts, false); // [t, k]
        let gates = &gates / gates.sum_dim_intlist(-1, true, Kind::Float);

        let capacity = self.cfg.capacity_factor.map(|cf| ((t * k) as f64 / n_e as f64 * cf).ceil() as i64);
        let mut y = x.zeros_like();
        let flat_experts = experts.flatten(0, 1); // [t·k], token-major: earlier tokens first
        let flat_gates = gates.flatten(0, 1);
        let mut counts = vec![0i64; n_e as usize];
        let (mut dropped, mut computed) = (0usize, 0usize);
        for (e, expert) in self.experts.iter().enumerate() {
            let mut slots = flat_experts.eq(e as i64).nonzero().squeeze_dim(-1); // [m] positions in t·k
            let mut m = slots.size()[0];
            counts[e] = m;
            if let Some(cap) = capacity
                && m > cap
            {
                dropped += (m - cap) as usize;
                slots = slots.narrow(0, 0, cap);
                m = cap;
            }
            if m == 0 {
                continue;
            }
            computed += m as usize;
            let tokens = slots.divide_scalar_mode(k, "floor"); // [m]
            let out = expert.forward(&x.index_select(0, &tokens)) * flat_gates.index_select(0, &slots).unsqueeze(-1);
            y = y.index_add(0, &tokens, &out);
        }
        if let Some(shared) = &self.shared {
            y += shared.forward(x);
        }

        // Switch loss: f_i = share of routed assignments, P_i = mean router probability.
        let total = (t * k) as f64;
        let f = Tensor::from_slice(&counts.iter().map(|&c| c as f32 / total as f32).collect::<Vec<_>>())
            .to_device(x.device());
        let p_mean = probs.mean_dim(0, false, Kind::Float); // [E]
        let balance_loss = (f * &p_mean).sum(Kind::Float) * n_e as f64;
        let z_loss = logits.logsumexp([-1], false).square().mean(Kind::Float);
        let aux_loss = &balance_loss * self.cfg.balance_loss_weight + &z_loss * self.cfg.z_loss_weight;

        let load: Vec<f64> = counts.iter().map(|&c| c as f64 / total).collect();
        let mean = 1.0 / n_e as f64;
        let var = load.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n_e as f64;
        let entropy = tch::no_grad(|| {
            -(&probs * probs.clamp_min(1e-12).log()).sum_dim_intlist(-1, false, Kind::Float).mean(Kind::Float)
        });
        let metrics = MoeMetrics {
            dead_experts: counts.iter().filter(|&&c| c == 0).count(),
            load_cv: var.sqrt() / mean,
            load,
            router_entropy: entropy.double_value(&[]),
            dropped,
            computed,
        };
        MoeOutput { y, aux_loss, balance_loss, z_loss, experts, gates, metrics }
    }

    /// Auxiliary-loss-free balancing step (no gradient): raise the bias of under-loaded experts
    /// and lower it for over-loaded ones, by `bias_update_rate · sign(mean load − load)`.
    pub fn update_bias(&mut self, metrics: &MoeMetrics) {
        let mean = 1.0 / self.cfg.n_experts as f64;
        let step: Vec<f32> =
            metrics.load.iter().map(|&l| ((mean - l).signum() * self.cfg.bias_update_rate) as f32).collect();
        let step = Tensor::from_slice(&step).to_device(self.bias.device());
        tch::no_grad(|| {
            let _ = self.bias.g_add_(&step);
        });
    }

    pub fn selection_bias(&self) -> Vec<f32> {
        Vec::<f32>::try_from(&self.bias.to_device(tch::Device::Cpu)).expect("float bias")
    }
}
