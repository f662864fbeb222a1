//! `MambaMoePolicy`: per step an observation embedding, the previous action and a goal embedding
//! go through a Mamba backbone (or, for the ablation, causal attention of the same width and
//! depth); Mixture-of-Experts heads give a tanh-squashed Gaussian over the 2-D pusher velocity
//! and a value estimate.
//!
//! Dimension letters: `b` batch, `l` time, `o` observation embedding, `g` goal embedding,
//! `a` action, `d` model width.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use crate::attention::{AttentionBlock, KvCache};
use crate::mamba::{BlockState, Mamba, MambaConfig, RmsNorm, Scan};
use crate::moe::{Moe, MoeConfig, MoeMetrics};
use crate::{AgentError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub obs_dim: i64,
    pub goal_dim: i64,
    pub action_dim: i64,
    pub mamba: MambaConfig,
    /// The head MoE; its `d_model` is overwritten by `mamba.d_model`.
    pub moe: MoeConfig,
    pub log_std_min: f64,
    pub log_std_max: f64,
    /// What the head's router reads to choose experts.
    pub routing: Routing,
    /// The sequence model: Mamba, or attention for the ablation (`mamba.d_model` and
    /// `mamba.n_layers` give either its width and depth).
    pub backbone: Backbone,
}

/// The sequence model the policy's steps go through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// Mamba blocks: a constant-size state carries the episode.
    #[default]
    Mamba,
    /// Causal self-attention blocks (4 heads; the causal mask gives the order, no positional
    /// encoding) with a KV cache that grows with the episode: the ablation's contrast.
    Attention,
}

/// Heads of the attention backbone.
const ATTENTION_HEADS: i64 = 4;

/// What the MoE head's router reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Each step's hidden state (token-level routing).
    Token,
    /// The goal image's features, projected: one choice of experts per goal, held for the
    /// episode (task-level routing, as Task-MoE routes by task). With token routing the top-1
    /// expert collapsed to one for both tasks (experiments/2026-12-07-policy).
    Goal,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            obs_dim: 64,
            goal_dim: 16,
            action_dim: 2,
            mamba: MambaConfig { d_model: 128, n_layers: 2, ..Default::default() },
            moe: MoeConfig { d_model: 128, d_hidden: 256, n_experts: 4, top_k: 2, ..Default::default() },
            log_std_min: -5.0,
            log_std_max: 1.0,
            routing: Routing::Goal,
            backbone: Backbone::Mamba,
        }
    }
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<()> {
        self.mamba.validate().map_err(AgentError::Config)?;
        self.moe.validate().map_err(AgentError::Config)?;
        if self.obs_dim <= 0 || self.goal_dim < 0 || self.action_dim <= 0 {
            return Err(AgentError::Config("obs_dim and action_dim must be positive, goal_dim non-negative".into()));
        }
        if self.routing == Routing::Goal && self.goal_dim == 0 {
            return Err(AgentError::Config("routing \"goal\" needs a goal (goal_dim above 0)".into()));
        }
        if self.backbone == Backbone::Attention && self.mamba.d_model % ATTENTION_HEADS != 0 {
            return Err(AgentError::Config(format!(
                "backbone \"attention\" needs mamba.d_model ({}) divisible by its {ATTENTION_HEADS} heads",
                self.mamba.d_model
            )));
        }
        if self.log_std_min >= self.log_std_max {
            return Err(AgentError::Config("log_std_min must be below log_std_max".into()));
        }
        Ok(())
    }
}

pub struct PolicyOutput {
    /// Pre-squash Gaussian mean and log-std: `[b, l, a]` (or `[b, a]` from `step`).
    pub mean: Tensor,
    pub log_std: Tensor,
    /// `[b, l]` (or `[b]`).
    pub value: Tensor,
    /// MoE balancing losses to add to the training loss.
    pub aux_loss: Tensor,
    pub moe: MoeMetrics,
    /// The experts each step was routed to, best first: `[b, l, k]` (or `[b, k]`).
    pub experts: Tensor,
}

impl PolicyOutput {
    /// The deterministic action `tanh(mean)` in `[-1, 1]`.
    pub fn mode(&self) -> Tensor {
        self.mean.tanh()
    }

    /// A squashed sample and its log-probability (tanh change of variables).
    pub fn sample(&self) -> (Tensor, Tensor) {
        let std = self.log_std.exp();
        let pre = &self.mean + &std * self.mean.randn_like();
        let action = pre.tanh();
        let log_prob = Self::gaussian_log_prob(&pre, &self.mean, &self.log_std)
            - (action.square().neg() + (1.0 + 1e-6)).log().sum_dim_intlist(-1, false, Kind::Float);
        (action, log_prob)
    }

    fn gaussian_log_prob(x: &Tensor, mean: &Tensor, log_std: &Tensor) -> Tensor {
        let z = (x - mean) / log_std.exp();
        (z.square() * -0.5 - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum_dim_intlist(-1, false, Kind::Float)
    }
}

#[derive(Debug)]
struct GoalRouter {
    center: Tensor,
    proj: nn::Linear,
    keys: Tensor,
}

/// Width of the goal router's space, and its temperature: cosine logits lie in ±1/τ.
const ROUTE_DIM: i64 = 16;
const ROUTE_TEMPERATURE: f64 = 0.2;

#[derive(Debug)]
enum Sequence {
    Mamba(Mamba),
    /// The blocks (each residual with its own pre-norm) and a final norm, as `Mamba` has.
    Attention(Vec<AttentionBlock>, RmsNorm),
}

/// The backbone's state over an episode: Mamba's is constant in size, attention's KV cache grows.
#[derive(Debug)]
pub enum PolicyState {
    Mamba(Vec<BlockState>),
    Attention(Vec<KvCache>),
}

impl PolicyState {
    pub fn bytes(&self) -> usize {
        match self {
            PolicyState::Mamba(s) => s.iter().map(|b| b.bytes()).sum(),
            PolicyState::Attention(c) => c.iter().map(|k| k.bytes()).sum(),
        }
    }
}

#[derive(Debug)]
pub struct MambaMoePolicy {
    input: nn::Linear,
    backbone: Sequence,
    head: Moe,
    /// The goal router (`Routing::Goal`): the training goals' mean (subtracted: what tells goals
    /// apart is what routes), a projection, and one key per expert.
    route: Option<GoalRouter>,
    mean: nn::Linear,
    log_std: nn::Linear,
    value: nn::Linear,
    cfg: PolicyConfig,
}

impl MambaMoePolicy {
    pub fn new(p: nn::Path, cfg: &PolicyConfig) -> Result<MambaMoePolicy> {
        cfg.validate()?;
        let d = cfg.mamba.d_model;
        let moe_cfg = MoeConfig { d_model: d, ..cfg.moe.clone() };
        let input_dim = cfg.obs_dim + cfg.action_dim + cfg.goal_dim;
        Ok(MambaMoePolicy {
            input: nn::linear(&p / "input", input_dim, d, Default::default()),
            backbone: match cfg.backbone {
                Backbone::Mamba => Sequence::Mamba(Mamba::new(&p / "backbone", &cfg.mamba)),
                Backbone::Attention => {
                    let b = &p / "backbone";
                    let blocks =
                        (0..cfg.mamba.n_layers).map(|i| AttentionBlock::new(&b / "layers" / i, d, ATTENTION_HEADS));
                    Sequence::Attention(blocks.collect(), RmsNorm::new(&b / "norm_f", d, cfg.mamba.norm_eps))
                }
            },
            head: Moe::new(&p / "head", &moe_cfg),
            route: (cfg.routing == Routing::Goal).then(|| {
                let r = &p / "route";
                GoalRouter {
                    center: r.zeros_no_train("center", &[cfg.goal_dim]),
                    proj: nn::linear(&r / "proj", cfg.goal_dim, ROUTE_DIM, Default::default()),
                    keys: r.randn_standard("keys", &[cfg.moe.n_experts, ROUTE_DIM]),
                }
            }),
            mean: nn::linear(&p / "mean", d, cfg.action_dim, Default::default()),
            log_std: nn::linear(&p / "log_std", d, cfg.action_dim, Default::default()),
            value: nn::linear(&p / "value", d, 1, Default::default()),
            cfg: cfg.clone(),
        })
    }

    fn heads(&self, h: &Tensor, goal: &Tensor) -> PolicyOutput {
        // h: [..., d] → flatten tokens for the MoE, then restore.
        let shape = h.size();
        let d = *shape.last().expect("non-scalar");
        let tokens = h.reshape([-1, d]);
        let moe = match &self.route {
            Some(r) => {
                // Cosine routing (X-MoE) on the centred goal: bounded logits keep the softmax from
                // saturating, and without the common part every goal looked alike to the router
                // (both collapsed all goals onto one expert; experiments/2026-12-07-policy).
                let unit = |t: &Tensor| t / t.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-6);
                let g = unit(&(goal - &r.center).apply(&r.proj).reshape([-1, ROUTE_DIM]));
                let logits = g.matmul(&unit(&r.keys).transpose(0, 1)) / ROUTE_TEMPERATURE;
                self.head.forward_with_logits(&tokens, &logits)
            }
            None => self.head.forward(&tokens),
        };
        let z = (h + moe.y.reshape(&shape[..])).silu();
        let log_std = z.apply(&self.log_std).clamp(self.cfg.log_std_min, self.cfg.log_std_max);
        let mut routed = shape[..shape.len() - 1].to_vec();
        routed.push(self.cfg.moe.top_k);
        PolicyOutput {
            mean: z.apply(&self.mean),
            log_std,
            value: z.apply(&self.value).squeeze_dim(-1),
            aux_loss: moe.aux_loss,
            moe: moe.metrics,
            experts: moe.experts.reshape(&routed),
        }
    }

    /// Whole sequences: `obs [b, l, o]`, `prev_action [b, l, a]`, `goal [b, l, g]`.
    pub fn forward(&self, obs: &Tensor, prev_action: &Tensor, goal: &Tensor, scan: Scan) -> PolicyOutput {
        let x = Tensor::cat(&[obs, prev_action, goal], -1).apply(&self.input);
        let h = match &self.backbone {
            Sequence::Mamba(m) => m.forward(&x, scan),
            Sequence::Attention(blocks, norm) => blocks.iter().fold(x, |h, b| b.forward(&h)).apply(norm),
        };
        self.heads(&h, goal)
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Sets the goal router's centre to the mean of the training goals `[n, g]` (with
    /// `Routing::Goal`; a no-op otherwise). It is saved with the weights.
    pub fn set_route_center(&mut self, goals: &Tensor) {
        if let Some(r) = &mut self.route {
            tch::no_grad(|| r.center.copy_(&goals.mean_dim(0, false, tch::Kind::Float)));
        }
    }

    /// The head's MoE (its selection bias moves between optimiser steps when `bias_balancing` is on).
    pub fn head_mut(&mut self) -> &mut Moe {
        &mut self.head
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> PolicyState {
        match &self.backbone {
            Sequence::Mamba(m) => PolicyState::Mamba(m.zero_state(batch, device)),
            Sequence::Attention(blocks, _) => {
                PolicyState::Attention(blocks.iter().map(|_| KvCache::default()).collect())
            }
        }
    }

    /// One timestep: `obs [b, o]`, `prev_action [b, a]`, `goal [b, g]`; with Mamba, memory
    /// constant in time.
    pub fn step(&self, obs: &Tensor, prev_action: &Tensor, goal: &Tensor, state: &mut PolicyState) -> PolicyOutput {
        let x = Tensor::cat(&[obs, prev_action, goal], -1).apply(&self.input);
        let h = match (&self.backbone, state) {
            (Sequence::Mamba(m), PolicyState::Mamba(s)) => m.step(&x, s),
            (Sequence::Attention(blocks, norm), PolicyState::Attention(caches)) => {
                blocks.iter().zip(caches.iter_mut()).fold(x, |h, (b, c)| b.step(&h, c)).apply(norm)
            }
            _ => panic!("a policy state of the other backbone (zero_state makes the right one)"),
        };
        self.heads(&h, goal)
    }
}
