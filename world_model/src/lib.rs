//! A JEPA world model for push-the-cup, in libtorch (tch).
//!
//! Frames are encoded into a grid of patch latents; a frame-causal transformer predicts the next
//! model step's latents from past latents and actions (a model step is `frameskip` frames, with
//! their actions side by side, as DINO-WM steps). Targets come from an EMA copy of the encoder
//! (stop-gradient, layer-normed), so the model never predicts pixels. The prediction loss is the
//! distance `loss.distance` (squared error in the presets) between predicted and target latents;
//! surprise, the mean L1 distance between predicted and observed latents, is what the
//! violation-of-expectation tests read.
//!
//! ```text
//! frames [b,t,3,64,64] ──encoder──► z [b,t,P,D] ──predictor(z_≤t, a_≤t)──► ẑ_{t+1}
//!                      └─target encoder (EMA, no grad)──► z̄ [b,t,P,D]   loss = d(ẑ_{t+1}, z̄_{t+1})
//! ```
//! The shipped recipe trains the encoder first, alone, on counterfactual frames (the same moment
//! drawn by the simulator with the cup and the paw moved): a contrast term, a graded term and a
//! shift head make it tell a frame from its counterfactual and by how much things moved, which a
//! latent-prediction loss alone lets it skip.
//! The predictor then trains on the frozen encoder.
//! This crate knows tensors only: data loading, the simulator and the renderer live elsewhere.

pub mod checkpoint;
pub mod config;
pub mod device;
mod encoder;
pub mod loss;
pub mod model;
pub mod optim;
mod predictor;
pub mod probe;
pub mod surprise;
pub mod train_step;

pub use checkpoint::{
    CheckedFile, Checkpoint, checkpoint_weights, load_checkpoint, load_model, load_model_online,
    read_checkpoint_config, save_checkpoint, write_checked,
};
pub use config::{Distance, EmaConfig, EncoderConfig, LossConfig, OptimConfig, Phase, PredictorConfig, WmConfig};
pub use device::parse_device;
pub use loss::{Clips, Counterfactual, LossParts, LossTerms, prediction_distance};
pub use model::{Collapse, WorldModel, collapse_stats, model_steps, rgb_frame};
pub use optim::AdamW;
pub use probe::CupProbe;
pub use surprise::{LatentHistory, PlanningContext, frame_curve, per_frame};
pub use train_step::StepReport;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WmError {
    #[error("world-model config: {0}")]
    Config(String),
    #[error("checkpoint {0}: {1}")]
    Checkpoint(PathBuf, String),
    #[error("--device {0}")]
    Device(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, WmError>;
