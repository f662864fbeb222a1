//! `cupworld gen`: simulators → renderer → dataset writer, over bounded crossbeam channels.
//!
//! ```text
//! sim workers ──RenderJob{tag, scene, Step}──► render thread ──(Step, Frame)──► writer (this thread)
//!   (one episode at a time each)     bounded           (batches up to `slots`)     bounded
//! ```
//! The writer reassembles episodes (checking each arrives with contiguous steps) and writes them in
//! global episode order, so the dataset does not depend on thread timing or shard count.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::bounded;
use dataset::{DatasetInfo, DatasetWriter, EpisodeRecord, FrameRow, ManifestMeta};
use render::{RenderConfig, RenderJob};
use serde::Serialize;
use sim::{Actor, Env, EnvConfig, PolicyKind, episode_seed};
use types::{FrameTag, Transition};

/// Everything `gen` needs.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub env: EnvConfig,
    pub policy: PolicyKind,
    pub episodes: u64,
    pub base_seed: u64,
    pub out: PathBuf,
    pub shard_index: u32,
    pub num_shards: u32,
    pub render: RenderConfig,
    /// Render threads, each with its own bevy app (lavapipe rasterises on the calling thread).
    pub renderers: usize,
    /// Simulator threads; worker `w` feeds renderer `w % renderers`, so an episode's frames
    /// all pass through one renderer and stay in order.
    pub sim_workers: usize,
    /// Draw every frame with the cup (and the pusher) moved (`sim::counterfactual`): a companion
    /// dataset of the same episodes, step for step, for the world model's counterfactual loss.
    /// Its `observation.environment_state` holds where the cup is drawn, its `observation.state`
    /// where the pusher is.
    pub counterfactual: Option<sim::counterfactual::Displacement>,
    pub progress: bool,
}

impl GenConfig {
    /// Checks every setting before anything is made; the error names the option.
    pub fn validate(&self) -> Result<()> {
        if !(1..=100_000_000).contains(&self.episodes) {
            bail!("--episodes {} must be within 1..=100000000", self.episodes);
        }
        if self.num_shards == 0 || self.shard_index >= self.num_shards {
            bail!("--shard-index {} must be below --num-shards {}", self.shard_index, self.num_shards);
        }
        if u64::from(self.num_shards) > self.episodes {
            bail!(
                "--num-shards {} is more than the {} episodes: a shard would be empty",
                self.num_shards,
                self.episodes
            );
        }
        if !(1..=16).contains(&self.renderers) {
            bail!("--renderers {} must be within 1..=16", self.renderers);
        }
        if !(1..=64).contains(&self.sim_workers) {
            bail!("--sim-workers {} must be within 1..=64", self.sim_workers);
        }
        if let Some(sim::counterfactual::Displacement { range: [lo, hi] }) = self.counterfactual
            && !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo < hi && hi <= 1.0)
        {
            bail!("--counterfactual-range {lo},{hi}: expected 0 < MIN < MAX <= 1 (metres)");
        }
        self.env.validate()?;
        self.render.validate()?;
        Ok(())
    }

    /// The global episode range of this shard: `[start, end)`, split as evenly as possible.
    pub fn episode_range(&self) -> (u64, u64) {
        let (i, n) = (self.shard_index as u64, self.num_shards as u64);
        (self.episodes * i / n, self.episodes * (i + 1) / n)
    }

    /// Where this shard's dataset goes: `out` itself, or `out/shard-i-of-n` when sharded.
    pub fn shard_dir(&self) -> PathBuf {
        if self.num_shards == 1 {
            self.out.clone()
        } else {
            self.out.join(format!("shard-{:05}-of-{:05}", self.shard_index, self.num_shards))
        }
    }
}

/// One control step on its way to the writer.
struct Step {
    transition: Transition,
    /// Set on the episode's last step.
    end: Option<EpisodeEnd>,
}

struct EpisodeEnd {
    seed: u64,
    policy: String,
    success: bool,
    episode_return: f32,
}

#[derive(Debug, Serialize)]
pub struct GenSummary {
    pub out: PathBuf,
    pub episodes: u64,
    pub frames: u64,
    pub seconds: f64,
    pub episodes_per_s: f64,
    pub frames_per_s: f64,
    pub success_rate: f64,
    pub render_adapter: String,
    /// True when the shard was already complete and nothing was done.
    pub skipped: bool,
}

pub fn tool_versions() -> BTreeMap<String, String> {
    [
        ("cupworld", env!("CARGO_PKG_VERSION")),
        // Resolved versions, read from Cargo.lock at build time (build.rs).
        ("rapier3d", env!("CUPWORLD_RAPIER3D_VERSION")),
        ("bevy", env!("CUPWORLD_BEVY_VERSION")),
        ("parquet", env!("CUPWORLD_PARQUET_VERSION")),
        ("rustc", env!("CUPWORLD_RUSTC_VERSION")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What the frames were made with, as the manifest records it: the environment config (its
/// `camera_mount` included), the camera for a table top at `CameraSpec::REFERENCE_TABLE_TOP` (a
/// table-mounted camera rises with the table top), the scene's look (`sim::SCENE_VERSION`; they
/// changed before), and the counterfactual moves.
fn recorded_env_config(cfg: &GenConfig) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(&cfg.env)?;
    v["camera"] = serde_json::to_value(types::CameraSpec::default())?;
    v["scene_version"] = sim::SCENE_VERSION.into();
    if let Some(how) = cfg.counterfactual {
        v["counterfactual"] = serde_json::json!({
            "cup_displacement_m": how.range,
            "pusher_displacement_m": how.range,
        });
    }
    Ok(v)
}

/// The first place where a complete dataset's manifest differs from what `cfg` would make
/// (`None`: the same data), as "key: theirs vs ours".
fn differs_from(meta: &dataset::ManifestMeta, cfg: &GenConfig) -> Result<Option<String>> {
    let ours = serde_json::json!({
        "task": cfg.env.task.name(),
        "policy": cfg.policy.name(),
        "base_seed": cfg.base_seed,
        "total_episodes_planned": cfg.episodes,
        "env_config": recorded_env_config(cfg)?,
    });
    let theirs = serde_json::json!({
        "task": meta.task,
        "policy": meta.policy,
        "base_seed": meta.base_seed,
        "total_episodes_planned": meta.total_episodes_planned,
        "env_config": meta.env_config,
    });
    Ok(dataset::manifest::first_difference("", &theirs, &ours)
        .map(|(key, there, here)| format!("{key}: {there} there, {here} here")))
}

pub fn run(cfg: &GenConfig) -> Result<GenSummary> {
    cfg.validate()?;
    let dir = cfg.shard_dir();
    // A shard counts once its manifest is written: a complete one is kept, a partial one redone.
    if dir.join(dataset::schema::MANIFEST_PATH).exists() {
        let report = dataset::verify(&dir);
        if report.ok() {
            // A complete dataset made with other options is not what was asked for: say so rather
            // than hand it on (old frames mixed into new runs).
            let manifest = dataset::Manifest::read(&dir)?;
            if let Some(difference) = differs_from(&manifest.meta, cfg)? {
                bail!(
                    "{} is a complete dataset made with other options ({difference}); remove it to \
                     regenerate, or choose another --out (nothing was changed)",
                    dir.display()
                );
            }
            tracing::info!("{} is already complete; nothing to do", dir.display());
            return Ok(GenSummary {
                out: dir,
                episodes: report.episodes,
                frames: report.frames,
                seconds: 0.0,
                episodes_per_s: 0.0,
                frames_per_s: 0.0,
                success_rate: f64::NAN,
                render_adapter: String::new(),
                skipped: true,
            });
        }
        bail!(
            "{} has a manifest but fails verification ({}); remove it to regenerate",
            dir.display(),
            report.problems.join("; ")
        );
    }
    if dir.exists() {
        if !is_interrupted_dataset(&dir)? {
            bail!(
                "{} exists and holds files that are not an interrupted cupworld dataset; \
                 choose another --out (nothing was changed)",
                dir.display()
            );
        }
        tracing::warn!("{} is an interrupted run (no manifest): starting it again", dir.display());
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (start, end) = cfg.episode_range();
    let info = DatasetInfo {
        fps: cfg.env.control_hz,
        task: cfg.env.task.description().to_string(),
        width: cfg.render.width,
        height: cfg.render.height,
        robot_type: "cupworld-pusher".into(),
    };
    let mut writer = DatasetWriter::create(&dir, info)?;
    let began = Instant::now();

    let renderers = cfg.renderers.max(1);
    let (frame_tx, frame_rx) = bounded::<(Step, types::Frame)>(cfg.render.slots * 4 * renderers);
    let mut job_txs = vec![];
    let mut render_threads = vec![];
    let mut adapter = String::new();
    for _ in 0..renderers {
        let (job_tx, job_rx) = bounded::<RenderJob<Step>>(cfg.render.slots * 4);
        let (ready_tx, ready_rx) = bounded(1);
        render_threads.push(render::spawn_render_thread(cfg.render.clone(), job_rx, frame_tx.clone(), ready_tx));
        adapter = match ready_rx.recv() {
            Ok(Ok(adapter)) => adapter,
            Ok(Err(e)) => bail!("the renderer failed to start: {e}"),
            Err(_) => bail!("the render thread died while starting"),
        };
        job_txs.push(job_tx);
    }
    drop(frame_tx);
    tracing::info!("rendering on {adapter} with {renderers} render thread(s)");

    let next_episode = Arc::new(AtomicU64::new(start));
    let workers: Vec<_> = (0..cfg.sim_workers.max(renderers))
        .map(|w| {
            let tx = job_txs[w % renderers].clone();
            let next = next_episode.clone();
            let (env_cfg, policy, base_seed, counterfactual) =
                (cfg.env.clone(), cfg.policy, cfg.base_seed, cfg.counterfactual);
            std::thread::spawn(move || -> Result<()> {
                let mut env = Env::new(env_cfg)?;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return Ok(());
                    }
                    if !simulate_episode(&mut env, policy, base_seed, index, counterfactual, &tx)? {
                        return Ok(()); // the consumer is gone
                    }
                }
            })
        })
        .collect();
    drop(job_txs);

    let bar = crate::progress_bar(end - start, "episodes", cfg.progress);
    let mut open: HashMap<u64, Vec<FrameRow>> = HashMap::new();
    let mut finished: BTreeMap<u64, EpisodeRecord> = BTreeMap::new();
    let mut next_to_write = start;
    let (mut frames, mut successes) = (0u64, 0u64);
    for (step, frame) in frame_rx.iter() {
        let episode = step.transition.tag.episode;
        let rows = open.entry(episode).or_default();
        if step.transition.tag.step as usize != rows.len() || frame.tag != step.transition.tag {
            bail!(
                "episode {episode}: got step {} after {} steps (frames dropped or reordered)",
                step.transition.tag.step,
                rows.len()
            );
        }
        rows.push(FrameRow { transition: step.transition, rgb: frame.rgb });
        frames += 1;
        if let Some(end) = step.end {
            let rows = open.remove(&episode).expect("inserted above");
            successes += end.success as u64;
            finished.insert(
                episode,
                EpisodeRecord {
                    seed: end.seed,
                    policy: end.policy,
                    success: end.success,
                    episode_return: end.episode_return,
                    rows,
                },
            );
            while let Some(record) = finished.remove(&next_to_write) {
                writer.write_episode(&record)?;
                next_to_write += 1;
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    for w in workers {
        w.join().map_err(|_| anyhow!("a simulator thread panicked"))??;
    }
    for r in render_threads {
        r.join().map_err(|_| anyhow!("a render thread panicked"))??;
    }
    if next_to_write != end {
        bail!("only {} of {} episodes were completed", next_to_write - start, end - start);
    }
    let meta = ManifestMeta {
        task: cfg.env.task.name().to_string(),
        policy: cfg.policy.name().to_string(),
        base_seed: cfg.base_seed,
        episode_offset: start,
        total_episodes_planned: cfg.episodes,
        shard_index: cfg.shard_index,
        num_shards: cfg.num_shards,
        tools: tool_versions(),
        render_adapter: adapter.clone(),
        env_config: recorded_env_config(cfg)?,
    };
    writer.finish(meta)?;
    let seconds = began.elapsed().as_secs_f64();
    let episodes = end - start;
    Ok(GenSummary {
        out: dir,
        episodes,
        frames,
        seconds,
        episodes_per_s: episodes as f64 / seconds,
        frames_per_s: frames as f64 / seconds,
        success_rate: successes as f64 / episodes.max(1) as f64,
        render_adapter: adapter,
        skipped: false,
    })
}

/// True if `dir` holds nothing but what an interrupted `gen` leaves (`meta/`, `data/`, `*.partial`),
/// so it is safe to delete; anything else belongs to the user.
fn is_interrupted_dataset(dir: &std::path::Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !(name == "meta" || name == "data" || name.ends_with(".partial")) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs global episode `index`, sending one render job per step (with `counterfactual`, of the
/// scene with the cup and the pusher moved). Returns false if the consumer hung up (shutdown), true when the
/// episode was fully sent.
fn simulate_episode(
    env: &mut Env,
    policy: PolicyKind,
    base_seed: u64,
    index: u64,
    counterfactual: Option<sim::counterfactual::Displacement>,
    tx: &crossbeam_channel::Sender<RenderJob<Step>>,
) -> Result<bool> {
    let seed = episode_seed(base_seed, index);
    let (mut obs, mut info) = env.reset(seed);
    let mut actor = Actor::new(policy, env.config().task, seed);
    let control_hz = env.config().control_hz as f32;
    let mut episode_return = 0.0;
    let mut step = 0u32;
    loop {
        let mut scene = env.scene();
        let mut environment_state = obs.environment_state.to_vec();
        let mut state = obs.state.to_vec();
        if let Some(how) = counterfactual {
            // Drawn before the step, from the state the frame shows; a scene with no free spot
            // (rare) is drawn as it is.
            let rng = &mut sim::counterfactual::rng_for(seed, step);
            if let Some((edited, cup, pusher)) = sim::counterfactual::displaced_objects(&scene, &info, how, rng) {
                scene = edited;
                environment_state[..3].copy_from_slice(&cup);
                state[..2].copy_from_slice(&pusher);
            }
        }
        let action = actor.act(&info);
        let r = env.step(action)?;
        episode_return += r.reward;
        let done = r.terminated || r.truncated;
        let tag = FrameTag { episode: index, step };
        let transition = Transition {
            tag,
            timestamp: step as f32 / control_hz,
            state,
            environment_state,
            action,
            reward: r.reward,
            done,
            success: r.info.success,
        };
        let end = done.then(|| EpisodeEnd {
            seed,
            policy: actor.policy().name().to_string(),
            success: r.info.success,
            episode_return,
        });
        if tx.send(RenderJob { tag, scene, payload: Step { transition, end } }).is_err() {
            return Ok(false);
        }
        if done {
            return Ok(true);
        }
        obs = r.obs;
        info = r.info;
        step += 1;
    }
}

/// Finds shard datasets: the paths themselves, or `shard-*` folders inside them.
pub fn find_shards(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        if p.join(dataset::schema::MANIFEST_PATH).exists() || !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("reading {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("shard-")))
            .collect();
        if inner.is_empty() {
            bail!("{}: neither a dataset (no manifest.json) nor a folder of shard-* datasets", p.display());
        }
        inner.sort();
        out.extend(inner);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tool_versions_are_the_locked_ones() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        for (name, version) in super::tool_versions() {
            assert!(version != "unknown" && !version.is_empty(), "{name}: {version}");
            if !matches!(name.as_str(), "cupworld" | "rustc") {
                let entry = format!("name = \"{name}\"\nversion = \"{version}\"");
                assert!(lock.contains(&entry), "{name} {version} is not the version in Cargo.lock");
            }
        }
    }
}
