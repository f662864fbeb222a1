//! `eval-agent` and `train-agent`: the options of the agent's evaluation and training, each
//! handed to one library call.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use sim::Task;

#[derive(Args)]
pub struct EvalAgentArgs {
    /// The agent scored first; the controls follow it (see --controls).
    #[arg(long, value_enum, default_value_t = AgentArg::Planner)]
    agent: AgentArg,
    /// The planner's solver, at its default budget.
    #[arg(long, value_enum, default_value_t = SolverArg::Cem)]
    planner: SolverArg,
    /// Model steps the planner imagines ahead.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=64))]
    horizon: i64,
    /// What the planner's energy compares: the predicted and the goal image's latents, or where
    /// the cup probe (--probe) reads the cup in them (a supervised read-out, reported apart).
    #[arg(long, value_enum, default_value_t = CostArg::Latent)]
    cost: CostArg,
    /// Search one action per model step, held for its frameskip frames (a smaller search space).
    #[arg(long)]
    hold: bool,
    /// The cup probe `eval-wm` writes (`probe.safetensors`), for --cost probe.
    #[arg(long)]
    probe: Option<PathBuf>,
    /// A world-model run directory or checkpoint (for --agent policy, the one the policy was
    /// trained on, which is the default).
    #[arg(long)]
    world_model: Option<PathBuf>,
    /// A `train-agent` run directory (or policy checkpoint), for --agent policy.
    #[arg(long)]
    policy_run: Option<PathBuf>,
    /// push-to-goal or knock-off.
    #[arg(long)]
    task: Task,
    /// goal-frame: reach a held-out expert episode's frame 20 steps ahead within 50 steps;
    /// task: the environment's own success from reset, the goal drawn as an image.
    #[arg(long, value_enum, default_value_t = ProtocolArg::GoalFrame)]
    protocol: ProtocolArg,
    /// Episodes (goal-frame: pairs) the agent and the cheap controls are scored on.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    episodes: u64,
    /// Episodes the controls that plan are scored on (the first of --episodes).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    control_episodes: u64,
    /// Score the controls too: the planner on the random-init and copy-last models, random, zero
    /// actions and the scripted expert.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    controls: bool,
    /// Held-out seeds start here (training data uses 0, the main job's held-out data 1,000).
    #[arg(long, default_value_t = 50_000)]
    seed: u64,
    /// Where report.json, report.md and episodes.jsonl go; rerun with the same options to resume.
    #[arg(long)]
    out: PathBuf,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum AgentArg {
    /// The Mamba-MoE policy of --policy-run (and, beside it, that run's policy after cloning alone).
    Policy,
    Planner,
    Random,
    Zero,
    Expert,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SolverArg {
    Cem,
    Mppi,
    Gd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CostArg {
    Latent,
    Probe,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProtocolArg {
    GoalFrame,
    Task,
}

pub fn eval_agent_cmd(a: EvalAgentArgs) -> Result<()> {
    use eval::acting::{AgentKind, Protocol};
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let first = match a.agent {
        AgentArg::Policy => AgentKind::Policy,
        AgentArg::Planner => AgentKind::Planner,
        AgentArg::Random => AgentKind::Random,
        AgentArg::Zero => AgentKind::Zero,
        AgentArg::Expert => AgentKind::Expert,
    };
    let mut agents = vec![first];
    if first == AgentKind::Policy
        && let Some(run) = &a.policy_run
        && eval::acting::policy_checkpoint(run, true).exists()
        && run.is_dir()
    {
        agents.push(AgentKind::PolicyCloning);
    }
    if a.controls {
        // Beside the policy the planner is a control (on --control-episodes); beside the planner,
        // its random-init and copy-last twins are, and the policies are not run.
        let skip = |k: &AgentKind| match first {
            AgentKind::Policy => {
                matches!(
                    k,
                    AgentKind::Policy
                        | AgentKind::PolicyCloning
                        | AgentKind::PlannerRandomInit
                        | AgentKind::PlannerCopyLast
                )
            }
            _ => *k == first || matches!(k, AgentKind::Policy | AgentKind::PolicyCloning | AgentKind::Planner),
        };
        agents.extend(AgentKind::ALL.iter().copied().filter(|k| !skip(k)));
    }
    let world_model = match (&a.world_model, &a.policy_run) {
        (Some(wm), _) => wm.clone(),
        (None, Some(run)) => {
            agent::acting::load_policy(&eval::acting::policy_checkpoint(run, false), tch::Device::Cpu)?
                .record
                .world_model
        }
        (None, None) => bail!("--world-model is needed (or --policy-run, whose world model is then used)"),
    };
    let solver = match a.planner {
        SolverArg::Cem => "cem",
        SolverArg::Mppi => "mppi",
        SolverArg::Gd => "gd",
    };
    let cost = match a.cost {
        CostArg::Latent => agent::planner::Cost::Latent,
        CostArg::Probe => agent::planner::Cost::Probe,
    };
    let planner = agent::planner::PlannerConfig {
        horizon: a.horizon,
        solver: agent::planner::Solver::by_name(solver)?,
        energy: agent::planner::Energy { cost, ..Default::default() },
        hold: a.hold,
        ..Default::default()
    };
    let report = eval::acting::run(&eval::acting::AgentEvalOptions {
        world_model,
        task: a.task,
        protocol: match a.protocol {
            ProtocolArg::GoalFrame => Protocol::GoalFrame,
            ProtocolArg::Task => Protocol::Task,
        },
        episodes: a.episodes,
        control_episodes: a.control_episodes,
        seed: a.seed,
        planner,
        probe: a.probe,
        policy: a.policy_run,
        agents,
        out: a.out.clone(),
        progress: true,
    })?;
    for s in &report.agents {
        println!(
            "{:<20} success {:.2} [{:.2}, {:.2}] at end {:.2}, final distance {:.3} m, {} episodes",
            s.agent,
            s.success_once,
            s.success_once_interval[0],
            s.success_once_interval[1],
            s.success_at_end,
            s.mean_final_distance,
            s.episodes
        );
    }
    println!("report: {}", a.out.join("report.md").display());
    Ok(())
}

#[derive(Args)]
pub struct TrainAgentArgs {
    /// The world model (run directory or checkpoint) whose frozen encoder the policy reads.
    #[arg(long)]
    world_model: PathBuf,
    /// `gen` datasets to clone the expert from (every frame labelled with the expert's action for
    /// the state it shows); repeat for several.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Tasks the DAgger rounds roll out (default: both).
    #[arg(long)]
    task: Vec<Task>,
    /// The run directory; rerun with the same options to resume.
    #[arg(long)]
    out: PathBuf,
    /// A JSON overlay on the policy's config (keys of `agent::PolicyConfig`, e.g.
    /// `{"moe": {"n_experts": 1, "top_k": 1}}` for a dense head); unknown keys are refused.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from this policy checkpoint's weights (the same config and world model): DAgger from
    /// a cloned policy (`--cloning-steps 0`), or more rounds for a trained one.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Optimiser steps of cloning on the datasets.
    #[arg(long, default_value_t = 3000)]
    cloning_steps: u64,
    /// DAgger rounds after cloning (0: cloning alone).
    #[arg(long, default_value_t = 3)]
    dagger_rounds: u32,
    /// Episodes per task rolled out in each round.
    #[arg(long, default_value_t = 32)]
    dagger_episodes: usize,
    /// Optimiser steps after each round, on all the data gathered so far.
    #[arg(long, default_value_t = 800)]
    dagger_steps: u64,
    /// Who labels the DAgger rounds' states: expert, or planner (the latent planner on the world
    /// model: planner distillation, with no --data and --cloning-steps 0; --beta 1 makes round 0
    /// the planner's own demonstrations).
    #[arg(long, default_value = "expert")]
    teacher: String,
    /// The chance the teacher's action is executed in round 0 (β); each round multiplies it by --beta-decay.
    #[arg(long, default_value_t = 0.5)]
    beta: f64,
    #[arg(long, default_value_t = 0.5)]
    beta_decay: f64,
    /// Whole episodes per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Optimiser steps between checkpoints and metrics lines.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: Option<i32>,
}

pub fn train_agent_cmd(a: TrainAgentArgs) -> Result<()> {
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let wm = train::resolve_checkpoint(&a.world_model)?;
    let wm_cfg = world_model::read_checkpoint_config(&wm)?;
    let mut policy = serde_json::to_value(agent::acting::policy_config(&wm_cfg))?;
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let over: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        world_model::config::overlay(&mut policy, &over, "").with_context(|| path.display().to_string())?;
    }
    let policy: agent::PolicyConfig = serde_json::from_value(policy)?;
    let tasks = if a.task.is_empty() { vec![Task::PushToGoal, Task::KnockOff] } else { a.task };
    let summary = train::agent::run(&train::agent::AgentTrainOptions {
        world_model: wm,
        data: a.data,
        tasks,
        out: a.out,
        policy,
        init: a.init,
        cloning_steps: a.cloning_steps,
        dagger_rounds: a.dagger_rounds,
        dagger_episodes: a.dagger_episodes,
        dagger_steps: a.dagger_steps,
        beta: a.beta,
        beta_decay: a.beta_decay,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        teacher: match a.teacher.as_str() {
            "expert" => train::agent::Teacher::Expert,
            "planner" => train::agent::Teacher::Planner,
            other => anyhow::bail!("--teacher {other:?}: expected expert or planner"),
        },
        stop_before: None,
    })?;
    for r in &summary.rounds {
        println!(
            "DAgger round {}: β {:.2}, {} episodes, {} states labelled, successes {:?} of {:?}",
            r.round, r.beta, r.stats.episodes, r.stats.labels, r.stats.successes, r.stats.episodes_per_task
        );
    }
    if let Some(m) = &summary.last {
        println!(
            "after {} steps: action mse {:.4}, I(task; expert) {:.2} bit, router entropy {:.2} nats",
            summary.steps, m.action_mse, m.task_expert_bits, m.router_entropy
        );
    }
    println!("policy: {}", summary.policy.display());
    Ok(())
}
