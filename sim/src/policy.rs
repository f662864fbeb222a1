//! Scripted policies: experts that read the privileged state, a uniform random policy, and a mix.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Info, Result, SimError, Task};

/// Which policy drives an episode (the CLI's `--policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    Expert,
    Random,
    /// Per episode, drawn from its seed: expert (1/2), noisy expert (1/4) or random (1/4).
    Mixed,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Expert => "expert",
            PolicyKind::Random => "random",
            PolicyKind::Mixed => "mixed",
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = SimError;
    fn from_str(s: &str) -> Result<PolicyKind> {
        match s {
            "expert" => Ok(PolicyKind::Expert),
            "random" => Ok(PolicyKind::Random),
            "mixed" => Ok(PolicyKind::Mixed),
            _ => Err(SimError::Config(format!("unknown policy {s:?} (expected expert, random or mixed)"))),
        }
    }
}

/// The policy actually used for one episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpisodePolicy {
    Expert,
    /// The expert with Gaussian action noise of this standard deviation.
    NoisyExpert {
        sigma: f32,
    },
    Random,
}

impl EpisodePolicy {
    pub fn name(&self) -> &'static str {
        match self {
            EpisodePolicy::Expert => "expert",
            EpisodePolicy::NoisyExpert { .. } => "noisy-expert",
            EpisodePolicy::Random => "random",
        }
    }
}

/// A stateful actor for one episode, seeded so the whole episode is reproducible.
#[derive(Clone)]
pub struct Actor {
    policy: EpisodePolicy,
    task: Task,
    rng: ChaCha8Rng,
    pushing: bool,
}

impl Actor {
    /// The actor for an episode: `kind` resolved with the episode seed (for `Mixed`).
    pub fn new(kind: PolicyKind, task: Task, episode_seed: u64) -> Actor {
        // A stream apart from the one the scene is drawn from.
        let mut rng = ChaCha8Rng::seed_from_u64(episode_seed ^ 0x9E37_79B9_7F4A_7C15);
        let policy = match kind {
            PolicyKind::Expert => EpisodePolicy::Expert,
            PolicyKind::Random => EpisodePolicy::Random,
            PolicyKind::Mixed => match rng.random_range(0..4u32) {
                0 | 1 => EpisodePolicy::Expert,
                2 => EpisodePolicy::NoisyExpert { sigma: 0.4 },
                _ => EpisodePolicy::Random,
            },
        };
        Actor { policy, task, rng, pushing: false }
    }

    pub fn policy(&self) -> EpisodePolicy {
        self.policy
    }

    pub fn act(&mut self, info: &Info) -> [f32; 2] {
        match self.policy {
            EpisodePolicy::Expert => self.expert(info),
            EpisodePolicy::NoisyExpert { sigma } => {
                let a = self.expert(info);
                let n = [gaussian(&mut self.rng), gaussian(&mut self.rng)];
                [(a[0] + sigma * n[0]).clamp(-1.0, 1.0), (a[1] + sigma * n[1]).clamp(-1.0, 1.0)]
            }
            EpisodePolicy::Random => [self.rng.random_range(-1.0..=1.0), self.rng.random_range(-1.0..=1.0)],
        }
    }

    fn expert(&mut self, info: &Info) -> [f32; 2] {
        let cup = [info.cup.position[0], info.cup.position[2]];
        let target = match self.task {
            Task::PushToGoal => info.goal,
            Task::KnockOff => knock_off_target(info),
        };
        let (action, pushing) = push_towards(info, cup, target, self.task, self.pushing);
        self.pushing = pushing;
        action
    }
}

/// A point well past the table edge nearest to the cup.
fn knock_off_target(info: &Info) -> [f32; 2] {
    let [x, _, z] = info.cup.position;
    let [hw, hd] = info.table_half_size;
    let beyond = 0.3;
    if hw - x.abs() <= hd - z.abs() { [x.signum() * (hw + beyond), z] } else { [x, z.signum() * (hd + beyond)] }
}

/// Drives the pusher to the far side of the cup from `target`, then pushes the cup along the line
/// to it. Returns the action and whether the pusher is in pushing position (kept with hysteresis).
fn push_towards(info: &Info, cup: [f32; 2], target: [f32; 2], task: Task, was_pushing: bool) -> ([f32; 2], bool) {
    let pusher = [info.pusher.position[0], info.pusher.position[2]];
    let to_goal = sub(target, cup);
    let dist = norm(to_goal);
    if task == Task::PushToGoal && dist < 0.008 {
        return ([0.0, 0.0], was_pushing);
    }
    let dir = scale(to_goal, 1.0 / dist.max(1e-6));
    let perp = [-dir[1], dir[0]];
    let contact = info.cup_radius + info.pusher_half_extents[0] + 0.004;
    let behind = sub(cup, scale(dir, contact));
    let rel = sub(pusher, cup);
    let along = dot(rel, dir);
    let lateral = dot(rel, perp);

    let lateral_tol = if was_pushing { info.cup_radius * 0.8 } else { info.cup_radius * 0.4 };
    let in_position = along < -contact * 0.8 && along > -contact * 1.6 && lateral.abs() < lateral_tol;
    if in_position {
        // Push along the line, steering back onto it; slow down near the goal so the cup stops there.
        let speed = match task {
            Task::PushToGoal => (dist * 4.0).clamp(0.12, 1.0),
            Task::KnockOff => 1.0,
        };
        let correction = -lateral * 6.0;
        let closing = (-contact - along) * 4.0; // keep in touch
        let v = add(scale(dir, speed + closing.max(0.0)), scale(perp, correction));
        return (clamp_action(v), true);
    }

    // Travel to a point just behind the cup, going around it rather than through it.
    let approach = sub(behind, scale(dir, 0.015));
    let to = sub(approach, pusher);
    let gap = norm(to);
    let mut v = scale(to, (gap * 12.0).min(1.0) / gap.max(1e-6));
    let rdist = norm(rel);
    let clear = info.cup_radius + info.pusher_half_extents[0] * 1.5 + 0.02;
    if rdist < clear * 1.4 && along > -contact * 0.9 {
        let radial = scale(rel, 1.0 / rdist.max(1e-6));
        let inward = dot(v, radial).min(0.0);
        v = sub(v, scale(radial, inward));
        let mut tangent = [-radial[1], radial[0]];
        if dot(tangent, sub(approach, pusher)) < 0.0 {
            tangent = scale(tangent, -1.0);
        }
        v = add(v, scale(tangent, 0.8));
        v = add(v, scale(radial, ((clear * 1.4 - rdist) * 20.0).max(0.0)));
    }
    (clamp_action(v), false)
}

fn clamp_action(v: [f32; 2]) -> [f32; 2] {
    let n = norm(v);
    let v = if n > 1.0 { scale(v, 1.0 / n) } else { v };
    [v[0].clamp(-1.0, 1.0), v[1].clamp(-1.0, 1.0)]
}

/// A standard normal draw: the noisy expert's noise, and the position noise of the examples
/// that measure the expert.
pub fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; rand_distr would be one more dependency for one line.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn add(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] + b[0], a[1] + b[1]]
}
fn sub(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [a[0] - b[0], a[1] - b[1]]
}
fn scale(a: [f32; 2], s: f32) -> [f32; 2] {
    [a[0] * s, a[1] * s]
}
fn dot(a: [f32; 2], b: [f32; 2]) -> f32 {
    a[0] * b[0] + a[1] * b[1]
}
fn norm(a: [f32; 2]) -> f32 {
    dot(a, a).sqrt()
}
