//! The main job (`cupworld demo`): generate push-to-goal and knock-off datasets (mixed policies,
//! falls kept with linger steps) and the training sets' counterfactual companions, verify them,
//! train the world model encoder first and evaluate it; then train the Mamba-MoE policy on its
//! latents (cloning the expert, then DAgger), score it on both tasks beside the planner and the
//! controls, and write one report. Every stage resumes: complete datasets are kept, training
//! continues from its newest checkpoint, evaluations from their last finished episode.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sim::{PolicyKind, Task};

/// Sizes of the main job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The full default run: ~28 min on a 2-core Xeon after the build.
    Small,
    /// A smoke test of the same path in seconds (CI).
    Tiny,
}

struct Sizes {
    train_episodes: u64,
    heldout_episodes: u64,
    preset: &'static str,
    voe_pairs: usize,
    /// The policy's training: cloning steps, DAgger rounds, episodes per task and round, steps per round.
    agent: (u64, u32, usize, u64),
    /// Task episodes the policy (and the cheap controls) and the planner are scored on, per task.
    agent_episodes: (u64, u64),
}

impl Scale {
    fn sizes(self) -> Sizes {
        match self {
            // 100 VoE pairs per category: one standard error of the overall accuracy ~2 points.
            Scale::Small => Sizes {
                train_episodes: 400,
                heldout_episodes: 40,
                preset: "small",
                voe_pairs: 100,
                agent: (3000, 3, 32, 800),
                // A planner episode replans ~35 times at ~1 s: 10 a task is ~6 min each.
                agent_episodes: (200, 10),
            },
            Scale::Tiny => Sizes {
                train_episodes: 6,
                heldout_episodes: 4,
                preset: "tiny",
                voe_pairs: 3,
                agent: (4, 1, 1, 2),
                agent_episodes: (2, 1),
            },
        }
    }
}

/// What the main job is asked to do.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub out: PathBuf,
    pub scale: Scale,
    pub device: tch::Device,
    /// Progress bars on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { out: PathBuf::from("out/demo"), scale: Scale::Small, device: tch::Device::Cpu, progress: false }
    }
}

/// What the main job produced: the world model's and the agent's reports, the stage times
/// (`timing.json`).
pub struct DemoSummary {
    pub report: eval::EvalReport,
    pub agent_reports: Vec<eval::acting::Report>,
    /// `report.md`: the world model's tables, then the agent's.
    pub report_md: PathBuf,
    pub timing: serde_json::Map<String, serde_json::Value>,
}

fn gen_one(
    task: Task,
    episodes: u64,
    seed: u64,
    dir: PathBuf,
    counterfactual: bool,
    progress: bool,
) -> Result<PathBuf> {
    let cfg = datagen::GenConfig {
        env: sim::EnvConfig { linger_steps: 6, ..sim::EnvConfig::for_task(task) },
        policy: PolicyKind::Mixed,
        episodes,
        base_seed: seed,
        out: dir.clone(),
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig::default(),
        renderers: datagen::host::default_renderers(),
        sim_workers: 1,
        counterfactual: counterfactual.then(sim::counterfactual::Displacement::default),
        progress,
    };
    let s = datagen::generate::run(&cfg)?;
    if !s.skipped {
        println!(
            "generated {}: {} episodes, {} frames ({:.0} frames/s)",
            dir.display(),
            s.episodes,
            s.frames,
            s.frames_per_s
        );
    }
    let report = dataset::verify(&dir);
    if !report.ok() {
        bail!("{}: verification failed: {}", dir.display(), report.problems.join("; "));
    }
    Ok(dir)
}

/// Runs the main job into `opts.out`.
pub fn run(opts: &DemoOptions) -> Result<DemoSummary> {
    let sizes = opts.scale.sizes();
    let (out, device, progress) = (opts.out.as_path(), opts.device, opts.progress);
    let began = std::time::Instant::now();
    let mut timing = serde_json::Map::new();
    let t = std::time::Instant::now();
    let data = out.join("data");
    let tasks = [(Task::PushToGoal, "push-to-goal"), (Task::KnockOff, "knock-off")];
    let mut train = vec![];
    let mut train_cf = vec![];
    for (task, name) in tasks {
        train.push(gen_one(task, sizes.train_episodes, 0, data.join(format!("train-{name}")), false, progress)?);
        train_cf.push(gen_one(task, sizes.train_episodes, 0, data.join(format!("train-{name}-cf")), true, progress)?);
    }
    let mut heldout = vec![];
    for (task, name) in tasks {
        heldout.push(gen_one(
            task,
            sizes.heldout_episodes,
            1_000,
            data.join(format!("heldout-{name}")),
            false,
            progress,
        )?);
    }
    datagen::write_contact_sheet(&train[1], &out.join("contact_sheet.png"), 6, 8, 2)?;
    timing.insert("generate_s".into(), t.elapsed().as_secs_f64().into());

    let t = std::time::Instant::now();
    let cfg = world_model::WmConfig::preset(sizes.preset)?;
    let run_dir = out.join("world_model");
    let summary = train::run(&train::TrainOptions {
        cfg,
        data: train::DataSource::DatasetsWithCounterfactuals { data: train.clone(), counterfactual: train_cf.clone() },
        resume: true,
        out: run_dir.clone(),
        device,
        progress,
        validation: heldout.clone(),
        ..train::TrainOptions::default()
    })?;
    println!(
        "trained the world model to step {} ({:.0} frames/s), final loss {:.4}",
        summary.steps, summary.frames_per_s, summary.final_loss
    );
    if let Some((l1, copy)) = summary.validation {
        println!("held-out one-step L1 {l1:.4} (copy-last {copy:.4})");
    }
    timing.insert("train_s".into(), t.elapsed().as_secs_f64().into());

    let t = std::time::Instant::now();
    let eval_dir = out.join("eval");
    let report = eval::run(&eval::EvalOptions {
        checkpoint: run_dir.clone(),
        data: heldout,
        // The probes fit on the training episodes and their counterfactual companions: the same
        // scenes with the cup (and the paw) elsewhere, so a probe cannot learn each scene instead
        // of the cup (experiments/2026-12-01-table-camera).
        probe_data: train.iter().chain(&train_cf).cloned().collect(),
        out: eval_dir.clone(),
        voe_pairs: sizes.voe_pairs,
        device,
        ..eval::EvalOptions::default()
    })?;
    timing.insert("evaluate_s".into(), t.elapsed().as_secs_f64().into());

    let t = std::time::Instant::now();
    let checkpoint = train::resolve_checkpoint(&run_dir)?;
    let policy_run = out.join("agent");
    let mut policy = agent::acting::policy_config(&world_model::read_checkpoint_config(&checkpoint)?);
    if opts.scale == Scale::Tiny {
        policy.mamba = agent::MambaConfig { d_model: 16, n_layers: 1, ..policy.mamba };
        policy.moe.d_hidden = 16;
    }
    let (cloning_steps, dagger_rounds, dagger_episodes, dagger_steps) = sizes.agent;
    let trained = train::agent::run(&train::agent::AgentTrainOptions {
        world_model: checkpoint.clone(),
        data: train.clone(),
        tasks: tasks.iter().map(|(t, _)| *t).collect(),
        out: policy_run.clone(),
        policy,
        init: None,
        cloning_steps,
        dagger_rounds,
        dagger_episodes,
        dagger_steps,
        beta: 0.5,
        beta_decay: 0.5,
        batch: 16,
        lr: 1e-3,
        seed: 0,
        checkpoint_every: 100,
        teacher: train::agent::Teacher::Expert,
        stop_before: None,
    })?;
    println!("trained the policy for {} steps: {}", trained.steps, trained.policy.display());
    timing.insert("agent_train_s".into(), t.elapsed().as_secs_f64().into());

    let t = std::time::Instant::now();
    let (episodes, planner_episodes) = sizes.agent_episodes;
    let mut agent_reports = vec![];
    for (task, name) in tasks {
        use eval::acting::AgentKind;
        agent_reports.push(eval::acting::run(&eval::acting::AgentEvalOptions {
            world_model: checkpoint.clone(),
            task,
            protocol: eval::acting::Protocol::Task,
            episodes,
            control_episodes: planner_episodes,
            seed: 50_000,
            planner: agent::planner::PlannerConfig::default(),
            probe: None,
            policy: Some(policy_run.clone()),
            agents: vec![
                AgentKind::Policy,
                AgentKind::PolicyCloning,
                AgentKind::Planner,
                AgentKind::Random,
                AgentKind::Zero,
                AgentKind::Expert,
            ],
            out: out.join(format!("agent-eval-{name}")),
            progress,
        })?);
    }
    timing.insert("agent_evaluate_s".into(), t.elapsed().as_secs_f64().into());
    timing.insert("total_s".into(), began.elapsed().as_secs_f64().into());
    timing.insert("device".into(), format!("{device:?}").into());
    timing.insert("cpu".into(), datagen::host::cpu().into());
    std::fs::write(out.join("timing.json"), serde_json::to_string_pretty(&timing)?)?;
    let mut md = format!(
        "# cupworld main job\n\nThe world model, then the agent that acts from its latents. Stage times in `timing.json`.\n\n{}",
        // The world model's figures sit beside its own report, in eval/.
        std::fs::read_to_string(eval_dir.join("report.md"))?.replace("](", "](eval/")
    );
    for r in &agent_reports {
        md += "\n";
        md += &r.markdown();
    }
    let report_md = out.join("report.md");
    std::fs::write(&report_md, md)?;
    Ok(DemoSummary { report, agent_reports, report_md, timing })
}

/// The main job's output folder holds a finished report.
pub fn is_complete(out: &Path) -> bool {
    out.join("report.md").is_file()
}
