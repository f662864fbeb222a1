//! `cupworld bench …`: speed figures as a table, or JSON with `--json`. Medians of repeats, since
//! machines are noisy; ratios only to anchors measured in the same run.

pub mod plan;
pub mod policy;
pub mod seq;
pub mod wm;

use std::time::Instant;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sim::{Env, EnvConfig, PolicyKind, Task};

/// Figures measured elsewhere, printed for orientation only: a ratio to a figure from another
/// host would mislead (hosts differ by 2x), so none is computed.
const CITED_SIM: &str = "MuJoCo 4.0 mj_step on an equivalent scene: ~200,000 steps/s on one core of a 2-core Xeon \
     (measured 2026-11, not on this host; run `python -m mujoco` there to compare)";
const CITED_RENDER: &str = "at 64x64 on lavapipe, measured 2026-11 on a 2-core Xeon, not on this host: bevy's one-camera \
     headless example ~72 frames/s, MuJoCo's software-GL renderer ~31";

/// The median and the 90th percentile (nearest rank) of timings.
pub fn median_and_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
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

pub fn sim(seconds: f64, repeats: usize, json: bool) -> Result<()> {
    let repeats = repeats.max(1);
    let cores = datagen::host::cores();
    let substeps = EnvConfig::default().substeps() as f64;
    let mut rows = vec![];
    let bare = median((0..repeats).map(|i| env_steps_per_s(seconds, i as u64, true)).collect());
    rows.push(("physics only (rapier step + kinematic pusher)", 1, bare));
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
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"cited": CITED_SIM, "cpu": datagen::host::cpu(), "rows": rows})
            )?
        );
    } else {
        println!("on {}", datagen::host::cpu());
        println!("{:<46} {:>7} {:>14} {:>12}", "push-the-cup scene, 240 Hz", "threads", "physics st/s", "env st/s");
        for r in &rows {
            println!("{:<46} {:>7} {:>14.0} {:>12.0}", r.name, r.threads, r.physics_steps_per_s, r.control_steps_per_s);
        }
        println!("cited: {CITED_SIM}");
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

pub fn render(
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
                "cpu": datagen::host::cpu(), "cited": CITED_RENDER, "rows": rows}))?
        );
    } else {
        println!("adapter: {adapter}; shadows {}; on {}", if shadows { "on" } else { "off" }, datagen::host::cpu());
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
        println!("cited: {CITED_RENDER}");
    }
    Ok(())
}

pub fn generation(episodes: u64, slots: usize, renderers: usize, json: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("cupworld-bench-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = datagen::generate::GenConfig {
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
    let summary = datagen::generate::run(&cfg);
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
