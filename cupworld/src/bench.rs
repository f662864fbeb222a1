//! `cupworld bench …`: speed figures as a table, or JSON with `--json`. Medians of repeats, since
//! these machines are noisy; anchors from `../shared/FACTS.md` printed beside them.

use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sim::{Env, EnvConfig, PolicyKind, Task};

/// MuJoCo 4.0 `mj_step` on an equivalent scene, one core of this machine class (FACTS.md).
const MUJOCO_STEPS_PER_S: f64 = 200_000.0;
/// bevy's one-camera headless example at 64×64 on lavapipe (FACTS.md).
const BEVY_EXAMPLE_FPS: f64 = 72.0;
const MUJOCO_RENDER_FPS: f64 = 31.0;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Physics steps/s of the push-the-cup scene: one core, then all cores.
    Sim {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        #[arg(long)]
        json: bool,
    },
    /// Rendered frames/s at 64×64 and 128×128 for several batch sizes.
    Render {
        /// Frames rendered per measurement.
        #[arg(long, default_value_t = 1024)]
        frames: usize,
        /// Batch sizes (environments per bevy update) to try.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        slots: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,128")]
        sizes: Vec<u32>,
        /// Renderers in parallel threads (default: one per core, at most 4).
        #[arg(long)]
        renderers: Option<usize>,
        #[arg(long)]
        shadows: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mamba vs causal attention (time, memory, step latency) and MoE vs dense FFN, on the CPU.
    Seq {
        /// Longest sequence for the Mamba block.
        #[arg(long, default_value_t = 32_768)]
        max_length: i64,
        /// Longest sequence for the attention block.
        #[arg(long, default_value_t = 32_768)]
        attention_max: i64,
        #[arg(long)]
        json: bool,
        /// Also write time and memory against length as log-log PNGs (`<PLOT>` and `<PLOT>-memory.png`).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// One forward pass in this process, printing its peak memory (bench seq runs it per
    /// measurement so allocations of earlier runs cannot hide in the high-water mark).
    #[command(hide = true)]
    SeqMemory {
        /// mamba-reference, mamba-chunked or attention.
        #[arg(long)]
        model: String,
        #[arg(long)]
        length: i64,
    },
    /// End-to-end `gen`: episodes/s and frames/s into a temporary dataset.
    Gen {
        #[arg(long, default_value_t = 64)]
        episodes: u64,
        #[arg(long, default_value_t = 32)]
        slots: usize,
        /// Render threads (default: one per core, at most 4).
        #[arg(long)]
        renderers: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// World model: training frames/s (and where the step's time goes), encoder and predictor
    /// inference latency.
    Wm {
        /// tiny or small.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Training steps timed (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Sim { seconds, repeats, json } => bench_sim(seconds, repeats, json),
        BenchCommand::Render { frames, slots, sizes, renderers, shadows, json } => {
            let renderers = renderers.unwrap_or_else(crate::host::default_renderers).max(1);
            bench_render(frames, &slots, &sizes, renderers, shadows, json)
        }
        BenchCommand::Seq { max_length, attention_max, json, plot } => {
            crate::bench_seq::run(max_length, attention_max, json, plot.as_deref())
        }
        BenchCommand::SeqMemory { model, length } => crate::bench_seq::memory_child(&model, length),
        BenchCommand::Gen { episodes, slots, renderers, json } => {
            bench_gen(episodes, slots, renderers.unwrap_or_else(crate::host::default_renderers), json)
        }
        BenchCommand::Wm { preset, steps, device, json } => crate::bench_wm::run(&preset, steps, &device, json),
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

#[derive(Serialize)]
struct SimRow {
    name: String,
    threads: usize,
    physics_steps_per_s: f64,
    control_steps_per_s: f64,
    vs_mujoco_per_core: f64,
}

/// Runs random-action episodes for `seconds`; returns physics steps/s.
fn env_steps_per_s(seconds: f64, seed: u64, physics_only: bool) -> f64 {
    let cfg = EnvConfig { max_steps: 10_000, ..EnvConfig::for_task(Task::PushToGoal) };
    let substeps = cfg.substeps() as u64;
    let mut env = Env::new(cfg).expect("default config is valid");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    env.reset(seed);
    let start = Instant::now();
    let mut steps = 0u64;
    let mut episode = 0;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..50 {
            if physics_only {
                env.advance_physics(substeps as u32);
            } else {
                let r = env.step([rng.random_range(-1.0..=1.0), rng.random_range(-1.0..=1.0)]).expect("finite");
                if r.terminated || r.truncated {
                    episode += 1;
                    env.reset(seed + episode);
                }
            }
            steps += substeps;
        }
    }
    steps as f64 / start.elapsed().as_secs_f64()
}

fn bench_sim(seconds: f64, repeats: usize, json: bool) -> Result<()> {
    let repeats = repeats.max(1);
    let cores = crate::host::cores();
    let substeps = EnvConfig::default().substeps() as f64;
    let mut rows = vec![];
    let bare = median((0..repeats).map(|i| env_steps_per_s(seconds, i as u64, true)).collect());
    rows.push(("physics only (rapier step + kinematic paw)", 1, bare));
    let env = median((0..repeats).map(|i| env_steps_per_s(seconds, i as u64, false)).collect());
    rows.push(("env.step (random actions, rewards, info)", 1, env));
    let parallel = median(
        (0..repeats)
            .map(|r| {
                let handles: Vec<_> = (0..cores)
                    .map(|t| std::thread::spawn(move || env_steps_per_s(seconds, (r * 100 + t) as u64, false)))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("bench thread")).sum()
            })
            .collect(),
    );
    rows.push(("env.step, one env per core", cores, parallel));
    let rows: Vec<SimRow> = rows
        .into_iter()
        .map(|(name, threads, sps)| SimRow {
            name: name.into(),
            threads,
            physics_steps_per_s: sps,
            control_steps_per_s: sps / substeps,
            vs_mujoco_per_core: sps / threads as f64 / MUJOCO_STEPS_PER_S,
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"anchor_mujoco_steps_per_s": MUJOCO_STEPS_PER_S, "rows": rows})
            )?
        );
    } else {
        println!(
            "{:<46} {:>7} {:>14} {:>12} {:>14}",
            "push-the-cup scene, 240 Hz", "threads", "physics st/s", "env st/s", "× MuJoCo/core"
        );
        for r in &rows {
            println!(
                "{:<46} {:>7} {:>14.0} {:>12.0} {:>14.2}",
                r.name, r.threads, r.physics_steps_per_s, r.control_steps_per_s, r.vs_mujoco_per_core
            );
        }
        println!("anchor: MuJoCo 4.0 mj_step ~{MUJOCO_STEPS_PER_S:.0} steps/s per core on this machine class");
    }
    Ok(())
}

#[derive(Serialize)]
struct RenderRow {
    width: u32,
    height: u32,
    slots: usize,
    renderers: usize,
    frames: usize,
    frames_per_s: f64,
    ms_per_update: f64,
}

/// A pool of real scenes: snapshots along expert episodes.
fn scene_pool(n: usize) -> Vec<types::SceneSnapshot> {
    let mut env = Env::new(EnvConfig::default()).expect("valid");
    let mut scenes = vec![];
    let mut index = 0;
    while scenes.len() < n {
        let _ = sim::run_episode(&mut env, PolicyKind::Mixed, sim::episode_seed(99, index), |_, _, _| {});
        scenes.push(env.scene());
        index += 1;
    }
    scenes
}

fn bench_render(
    frames: usize,
    slot_counts: &[usize],
    sizes: &[u32],
    renderers: usize,
    shadows: bool,
    json: bool,
) -> Result<()> {
    let scenes = std::sync::Arc::new(scene_pool(64));
    let mut rows = vec![];
    let mut adapter = String::new();
    for &size in sizes {
        for &slots in slot_counts {
            let cfg = render::RenderConfig { width: size, height: size, slots, shadows, ..Default::default() };
            cfg.validate()?;
            let updates = frames.div_ceil(slots * renderers).max(3);
            // Each renderer on its own thread (bevy apps are not Send); timing starts once all
            // are up, and each thread reports the median time of its updates.
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(renderers));
            let threads: Vec<_> = (0..renderers)
                .map(|t| {
                    let (cfg, scenes, barrier) = (cfg.clone(), scenes.clone(), barrier.clone());
                    std::thread::spawn(move || -> Result<(String, f64)> {
                        let mut renderer = render::Renderer::new(cfg)?;
                        barrier.wait();
                        let mut times = Vec::with_capacity(updates);
                        for u in 0..updates {
                            let jobs: Vec<(types::FrameTag, &types::SceneSnapshot)> = (0..slots)
                                .map(|i| {
                                    let tag = types::FrameTag { episode: (t * slots + i) as u64, step: u as u32 };
                                    (tag, &scenes[(u * slots + i + t) % scenes.len()])
                                })
                                .collect();
                            let began = Instant::now();
                            renderer.render(&jobs)?;
                            times.push(began.elapsed().as_secs_f64());
                        }
                        Ok((renderer.adapter().to_string(), median(times)))
                    })
                })
                .collect();
            let mut per_update = vec![];
            for th in threads {
                let (a, t) = th.join().map_err(|_| anyhow::anyhow!("a render thread panicked"))??;
                adapter = a;
                per_update.push(t);
            }
            let ms = per_update.iter().sum::<f64>() / per_update.len() as f64 * 1000.0;
            rows.push(RenderRow {
                width: size,
                height: size,
                slots,
                renderers,
                frames: updates * slots * renderers,
                frames_per_s: per_update.iter().map(|t| slots as f64 / t).sum(),
                ms_per_update: ms,
            });
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "adapter": adapter, "shadows": shadows,
                "anchor_bevy_example_fps": BEVY_EXAMPLE_FPS, "anchor_mujoco_fps": MUJOCO_RENDER_FPS, "rows": rows}))?
        );
    } else {
        println!("adapter: {adapter}; shadows {}", if shadows { "on" } else { "off" });
        println!("{:>9} {:>6} {:>10} {:>10} {:>12}", "size", "slots", "renderers", "frames/s", "ms/update");
        for r in &rows {
            println!(
                "{:>9} {:>6} {:>10} {:>10.0} {:>12.2}",
                format!("{}x{}", r.width, r.height),
                r.slots,
                r.renderers,
                r.frames_per_s,
                r.ms_per_update
            );
        }
        println!(
            "anchors at 64x64: bevy's headless example ~{BEVY_EXAMPLE_FPS} frames/s, MuJoCo software GL ~{MUJOCO_RENDER_FPS}"
        );
    }
    Ok(())
}

fn bench_gen(episodes: u64, slots: usize, renderers: usize, json: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("cupworld-bench-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = crate::generate::GenConfig {
        env: EnvConfig::default(),
        policy: PolicyKind::Mixed,
        episodes,
        base_seed: 0,
        out: dir.clone(),
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig { slots, ..Default::default() },
        renderers,
        sim_workers: 1,
        counterfactual: None,
        progress: false,
    };
    let summary = crate::generate::run(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summary?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "gen: {} episodes, {} frames in {:.2} s: {:.2} episodes/s, {:.0} frames/s (64x64, {slots} slots, {renderers} renderers, {})",
            summary.episodes,
            summary.frames,
            summary.seconds,
            summary.episodes_per_s,
            summary.frames_per_s,
            summary.render_adapter
        );
    }
    Ok(())
}
