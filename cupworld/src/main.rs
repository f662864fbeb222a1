//! `cupworld`: the command line. Every subcommand is a thin shell over the library crates.

mod acting;
mod bench;
mod view;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sim::voe;
use sim::{Env, PolicyKind, RolloutSummary, Task, episode_seed, run_episode};
use world_model::parse_device;

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
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=1000))]
        episodes: u64,
        /// Frames per episode (columns), evenly spaced.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
        frames: u64,
        /// Pixel scale factor.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
        scale: u32,
    },
    /// Train the JEPA world model from datasets (--data) or live simulation (--live).
    TrainWm(TrainWmArgs),
    /// Open the interactive 3D viewer: watch, drive (keyboard / expert / random) and inspect
    /// episodes; F1 lists the keys.
    View(view::ViewArgs),
    /// Evaluate a world model: prediction vs baselines, linear probes, violation of expectation.
    EvalWm(EvalWmArgs),
    /// Evaluate an agent that acts from 64×64 frames and a goal image (the planner in the world
    /// model's latent space), beside controls on the same episodes and goals.
    EvalAgent(acting::EvalAgentArgs),
    /// Train the Mamba-MoE policy on the world model's latents: cloning the expert on datasets,
    /// then DAgger rounds of live rollouts.
    TrainAgent(acting::TrainAgentArgs),
    /// Score episodes of any dataset with a world model: per-episode surprise (JSON) and curves (PNG).
    Surprise {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Episodes to plot as PNG.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
        plots: u64,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Write the violation-of-expectation pairs `eval-wm` scores as datasets (possible/,
    /// impossible/, pairs.json), for `surprise` or any other model.
    Voe {
        /// Output directory: new or empty (a complete one from an earlier run is kept).
        #[arg(long)]
        out: PathBuf,
        /// Pairs per category.
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        pairs: u64,
        /// The pairs' seed (`eval-wm --voe-seed`: the same seed gives the same pairs).
        #[arg(long, default_value_t = 7_000)]
        seed: u64,
        /// Only these categories (repeatable): teleport, vanish, levitate, pass-through, recolor.
        #[arg(long)]
        category: Vec<voe::Category>,
        /// Frame side in pixels (the world model's 64).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=2048))]
        size: u32,
        /// Frames before the breaking point (`eval-wm --voe-context`).
        #[arg(long, default_value_t = voe::DEFAULT_CONTEXT as u64, value_parser = clap::value_parser!(u64).range(1..=voe::MAX_CONTEXT as u64))]
        context: u64,
    },
    /// The README's main job: generate data, train the world model, evaluate it, write the report.
    Demo {
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// How big a run: the full default one, or a smoke test of the same path in seconds.
        #[arg(long, value_enum, default_value_t = ScaleArg::Small)]
        scale: ScaleArg,
        /// Where the world model trains and is evaluated: cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Benchmarks: sim (physics steps/s), render (frames/s), gen (end to end), wm (world model), plan (the planner), seq (Mamba vs attention).
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
}

/// Environment rates and limits shared by `rollout` and `gen`.
#[derive(Args, Clone, Copy)]
struct EnvArgs {
    /// Override the step limit per episode (default 150 control steps).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_steps: Option<u32>,
    /// Physics steps per second (default 240).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    physics_hz: Option<u32>,
    /// Control steps (actions, frames) per second; must divide --physics-hz (default 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    control_hz: Option<u32>,
    /// Control steps an episode goes on after the cup falls or reaches the goal (default 0), so
    /// the frames show the fall and the landing.
    #[arg(long)]
    linger_steps: Option<u32>,
    /// Where the camera is mounted: table (default; it rises and falls with the table top) or
    /// room (fixed whatever the table's height, as scene versions 1 and 2).
    #[arg(long)]
    camera_mount: Option<sim::CameraMount>,
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
        if let Some(v) = self.linger_steps {
            cfg.linger_steps = v;
        }
        if let Some(v) = self.camera_mount {
            cfg.camera_mount = v;
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
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
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
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
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
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    slots: u64,
    /// Render threads, each with its own bevy renderer (default: one per core, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    renderers: Option<u64>,
    /// Simulator threads (at least one per renderer; physics is cheap next to rendering).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    sim_workers: u64,
    #[command(flatten)]
    env: EnvArgs,
    /// Directional-light shadows (slower on CPU).
    #[arg(long)]
    shadows: bool,
    /// 4× multisample anti-aliasing (~1.7× slower on CPU; train and evaluate on the same kind).
    #[arg(long)]
    msaa: bool,
    /// Draw every frame with the cup and the pusher each moved 3–25 cm: the counterfactual
    /// companion of the dataset made with the same options, for `train-wm --counterfactual-data`.
    #[arg(long)]
    counterfactual: bool,
    /// With --counterfactual: how far the cup and the pusher are moved, "MIN,MAX" in metres.
    #[arg(long, value_delimiter = ',', default_values_t = sim::counterfactual::DISPLACEMENT, requires = "counterfactual")]
    counterfactual_range: Vec<f32>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TrainWmArgs {
    /// Dataset directories to train on (each is verified first).
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Counterfactual companions of the --data datasets, one each, in order (made with the same
    /// gen options plus --counterfactual); the presets' encoder phase trains on them. Without
    /// them, pass --config assets/world_model/no-counterfactuals.json.
    #[arg(long, conflicts_with = "live")]
    counterfactual_data: Vec<PathBuf>,
    /// Train on live simulation instead: simulators and the renderer fill a replay buffer (no
    /// counterfactual frames: with --config assets/world_model/no-counterfactuals.json).
    #[arg(long, conflicts_with = "data")]
    live: bool,
    /// Tasks the live simulators cycle through (comma-separated).
    #[arg(long, default_value = "push-to-goal,knock-off", value_delimiter = ',')]
    live_tasks: Vec<String>,
    /// Episodes kept in the live replay buffer.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    replay_episodes: u64,
    #[arg(long, default_value_t = 0)]
    live_seed: u64,
    /// Steps live episodes go on after the cup falls (so falls and landings are seen).
    #[arg(long, default_value_t = 6)]
    linger_steps: u32,
    /// Built-in size.
    #[arg(long, value_enum, default_value_t = PresetArg::Small)]
    preset: PresetArg,
    /// A JSON model/training config (keys as in the run's config.json "model") laid over
    /// --preset: the keys it names replace the preset's, the others stay.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Set one config key over the preset (and --config), e.g. `--set predictor.depth=2`;
    /// repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Start the encoder and target encoder from this run directory or checkpoint (same encoder
    /// settings), e.g. to train a predictor on a pre-trained, frozen encoder (with
    /// `--set encoder_steps=0`).
    #[arg(long)]
    init_encoder: Option<PathBuf>,
    /// Training steps in all, the encoder phase's (`encoder_steps`) included.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    steps: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=65_536))]
    batch_size: Option<i64>,
    #[arg(long)]
    seed: Option<u64>,
    /// The run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    checkpoint_every: u64,
    /// Held-out dataset directories: the one-step prediction is scored on a fixed draw of 256
    /// of their clips against copy-last every --val-every predictor steps (metrics.jsonl
    /// `val_l1`, `val_copy_last`; plots/validation.png).
    #[arg(long)]
    val_data: Vec<PathBuf>,
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    val_every: u64,
    /// Checkpoints kept (the newest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    keep: u64,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: Option<i32>,
    /// Non-finite steps in a row that stop the run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    max_nonfinite: u32,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalWmArgs {
    /// A checkpoint file, or a run directory (its newest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Held-out dataset directories.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Dataset directories to fit the linear probes on (the training split), tested on every
    /// --data episode. Without it: --data episodes are split by episode seed, three groups in five
    /// fit and two tested.
    #[arg(long)]
    probe_data: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Matched VoE pairs per category (the main job draws 100, to fit its 30 minutes: with 40, one
    /// pair moved a category's accuracy by 2.5 points and reruns differed by ~5).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    voe_pairs: u64,
    #[arg(long, default_value_t = 7_000)]
    voe_seed: u64,
    /// Prediction horizons scored, 1 to this many model steps.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i64).range(1..=64))]
    horizons: i64,
    /// Frames each VoE clip shows before the breaking point: the context the first predictions
    /// after it have (at frameskip 4, 16 frames are four model steps).
    #[arg(long, default_value_t = voe::DEFAULT_CONTEXT as u64, value_parser = clap::value_parser!(u64).range(1..=voe::MAX_CONTEXT as u64))]
    voe_context: u64,
    /// Predict with the predictor's weights as trained, not their average (configs with
    /// `predictor.average` > 0 keep one; evaluation uses it by default).
    #[arg(long)]
    online_predictor: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: Option<i32>,
}

/// `train-wm --preset`: the world model's built-in sizes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PresetArg {
    /// The shipped model, what the main job trains.
    Small,
    /// A shrink of it for tests and smoke runs.
    Tiny,
}

impl PresetArg {
    fn name(self) -> &'static str {
        match self {
            PresetArg::Small => "small",
            PresetArg::Tiny => "tiny",
        }
    }
}

fn wm_config(a: &TrainWmArgs) -> Result<world_model::WmConfig> {
    let mut cfg = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let overrides: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
            world_model::WmConfig::preset_with(a.preset.name(), &overrides)
                .with_context(|| format!("--config {}", path.display()))?
        }
        None => world_model::WmConfig::preset(a.preset.name())?,
    };
    if let Some(v) = a.steps {
        cfg.steps = v;
    }
    if let Some(v) = a.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    for assignment in &a.set {
        cfg = cfg.set(assignment).with_context(|| format!("--set {assignment}"))?;
    }
    match &a.config {
        Some(path) => cfg.validate().with_context(|| format!("--config {} (over --preset)", path.display()))?,
        None => cfg.validate()?,
    }
    Ok(cfg)
}

fn train_wm_cmd(a: TrainWmArgs) -> Result<()> {
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let data = if a.live {
        train::DataSource::Live {
            tasks: a.live_tasks.clone(),
            replay_episodes: a.replay_episodes as usize,
            seed: a.live_seed,
            linger_steps: a.linger_steps,
        }
    } else {
        if a.data.is_empty() {
            bail!("give --data DIR (one or more datasets) or --live");
        }
        if a.counterfactual_data.is_empty() {
            train::DataSource::Datasets(a.data.clone())
        } else {
            train::DataSource::DatasetsWithCounterfactuals {
                data: a.data.clone(),
                counterfactual: a.counterfactual_data.clone(),
            }
        }
    };
    // The library resumes when there is something to resume (the main job reruns that way); a
    // user who asks for --resume means a run that exists.
    if a.resume && train::latest_checkpoint(&a.out)?.is_none() {
        bail!(
            "--resume: {} holds no run (no checkpoints/step-*.safetensors); leave out --resume to start one",
            a.out.display()
        );
    }
    let opts = train::TrainOptions {
        cfg: wm_config(&a)?,
        data,
        out: a.out.clone(),
        resume: a.resume,
        device: parse_device(&a.device)?,
        checkpoint_every: a.checkpoint_every.max(1),
        keep: a.keep as usize,
        max_nonfinite: a.max_nonfinite.max(1),
        hooks: train::Hooks::default(),
        progress: std::io::stderr().is_terminal(),
        init_encoder: a.init_encoder.clone(),
        validation: a.val_data.clone(),
        validate_every: a.val_every.max(1),
    };
    let s = train::run(&opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "trained {} to step {} in {:.1} s ({:.0} frames/s), final loss {:.4}, {} non-finite steps skipped; checkpoint {}",
            s.out.display(),
            s.steps,
            s.seconds,
            s.frames_per_s,
            s.final_loss,
            s.nonfinite_steps,
            s.final_checkpoint.display()
        );
        if let Some((l1, copy)) = s.validation {
            println!("held-out one-step L1 {l1:.4} (copy-last {copy:.4})");
        }
    }
    Ok(())
}

fn eval_wm_cmd(a: EvalWmArgs) -> Result<()> {
    if let Some(n) = a.threads {
        tch::set_num_threads(n);
    }
    let report = eval::run(&eval::EvalOptions {
        checkpoint: a.checkpoint,
        data: a.data,
        probe_data: a.probe_data,
        out: a.out.clone(),
        voe_pairs: a.voe_pairs as usize,
        voe_seed: a.voe_seed,
        horizons: a.horizons,
        voe_context: a.voe_context as usize,
        online_predictor: a.online_predictor,
        device: parse_device(&a.device)?,
    })?;
    print_eval_summary(&report);
    println!("report: {}", a.out.join("report.md").display());
    Ok(())
}

fn print_eval_summary(r: &eval::EvalReport) {
    let p = &r.prediction;
    println!(
        "prediction L1 h=1: trained {:.4} / copy-last {:.4} / random {:.4}; h={}: {:.4} / {:.4} / {:.4}; below copy-last at every horizon: {}",
        p.trained[0],
        p.copy_last[0],
        p.random_init[0],
        p.horizons.len(),
        p.trained[p.horizons.len() - 1],
        p.copy_last[p.horizons.len() - 1],
        p.random_init[p.horizons.len() - 1],
        p.trained_below_copy_last_at_every_horizon
    );
    println!(
        "probe: cup position R² {:.3}/{:.3} (random init {:.3}/{:.3}); on-table accuracy {:.3}, balanced {:.3} (random {:.3}/{:.3}, majority {:.3})",
        r.probe.trained_position_r2[0],
        r.probe.trained_position_r2[1],
        r.probe.random_init_position_r2[0],
        r.probe.random_init_position_r2[1],
        r.probe.trained_on_table_accuracy,
        r.probe.trained_on_table_balanced_accuracy,
        r.probe.random_init_on_table_accuracy,
        r.probe.random_init_on_table_balanced_accuracy,
        r.probe.on_table_majority_baseline
    );
    let v = &r.voe;
    let cats: Vec<String> =
        v.trained.by_max.iter().map(|(n, s)| format!("{n} {:.0}%", 100.0 * s.pairwise_accuracy)).collect();
    println!(
        "VoE pairwise accuracy (max): overall {:.1}% [{}]; random init {:.1}%; change detector {:.1}%",
        100.0 * v.trained.overall_by_max.pairwise_accuracy,
        cats.join(", "),
        100.0 * v.random_init.overall_by_max.pairwise_accuracy,
        100.0 * v.change_detector.overall_by_max.pairwise_accuracy
    );
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Check every file against the manifest and the dataset's structure.
    Verify {
        data: PathBuf,
        /// Also compare every episode with this dataset's, column by column and image byte by
        /// image byte (e.g. a rerun of the same seeds); names the first episode, frame and column
        /// that differ, and fails if any does.
        #[arg(long, value_name = "DIR")]
        against: Option<PathBuf>,
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUPWORLD_LOG").unwrap_or_else(|_| {
        // bevy warns that a software adapter is slow once per renderer; every command that
        // renders names the adapter once in its own summary instead.
        tracing_subscriber::EnvFilter::new(
            "warn,bevy_render::renderer=error,cupworld=info,datagen=info,train=info,eval=info,demo=info",
        )
    });
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
        Command::Dataset(DatasetCommand::Verify { data, against: Some(other), json }) => {
            let c = dataset::compare(&data, &other)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            }
            match &c.first {
                None => {
                    if !json {
                        println!(
                            "{} and {}: identical ({} episodes, {} frames)",
                            data.display(),
                            other.display(),
                            c.episodes,
                            c.frames
                        );
                    }
                    Ok(())
                }
                Some(d) => bail!(
                    "{} and {} differ: first at {d}; {} of {} frames differ ({} images, by up to {} levels)",
                    data.display(),
                    other.display(),
                    c.frames_differing,
                    c.frames,
                    c.images_differing,
                    c.max_pixel_difference
                ),
            }
        }
        Command::Dataset(DatasetCommand::Verify { data, against: None, json }) => {
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
            let shards = datagen::find_shards(&shards)?;
            let manifest = dataset::merge(&shards, &out, datagen::tool_versions())?;
            println!(
                "merged {} shards into {}: {} episodes",
                shards.len(),
                out.display(),
                manifest.episode_seeds.len()
            );
            Ok(())
        }
        Command::ContactSheet { data, out, episodes, frames, scale } => {
            datagen::write_contact_sheet(&data, &out, episodes as usize, frames as usize, scale)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::View(a) => view::run(a),
        Command::TrainWm(a) => train_wm_cmd(a),
        Command::EvalWm(a) => eval_wm_cmd(a),
        Command::EvalAgent(a) => acting::eval_agent_cmd(a),
        Command::TrainAgent(a) => acting::train_agent_cmd(a),
        Command::Surprise { checkpoint, data, out, plots, device } => {
            let r = eval::surprise_cmd(&checkpoint, &data, &out, plots as usize, parse_device(&device)?)?;
            let n = r["episodes"].as_array().map(|v| v.len()).unwrap_or(0);
            println!("scored {n} episodes: {}", out.join("surprise.json").display());
            Ok(())
        }
        Command::Voe { out, pairs, seed, category, size, context } => {
            let categories = if category.is_empty() { voe::Category::ALL.to_vec() } else { category };
            let r = datagen::voe_datasets::run(&datagen::voe_datasets::VoeDataOptions {
                out,
                pairs_per_category: pairs as usize,
                seed,
                categories,
                size,
                context: context as usize,
            })?;
            if r.skipped {
                println!("{}: already holds {} pairs (pairs.json); nothing written", r.out.display(), r.pairs);
            } else {
                println!(
                    "wrote {} pairs ({} frames per twin) to {}: possible/, impossible/, pairs.json (rendered on {})",
                    r.pairs,
                    r.frames_per_twin,
                    r.out.display(),
                    r.render_adapter
                );
            }
            Ok(())
        }
        Command::Demo { out, scale, device } => demo_cmd(out, scale, parse_device(&device)?),
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

/// `bench sim --seconds`: a positive, finite number of seconds (at most an hour).
fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s} is not a number of seconds in (0, 3600]")),
    }
}

/// `view --speed`: simulation speed as a multiple of real time, within what the viewer's `+`/`-`
/// keys reach (1/16 to 16).
fn view_speed(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (1.0 / 16.0..=16.0).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a speed within 0.0625..=16 times real time")),
    }
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
    let cfg = datagen::GenConfig {
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
            slots: a.slots as usize,
            shadows: a.shadows,
            msaa: a.msaa,
        },
        renderers: a.renderers.map_or_else(datagen::host::default_renderers, |n| n as usize),
        sim_workers: a.sim_workers as usize,
        counterfactual: match (a.counterfactual, a.counterfactual_range.as_slice()) {
            (false, _) => None,
            (true, &[lo, hi]) => Some(sim::counterfactual::Displacement { range: [lo, hi] }),
            (true, other) => bail!("--counterfactual-range {other:?}: expected two numbers, MIN,MAX"),
        },
        progress: std::io::stderr().is_terminal(),
    };
    let summary = datagen::generate::run(&cfg)?;
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

/// `demo --scale`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScaleArg {
    /// The full default run (~28 min on a 2-core Xeon after the build).
    Small,
    /// A smoke test of the same path in seconds.
    Tiny,
}

fn demo_cmd(out: PathBuf, scale: ScaleArg, device: tch::Device) -> Result<()> {
    let scale = match scale {
        ScaleArg::Small => demo::Scale::Small,
        ScaleArg::Tiny => demo::Scale::Tiny,
    };
    let s = demo::run(&demo::DemoOptions { out, scale, device, progress: std::io::stderr().is_terminal() })?;
    print_eval_summary(&s.report);
    for r in &s.agent_reports {
        for a in &r.agents {
            println!(
                "{} {:<16} success {:.2} [{:.2}, {:.2}] over {} episodes",
                r.task, a.agent, a.success_once, a.success_once_interval[0], a.success_once_interval[1], a.episodes
            );
        }
    }
    println!("report: {} (timing {})", s.report_md.display(), serde_json::Value::Object(s.timing));
    Ok(())
}
