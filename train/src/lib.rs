//! `train`: what a trainer needs, and the world-model trainer built on it.
//!
//! - [`trainer`]: the run directory (`config.json`, `metrics.jsonl`, `plots/`, rotated
//!   checkpoints), exact resume, the non-finite guard, held-out validation; [`run`] trains.
//! - [`agent`]: the Mamba-MoE policy's trainer (`train-agent`): cloning the expert on `gen`
//!   datasets, then DAgger rounds of live rollouts.
//! - [`claim`]: a run directory's `config.json`, and the refusal of another run's options.
//! - [`data`]: episodes as tensors, the seeded clip sampler, the frozen encoder's latent cache,
//!   the live replay buffer.
//! - [`live`]: simulators → renderer → episodes over bounded crossbeam channels.
//! - [`plot`]: line plots as PNG.

pub mod agent;
pub mod claim;
pub mod data;
pub mod live;
pub mod plot;
pub mod trainer;

pub use trainer::{DataSource, Hooks, TrainOptions, TrainSummary, latest_checkpoint, resolve_checkpoint, run};
