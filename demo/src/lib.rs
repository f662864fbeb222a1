//! The main job (`cupworld demo`): generate push-to-goal and knock-off datasets (mixed policies,
//! falls kept with linger steps) and the training sets' counterfactual companions, verify them,
//! train the world model encoder first, evaluate it and write the report. Every stage resumes:
//! complete datasets are kept, training continues from its newest checkpoint.

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
}

impl Scale {
    fn sizes(self) -> Sizes {
        match self {
            // 100 VoE pairs per category: one standard error of the overall accuracy ~2 points.
            Scale::Small => Sizes { train_episodes: 400, heldout_episodes: 40, preset: "small", voe_pairs: 100 },
            Scale::Tiny => Sizes { train_episodes: 6, heldout_episodes: 4, preset: "tiny", voe_pairs: 3 },
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

/// What the main job produced: the evaluation report and the stage times (`timing.json`).
pub struct DemoSummary {
    pub report: eval::EvalReport,
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
        checkpoint: run_dir,
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
    timing.insert("total_s".into(), began.elapsed().as_secs_f64().into());
    timing.insert("device".into(), format!("{device:?}").into());
    timing.insert("cpu".into(), datagen::host::cpu().into());
    std::fs::write(out.join("timing.json"), serde_json::to_string_pretty(&timing)?)?;
    Ok(DemoSummary { report, report_md: eval_dir.join("report.md"), timing })
}

/// The main job's output folder holds a finished report.
pub fn is_complete(out: &Path) -> bool {
    out.join("eval/report.json").is_file()
}
