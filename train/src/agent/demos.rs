//! Demonstrations the policy learns from: what it saw (frame features), what was done, what the
//! teacher would have done, the return that followed, and the goal image's features.
//!
//! From a `gen` dataset every frame is labelled with the scripted expert's action for the state
//! it shows: the episode is replayed in the simulator from its seed with its recorded actions (the
//! simulator is deterministic, and each replayed state is checked against the recorded one), and
//! the expert, which reads that state, says what it would do. Mixed datasets hold random and noisy
//! episodes; labelled this way they show the policy how to recover from states the expert never
//! visits.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sim::{Actor, Env, EnvConfig, PolicyKind, Task};
use tch::{Kind, Tensor};
use types::SceneSnapshot;
use world_model::WorldModel;

use crate::data::EpisodeTensors;

use super::frames::{FrameLink, features_of_frames, features_of_rgb};

/// Discount of the value head's return.
pub const GAMMA: f32 = 0.99;

/// One episode as the policy learns from it; tensors on the CPU.
pub struct Demo {
    pub task: Task,
    pub seed: u64,
    /// Frame features `[T, F]`.
    pub features: Tensor,
    /// Actions executed `[T, 2]` (the policy's next input is the one before).
    pub taken: Tensor,
    /// The teacher's action in each state `[T, 2]`.
    pub teacher: Tensor,
    /// Discounted return from each step `[T]`, in reward units.
    pub returns: Tensor,
    /// The goal image's features `[F]`.
    pub goal: Tensor,
}

impl Demo {
    pub fn len(&self) -> i64 {
        self.taken.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a demo from per-step rows.
    pub fn new(
        task: Task,
        seed: u64,
        features: Tensor,
        taken: &[[f32; 2]],
        teacher: &[[f32; 2]],
        rewards: &[f32],
        goal: Tensor,
    ) -> Demo {
        let t = taken.len() as i64;
        let flat =
            |v: &[[f32; 2]]| Tensor::from_slice(&v.iter().flatten().copied().collect::<Vec<f32>>()).reshape([t, 2]);
        Demo {
            task,
            seed,
            features,
            taken: flat(taken),
            teacher: flat(teacher),
            returns: Tensor::from_slice(&agent::cloning::returns_to_go(rewards, GAMMA)),
            goal,
        }
    }
}

/// The environment a dataset was recorded with, from its manifest; refused when its scenes were
/// drawn by another version of the simulator (the replay would not be the recording).
pub fn recorded_env_config(dir: &Path) -> Result<EnvConfig> {
    let manifest = dataset::Manifest::read(dir)?;
    let mut v = manifest.meta.env_config.clone();
    let version = v.get("scene_version").and_then(|s| s.as_u64());
    if version != Some(sim::SCENE_VERSION as u64) {
        bail!(
            "{}: recorded with scene version {version:?}, this simulator draws version {}; regenerate it with `cupworld gen`",
            dir.display(),
            sim::SCENE_VERSION
        );
    }
    if v.get("counterfactual").is_some() {
        bail!("{}: a counterfactual companion dataset (its frames are not the episodes' own)", dir.display());
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("camera");
        o.remove("scene_version");
    }
    serde_json::from_value(v).with_context(|| format!("{}: meta.env_config", dir.display()))
}

/// Replays a recorded episode and labels each of its states with the expert's action. Returns
/// the labels, the rewards and the task's goal scene. Fails, naming the episode, where the replay
/// leaves the recording.
pub fn label_episode(env: &mut Env, recorded: &EpisodeTensors) -> Result<Labelled> {
    let seed = recorded.seed;
    let actions: Vec<[f32; 2]> =
        Vec::<f32>::try_from(recorded.actions.reshape([-1]))?.chunks(2).map(|a| [a[0], a[1]]).collect();
    let (obs, mut info) = env.reset(seed);
    let goal = sim::goal::task_goal_scene(env, &info);
    // The cup and goal (`environment_state`) and the paw's position must be the recorded ones.
    let check = |t: usize, obs: &sim::Observation| -> Result<()> {
        let mut row = Vec::<f32>::try_from(recorded.env_state.get(t as i64))?;
        row.extend(Vec::<f32>::try_from(recorded.pusher.get(t as i64))?);
        let mut state = obs.environment_state.to_vec();
        state.extend(&obs.state[..2]);
        if row != state {
            bail!("episode seed {seed}, step {t}: the replayed state {state:?} is not the recorded {row:?}");
        }
        Ok(())
    };
    check(0, &obs)?;
    let mut expert = Actor::new(PolicyKind::Expert, env.config().task, seed);
    let mut teacher = Vec::with_capacity(actions.len());
    let mut rewards = Vec::with_capacity(actions.len());
    for (t, &a) in actions.iter().enumerate() {
        teacher.push(expert.act(&info));
        let r = env.step(a).with_context(|| format!("episode seed {seed}, step {t}"))?;
        rewards.push(r.reward);
        info = r.info;
        if t + 1 < actions.len() {
            if r.terminated || r.truncated {
                bail!("episode seed {seed}: the replay ended at step {t}, the recording goes on to {}", actions.len());
            }
            check(t + 1, &r.obs)?;
        }
    }
    Ok(Labelled { actions, teacher, rewards, goal })
}

#[derive(Debug)]
pub struct Labelled {
    /// The recorded actions, replayed.
    pub actions: Vec<[f32; 2]>,
    pub teacher: Vec<[f32; 2]>,
    pub rewards: Vec<f32>,
    pub goal: SceneSnapshot,
}

/// Every episode of the datasets in `dirs`, labelled by the expert, as demos.
pub fn demos_from_datasets(dirs: &[std::path::PathBuf], model: &WorldModel, link: &FrameLink) -> Result<Vec<Demo>> {
    let mut out = vec![];
    for dir in dirs {
        let cfg = recorded_env_config(dir)?;
        let task = cfg.task;
        let mut env = Env::new(cfg)?;
        let episodes = crate::data::load_dataset(dir, model.cfg.image_size)?;
        let mut goals = vec![];
        let mut labelled = vec![];
        for ep in &episodes {
            let l =
                label_episode(&mut env, ep).with_context(|| format!("{}: labelling with the expert", dir.display()))?;
            goals.push(l.goal.clone());
            labelled.push(l);
        }
        let goal_features = features_of_rgb(model, &link.draw(goals)?);
        for (i, (ep, l)) in episodes.iter().zip(labelled).enumerate() {
            let features = features_of_frames(model, &ep.frames);
            out.push(Demo::new(
                task,
                ep.seed,
                features,
                &l.actions,
                &l.teacher,
                &l.rewards,
                goal_features.get(i as i64),
            ));
        }
        tracing::info!("{}: {} episodes labelled by the expert", dir.display(), episodes.len());
    }
    Ok(out)
}

/// Hindsight goals for the goal-frame protocol: each stretch of `GOAL_FRAME_GAP` steps the
/// expert drove itself (the executed actions are its labels), from every `stride`-th step, with
/// the frame that stretch reached as its goal image. What goal-conditioned cloning learns from
/// (stable-worldmodel's GCBC); the policy starts each stretch afresh, as it starts a pair.
pub fn hindsight_segments(demo: &Demo, stride: i64) -> Vec<Demo> {
    let gap = sim::goal::GOAL_FRAME_GAP as i64;
    let own = demo.taken.eq_tensor(&demo.teacher).all_dim(-1, false); // [T] the expert's own steps
    let own = Vec::<bool>::try_from(&own).unwrap_or_default();
    (0..demo.len() - gap)
        .step_by(stride.max(1) as usize)
        .filter(|&s| own[s as usize..(s + gap) as usize].iter().all(|&o| o))
        .map(|s| Demo {
            task: demo.task,
            seed: demo.seed,
            features: demo.features.narrow(0, s, gap),
            taken: demo.taken.narrow(0, s, gap),
            teacher: demo.teacher.narrow(0, s, gap),
            returns: demo.returns.narrow(0, s, gap),
            goal: demo.features.get(s + gap),
        })
        .collect()
}

/// A batch of whole episodes padded to the longest: features `[b, l, F]`, the previous action
/// `[b, l, 2]`, goal `[b, l, F]`, teacher `[b, l, 2]`, returns `[b, l]`, mask `[b, l]`.
pub struct Batch {
    pub features: Tensor,
    pub prev_action: Tensor,
    pub goal: Tensor,
    pub teacher: Tensor,
    pub returns: Tensor,
    pub mask: Tensor,
    pub task: Vec<usize>,
}

pub fn batch(demos: &[&Demo]) -> Batch {
    let l = demos.iter().map(|d| d.len()).max().unwrap_or(1);
    let pad = |t: &Tensor| {
        let n = t.size()[0];
        if n == l {
            return t.shallow_clone();
        }
        let mut shape = t.size();
        shape[0] = l - n;
        Tensor::cat(&[t.shallow_clone(), Tensor::zeros(&shape, (t.kind(), t.device()))], 0)
    };
    let stack = |f: &dyn Fn(&Demo) -> Tensor| Tensor::stack(&demos.iter().map(|d| pad(&f(d))).collect::<Vec<_>>(), 0);
    let prev = |d: &Demo| {
        Tensor::cat(&[Tensor::zeros([1, 2], (Kind::Float, d.taken.device())), d.taken.narrow(0, 0, d.len() - 1)], 0)
    };
    Batch {
        features: stack(&|d| d.features.shallow_clone()),
        prev_action: stack(&prev),
        goal: Tensor::stack(&demos.iter().map(|d| d.goal.unsqueeze(0).expand([l, -1], false)).collect::<Vec<_>>(), 0),
        teacher: stack(&|d| d.teacher.shallow_clone()),
        returns: stack(&|d| d.returns.shallow_clone()),
        mask: stack(&|d| Tensor::ones([d.len()], (Kind::Float, d.taken.device()))),
        task: demos.iter().map(|d| task_index(d.task)).collect(),
    }
}

pub fn task_index(task: Task) -> usize {
    match task {
        Task::PushToGoal => 0,
        Task::KnockOff => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hindsight_stretches_are_the_experts_own_and_aim_at_the_frame_they_reached() {
        let t = 70;
        let features = Tensor::arange(t, (Kind::Float, tch::Device::Cpu)).unsqueeze(-1).repeat([1, 3]);
        let taken: Vec<[f32; 2]> = (0..t).map(|i| [i as f32 / 100.0, 0.5]).collect();
        let mut teacher = taken.clone();
        teacher[25] = [0.0, 0.0]; // a step someone else drove (a DAgger round's policy, noise)
        let d = Demo::new(
            Task::PushToGoal,
            1,
            features,
            &taken,
            &teacher,
            &vec![0.0; t as usize],
            Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)),
        );
        let segments = hindsight_segments(&d, 20);
        // Starts 0, 20, 40 fit (start + 20 < 70); the one from 20 holds step 25 and is left out.
        let starts: Vec<f64> = segments.iter().map(|s| s.features.double_value(&[0, 0])).collect();
        assert_eq!(starts, [0.0, 40.0]);
        for s in &segments {
            assert_eq!(s.len(), 20);
            let start = s.features.double_value(&[0, 0]);
            assert_eq!(s.goal.double_value(&[0]), start + 20.0, "the goal is the frame the stretch reached");
        }
    }
}
