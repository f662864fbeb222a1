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
        Actor { policy, task, rng }
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

    fn expert(&self, info: &Info) -> [f32; 2] {
        let cup = [info.cup.position[0], info.cup.position[2]];
        let target = match self.task {
            Task::PushToGoal => info.goal,
            Task::KnockOff => knock_off_target(info),
        };
        push_towards(info, cup, target, self.task)
    }
}

/// A point well past the table edge nearest to the cup. Where two edges are about as near (the
/// cup on a corner's diagonal), the push heads between them, so the target turns smoothly.
fn knock_off_target(info: &Info) -> [f32; 2] {
    let [x, _, z] = info.cup.position;
    let [hw, hd] = info.table_half_size;
    let x_edge_first = 1.0 / (1.0 + (((hw - x.abs()) - (hd - z.abs())) / 0.02).exp());
    let towards = [x.signum() * x_edge_first, z.signum() * (1.0 - x_edge_first)];
    add([x, z], scale(towards, 1.0 / norm(towards).max(1e-6)))
}

/// Drives the pusher to the far side of the cup from `target`, then pushes the cup along the line
/// to it. The action is a continuous function of the state (no mode kept between steps): pushing
/// and travelling blend over a band about the cup–target line, and the way round the cup turns
/// smoothly with the side the pusher is on, so a policy that sees the state only roughly (a 64×64
/// frame) still has one action to learn for nearby states.
fn push_towards(info: &Info, cup: [f32; 2], target: [f32; 2], task: Task) -> [f32; 2] {
    let pusher = [info.pusher.position[0], info.pusher.position[2]];
    let to_goal = sub(target, cup);
    let dist = norm(to_goal);
    let dir = scale(to_goal, 1.0 / dist.max(1e-6));
    let perp = [-dir[1], dir[0]];
    let r = info.cup_radius;
    let contact = r + info.pusher_half_extents[0] + 0.004;
    let rel = sub(pusher, cup);
    let along = dot(rel, dir);
    let lateral = dot(rel, perp);

    // Pushing: along the line, steering back onto it, slowing near the goal so the cup stops there.
    let speed = match task {
        Task::PushToGoal => (dist * 4.0).min(1.0),
        Task::KnockOff => 1.0,
    };
    let closing = ((-contact - along) * 4.0).max(0.0); // keep in touch
    let push = add(scale(dir, speed + closing), scale(perp, -lateral * 10.0));

    // Travelling: to a point just behind the cup, going round it rather than through it.
    let approach = sub(cup, scale(dir, contact + 0.01));
    let to = sub(approach, pusher);
    let gap = norm(to);
    let mut travel = scale(to, (gap * 10.0).min(1.0) / gap.max(1e-6));
    let rdist = norm(rel);
    let clear = r + info.pusher_half_extents[0] * 1.5 + 0.02;
    let near = (1.0 - smoothstep(clear * 1.2, clear * 1.6, rdist)) * smoothstep(-contact * 0.5, -contact * 0.1, along);
    if near > 0.0 {
        let radial = scale(rel, 1.0 / rdist.max(1e-6));
        let inward = dot(travel, radial).min(0.0);
        let tangent = scale([-radial[1], radial[0]], 0.8 * (lateral / 0.01).tanh());
        let outward = ((clear * 1.4 - rdist) * 20.0).max(0.0);
        travel = add(travel, scale(add(scale(radial, -inward + outward), tangent), near));
    }

    let w = (1.0 - smoothstep(0.2 * r, 1.2 * r, lateral.abs())) * (1.0 - smoothstep(-contact * 0.4, 0.0, along));
    clamp_action(add(scale(push, w), scale(travel, 1.0 - w)))
}

/// 0 below `lo`, 1 above `hi`, a cubic in between (`hi < lo` reverses it).
fn smoothstep(lo: f32, hi: f32, x: f32) -> f32 {
    let t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn clamp_action(v: [f32; 2]) -> [f32; 2] {
    let n = norm(v);
    let v = if n > 1.0 { scale(v, 1.0 / n) } else { v };
    [v[0].clamp(-1.0, 1.0), v[1].clamp(-1.0, 1.0)]
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
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
