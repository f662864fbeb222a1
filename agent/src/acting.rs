//! The policy acting from the world model's latents: what it sees of a frame, its state across
//! an episode, and its checkpoint.
//!
//! Per control step the policy takes the frozen encoder's latents of the frame (the patch grid,
//! flattened, and its mean over patches), the goal image's latents in the same form, and the
//! action taken last; the Mamba state carries everything earlier, so memory stays constant over
//! an episode.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};
use world_model::WmConfig;

use crate::policy::{MambaMoePolicy, PolicyConfig, PolicyOutput, PolicyState};
use crate::{AgentError, Result};

/// What the policy sees of a frame: patch latents `[.., P, D]` flattened, beside their mean over
/// patches: `[.., P·D + D]`. The grid keeps where the cup and the paw are; the mean is a summary
/// the first layer need not learn.
pub fn frame_features(latents: &Tensor) -> Tensor {
    let shape = latents.size();
    let n = shape.len();
    let mut flat = shape[..n - 2].to_vec();
    flat.push(shape[n - 2] * shape[n - 1]);
    Tensor::cat(&[latents.reshape(&flat), latents.mean_dim(-2, false, Kind::Float)], -1)
}

/// The width of [`frame_features`] for a world model.
pub fn feature_dim(wm: &WmConfig) -> i64 {
    (wm.tokens_per_frame() + 1) * wm.encoder.latent_dim
}

/// The shipped policy for a world model: observation and goal are that model's frame features.
pub fn policy_config(wm: &WmConfig) -> PolicyConfig {
    PolicyConfig { obs_dim: feature_dim(wm), goal_dim: feature_dim(wm), ..PolicyConfig::default() }
}

/// `n` episodes acted in lock-step: the Mamba state, the last actions and the goals.
pub struct PolicyActor<'a> {
    policy: &'a MambaMoePolicy,
    state: PolicyState,
    last_action: Tensor,
    goal: Tensor,
}

impl<'a> PolicyActor<'a> {
    /// Starts `goal.size()[0]` episodes towards `goal [n, g]` (goal-image features).
    pub fn new(policy: &'a MambaMoePolicy, goal: &Tensor) -> PolicyActor<'a> {
        let n = goal.size()[0];
        let device = goal.device();
        PolicyActor {
            policy,
            state: policy.zero_state(n, device),
            last_action: Tensor::zeros([n, policy.config().action_dim], (Kind::Float, device)),
            goal: goal.shallow_clone(),
        }
    }

    /// The policy's output for the frames now in view (`features [n, o]`); the state moves on.
    /// Call [`PolicyActor::taken`] with what was done before the next step.
    pub fn step(&mut self, features: &Tensor) -> PolicyOutput {
        tch::no_grad(|| self.policy.step(features, &self.last_action, &self.goal, &mut self.state))
    }

    /// The actions actually executed `[n, a]` (the policy's, or a teacher's mixed in).
    pub fn taken(&mut self, actions: &Tensor) {
        self.last_action = actions.to_kind(Kind::Float).to_device(self.goal.device());
    }

    /// Bytes of recurrent state per episode: constant in the episode's length with Mamba,
    /// growing with it with attention.
    pub fn state_bytes(&self) -> usize {
        self.state.bytes() / self.goal.size()[0].max(1) as usize
    }
}

/// What a policy checkpoint records besides its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub config: PolicyConfig,
    /// The world-model checkpoint whose frozen encoder the policy reads, and its SHA-256.
    pub world_model: std::path::PathBuf,
    pub world_model_sha256: String,
    /// The trainer's own state (stage, round, step…), opaque here.
    pub trainer_state: serde_json::Value,
}

const RECORD: &str = "meta.policy";
const KIND: &str = "policy checkpoint";

/// Saves the policy's weights, its optimiser's moments (as `adam.*` entries, if any) and `record`,
/// checksummed and atomically.
pub fn save_policy(path: &Path, vs: &nn::VarStore, extra: Vec<(String, Tensor)>, record: &PolicyRecord) -> Result<()> {
    let mut named: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (format!("policy.{k}"), v.detach())).collect();
    named.extend(extra);
    let record = serde_json::to_value(record).map_err(|e| AgentError::Checkpoint(path.to_path_buf(), e.to_string()))?;
    world_model::write_checked(path, named, &[(RECORD, &record)])
        .map_err(|e| AgentError::Checkpoint(path.to_path_buf(), e.to_string()))
}

/// A loaded policy checkpoint: the network, its variables and what was recorded with it.
pub struct LoadedPolicy {
    pub vs: nn::VarStore,
    pub policy: MambaMoePolicy,
    pub record: PolicyRecord,
    pub file: world_model::CheckedFile,
}

/// Loads a policy checkpoint (its config comes from the file); every variable must be present
/// with its shape, and the file's checksum must hold.
pub fn load_policy(path: &Path, device: Device) -> Result<LoadedPolicy> {
    let err = |m: String| AgentError::Checkpoint(path.to_path_buf(), m);
    let file = world_model::CheckedFile::read(path, KIND).map_err(|e| err(e.to_string()))?;
    let record: PolicyRecord = file.json(RECORD, KIND).map_err(|e| err(e.to_string()))?;
    let vs = nn::VarStore::new(device);
    let policy = MambaMoePolicy::new(vs.root(), &record.config)?;
    tch::no_grad(|| -> Result<()> {
        for (k, mut v) in vs.variables() {
            let src = file.tensor(&format!("policy.{k}")).map_err(|e| err(e.to_string()))?;
            if src.size() != v.size() {
                return Err(err(format!("policy.{k} has shape {:?}, the network {:?}", src.size(), v.size())));
            }
            v.copy_(src);
        }
        Ok(())
    })?;
    Ok(LoadedPolicy { vs, policy, record, file })
}
