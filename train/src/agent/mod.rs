//! `train-agent`: the Mamba-MoE policy trained on the frozen world model's latents, by its
//! teachers in sequence:
//!
//! 1. **cloning**: every frame of `gen` datasets, labelled with the scripted expert's action
//!    for the state it shows ([`demos`]);
//! 2. **DAgger**: rounds of live rollouts of the current policy, the expert's action mixed in
//!    with a decaying probability β, every visited state labelled by the expert ([`collect`]);
//!    the policy retrains on everything gathered so far.
//! 3. **Planner distillation** (`teacher: planner`): the same rounds with the latent planner as
//!    the teacher, so the policy learns from the world model alone (no datasets: the expert
//!    labels those). With β = 1 in the first round the planner acts alone, a demonstration.
//!
//! The run directory holds `config.json`, `metrics.jsonl`, `plots/`, the checksummed
//! `checkpoints/latest.safetensors` (weights, Adam's moments, where the run is, the sampler's
//! stream position: a resumed run on one thread continues bit for bit), each round's rollouts in
//! `rounds/` (so a resume does not redo them), `cloning.safetensors` (the policy after cloning
//! alone) and `policy.safetensors` (the final one).

pub mod collect;
pub mod demos;
pub mod frames;

use std::io::Write;
use std::path::{Path, PathBuf};

use agent::acting::{PolicyRecord, load_policy, policy_config, save_policy};
use agent::cloning::{cloning_loss, count_experts, mutual_information};
use agent::mamba::Scan;
use agent::{MambaMoePolicy, PolicyConfig};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sim::Task;
use tch::{Tensor, nn};
use world_model::{AdamW, OptimConfig};

use crate::data::{ClipSampler, SamplerState};
use collect::RoundStats;
use demos::Demo;

/// Every this-many-th dataset episode is held out of training: the validation episodes whose
/// action error the metrics report beside the training batches' (the training error alone fell
/// while the error on held-out episodes stood still: experiments/2026-12-07-generalisation).
const VALIDATION_EVERY: usize = 20;

/// Steps between the starts of hindsight stretches: non-overlapping, so the task's whole
/// episodes keep most of the tokens.
const HINDSIGHT_STRIDE: i64 = sim::goal::GOAL_FRAME_GAP as i64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTrainOptions {
    /// The world-model checkpoint whose frozen encoder the policy reads.
    pub world_model: PathBuf,
    /// `gen` datasets to clone from (their frames labelled by the expert).
    pub data: Vec<PathBuf>,
    /// Tasks the DAgger rounds roll out.
    pub tasks: Vec<Task>,
    pub out: PathBuf,
    pub policy: PolicyConfig,
    /// A policy checkpoint to start from instead of fresh weights (same config and world model):
    /// DAgger from a cloned policy, or more rounds for a trained one.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Optimiser steps of cloning on the datasets.
    pub cloning_steps: u64,
    pub dagger_rounds: u32,
    /// Episodes per task rolled out in each round.
    pub dagger_episodes: usize,
    /// Optimiser steps after each round, on everything gathered so far.
    pub dagger_steps: u64,
    /// β of round r is `beta · beta_decay^r`: the chance the expert's action is executed.
    pub beta: f64,
    pub beta_decay: f64,
    /// Whole episodes per batch.
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Optimiser steps between checkpoints and metrics lines.
    pub checkpoint_every: u64,
    /// Who labels the DAgger rounds' states: the scripted expert, or the latent planner (CEM at
    /// its default budget on the world model).
    #[serde(default)]
    pub teacher: Teacher,
    /// Stops the run with an error before this optimiser step (counted over all phases), as an
    /// interruption would: what the resume tests use.
    #[serde(skip)]
    pub stop_before: Option<u64>,
}

/// The DAgger rounds' teacher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Teacher {
    /// The scripted expert: reads the simulator's privileged state.
    #[default]
    Expert,
    /// The latent planner: sees only frames and the goal image, through the world model.
    Planner,
}

impl AgentTrainOptions {
    pub fn validate(&self) -> Result<()> {
        self.policy.validate()?;
        if self.data.is_empty() && self.dagger_rounds == 0 {
            bail!("nothing to learn from: give datasets to clone (--data) or DAgger rounds (--dagger-rounds)");
        }
        if self.data.is_empty() && self.cloning_steps > 0 {
            bail!("--cloning-steps {} without datasets to clone (--data)", self.cloning_steps);
        }
        if self.teacher == Teacher::Planner && !self.data.is_empty() {
            bail!(
                "--teacher planner learns from the world model alone: drop --data (its frames are labelled by the expert)"
            );
        }
        if self.teacher == Teacher::Planner && self.dagger_rounds == 0 {
            bail!("--teacher planner teaches in the DAgger rounds: give --dagger-rounds");
        }
        if self.dagger_rounds > 0 && (self.tasks.is_empty() || self.dagger_episodes == 0) {
            bail!("DAgger rounds need tasks and --dagger-episodes above 0");
        }
        if !(0.0..=1.0).contains(&self.beta) || !(0.0..=1.0).contains(&self.beta_decay) {
            bail!("--beta {} and --beta-decay {} must lie in [0, 1]", self.beta, self.beta_decay);
        }
        if self.batch == 0 || self.checkpoint_every == 0 || !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--batch, --checkpoint-every and --lr must be positive");
        }
        Ok(())
    }

    /// The phases in order: cloning, then each round's collection and training.
    fn phases(&self) -> Vec<Phase> {
        let mut p = vec![];
        if self.cloning_steps > 0 {
            p.push(Phase::Cloning);
        }
        for r in 0..self.dagger_rounds {
            p.push(Phase::Collect(r));
            p.push(Phase::Dagger(r));
        }
        p
    }

    fn steps_of(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Cloning => self.cloning_steps,
            Phase::Collect(_) => 0,
            Phase::Dagger(_) => self.dagger_steps,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Cloning,
    Collect(u32),
    Dagger(u32),
}

impl Phase {
    fn name(self) -> String {
        match self {
            Phase::Cloning => "cloning".into(),
            Phase::Collect(r) => format!("collect-{r}"),
            Phase::Dagger(r) => format!("dagger-{r}"),
        }
    }
}

/// Where a run is: saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainerState {
    /// Index into the phases.
    phase: usize,
    /// Optimiser steps done within it.
    step: u64,
    /// Optimiser steps done in all.
    total_steps: u64,
    sampler: SamplerState,
}

/// One metrics line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentMetrics {
    pub phase: String,
    pub step: u64,
    pub action_mse: f64,
    pub spread_nll: f64,
    pub value_mse: f64,
    pub router_entropy: f64,
    /// Share of top-1 routings per expert, per task (push-to-goal, knock-off), since the last line.
    pub load_by_task: Vec<Vec<f64>>,
    /// Mutual information (bits) between task and top-1 expert since the last line.
    pub task_expert_bits: f64,
    /// Episodes in the data the policy trains on now.
    pub episodes: usize,
    /// The action error on the held-out dataset episodes (every 20th), per task (push-to-goal,
    /// knock-off; none for a task without any), whole episodes fed their recorded frames; empty
    /// when nothing is held out. Held out of this run only: a policy given by `init` may have
    /// trained on them.
    #[serde(default)]
    pub validation_mse: Vec<Option<f64>>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundLine {
    pub phase: String,
    pub round: u32,
    pub beta: f64,
    #[serde(flatten)]
    pub stats: RoundStats,
    pub seconds: f64,
}

#[derive(Debug)]
pub struct AgentTrainSummary {
    pub policy: PathBuf,
    pub steps: u64,
    pub last: Option<AgentMetrics>,
    pub rounds: Vec<RoundLine>,
}

fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoints").join("latest.safetensors")
}

fn round_path(out: &Path, r: u32) -> PathBuf {
    out.join("rounds").join(format!("round-{r:02}.safetensors"))
}

/// Trains (resuming what `out` holds) and returns where the policy is.
pub fn run(opts: &AgentTrainOptions) -> Result<AgentTrainSummary> {
    opts.validate()?;
    let wm_path = crate::resolve_checkpoint(&opts.world_model)?;
    let wm_file = world_model::CheckedFile::read(&wm_path, "world-model checkpoint")?;
    let mut model = world_model::load_model(&wm_path, tch::Device::Cpu)
        .with_context(|| format!("loading the world model {}", wm_path.display()))?;
    model.vs.freeze();
    let expected = policy_config(&model.cfg);
    if (opts.policy.obs_dim, opts.policy.goal_dim) != (expected.obs_dim, expected.goal_dim) {
        bail!(
            "policy.obs_dim and goal_dim are {} and {}; the world model's frame features are {} wide",
            opts.policy.obs_dim,
            opts.policy.goal_dim,
            expected.obs_dim
        );
    }
    // Where the run lives is not part of it: a moved run directory resumes.
    crate::claim::claim_dir(&opts.out, opts, &["out"], "run")?;
    std::fs::create_dir_all(opts.out.join("checkpoints"))?;
    let record = |state: &TrainerState| PolicyRecord {
        config: opts.policy.clone(),
        world_model: wm_path.clone(),
        world_model_sha256: wm_file.sha256(),
        trainer_state: serde_json::to_value(state).unwrap_or_default(),
    };

    tch::manual_seed(opts.seed as i64);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let mut policy = MambaMoePolicy::new(vs.root(), &opts.policy)?;
    let mut opt = AdamW::new(&vs);
    let mut state = TrainerState { phase: 0, step: 0, total_steps: 0, sampler: ClipSampler::new(opts.seed).state() };
    let ckpt = checkpoint_path(&opts.out);
    if ckpt.exists() {
        let loaded = load_policy(&ckpt, tch::Device::Cpu)?;
        if loaded.record.world_model_sha256 != wm_file.sha256() {
            bail!("{}: trained on another world model than {}", ckpt.display(), wm_path.display());
        }
        copy_weights(&vs, &loaded.vs);
        for (k, m) in opt.m.iter_mut() {
            m.copy_(loaded.file.tensor(&format!("adam_m.{k}"))?);
        }
        for (k, v) in opt.v.iter_mut() {
            v.copy_(loaded.file.tensor(&format!("adam_v.{k}"))?);
        }
        opt.t = loaded.file.tensor("adam_t")?.int64_value(&[0]) as u64;
        state = serde_json::from_value(loaded.record.trainer_state)
            .with_context(|| format!("{}: trainer state", ckpt.display()))?;
        tracing::info!("resuming {} at phase {} step {}", opts.out.display(), state.phase, state.step);
    } else if let Some(init) = &opts.init {
        let loaded = load_policy(init, tch::Device::Cpu)?;
        if loaded.record.world_model_sha256 != wm_file.sha256() {
            bail!("--init {}: trained on another world model than {}", init.display(), wm_path.display());
        }
        if loaded.record.config != opts.policy {
            bail!("--init {}: a policy of another config than this run's", init.display());
        }
        copy_weights(&vs, &loaded.vs);
    }
    let save = |vs: &nn::VarStore, opt: &AdamW, state: &TrainerState, path: &Path| -> Result<()> {
        let mut extra: Vec<(String, Tensor)> = vec![];
        extra.extend(opt.m.iter().map(|(k, t)| (format!("adam_m.{k}"), t.detach())));
        extra.extend(opt.v.iter().map(|(k, t)| (format!("adam_v.{k}"), t.detach())));
        extra.push(("adam_t".into(), Tensor::from_slice(&[opt.t as i64])));
        Ok(save_policy(path, vs, extra, &record(state))?)
    };

    let size = model.cfg.image_size as u32;
    let link = frames::FrameLink::spawn(size, 16)?;
    let (mut data, validation): (Vec<Demo>, Vec<Demo>) = {
        let all = demos::demos_from_datasets(&opts.data, &model, &link)?;
        let (held, kept): (Vec<_>, Vec<_>) =
            all.into_iter().enumerate().partition(|(i, _)| i % VALIDATION_EVERY == VALIDATION_EVERY - 1);
        (kept.into_iter().map(|(_, d)| d).collect(), held.into_iter().map(|(_, d)| d).collect())
    };
    let hindsight: Vec<Demo> = data.iter().flat_map(|d| demos::hindsight_segments(d, HINDSIGHT_STRIDE)).collect();
    tracing::info!("{} episodes, {} hindsight stretches with frame goals", data.len(), hindsight.len());
    data.extend(hindsight);
    let phases = opts.phases();
    // Rounds already gathered come back from disk.
    for &p in phases.iter().take(state.phase) {
        if let Phase::Collect(r) = p {
            data.extend(read_round(&round_path(&opts.out, r))?);
        }
    }
    if state.phase == 0 && state.step == 0 && opts.init.is_none() && !data.is_empty() {
        let goals: Vec<Tensor> = data.iter().map(|d| d.goal.shallow_clone()).collect();
        policy.set_route_center(&Tensor::stack(&goals, 0));
    }
    let mut sampler = ClipSampler::restore(&state.sampler)?;
    let metrics_path = opts.out.join("metrics.jsonl");
    let mut rounds: Vec<RoundLine> = read_lines(&metrics_path)?.1;
    let optim = OptimConfig { lr: opts.lr, weight_decay: 0.0, grad_clip: 1.0, ..OptimConfig::default() };
    let mut last = None;
    let mut counts = vec![vec![0.0; opts.policy.moe.n_experts as usize]; 2];
    let (mut sums, mut n_logged) = ([0.0f64; 4], 0u64);
    let mut clock = std::time::Instant::now();
    while state.phase < phases.len() {
        let phase = phases[state.phase];
        match phase {
            Phase::Collect(r) if round_path(&opts.out, r).exists() => {
                // Gathered before an interruption that came before the phase's checkpoint.
                data.extend(read_round(&round_path(&opts.out, r))?);
            }
            Phase::Collect(r) => {
                let beta = opts.beta * opts.beta_decay.powi(r as i32);
                let t = std::time::Instant::now();
                let seed = opts.seed.wrapping_add(1_000_000 * (r as u64 + 1));
                let (gathered, stats) = collect::rollouts(
                    &model,
                    &policy,
                    &link,
                    &opts.tasks,
                    opts.dagger_episodes,
                    seed,
                    beta,
                    opts.teacher,
                )?;
                write_round(&round_path(&opts.out, r), &gathered)?;
                let line = RoundLine { phase: phase.name(), round: r, beta, stats, seconds: t.elapsed().as_secs_f64() };
                tracing::info!(
                    "round {r}: β {beta:.2}, {} episodes, {} frames labelled, success {:?} of {:?}",
                    line.stats.episodes,
                    line.stats.labels,
                    line.stats.successes,
                    line.stats.episodes_per_task
                );
                append(&metrics_path, &serde_json::to_value(&line)?)?;
                rounds.push(line);
                data.extend(gathered);
            }
            Phase::Cloning | Phase::Dagger(_) => {
                if data.is_empty() {
                    bail!("no demonstrations to train on");
                }
                if state.total_steps == 0 && opts.init.is_none() && opts.data.is_empty() {
                    // No datasets: the router centres on the first round's goals instead.
                    let goals: Vec<Tensor> = data.iter().map(|d| d.goal.shallow_clone()).collect();
                    policy.set_route_center(&Tensor::stack(&goals, 0));
                }
                while state.step < opts.steps_of(phase) {
                    if opts.stop_before.is_some_and(|s| state.total_steps >= s) {
                        bail!("stopped before step {} (stop_before)", state.total_steps);
                    }
                    let picked: Vec<&Demo> = (0..opts.batch).map(|_| &data[sampler.draw_index(data.len())]).collect();
                    let b = demos::batch(&picked);
                    let out = policy.forward(&b.features, &b.prev_action, &b.goal, Scan::Chunked);
                    let loss = cloning_loss(&out, &b.teacher, &b.returns, &b.mask);
                    if !loss.total.double_value(&[]).is_finite() {
                        bail!(
                            "non-finite loss at {} step {}: the run stops before the weights are harmed",
                            phase.name(),
                            state.step
                        );
                    }
                    for p in vs.trainable_variables() {
                        let mut g = p.grad();
                        if g.defined() {
                            let _ = g.zero_();
                        }
                    }
                    // Every variable gets a gradient, zero for an expert no step was routed to:
                    // an undefined one would be skipped by Adam in a fresh process and not in a
                    // running one, and a resumed run would drift from an uninterrupted one.
                    let touch = vs
                        .trainable_variables()
                        .iter()
                        .map(|p| p.sum(tch::Kind::Float))
                        .fold(Tensor::zeros([], (tch::Kind::Float, tch::Device::Cpu)), |acc, s| acc + s);
                    (&loss.total + touch * 0.0).backward();
                    opt.step(&vs, opts.lr, &optim);
                    if opts.policy.moe.bias_balancing {
                        policy.head_mut().update_bias(&out.moe);
                    }
                    count_experts(&mut counts, &out.experts, &b.task, &b.mask);
                    for (s, v) in
                        sums.iter_mut().zip([loss.action_mse, loss.spread_nll, loss.value_mse, out.moe.router_entropy])
                    {
                        *s += v;
                    }
                    n_logged += 1;
                    state.step += 1;
                    state.total_steps += 1;
                    if state.step % opts.checkpoint_every == 0 || state.step == opts.steps_of(phase) {
                        let n = n_logged.max(1) as f64;
                        let line = AgentMetrics {
                            phase: phase.name(),
                            step: state.total_steps,
                            action_mse: sums[0] / n,
                            spread_nll: sums[1] / n,
                            value_mse: sums[2] / n,
                            router_entropy: sums[3] / n,
                            load_by_task: counts
                                .iter()
                                .map(|row| {
                                    let total: f64 = row.iter().sum::<f64>().max(1.0);
                                    row.iter().map(|c| c / total).collect()
                                })
                                .collect(),
                            task_expert_bits: mutual_information(&counts),
                            validation_mse: validation_error(&policy, &validation, opts.batch),
                            episodes: data.len(),
                            seconds: clock.elapsed().as_secs_f64(),
                        };
                        tracing::info!(
                            "{} step {}: action mse {:.4}, task–expert {:.2} bit",
                            line.phase,
                            line.step,
                            line.action_mse,
                            line.task_expert_bits
                        );
                        state.sampler = sampler.state();
                        save(&vs, &opt, &state, &ckpt)?;
                        append(&metrics_path, &serde_json::to_value(&line)?)?;
                        last = Some(line);
                        counts.iter_mut().flatten().for_each(|c| *c = 0.0);
                        (sums, n_logged) = ([0.0; 4], 0);
                        clock = std::time::Instant::now();
                    }
                }
                if phase == Phase::Cloning {
                    save(&vs, &opt, &state, &opts.out.join("cloning.safetensors"))?;
                }
            }
        }
        state.phase += 1;
        state.step = 0;
        state.sampler = sampler.state();
        save(&vs, &opt, &state, &ckpt)?;
    }
    let policy_path = opts.out.join("policy.safetensors");
    save(&vs, &opt, &state, &policy_path)?;
    write_plots(&opts.out)?;
    Ok(AgentTrainSummary { policy: policy_path, steps: state.total_steps, last, rounds })
}

/// The squared action error per task on `demos`, whole episodes, as the training batches score
/// it but over every held-out step.
fn validation_error(policy: &MambaMoePolicy, demos: &[Demo], batch: usize) -> Vec<Option<f64>> {
    if demos.is_empty() {
        return vec![];
    }
    let mut sums = [[0.0f64; 2]; 2];
    tch::no_grad(|| {
        for chunk in demos.chunks(batch.max(1)) {
            let b = demos::batch(&chunk.iter().collect::<Vec<_>>());
            let out = policy.forward(&b.features, &b.prev_action, &b.goal, Scan::Chunked);
            let err = (out.mode() - &b.teacher).square().sum_dim_intlist(-1, false, tch::Kind::Float) * &b.mask;
            let per_episode =
                Vec::<f64>::try_from(err.sum_dim_intlist(-1, false, tch::Kind::Double)).unwrap_or_default();
            let steps = Vec::<f64>::try_from(b.mask.sum_dim_intlist(-1, false, tch::Kind::Double)).unwrap_or_default();
            for ((e, n), &task) in per_episode.iter().zip(&steps).zip(&b.task) {
                sums[task][0] += e;
                sums[task][1] += n;
            }
        }
    });
    sums.iter().map(|s| (s[1] > 0.0).then(|| s[0] / s[1])).collect()
}

/// Every variable of `from` into the same-named one of `to` (both built from one config).
fn copy_weights(to: &nn::VarStore, from: &nn::VarStore) {
    let from = from.variables();
    tch::no_grad(|| {
        for (k, mut v) in to.variables() {
            v.copy_(&from[&k]);
        }
    });
}

fn append(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{v}")?;
    Ok(())
}

/// The metrics file's training lines and round lines (a cut-off last line is dropped).
pub fn read_lines(path: &Path) -> Result<(Vec<AgentMetrics>, Vec<RoundLine>)> {
    let (mut steps, mut rounds) = (vec![], vec![]);
    let Ok(text) = std::fs::read_to_string(path) else { return Ok((steps, rounds)) };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Ok(r) = serde_json::from_str::<RoundLine>(line) {
            rounds.push(r);
        } else if let Ok(m) = serde_json::from_str::<AgentMetrics>(line) {
            steps.push(m);
        } else if i + 1 != lines.len() {
            bail!("{} line {}: not a train-agent metrics line (the file is damaged)", path.display(), i + 1);
        }
    }
    Ok((steps, rounds))
}

/// A round's demos as one checksummed file.
fn write_round(path: &Path, demos: &[Demo]) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("in rounds/"))?;
    let mut named = vec![];
    let mut meta = vec![];
    for (i, d) in demos.iter().enumerate() {
        for (k, t) in [
            ("features", &d.features),
            ("taken", &d.taken),
            ("teacher", &d.teacher),
            ("returns", &d.returns),
            ("goal", &d.goal),
        ] {
            named.push((format!("demo.{i:05}.{k}"), t.shallow_clone()));
        }
        meta.push(serde_json::json!({"task": d.task, "seed": d.seed.to_string()}));
    }
    world_model::write_checked(path, named, &[("meta.demos", &serde_json::Value::Array(meta))])?;
    Ok(())
}

/// One round's rollouts as `write_round` saved them, checksum checked.
pub fn read_round(path: &Path) -> Result<Vec<Demo>> {
    const KIND: &str = "train-agent round";
    let file = world_model::CheckedFile::read(path, KIND)?;
    let meta: Vec<serde_json::Value> = file.json("meta.demos", KIND)?;
    let mut out = vec![];
    for (i, m) in meta.iter().enumerate() {
        let t = |k: &str| file.tensor(&format!("demo.{i:05}.{k}")).map(|t| t.shallow_clone());
        let task: Task =
            serde_json::from_value(m["task"].clone()).with_context(|| format!("{}: demo {i}", path.display()))?;
        let seed: u64 = m["seed"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{}: demo {i} seed", path.display()))?;
        out.push(Demo {
            task,
            seed,
            features: t("features")?,
            taken: t("taken")?,
            teacher: t("teacher")?,
            returns: t("returns")?,
            goal: t("goal")?,
        });
    }
    Ok(out)
}

fn write_plots(out: &Path) -> Result<()> {
    use crate::plot::{Plot, Series, line_plot};
    let (steps, _) = read_lines(&out.join("metrics.jsonl"))?;
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir)?;
    let series = |f: &dyn Fn(&AgentMetrics) -> f64| steps.iter().map(|m| (m.step as f64, f(m))).collect::<Vec<_>>();
    line_plot(
        &dir.join("action_mse.png"),
        &Plot {
            title: "the policy's action against its teacher's",
            x_label: "optimiser step",
            y_label: "squared error",
            log_x: false,
            log_y: true,
            markers: vec![],
        },
        &[Series::new("action mse", series(&|m| m.action_mse))],
    )?;
    line_plot(
        &dir.join("experts.png"),
        &Plot {
            title: "experts by task",
            x_label: "optimiser step",
            y_label: "bits / nats",
            log_x: false,
            log_y: false,
            markers: vec![],
        },
        &[
            Series::new("I(task; top-1 expert), bits", series(&|m| m.task_expert_bits)),
            Series::new("router entropy, nats", series(&|m| m.router_entropy)),
        ],
    )?;
    Ok(())
}
