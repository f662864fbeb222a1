//! `eval-agent`: an agent that sees only 64×64 frames and a goal image acts in the simulator, on
//! held-out seeds, beside controls on the same episodes and goals.
//!
//! Two protocols. **goal-frame** (DINO-WM, stable-worldmodel): start in a state of a held-out
//! expert episode; the goal is that episode's frame 20 control steps later; 50 steps to get the
//! cup within 3 cm of the goal frame's cup, upright. Pairs already solved at the start are left
//! out. **task**: from `reset`, the environment's own success within its step limit, the goal
//! image drawn by [`sim::goal::task_goal_scene`].
//!
//! Every episode's result is appended to `episodes.jsonl` as it ends, so an interrupted
//! evaluation resumes where it stopped (the same options) and a long one can be split by
//! `--first-episode`.

mod episode;
mod report;

pub use episode::{Acting, EpisodeResult, FirstReplan, Runner, TraceStep};
pub use report::{AgentSummary, Report, wilson};

use std::io::Write;
use std::path::{Path, PathBuf};

use agent::planner::{CopyLast, Planner, PlannerConfig, WorldModelDynamics};
use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use render::{RenderConfig, Renderer};
use serde::{Deserialize, Serialize};
use sim::{Env, EnvConfig, PolicyKind, Task, episode_seed};
use types::SceneSnapshot;
use world_model::WorldModel;

pub use sim::goal::GOAL_FRAME_GAP;
/// Control steps the agent has in the goal-frame protocol.
pub const GOAL_FRAME_BUDGET: u32 = 50;
/// Success radius of the goal-frame protocol (metres).
pub const GOAL_FRAME_TOLERANCE: f32 = 0.03;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    GoalFrame,
    Task,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::GoalFrame => "goal-frame",
            Protocol::Task => "task",
        }
    }
}

/// Who is scored. The policy and the planner on the trained world model are agents; the rest
/// are controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// The Mamba-MoE policy (`train-agent`'s `policy.safetensors`).
    Policy,
    /// The same run's policy after cloning alone, before DAgger (`cloning.safetensors`).
    PolicyCloning,
    Planner,
    /// The same planner on the world model before training (the same config and seed).
    PlannerRandomInit,
    /// The same planner on a model that imagines the last frame forever (no dynamics).
    PlannerCopyLast,
    Random,
    Zero,
    Expert,
}

impl AgentKind {
    pub const ALL: [AgentKind; 8] = [
        AgentKind::Policy,
        AgentKind::PolicyCloning,
        AgentKind::Planner,
        AgentKind::PlannerRandomInit,
        AgentKind::PlannerCopyLast,
        AgentKind::Random,
        AgentKind::Zero,
        AgentKind::Expert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Policy => "policy",
            AgentKind::PolicyCloning => "policy-cloning",
            AgentKind::Planner => "planner",
            AgentKind::PlannerRandomInit => "planner-random-init",
            AgentKind::PlannerCopyLast => "planner-copy-last",
            AgentKind::Random => "random",
            AgentKind::Zero => "zero",
            AgentKind::Expert => "expert",
        }
    }

    pub fn plans(self) -> bool {
        matches!(self, AgentKind::Planner | AgentKind::PlannerRandomInit | AgentKind::PlannerCopyLast)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentEvalOptions {
    /// A world-model run directory or checkpoint.
    pub world_model: PathBuf,
    pub task: Task,
    pub protocol: Protocol,
    /// Episodes (goal-frame: pairs) the planner and the cheap controls are scored on.
    pub episodes: u64,
    /// Of those, the first this many are also given to the controls that plan (they cost as
    /// much as the agent).
    pub control_episodes: u64,
    pub seed: u64,
    pub planner: PlannerConfig,
    /// The cup probe for the planner's probe cost (`eval-wm`'s `probe.safetensors`).
    pub probe: Option<PathBuf>,
    /// A `train-agent` run directory (or policy checkpoint), for the policy's rows.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    pub agents: Vec<AgentKind>,
    pub out: PathBuf,
    pub progress: bool,
}

/// A goal-frame pair: where the agent takes over and the frame it must reach.
struct Pair {
    seed: u64,
    /// The expert's actions before the agent takes over.
    actions: Vec<[f32; 2]>,
    /// The expert's actions from the start to the goal frame.
    to_goal: Vec<[f32; 2]>,
    goal_scene: SceneSnapshot,
    goal_cup: [f32; 2],
}

/// Held-out expert episodes (seeds from `seed`), each giving at most one pair: a start drawn
/// among the steps whose cup moves at least the tolerance in the next 20 steps and stands
/// upright on the table at the end of them. Starts fall on model steps (multiples of
/// `frameskip`), so the planner plans from the first frame it is given.
fn goal_frame_pairs(task: Task, n: u64, seed: u64, frameskip: usize) -> Result<Vec<Pair>> {
    let mut env = Env::new(EnvConfig::for_task(task))?;
    let mut pairs = vec![];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x9A1F);
    for index in 0..n * 20 {
        if pairs.len() as u64 == n {
            break;
        }
        let s = episode_seed(seed, index);
        let mut infos = vec![env.reset(s).1];
        let mut actions = vec![];
        sim::rollout::run_episode(&mut env, PolicyKind::Expert, s, |_, a, r| {
            actions.push(a);
            infos.push(r.info.clone());
        })?;
        let gap = GOAL_FRAME_GAP as usize;
        let cup = |i: &sim::Info| [i.cup.position[0], i.cup.position[2]];
        let valid: Vec<usize> = (0..infos.len().saturating_sub(gap))
            .step_by(frameskip.max(1))
            .filter(|&t| {
                let (a, b) = (&infos[t], &infos[t + gap]);
                b.on_table && b.upright && sim::goal::cup_distance(a, cup(b)) >= GOAL_FRAME_TOLERANCE
            })
            .collect();
        if valid.is_empty() {
            continue;
        }
        let t = valid[rng.random_range(0..valid.len())];
        // The goal frame's scene: the episode replayed to it (the simulator is deterministic).
        env.reset(s);
        for &a in &actions[..t + gap] {
            env.step(a)?;
        }
        pairs.push(Pair {
            seed: s,
            actions: actions[..t].to_vec(),
            to_goal: actions[t..t + gap].to_vec(),
            goal_scene: env.scene(),
            goal_cup: cup(&infos[t + gap]),
        });
    }
    if (pairs.len() as u64) < n {
        bail!("only {} of {n} goal-frame pairs found in {} expert episodes", pairs.len(), n * 20);
    }
    Ok(pairs)
}

/// The finished episodes in `out/episodes.jsonl`, after checking that `out` holds this very
/// evaluation (or nothing).
fn resume(opts: &AgentEvalOptions) -> Result<Vec<EpisodeResult>> {
    train::claim::claim_dir(&opts.out, opts, &["progress"], "evaluation")?;
    let log = opts.out.join("episodes.jsonl");
    let mut done = vec![];
    if let Ok(text) = std::fs::read_to_string(&log) {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<EpisodeResult>(line) {
                Ok(r) => done.push(r),
                // A last line cut by an interruption: dropped, and its episode redone.
                Err(_) if i + 1 == lines.len() => {
                    let kept: String = lines[..i].iter().map(|l| format!("{l}\n")).collect();
                    std::fs::write(&log, kept)?;
                }
                Err(e) => bail!("{} line {}: {e} (the file is damaged; remove it to start over)", log.display(), i + 1),
            }
        }
    }
    Ok(done)
}

/// Episodes whose start and goal images are written (`pictures/`).
const PICTURES: u64 = 4;

/// The start frame and the goal image side by side, 4× enlarged.
fn pictures(out: &Path, episode: u64, start: &[u8], goal: &[u8], size: u32) -> Result<()> {
    let dir = out.join("pictures");
    std::fs::create_dir_all(&dir)?;
    let mut img = image::RgbImage::new(2 * size + 4, size);
    for (offset, rgb) in [(0, start), (size + 4, goal)] {
        let part = image::RgbImage::from_raw(size, size, rgb.to_vec()).context("a frame of the wrong size")?;
        image::imageops::overlay(&mut img, &part, offset as i64, 0);
    }
    let big = image::imageops::resize(&img, img.width() * 4, img.height() * 4, image::imageops::FilterType::Nearest);
    big.save(dir.join(format!("episode-{episode:03}-start-goal.png")))?;
    Ok(())
}

fn append(path: &Path, r: &EpisodeResult) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(r)?)?;
    Ok(())
}

/// The policy's checkpoint in a `train-agent` run directory (or the file itself).
pub fn policy_checkpoint(path: &Path, cloning: bool) -> PathBuf {
    if path.is_dir() {
        path.join(if cloning { "cloning.safetensors" } else { "policy.safetensors" })
    } else {
        path.to_path_buf()
    }
}

/// The policies the evaluation scores, each checked to read the world model it is given.
fn load_policies(opts: &AgentEvalOptions, world_model: &Path) -> Result<Vec<(AgentKind, agent::acting::LoadedPolicy)>> {
    let mut out = vec![];
    for &kind in opts.agents.iter().filter(|k| matches!(k, AgentKind::Policy | AgentKind::PolicyCloning)) {
        let run =
            opts.policy.as_ref().with_context(|| format!("the {} agent needs a policy (--policy-run)", kind.name()))?;
        let path = policy_checkpoint(run, kind == AgentKind::PolicyCloning);
        let loaded = agent::acting::load_policy(&path, tch::Device::Cpu)?;
        let sha = world_model::CheckedFile::read(world_model, "world-model checkpoint")?.sha256();
        if loaded.record.world_model_sha256 != sha {
            bail!(
                "{} was trained on the world model {} (sha256 {}), not on {}",
                path.display(),
                loaded.record.world_model.display(),
                loaded.record.world_model_sha256,
                world_model.display()
            );
        }
        out.push((kind, loaded));
    }
    Ok(out)
}

/// Runs the evaluation (resuming what `out` already holds) and writes `report.json` and
/// `report.md`.
pub fn run(opts: &AgentEvalOptions) -> Result<Report> {
    opts.planner.validate()?;
    if opts.episodes == 0 {
        bail!("--episodes must be positive");
    }
    let checkpoint = train::resolve_checkpoint(&opts.world_model)?;
    let mut trained = world_model::load_model(&checkpoint, tch::Device::Cpu)
        .with_context(|| format!("loading the world model {}", checkpoint.display()))?;
    trained.vs.freeze();
    let probe = match (&opts.probe, opts.planner.energy.cost) {
        (Some(path), _) => Some(world_model::CupProbe::load(path, &trained.cfg)?),
        (None, agent::planner::Cost::Probe) => bail!("the probe cost needs --probe (eval-wm writes probe.safetensors)"),
        (None, _) => None,
    };
    let planner = || -> Result<Planner> {
        let p = Planner::new(opts.planner.clone())?;
        Ok(match &probe {
            Some(probe) => p.with_probe(probe.clone()),
            None => p,
        })
    };
    // Built only when that control runs.
    let random_init = match opts.agents.contains(&AgentKind::PlannerRandomInit) {
        true => {
            let mut m = WorldModel::new(&trained.cfg, tch::Device::Cpu)?;
            m.vs.freeze();
            Some(m)
        }
        false => None,
    };
    let policies = load_policies(opts, &checkpoint)?;
    let mut done = resume(opts)?;
    let log = opts.out.join("episodes.jsonl");
    let size = trained.cfg.image_size as u32;
    let mut renderer = Renderer::new(RenderConfig { width: size, height: size, slots: 1, ..Default::default() })?;
    let pairs = match opts.protocol {
        Protocol::GoalFrame => {
            Some(goal_frame_pairs(opts.task, opts.episodes, opts.seed, trained.cfg.frameskip as usize)?)
        }
        Protocol::Task => None,
    };
    let env_cfg = EnvConfig::for_task(opts.task);
    let mut env = Env::new(env_cfg)?;
    for (k, &kind) in opts.agents.iter().enumerate() {
        let first_agent = k == 0;
        let n = if kind.plans() && !first_agent { opts.control_episodes.min(opts.episodes) } else { opts.episodes };
        let acting = match kind {
            AgentKind::Planner => Acting::Planner {
                model: &trained,
                dynamics: Box::new(WorldModelDynamics(&trained)),
                planner: planner()?,
            },
            AgentKind::PlannerRandomInit => {
                let model = random_init.as_ref().expect("built when asked for");
                Acting::Planner { model, dynamics: Box::new(WorldModelDynamics(model)), planner: planner()? }
            }
            AgentKind::PlannerCopyLast => Acting::Planner {
                model: &trained,
                dynamics: Box::new(CopyLast { action_width: trained.cfg.step_action_dim() }),
                planner: planner()?,
            },
            AgentKind::Policy | AgentKind::PolicyCloning => {
                let loaded = policies.iter().find(|(k, _)| *k == kind).map(|(_, p)| p).expect("loaded when asked for");
                Acting::Policy { model: &trained, policy: &loaded.policy, actor: None }
            }
            AgentKind::Random => Acting::Random,
            AgentKind::Zero => Acting::Zero,
            AgentKind::Expert => Acting::Expert,
        };
        let mut runner = Runner::new(&mut renderer, acting);
        for i in 0..n {
            if done.iter().any(|r| r.agent == kind.name() && r.episode == i) {
                continue;
            }
            let t = std::time::Instant::now();
            let r = match &pairs {
                Some(pairs) => {
                    let p = &pairs[i as usize];
                    let (_, mut info) = env.reset(p.seed);
                    runner.begin(&env, p.seed);
                    // The expert's steps before the start: the agent sees them happen.
                    for &a in &p.actions {
                        runner.witness(&env, &info, a)?;
                        info = env.step(a)?.info;
                    }
                    let (goal_rgb, goal) = runner.goal_latents(&p.goal_scene)?;
                    runner.set_reference(p.to_goal.clone());
                    if first_agent && i < PICTURES {
                        let start = runner.look(&env, info.step)?;
                        pictures(&opts.out, i, &start, &goal_rgb, size)?;
                    }
                    let goal_cup = p.goal_cup;
                    let judge = move |i: &sim::Info| {
                        let d = sim::goal::cup_distance(i, goal_cup);
                        (d <= GOAL_FRAME_TOLERANCE && i.upright, d)
                    };
                    runner.run(&mut env, info, GOAL_FRAME_BUDGET, goal.as_ref(), &judge, kind.name(), i, p.seed)?
                }
                None => {
                    let s = episode_seed(opts.seed, i);
                    let (_, info) = env.reset(s);
                    runner.begin(&env, s);
                    let goal_scene = sim::goal::task_goal_scene(&mut env, &info);
                    let (goal_rgb, goal) = runner.goal_latents(&goal_scene)?;
                    if first_agent && i < PICTURES {
                        let start = runner.look(&env, info.step)?;
                        pictures(&opts.out, i, &start, &goal_rgb, size)?;
                    }
                    let task = opts.task;
                    let judge = move |i: &sim::Info| {
                        let d = match task {
                            Task::PushToGoal => i.goal_distance(),
                            Task::KnockOff => i.edge_distance().max(0.0),
                        };
                        (i.success, d)
                    };
                    let steps = env.config().max_steps;
                    runner.run(&mut env, info, steps, goal.as_ref(), &judge, kind.name(), i, s)?
                }
            };
            if opts.progress {
                eprintln!(
                    "{} episode {i}: success {} (at end {}), distance {:.3} m, {} steps, {:.1} s",
                    kind.name(),
                    r.success_once,
                    r.success_at_end,
                    r.final_distance,
                    r.length,
                    t.elapsed().as_secs_f64()
                );
            }
            append(&log, &r)?;
            done.push(r);
        }
    }
    let report = Report::new(opts, &done, renderer.adapter());
    report.write(&opts.out)?;
    Ok(report)
}
