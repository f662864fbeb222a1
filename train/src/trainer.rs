//! The world-model trainer (`cupworld train-wm`): the JEPA world model from datasets or live
//! simulation.
//!
//! Run directory: `config.json` (the resolved model config and data sources), `metrics.jsonl` (one
//! line per step), `plots/{loss,collapse}.png`, `checkpoints/step-<8-digit step>.safetensors` (the last
//! `keep`), written atomically. `--resume` continues from the newest checkpoint exactly: the
//! weights, optimiser moments, EMA target, step and sampler position all come back.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use world_model::{AdamW, Clips, Phase, WmConfig, WorldModel, load_checkpoint, save_checkpoint};

use crate::data::{
    ClipSampler, ClipSpec, EpisodeTensors, LatentCache, ReplayBuffer, SamplerState, load_datasets, load_paired,
};
use crate::plot::{Plot, Series, line_plot};

/// Where the training data comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum DataSource {
    /// Verified datasets on disk.
    Datasets(Vec<PathBuf>),
    /// Verified datasets, each paired with its counterfactual companion (`gen --counterfactual`)
    /// for the `loss.counterfactual*` terms.
    DatasetsWithCounterfactuals { data: Vec<PathBuf>, counterfactual: Vec<PathBuf> },
    /// Simulators and the renderer, streamed into a replay buffer of this many episodes.
    Live { tasks: Vec<String>, replay_episodes: usize, seed: u64, linger_steps: u32 },
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub cfg: WmConfig,
    pub data: DataSource,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    pub checkpoint_every: u64,
    pub keep: usize,
    /// Consecutive skipped (non-finite) steps that stop the run.
    pub max_nonfinite: u32,
    /// Callbacks into the run (a caller's stop request, a test's altered batches).
    pub hooks: Hooks,
    pub progress: bool,
    /// Start a fresh run's encoder and target encoder from this run directory or checkpoint (its
    /// `encoder` settings must match): a predictor trained on a pre-trained encoder, as V-JEPA
    /// 2-AC does. Ignored when resuming (the run's own checkpoint holds the weights).
    pub init_encoder: Option<PathBuf>,
    /// Held-out datasets: every `validate_every` predictor steps the one-step prediction is scored
    /// on a fixed draw of their clips against copy-last (`val_l1`, `val_copy_last` in the metrics
    /// and `plots/validation.png`). A predictor can fit its training clips while doing worse than copy-last
    /// on unseen ones; the training loss does not show that.
    pub validation: Vec<PathBuf>,
    pub validate_every: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            cfg: WmConfig::default(),
            data: DataSource::Datasets(vec![]),
            out: PathBuf::new(),
            resume: false,
            device: Device::Cpu,
            checkpoint_every: 100,
            keep: 3,
            max_nonfinite: 10,
            hooks: Hooks::default(),
            progress: false,
            init_encoder: None,
            validation: vec![],
            validate_every: 250,
        }
    }
}

/// Callbacks into a training run, for callers that drive it and for tests.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Asked before each step with its number; `true` ends the run there as a crash would: no
    /// final checkpoint, only what was already written survives (`resume` continues it).
    pub stop_before: Option<Arc<dyn Fn(u64) -> bool + Send + Sync>>,
    /// Applied to each step's input clips (frames, or the online encoder's latents) before the
    /// update, with the step's number.
    pub transform_batch: Option<Arc<dyn Fn(u64, Tensor) -> Tensor + Send + Sync>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("stop_before", &self.stop_before.is_some())
            .field("transform_batch", &self.transform_batch.is_some())
            .finish()
    }
}

/// Clips drawn once from the held-out datasets, as the predictor trains on them (no fall weight).
const VALIDATION_CLIPS: i64 = 256;

/// Held-out clips for [`Validation::score`]: frames `[n, clip_len, 3, H, W]` and actions.
struct Validation {
    frames: Tensor,
    actions: Tensor,
}

impl Validation {
    fn load(dirs: &[PathBuf], cfg: &WmConfig) -> Result<Option<Validation>> {
        if dirs.is_empty() {
            return Ok(None);
        }
        for dir in dirs {
            crate::data::refuse_counterfactual(dir)?;
        }
        let episodes = load_datasets(dirs, cfg.image_size)?;
        let mut sampler = ClipSampler::new(0x7a11d);
        let (frames, actions, _) = sampler
            .sample(episodes.iter(), VALIDATION_CLIPS, cfg.clip_len, cfg.frameskip, 1.0, false)
            .with_context(|| {
                let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                format!("--val-data {}", names.join(", "))
            })?;
        Ok(Some(Validation { frames, actions }))
    }

    /// Mean L1 of the teacher-forced one-step predictions and of copy-last, over the clips'
    /// frames 1..clip_len (model steps).
    fn score(&self, model: &WorldModel) -> (f64, f64) {
        tch::no_grad(|| {
            let (mut pred_sum, mut copy_sum, mut n) = (0.0, 0.0, 0.0);
            for (f, a) in self.frames.split(64, 0).iter().zip(self.actions.split(64, 0).iter()) {
                let (b, t) = (f.size()[0], f.size()[1]);
                let (z, target) = model.encode_clips(f);
                let pred = model.predict(&z.narrow(1, 0, t - 1), &target.narrow(1, 0, t - 1), &a.narrow(1, 0, t - 1));
                let next = target.narrow(1, 1, t - 1);
                let l1 = |x: &Tensor| (x - &next).abs().mean(Kind::Float).double_value(&[]);
                pred_sum += l1(&pred) * b as f64;
                copy_sum += l1(&target.narrow(1, 0, t - 1)) * b as f64;
                n += b as f64;
            }
            (pred_sum / n, copy_sum / n)
        })
    }
}

/// The trainer's own state, stored inside every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    sampler: SamplerState,
    frames_seen: u64,
    nonfinite_total: u64,
    nonfinite_streak: u32,
    data: DataSource,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct MetricsLine {
    pub step: u64,
    pub loss: f64,
    #[serde(flatten)]
    pub terms: world_model::LossTerms,
    pub grad_norm: f64,
    pub lr: f64,
    pub momentum: f64,
    pub skipped: bool,
    pub target_std: f64,
    pub effective_rank: f64,
    /// Frames of this step's batch over the time spent sampling it and training on it.
    pub frames_per_s: f64,
    pub elapsed_s: f64,
    /// One-step latent L1 on the held-out clips, and copy-last's, on validation steps only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_l1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_copy_last: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TrainSummary {
    pub out: PathBuf,
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub final_checkpoint: PathBuf,
    pub seconds: f64,
    pub frames_per_s: f64,
    pub final_loss: f64,
    pub nonfinite_steps: u64,
    pub parameters: i64,
    pub episodes: usize,
    /// The last validation's (L1, copy-last), when held-out data was given.
    pub validation: Option<(f64, f64)>,
}

pub fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The newest checkpoint of a run directory, if any.
pub fn latest_checkpoint(run: &Path) -> Result<Option<PathBuf>> {
    Ok(all_checkpoints(run)?.pop())
}

/// A run's checkpoints, oldest first (none when it has no checkpoint folder).
pub fn all_checkpoints(run: &Path) -> Result<Vec<PathBuf>> {
    let dir = checkpoint_dir(run);
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.starts_with("step-") && n.ends_with(".safetensors") && !n.contains(".partial")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Loads the newest of `checkpoints` (oldest first) that loads; a damaged newer one is passed
/// over with a warning that names it, so a run interrupted while a disk filled resumes from the
/// last good state. When none loads, the error names the newest and why.
fn newest_loadable(
    checkpoints: &[PathBuf],
    model: &mut WorldModel,
    opt: &mut AdamW,
) -> Result<(PathBuf, world_model::Checkpoint)> {
    let mut first_error = None;
    for path in checkpoints.iter().rev() {
        match load_checkpoint(path, model, Some(opt)) {
            Ok(ck) => {
                if let Some(e) = &first_error {
                    tracing::warn!("{e}; resuming from the newest good checkpoint instead, {}", path.display());
                }
                return Ok((path.clone(), ck));
            }
            Err(e) => {
                tracing::warn!("cannot resume from {}: {e}", path.display());
                first_error.get_or_insert(e);
            }
        }
    }
    let e = first_error.expect("called with at least one checkpoint");
    bail!("no checkpoint of the run can be resumed (the newest: {e}); start a new run with another --out")
}

/// Whether two data sources name the same data, paths compared once resolved (a relative path
/// and the absolute one of the same folder are the same data).
fn same_data(a: &DataSource, b: &DataSource) -> bool {
    let resolve = |d: &DataSource| -> DataSource {
        let canon =
            |v: &Vec<PathBuf>| v.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
        match d {
            DataSource::Datasets(v) => DataSource::Datasets(canon(v)),
            DataSource::DatasetsWithCounterfactuals { data, counterfactual } => {
                DataSource::DatasetsWithCounterfactuals { data: canon(data), counterfactual: canon(counterfactual) }
            }
            live => live.clone(),
        }
    };
    resolve(a) == resolve(b)
}

/// A data source as a user would write it on the command line.
fn describe_data(d: &DataSource) -> String {
    let list = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    match d {
        DataSource::Datasets(v) => format!("--data {}", list(v)),
        DataSource::DatasetsWithCounterfactuals { data, counterfactual } => {
            format!("--data {} --counterfactual-data {}", list(data), list(counterfactual))
        }
        DataSource::Live { tasks, replay_episodes, seed, linger_steps } => format!(
            "--live (tasks {}, {replay_episodes} replay episodes, seed {seed}, linger {linger_steps})",
            tasks.join(",")
        ),
    }
}

/// A checkpoint path given as a file, or a run directory (its newest checkpoint).
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        return latest_checkpoint(path)?
            .with_context(|| format!("{}: a directory without checkpoints/step-*.safetensors", path.display()));
    }
    Ok(path.to_path_buf())
}

/// A training batch's clips as the sampler gave them: frames, or the frozen encoders' latents.
enum Batch {
    Frames(Tensor),
    Latents(Tensor, Tensor),
}

enum Feed {
    Static(Vec<EpisodeTensors>),
    Live(crate::live::LiveSource, ReplayBuffer),
}

impl Feed {
    fn episodes(&self) -> usize {
        match self {
            Feed::Static(v) => v.len(),
            Feed::Live(_, b) => b.received as usize,
        }
    }
}

/// Copies the online and target encoders of the checkpoint at `src` (a file or a run directory)
/// into `model`; refuses, naming the file, a checkpoint whose encoder has other settings.
fn init_encoder(model: &mut WorldModel, src: &std::path::Path) -> Result<()> {
    let path = resolve_checkpoint(src)?;
    let source = world_model::load_model(&path, model.device())?;
    let (want, have) = (&model.cfg, &source.cfg);
    if want.encoder != have.encoder || want.image_size != have.image_size {
        bail!(
            "{}: --init-encoder needs the same encoder; it has {:?} at {} px, this run {:?} at {} px",
            path.display(),
            have.encoder,
            have.image_size,
            want.encoder,
            want.image_size
        );
    }
    let copy = |to: &tch::nn::VarStore, from: &tch::nn::VarStore| -> Result<usize> {
        let from = from.variables();
        let mut n = 0;
        tch::no_grad(|| {
            for (name, mut t) in to.variables() {
                if name.starts_with("encoder.") {
                    let w = from.get(&name).with_context(|| format!("{}: no {name}", path.display()))?;
                    t.copy_(w);
                    n += 1;
                }
            }
            anyhow::Ok(())
        })?;
        Ok(n)
    };
    let n = copy(&model.vs, &source.vs)? + copy(&model.target_vs, &source.target_vs)?;
    tracing::info!("encoder and target encoder from {} ({n} tensors)", path.display());
    Ok(())
}

pub fn run(opts: &TrainOptions) -> Result<TrainSummary> {
    let cfg = &opts.cfg;
    cfg.validate()?;
    let paired = matches!(opts.data, DataSource::DatasetsWithCounterfactuals { .. });
    if cfg.needs_counterfactual_data() && !paired {
        bail!(
            "the encoder trains on loss.contrast ({}) / loss.graded ({}), which need counterfactual \
             frames: give --counterfactual-data (datasets made with gen --counterfactual), or train \
             without them with --config assets/world_model/no-counterfactuals.json",
            cfg.loss.contrast,
            cfg.loss.graded
        );
    }
    if paired && !cfg.needs_counterfactual_data() {
        bail!(
            "--counterfactual-data given but nothing trains on it (loss.contrast and loss.graded 0, \
             or the encoder frozen from the start)"
        );
    }
    let out = &opts.out;
    let checkpoints = all_checkpoints(out)?;
    let existing = checkpoints.last().cloned();
    if existing.is_some() && !opts.resume {
        bail!("{} already holds checkpoints; pass --resume to continue it, or choose another --out", out.display());
    }
    // Every input is read and checked before the run directory is made.
    let mut feed = match &opts.data {
        DataSource::Datasets(dirs) => {
            for dir in dirs {
                crate::data::refuse_counterfactual(dir)?;
            }
            Feed::Static(load_datasets(dirs, cfg.image_size)?)
        }
        DataSource::DatasetsWithCounterfactuals { data, counterfactual } => {
            Feed::Static(load_paired(data, counterfactual, cfg.image_size)?)
        }
        DataSource::Live { tasks, replay_episodes, seed, linger_steps } => {
            let envs = tasks
                .iter()
                .map(|t| {
                    let task: sim::Task = t.parse()?;
                    Ok(sim::EnvConfig { linger_steps: *linger_steps, ..sim::EnvConfig::for_task(task) })
                })
                .collect::<Result<Vec<_>>>()?;
            let render = render::RenderConfig {
                width: cfg.image_size as u32,
                height: cfg.image_size as u32,
                ..render::RenderConfig::default()
            };
            let live = crate::live::LiveSource::spawn(envs, sim::PolicyKind::Mixed, *seed, render)?;
            tracing::info!("live data: rendering on {}", live.adapter);
            Feed::Live(live, ReplayBuffer::new(*replay_episodes))
        }
    };
    let validation = Validation::load(&opts.validation, cfg)?;
    std::fs::create_dir_all(checkpoint_dir(out)).with_context(|| format!("creating {}", out.display()))?;
    std::fs::create_dir_all(out.join("plots"))?;

    let mut model = WorldModel::new(cfg, opts.device)?;
    let mut opt = AdamW::new(&model.vs);
    let mut state = TrainerState {
        step: 0,
        sampler: ClipSampler::new(cfg.seed ^ 0x5eed_c11b).state(),
        frames_seen: 0,
        nonfinite_total: 0,
        nonfinite_streak: 0,
        data: opts.data.clone(),
    };
    let mut resumed_from = None;
    if let (Some(src), false) = (&opts.init_encoder, opts.resume && existing.is_some()) {
        init_encoder(&mut model, src)?;
    }
    let mut existing = existing;
    if opts.resume && !checkpoints.is_empty() {
        let (path, ck) = newest_loadable(&checkpoints, &mut model, &mut opt)?;
        state =
            serde_json::from_value(ck.trainer_state).with_context(|| format!("{}: trainer state", path.display()))?;
        if !same_data(&state.data, &opts.data) {
            bail!(
                "{}: the run was trained on {}, this command gives {}; resume with the same data",
                path.display(),
                describe_data(&state.data),
                describe_data(&opts.data)
            );
        }
        resumed_from = Some(state.step);
        tracing::info!("resuming {} at step {}", out.display(), state.step);
        existing = Some(path);
    }
    let config_json = serde_json::json!({
        "model": cfg, "data": opts.data, "device": format!("{:?}", opts.device), "init_encoder": opts.init_encoder,
    });
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&config_json)?)?;
    let metrics_path = out.join("metrics.jsonl");
    let mut history = read_metrics(&metrics_path)?;
    history.retain(|m| m.step < state.step); // lines past the checkpoint belong to the lost tail
    rewrite_metrics(&metrics_path, &history)?;
    let mut metrics = std::fs::OpenOptions::new().append(true).create(true).open(&metrics_path)?;

    let mut last_validation = None;
    let mut sampler = ClipSampler::restore(&state.sampler)?;
    let bar = datagen::progress_bar(cfg.steps, "steps", opts.progress);
    bar.set_position(state.step);
    let began = Instant::now();
    let (start_step, mut last_loss) = (state.step, f64::NAN);
    let mut last_ckpt = existing.clone();
    let mut latent_cache: Option<LatentCache> = None;
    while state.step < cfg.steps {
        if opts.hooks.stop_before.as_ref().is_some_and(|stop| stop(state.step)) {
            // Behave like a crash: no final checkpoint, only what was already written survives.
            bar.finish_and_clear();
            metrics.flush()?;
            if let Feed::Live(live, _) = feed {
                live.stop()?;
            }
            bail!("interrupted at step {}; continue with --resume", state.step);
        }
        // The encoder phase looks at single frames (pairs for inverse dynamics), each from its
        // own place in the data rather than six neighbours of one clip.
        let (clips, clip_len) = match cfg.phase_at(state.step) {
            Phase::Encoder => {
                let len = if cfg.loss.inverse_dynamics > 0.0 { 2 } else { 1 };
                ((cfg.encoder_batch_frames() / len).max(1), len)
            }
            Phase::Predictor => (cfg.batch_size, cfg.clip_len),
        };
        // The encoder phase's frames are always consecutive; the predictor's clips step by
        // `frameskip`.
        let skip = if cfg.phase_at(state.step) == Phase::Predictor { cfg.frameskip } else { 1 };
        // Only the predictor's clips are mirrored (measured there; the encoder phase was not).
        let mirror = cfg.mirror && cfg.phase_at(state.step) == Phase::Predictor;
        // On a frozen encoder, from data on disk: the latents of every frame once, then clips of
        // latents (the same draws, the same update, without encoding each batch again).
        if let (Feed::Static(eps), None) = (&feed, &latent_cache)
            && cfg.latents_cacheable_at(state.step)
        {
            let t = Instant::now();
            let cache = LatentCache::build(&model, eps);
            tracing::info!(
                "frozen encoder: latents of {} frames (and their mirror images) cached in {:.1} s, {:.0} MB",
                eps.iter().map(|e| e.len()).sum::<i64>(),
                t.elapsed().as_secs_f64(),
                cache.bytes() as f64 / 1e6
            );
            latent_cache = Some(cache);
        }
        let t0 = Instant::now();
        let (batch, actions, counterfactual) = match (&mut feed, &latent_cache) {
            (Feed::Static(eps), Some(cache)) if cfg.latents_cacheable_at(state.step) => {
                let spec = ClipSpec { batch: clips, len: clip_len, skip, fall_weight: cfg.fall_weight, mirror };
                let (online, target, actions) = sampler.sample_latents(eps, cache, spec)?;
                (Batch::Latents(online, target), actions, None)
            }
            (Feed::Static(eps), _) => {
                let (f, a, cf) = sampler.sample(eps.iter(), clips, clip_len, skip, cfg.fall_weight, mirror)?;
                (Batch::Frames(f), a, cf)
            }
            (Feed::Live(live, buffer), _) => {
                // Drain what arrived; wait until enough episodes to sample a varied batch.
                while let Ok(ep) = live.episodes.try_recv() {
                    buffer.push(ep);
                }
                while buffer.episodes.len() < (cfg.batch_size as usize / 4).max(2) {
                    match live.episodes.recv() {
                        Ok(ep) => buffer.push(ep),
                        Err(_) => bail!("the live data pipeline stopped"),
                    }
                }
                let (f, a, cf) =
                    sampler.sample(buffer.episodes.iter(), clips, clip_len, skip, cfg.fall_weight, mirror)?;
                (Batch::Frames(f), a, cf)
            }
        };
        let batch = match (&opts.hooks.transform_batch, batch) {
            (None, batch) => batch,
            (Some(f), Batch::Frames(x)) => Batch::Frames(f(state.step, x)),
            (Some(f), Batch::Latents(z, t)) => Batch::Latents(f(state.step, z), t),
        };
        let clips_in = match &batch {
            Batch::Frames(f) => Clips::Frames(f),
            Batch::Latents(online, target) => Clips::Latents { online, target },
        };
        let report = model.train_step_on(&mut opt, clips_in, &actions, counterfactual.as_ref(), state.step);
        let n_frames = (clips * clip_len) as u64;
        state.frames_seen += n_frames;
        if report.skipped {
            state.nonfinite_total += 1;
            state.nonfinite_streak += 1;
            tracing::warn!("step {}: non-finite loss or gradient, update skipped", state.step);
            if state.nonfinite_streak >= opts.max_nonfinite {
                bail!(
                    "{} non-finite steps in a row (at step {}): stopping; lower optim.lr or check the data",
                    state.nonfinite_streak,
                    state.step
                );
            }
        } else {
            state.nonfinite_streak = 0;
            last_loss = report.loss;
        }
        // Validation after the update, on predictor steps: every `validate_every` and the last.
        let done = state.step + 1;
        let val = validation
            .as_ref()
            .filter(|_| cfg.phase_at(state.step) == Phase::Predictor)
            .filter(|_| done.is_multiple_of(opts.validate_every.max(1)) || done == cfg.steps)
            // Score what evaluation will predict with: the predictor's average, when kept.
            .map(|v| model.with_predictor_average(|m| v.score(m)));
        if val.is_some() {
            last_validation = val;
        }
        let line = MetricsLine {
            val_l1: val.map(|v| v.0),
            val_copy_last: val.map(|v| v.1),
            step: state.step,
            loss: report.loss,
            terms: report.terms,
            grad_norm: report.grad_norm,
            lr: report.lr,
            momentum: report.momentum,
            skipped: report.skipped,
            target_std: report.collapse.mean_std,
            effective_rank: report.collapse.effective_rank,
            frames_per_s: n_frames as f64 / t0.elapsed().as_secs_f64(),
            elapsed_s: began.elapsed().as_secs_f64(),
        };
        writeln!(metrics, "{}", serde_json::to_string(&line)?)?;
        bar.set_message(format!("loss {:.4}, {:.0} frames/s", line.loss, line.frames_per_s));
        bar.inc(1);
        history.push(line);
        state.step += 1;
        state.sampler = sampler.state();
        if state.step.is_multiple_of(opts.checkpoint_every) || state.step == cfg.steps {
            last_ckpt = Some(write_checkpoint(out, &model, &opt, &state, opts.keep)?);
            write_plots(out, &history, cfg)?;
        }
    }
    bar.finish_and_clear();
    metrics.flush()?;
    let episodes = feed.episodes();
    if let Feed::Live(live, _) = feed {
        live.stop()?;
    }
    let final_checkpoint = match last_ckpt {
        Some(p) if state.step.is_multiple_of(opts.checkpoint_every) || state.step == cfg.steps => p,
        _ => write_checkpoint(out, &model, &opt, &state, opts.keep)?,
    };
    write_plots(out, &history, cfg)?;
    let seconds = began.elapsed().as_secs_f64();
    Ok(TrainSummary {
        out: out.clone(),
        steps: state.step,
        resumed_from,
        final_checkpoint,
        seconds,
        frames_per_s: ((state.step - start_step) * (cfg.batch_size * cfg.clip_len) as u64) as f64 / seconds.max(1e-9),
        final_loss: last_loss,
        nonfinite_steps: state.nonfinite_total,
        parameters: model.parameters(),
        episodes,
        validation: last_validation,
    })
}

fn write_checkpoint(out: &Path, model: &WorldModel, opt: &AdamW, state: &TrainerState, keep: usize) -> Result<PathBuf> {
    let path = checkpoint_dir(out).join(format!("step-{:08}.safetensors", state.step));
    save_checkpoint(&path, model, opt, &serde_json::to_value(state)?)?;
    // Keep the newest `keep`.
    let mut all: Vec<PathBuf> = std::fs::read_dir(checkpoint_dir(out))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("step-")))
        .collect();
    all.sort();
    while all.len() > keep.max(1) {
        let old = all.remove(0);
        std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(path)
}

pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = vec![];
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // A line cut by an interruption is dropped (the checkpoint decides where training resumes).
        match serde_json::from_str(&line) {
            Ok(m) => out.push(m),
            Err(e) => tracing::warn!("{}:{}: dropping an unreadable metrics line ({e})", path.display(), i + 1),
        }
    }
    Ok(out)
}

fn rewrite_metrics(path: &Path, lines: &[MetricsLine]) -> Result<()> {
    let tmp = path.with_extension("jsonl.partial");
    let mut f = std::fs::File::create(&tmp)?;
    for m in lines {
        writeln!(f, "{}", serde_json::to_string(m)?)?;
    }
    f.flush()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Moving average over `w` points, for readable noisy curves.
fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let mut out = vec![];
    let mut sum = 0.0;
    for (i, p) in points.iter().enumerate() {
        sum += p.1;
        if i >= w {
            sum -= points[i - w].1;
        }
        out.push((p.0, sum / (i + 1).min(w) as f64));
    }
    out
}

/// The run's loss and validation plots; `cfg` names the prediction terms' distance and whether
/// validation scored the predictor's average (`predictor.average`).
fn write_plots(out: &Path, history: &[MetricsLine], cfg: &WmConfig) -> Result<()> {
    let averaged = cfg.predictor.average > 0.0;
    let distance = match cfg.loss.distance {
        world_model::Distance::L1 => "L1",
        world_model::Distance::Mse => "squared error",
        world_model::Distance::Huber => "Huber",
    };
    let ok: Vec<&MetricsLine> = history.iter().filter(|m| !m.skipped).collect();
    let pts =
        |f: &dyn Fn(&MetricsLine) -> f64| -> Vec<(f64, f64)> { ok.iter().map(|m| (m.step as f64, f(m))).collect() };
    let w = (ok.len() / 50).max(1);
    line_plot(
        &out.join("plots/loss.png"),
        &Plot {
            title: "World-model training loss",
            x_label: "step",
            y_label: "loss term",
            log_x: false,
            log_y: true,
            markers: vec![],
        },
        &{
            // Terms not taken read 0 (the predictor's in the encoder phase, the encoder's once it is
            // frozen): not drawn there.
            let nonzero_pts = |f: &dyn Fn(&MetricsLine) -> f64| -> Vec<(f64, f64)> {
                pts(f).into_iter().filter(|p| p.1 > 0.0).collect()
            };
            let mut series = vec![
                Series::new(format!("teacher-forced ({distance})"), smooth(&nonzero_pts(&|m| m.terms.teacher), w)),
                Series::new(format!("rollout ({distance})"), smooth(&nonzero_pts(&|m| m.terms.rollout), w)),
                Series::new("variance hinge", smooth(&pts(&|m| m.terms.variance), w)),
            ];
            if ok.iter().any(|m| m.terms.contrast > 0.0) {
                series.push(Series::new("counterfactual (encoder)", smooth(&nonzero_pts(&|m| m.terms.contrast), w)));
            }
            if ok.iter().any(|m| m.terms.graded > 0.0) {
                series.push(Series::new("counterfactual (graded)", smooth(&nonzero_pts(&|m| m.terms.graded), w)));
            }
            if ok.iter().any(|m| m.terms.inverse_dynamics > 0.0) {
                series.push(Series::new("inverse dynamics", smooth(&nonzero_pts(&|m| m.terms.inverse_dynamics), w)));
            }
            series
        },
    )?;
    line_plot(
        &out.join("plots/collapse.png"),
        &Plot {
            title: "Collapse watch: target latents",
            x_label: "step",
            y_label: "value",
            log_x: false,
            log_y: false,
            markers: vec![],
        },
        &[
            Series::new("per-dimension std", pts(&|m| m.target_std)),
            Series::new("effective rank / 10", pts(&|m| m.effective_rank / 10.0)),
        ],
    )?;
    // Held-out one-step L1 (mean absolute error, not the training distance) against copy-last's on
    // the same clips, on a linear scale: the two differ by a few percent.
    let sparse = |f: &dyn Fn(&MetricsLine) -> Option<f64>| -> Vec<(f64, f64)> {
        ok.iter().filter_map(|m| f(m).map(|v| (m.step as f64, v))).collect()
    };
    if ok.iter().any(|m| m.val_l1.is_some()) {
        line_plot(
            &out.join("plots/validation.png"),
            &Plot {
                title: "Held-out one-step prediction",
                x_label: "step",
                y_label: "latent L1",
                log_x: false,
                log_y: false,
                markers: vec![],
            },
            &[
                Series::new(if averaged { "predictor (average)" } else { "predictor" }, sparse(&|m| m.val_l1)),
                Series::new("copy-last", sparse(&|m| m.val_copy_last)),
            ],
        )?;
    }
    Ok(())
}
