//! `cupworld`: the command line. Every subcommand is a thin shell over the library crates.

mod bench;
mod bench_seq;
mod generate;
mod sheet;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sim::{Env, PolicyKind, RolloutSummary, Task, episode_seed, run_episode};

#[derive(Parser)]
#[command(name = "cupworld", version, about = "Push-the-cup world: simulate, render, generate datasets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run episodes without rendering and print success rate, mean return and mean length.
    Rollout(RolloutArgs),
    /// Simulate and render episodes into a LeRobot v3.0 dataset (with manifest).
    Gen(GenArgs),
    /// Dataset tools: verify, merge.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Write a contact sheet (a grid of sample frames) of a dataset as PNG.
    ContactSheet {
        /// The dataset directory.
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Episodes shown (rows).
        #[arg(long, default_value_t = 6)]
        episodes: usize,
        /// Frames per episode (columns), evenly spaced.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// Pixel scale factor.
        #[arg(long, default_value_t = 2)]
        scale: u32,
    },
    /// Generate a small dataset, verify it and write its contact sheet: the README's main job.
    Demo {
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        #[arg(long, default_value_t = 24)]
        episodes: u64,
    },
    /// Benchmarks: sim (physics steps/s), render (frames/s), gen (end to end).
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
}

/// Environment rates and limits shared by `rollout` and `gen`.
#[derive(Args, Clone, Copy)]
struct EnvArgs {
    /// Override the step limit per episode (default 150 control steps).
    #[arg(long)]
    max_steps: Option<u32>,
    /// Physics steps per second (default 240).
    #[arg(long)]
    physics_hz: Option<u32>,
    /// Control steps (actions, frames) per second; must divide --physics-hz (default 10).
    #[arg(long)]
    control_hz: Option<u32>,
}

impl EnvArgs {
    fn config(&self, task: Task) -> Result<sim::EnvConfig> {
        let mut cfg = sim::EnvConfig::for_task(task);
        if let Some(v) = self.max_steps {
            cfg.max_steps = v;
        }
        if let Some(v) = self.physics_hz {
            cfg.physics_hz = v;
        }
        if let Some(v) = self.control_hz {
            cfg.control_hz = v;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args)]
struct RolloutArgs {
    /// push-to-goal or knock-off.
    #[arg(long, default_value = "push-to-goal")]
    task: Task,
    /// expert, random, or mixed.
    #[arg(long, default_value = "expert")]
    policy: PolicyKind,
    #[arg(long, default_value_t = 200)]
    episodes: u64,
    /// Base seed; episode i uses a seed derived from (seed, i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    env: EnvArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenArgs {
    /// push-to-goal or knock-off.
    #[arg(long, default_value = "push-to-goal")]
    task: Task,
    /// Episodes in the whole dataset (all shards together).
    #[arg(long, default_value_t = 100)]
    episodes: u64,
    /// expert, random, or mixed (per episode: expert 1/2, noisy expert 1/4, random 1/4).
    #[arg(long, default_value = "mixed")]
    policy: PolicyKind,
    /// Base seed; episode i uses a seed derived from (seed, i) whatever the sharding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (a dataset; with --num-shards > 1, a folder of shard datasets).
    #[arg(long)]
    out: PathBuf,
    /// This shard's index; also read from SLURM_ARRAY_TASK_ID or Kubernetes' JOB_COMPLETION_INDEX.
    #[arg(long)]
    shard_index: Option<u32>,
    /// Number of shards; also read from SLURM_ARRAY_TASK_COUNT.
    #[arg(long)]
    num_shards: Option<u32>,
    #[arg(long, default_value_t = 64)]
    width: u32,
    #[arg(long, default_value_t = 64)]
    height: u32,
    /// Environments rendered per bevy update.
    #[arg(long, default_value_t = 32)]
    slots: usize,
    /// Render threads, each with its own bevy renderer (default: one per core, at most 4).
    #[arg(long)]
    renderers: Option<usize>,
    /// Simulator threads (at least one per renderer; physics is cheap next to rendering).
    #[arg(long, default_value_t = 1)]
    sim_workers: usize,
    #[command(flatten)]
    env: EnvArgs,
    /// Directional-light shadows (slower on CPU).
    #[arg(long)]
    shadows: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Check every file against the manifest and the dataset's structure.
    Verify {
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Merge shard datasets (or folders holding shard-* datasets) into one.
    Merge {
        shards: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUPWORLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cupworld=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Rollout(a) => rollout(a),
        Command::Gen(a) => gen_cmd(a),
        Command::Dataset(DatasetCommand::Verify { data, json }) => {
            let report = dataset::verify(&data);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.ok() {
                println!(
                    "{}: OK ({} files, {} episodes, {} frames)",
                    data.display(),
                    report.files_checked,
                    report.episodes,
                    report.frames
                );
            } else {
                for p in &report.problems {
                    eprintln!("{}: {p}", data.display());
                }
            }
            if !report.ok() {
                bail!("{}: verification failed ({} problems)", data.display(), report.problems.len());
            }
            Ok(())
        }
        Command::Dataset(DatasetCommand::Merge { shards, out }) => {
            let shards = generate::find_shards(&shards)?;
            let manifest = dataset::merge(&shards, &out, generate::tool_versions())?;
            println!(
                "merged {} shards into {}: {} episodes",
                shards.len(),
                out.display(),
                manifest.episode_seeds.len()
            );
            Ok(())
        }
        Command::ContactSheet { data, out, episodes, frames, scale } => {
            sheet::write_contact_sheet(&data, &out, episodes, frames, scale)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Demo { out, episodes } => demo(&out, episodes),
        Command::Bench { which } => bench::run(which),
    }
}

fn rollout(a: RolloutArgs) -> Result<()> {
    let mut env = Env::new(a.env.config(a.task)?)?;
    let outcomes = (0..a.episodes)
        .map(|i| run_episode(&mut env, a.policy, episode_seed(a.seed, i), |_, _, _| {}))
        .collect::<sim::Result<Vec<_>>>()?;
    let summary = RolloutSummary::from_outcomes(a.task.name(), a.policy.name(), a.seed, &outcomes);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("task          {}", summary.task);
        println!("policy        {}", summary.policy);
        println!("episodes      {}", summary.episodes);
        println!("success rate  {:.3}", summary.success_rate);
        println!("mean return   {:.3}", summary.mean_return);
        println!("mean length   {:.1}", summary.mean_length);
        if summary.diverged > 0 {
            println!("diverged      {}", summary.diverged);
        }
    }
    Ok(())
}

/// Reads an environment variable as a number, naming it on error.
fn env_number(name: &str) -> Result<Option<u32>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v.trim().parse().with_context(|| format!("{name}={v:?} is not a non-negative integer"))?)),
        Err(_) => Ok(None),
    }
}

fn gen_cmd(a: GenArgs) -> Result<()> {
    let shard_index = match a.shard_index {
        Some(i) => i,
        None => env_number("SLURM_ARRAY_TASK_ID")?.or(env_number("JOB_COMPLETION_INDEX")?).unwrap_or(0),
    };
    let num_shards = match a.num_shards {
        Some(n) => n,
        None => env_number("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(1),
    };
    let cfg = generate::GenConfig {
        env: a.env.config(a.task)?,
        policy: a.policy,
        episodes: a.episodes,
        base_seed: a.seed,
        out: a.out,
        shard_index,
        num_shards,
        render: render::RenderConfig {
            width: a.width,
            height: a.height,
            slots: a.slots,
            shadows: a.shadows,
            msaa: false,
        },
        renderers: a.renderers.unwrap_or_else(default_renderers),
        sim_workers: a.sim_workers,
        progress: std::io::stderr().is_terminal(),
    };
    if cfg.renderers == 0 || cfg.renderers > 16 {
        bail!("--renderers {} must be within 1..=16", cfg.renderers);
    }
    cfg.env.validate()?;
    cfg.render.validate()?;
    let summary = generate::run(&cfg)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if summary.skipped {
        println!("{}: already complete ({} episodes); nothing to do", summary.out.display(), summary.episodes);
    } else {
        println!(
            "{}: {} episodes, {} frames in {:.1} s ({:.1} episodes/s, {:.0} frames/s), success {:.2}, on {}",
            summary.out.display(),
            summary.episodes,
            summary.frames,
            summary.seconds,
            summary.episodes_per_s,
            summary.frames_per_s,
            summary.success_rate,
            summary.render_adapter
        );
    }
    Ok(())
}

fn demo(out: &std::path::Path, episodes: u64) -> Result<()> {
    let data = out.join("dataset");
    let cfg = generate::GenConfig {
        env: sim::EnvConfig::for_task(Task::PushToGoal),
        policy: PolicyKind::Mixed,
        episodes,
        base_seed: 0,
        out: data.clone(),
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig::default(),
        renderers: default_renderers(),
        sim_workers: 1,
        progress: std::io::stderr().is_terminal(),
    };
    let summary = generate::run(&cfg)?;
    println!(
        "generated {} episodes, {} frames in {:.1} s ({:.0} frames/s) on {}",
        summary.episodes, summary.frames, summary.seconds, summary.frames_per_s, summary.render_adapter
    );
    let report = dataset::verify(&data);
    if !report.ok() {
        bail!("{}: verification failed: {}", data.display(), report.problems.join("; "));
    }
    println!(
        "verified {}: {} files, {} episodes, {} frames",
        data.display(),
        report.files_checked,
        report.episodes,
        report.frames
    );
    let sheet = out.join("contact_sheet.png");
    sheet::write_contact_sheet(&data, &sheet, 6, 8, 2)?;
    println!("contact sheet: {}", sheet.display());
    Ok(())
}

/// One render thread per core, at most 4 (each bevy app costs memory and start-up time).
pub fn default_renderers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4)
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, unit: &str, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}
