//! `agent`: the agent's brain in libtorch (tch), no simulator or renderer needed.
//!
//! - [`mamba`]: Mamba-1 selective state-space blocks: reference scan, chunked parallel scan, step.
//! - [`moe`]: Mixture-of-Experts layer: top-k router, shared expert, balancing losses and bias.
//! - [`policy`]: `MambaMoePolicy`: Mamba backbone + MoE heads → squashed Gaussian and value.
//! - [`acting`]: what the policy sees of a frame (the world model's latents), its state over an
//!   episode, its checkpoint.
//! - [`cloning`]: the imitation loss, and how the experts split by task.
//! - [`attention`]: a causal self-attention block with a KV cache (the benchmark's contrast).
//! - [`planner`]: model-predictive control in the world model's latent space (CEM, MPPI, gradient
//!   descent), towards a goal image's latents.

pub mod acting;
pub mod attention;
pub mod cloning;
pub mod mamba;
pub mod moe;
pub mod planner;
pub mod policy;

pub use mamba::{BlockState, Mamba, MambaBlock, MambaConfig, Scan};
pub use moe::{Moe, MoeConfig, MoeMetrics, MoeOutput};
pub use policy::{Backbone, MambaMoePolicy, PolicyConfig, PolicyOutput, PolicyState, Routing};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{0}: {1}")]
    Checkpoint(std::path::PathBuf, String),
    #[error("non-finite plan: {0}")]
    NonFinite(String),
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, AgentError>;
