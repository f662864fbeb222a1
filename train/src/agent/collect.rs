//! DAgger's live rounds: simulators run the current policy (the teacher's action mixed in with
//! probability β), the renderer draws what the policy sees over bounded channels, the frozen
//! encoder turns frames into features, and the teacher labels every visited state: the scripted
//! expert (privileged state), or the latent planner (the world model alone).

use agent::MambaMoePolicy;
use agent::acting::PolicyActor;
use agent::planner::{Planner, PlannerConfig, RecedingHorizon, WorldModelDynamics};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{Actor, Env, EnvConfig, Info, PolicyKind, Task, episode_seed};
use tch::{Kind, Tensor};
use world_model::WorldModel;

use super::Teacher;
use super::demos::Demo;
use super::frames::{FrameLink, features_of_rgb};

/// What one round of rollouts came to.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RoundStats {
    pub episodes: usize,
    pub frames: usize,
    /// States the teacher labelled (every visited one).
    pub labels: usize,
    /// Share of executed actions that were the teacher's.
    pub expert_share: f64,
    /// Episodes that reached the task's success, per task (push-to-goal, knock-off).
    pub successes: [usize; 2],
    pub episodes_per_task: [usize; 2],
}

/// Runs `per_task` episodes of each task in lock-step (seeds from `base_seed`), the policy acting
/// by its mean action except where the teacher's is taken (probability `beta`, drawn per step).
#[allow(clippy::too_many_arguments)]
pub fn rollouts(
    model: &WorldModel,
    policy: &MambaMoePolicy,
    link: &FrameLink,
    tasks: &[Task],
    per_task: usize,
    base_seed: u64,
    beta: f64,
    teacher: Teacher,
) -> Result<(Vec<Demo>, RoundStats)> {
    let mut rng = ChaCha8Rng::seed_from_u64(base_seed ^ 0xDA66E5);
    let mut envs = vec![];
    for &task in tasks {
        for i in 0..per_task {
            let seed = episode_seed(base_seed, (super::demos::task_index(task) * per_task + i) as u64);
            envs.push(Live::new(EnvConfig::for_task(task), seed)?);
        }
    }
    let goal_rgb = link.draw(envs.iter_mut().map(|e| e.goal_scene()).collect())?;
    let goals = features_of_rgb(model, &goal_rgb);
    let size = model.cfg.image_size;
    let frame = |rgb: &[u8]| world_model::rgb_frame(rgb, size, size);
    // The planner plans towards the goal image's latents; each episode has its own plans.
    let dynamics = WorldModelDynamics(model);
    let mut planning: Vec<(Planner, RecedingHorizon, Tensor)> = vec![];
    if teacher == Teacher::Planner {
        for (e, rgb) in envs.iter().zip(&goal_rgb) {
            let mut planner = Planner::new(PlannerConfig::default())?;
            planner.reset(e.seed);
            let goal = model.encode_target(&frame(rgb).unsqueeze(0)).squeeze_dim(0);
            planning.push((planner, RecedingHorizon::new(model), goal));
        }
    }
    let mut actor = PolicyActor::new(policy, &goals);
    let mut stats = RoundStats { episodes: envs.len(), ..Default::default() };
    let mut expert_steps = 0usize;
    let mut features = Tensor::zeros([envs.len() as i64, goals.size()[1]], (Kind::Float, tch::Device::Cpu));
    while envs.iter().any(|e| !e.done) {
        // Draw the live episodes' frames (the finished keep their last features; their actions are ignored).
        let live: Vec<usize> = (0..envs.len()).filter(|&i| !envs[i].done).collect();
        let rgb = link.draw(live.iter().map(|&i| envs[i].env.scene()).collect())?;
        let fresh = features_of_rgb(model, &rgb);
        let index = Tensor::from_slice(&live.iter().map(|&i| i as i64).collect::<Vec<_>>());
        features = features.index_copy(0, &index, &fresh);
        let out = actor.step(&features);
        let mode = Vec::<f32>::try_from(out.mode().reshape([-1]))?;
        let mut taken = vec![0f32; envs.len() * 2];
        for (k, &i) in live.iter().enumerate() {
            let e = &mut envs[i];
            let label = match planning.get_mut(i) {
                Some((planner, horizon, goal)) => horizon.decide(model, planner, &dynamics, &frame(&rgb[k]), goal)?.0,
                None => e.expert.act(&e.info),
            };
            let own = [mode[2 * i], mode[2 * i + 1]];
            let action = if rng.random_bool(beta) {
                expert_steps += 1;
                label
            } else {
                own
            };
            if let Some((_, horizon, _)) = planning.get_mut(i) {
                horizon.executed(model, action);
            }
            e.record(fresh.get(k as i64), action, label)?;
            taken[2 * i..2 * i + 2].copy_from_slice(&action);
        }
        actor.taken(&Tensor::from_slice(&taken).reshape([-1, 2]));
    }
    let mut demos = vec![];
    for e in envs {
        let t = super::demos::task_index(e.env.config().task);
        stats.episodes_per_task[t] += 1;
        stats.successes[t] += e.success as usize;
        stats.frames += e.taken.len();
        let goal = goals.get(demos.len() as i64);
        demos.push(Demo::new(
            e.env.config().task,
            e.seed,
            Tensor::stack(&e.features, 0),
            &e.taken,
            &e.teacher,
            &e.rewards,
            goal,
        ));
    }
    stats.labels = stats.frames;
    stats.expert_share = expert_steps as f64 / stats.frames.max(1) as f64;
    Ok((demos, stats))
}

/// One simulator of a round and what it has recorded.
struct Live {
    env: Env,
    seed: u64,
    info: Info,
    expert: Actor,
    done: bool,
    success: bool,
    features: Vec<Tensor>,
    taken: Vec<[f32; 2]>,
    teacher: Vec<[f32; 2]>,
    rewards: Vec<f32>,
}

impl Live {
    fn new(cfg: EnvConfig, seed: u64) -> Result<Live> {
        let task = cfg.task;
        let mut env = Env::new(cfg)?;
        let (_, info) = env.reset(seed);
        Ok(Live {
            env,
            seed,
            info,
            expert: Actor::new(PolicyKind::Expert, task, seed),
            done: false,
            success: false,
            features: vec![],
            taken: vec![],
            teacher: vec![],
            rewards: vec![],
        })
    }

    fn goal_scene(&mut self) -> types::SceneSnapshot {
        let info = self.info.clone();
        sim::goal::task_goal_scene(&mut self.env, &info)
    }

    fn record(&mut self, features: Tensor, action: [f32; 2], label: [f32; 2]) -> Result<()> {
        let r = self.env.step(action)?;
        self.features.push(features);
        self.taken.push(action);
        self.teacher.push(label);
        self.rewards.push(r.reward);
        self.success |= r.info.success;
        self.done = r.terminated || r.truncated;
        self.info = r.info;
        Ok(())
    }
}
