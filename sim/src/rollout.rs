//! Whole episodes: seeds derived from the global episode index, and summaries.

use serde::{Deserialize, Serialize};

use crate::{Actor, Env, EpisodePolicy, Info, Observation, PolicyKind, Result, StepResult};

/// The seed of global episode `index` under `base_seed` (SplitMix64 of both): independent of how
/// episodes are split across shards or threads.
pub fn episode_seed(base_seed: u64, index: u64) -> u64 {
    let mut z = base_seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one episode came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeOutcome {
    pub seed: u64,
    pub policy: EpisodePolicy,
    pub length: u32,
    pub episode_return: f32,
    pub success: bool,
    pub diverged: bool,
}

/// Runs one episode with `kind`, calling `on_step(obs_before, action, result)` after every step.
pub fn run_episode(
    env: &mut Env,
    kind: PolicyKind,
    seed: u64,
    mut on_step: impl FnMut(&Observation, [f32; 2], &StepResult),
) -> Result<EpisodeOutcome> {
    let (mut obs, mut info): (Observation, Info) = env.reset(seed);
    let mut actor = Actor::new(kind, env.config().task, seed);
    let mut outcome = EpisodeOutcome {
        seed,
        policy: actor.policy(),
        length: 0,
        episode_return: 0.0,
        success: false,
        diverged: false,
    };
    loop {
        let action = actor.act(&info);
        let r = env.step(action)?;
        on_step(&obs, action, &r);
        outcome.length += 1;
        outcome.episode_return += r.reward;
        outcome.success |= r.info.success;
        outcome.diverged |= r.info.diverged;
        if r.terminated || r.truncated {
            return Ok(outcome);
        }
        obs = r.obs;
        info = r.info;
    }
}

/// Aggregate over episodes, as `cupworld rollout --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub task: String,
    pub policy: String,
    pub episodes: usize,
    pub base_seed: u64,
    pub success_rate: f64,
    pub mean_return: f64,
    pub mean_length: f64,
    pub diverged: usize,
}

impl RolloutSummary {
    pub fn from_outcomes(task: &str, policy: &str, base_seed: u64, outcomes: &[EpisodeOutcome]) -> Self {
        let n = outcomes.len().max(1) as f64;
        RolloutSummary {
            task: task.to_string(),
            policy: policy.to_string(),
            episodes: outcomes.len(),
            base_seed,
            success_rate: outcomes.iter().filter(|o| o.success).count() as f64 / n,
            mean_return: outcomes.iter().map(|o| o.episode_return as f64).sum::<f64>() / n,
            mean_length: outcomes.iter().map(|o| o.length as f64).sum::<f64>() / n,
            diverged: outcomes.iter().filter(|o| o.diverged).count(),
        }
    }
}
