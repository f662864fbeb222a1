//! `sim`: the push-the-cup world in rapier3d, with a Gymnasium-shaped API.
//!
//! - [`counterfactual`]: the same moment drawn with the cup elsewhere (training pairs).
//! - [`config`]: rates, limits and the ranges scenes are drawn from ([`EnvConfig`], [`Task`]).
//! - [`goal`]: the task's goal scene (what a goal image shows) and the cup's distance to a goal.
//! - [`env`]: the environment ([`Env`]): `reset(seed)`, `step(action)`, snapshots, state hash.
//! - [`policy`]: scripted experts, a random policy and a mix ([`Actor`]).
//! - [`rollout`]: run whole episodes and summarise them; per-episode seeds.
//! - [`violation`]: impossible events (teleport, vanish, levitate, pass-through, recolor).
//! - [`voe`]: matched violation-of-expectation pairs (a possible and an impossible twin).

pub mod config;
pub mod counterfactual;
pub mod env;
pub mod goal;
pub mod policy;
pub mod rollout;
pub mod violation;
pub mod voe;

pub use config::{CameraMount, EnvConfig, Range, Task};
pub use env::{Env, EnvSnapshot, Info, Observation, SCENE_VERSION, SceneParams, StepResult};
pub use policy::{Actor, EpisodePolicy, PolicyKind};
pub use rollout::{EpisodeOutcome, RolloutSummary, episode_seed, run_episode};
pub use violation::{Category, Violation};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("action[{index}] is {value}: actions must be finite numbers")]
    NonFiniteAction { index: usize, value: f32 },
    #[error("step called before reset")]
    NotReset,
    #[error("step called after the episode ended (terminated or truncated); call reset")]
    EpisodeOver,
    #[error("invalid environment config: {0}")]
    Config(String),
    #[error("{0}")]
    Voe(String),
}

pub type Result<T> = std::result::Result<T, SimError>;
