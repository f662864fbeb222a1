//! `eval`: the world model's scorecard (`cupworld eval-wm`, `cupworld surprise`): how well the world model predicts, what its latents
//! know (linear probes), and whether it is surprised by impossible events (VoE). Writes
//! `report.json`, `report.md` and figures. [`acting`]: the agent's scorecard (`cupworld eval-agent`).

pub mod acting;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use world_model::{WorldModel, load_model, load_model_online};

use sim::voe::{Category, VoePair, VoeScore, generate_pairs, score};
use train::data::{EpisodeTensors, load_datasets};
use train::plot::{Plot, Series, line_plot};

pub struct EvalOptions {
    pub checkpoint: PathBuf,
    pub data: Vec<PathBuf>,
    /// Datasets to fit the linear probes on (the training split); empty: the held-out episodes
    /// of three seed groups in five, tested on the other two (see `probe_group`).
    pub probe_data: Vec<PathBuf>,
    pub out: PathBuf,
    pub voe_pairs: usize,
    pub voe_seed: u64,
    pub horizons: i64,
    /// Frames before each VoE pair's breaking point (`voe::DEFAULT_CONTEXT`).
    pub voe_context: usize,
    /// Predict with the predictor's weights as trained, not their average (`predictor.average`).
    pub online_predictor: bool,
    pub device: Device,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            checkpoint: PathBuf::new(),
            data: vec![],
            probe_data: vec![],
            out: PathBuf::new(),
            voe_pairs: 120,
            voe_seed: 7_000,
            horizons: 8,
            voe_context: sim::voe::DEFAULT_CONTEXT,
            online_predictor: false,
            device: Device::Cpu,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PredictionReport {
    pub horizons: Vec<i64>,
    pub clips: usize,
    pub trained: Vec<f64>,
    pub copy_last: Vec<f64>,
    pub random_init: Vec<f64>,
    pub trained_below_copy_last_at_every_horizon: bool,
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    /// Datasets the probes were fit on (empty: three seed groups in five of the held-out episodes).
    pub fit_data: Vec<PathBuf>,
    pub fit_frames: usize,
    pub test_frames: usize,
    pub trained_position_r2: [f64; 2],
    pub random_init_position_r2: [f64; 2],
    /// The pusher's (paw's) table-plane position, on every frame: what the actions move, and
    /// what a push depends on beside the cup.
    pub trained_pusher_r2: [f64; 2],
    pub random_init_pusher_r2: [f64; 2],
    pub trained_on_table_accuracy: f64,
    pub random_init_on_table_accuracy: f64,
    /// Mean of the recalls of "on" and "off" (falls are rare frames; NaN when a class is absent).
    pub trained_on_table_balanced_accuracy: f64,
    pub random_init_on_table_balanced_accuracy: f64,
    /// Accuracy of always answering the majority class of the test frames.
    pub on_table_majority_baseline: f64,
    /// The viewer's ghost probe (`probe.safetensors`: position from target latents), held-out R².
    pub ghost_probe_position_r2: [f64; 2],
    /// The trained encoder's cup-position probe error by kind of frame (`probe_cup.csv` has each
    /// test frame's prediction).
    pub trained_cup_errors: Vec<CupErrorRow>,
}

#[derive(Debug, Serialize)]
pub struct VoeModelReport {
    pub by_max: Vec<(String, VoeScore)>,
    pub by_mean: Vec<(String, VoeScore)>,
    pub overall_by_max: VoeScore,
    pub overall_by_mean: VoeScore,
}

#[derive(Debug, Serialize)]
pub struct VoeReport {
    pub pairs_per_category: usize,
    pub frames_before_break: usize,
    pub frames_after_break: usize,
    /// (category, episode seed) of every pair, to regenerate any of them.
    pub pair_seeds: Vec<(String, u64)>,
    pub trained: VoeModelReport,
    /// The trained model with a frame's surprise taken as its most surprising patch instead of the
    /// mean over patches (not the protocol's definition; shown because events here cover 1–2 of
    /// 16 patches).
    pub trained_patch_max: VoeModelReport,
    pub random_init: VoeModelReport,
    /// Surprise = frame-to-frame change of the trained target latents: a pure change detector.
    pub change_detector: VoeModelReport,
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub checkpoint: PathBuf,
    /// Which predictor weights predicted: `average` (of the run's last steps) or `trained`.
    pub predictor_weights: String,
    pub data: Vec<PathBuf>,
    pub episodes: usize,
    /// Frames per model step: prediction horizons count model steps of this many frames.
    pub frameskip: i64,
    pub prediction: PredictionReport,
    pub probe: ProbeReport,
    pub voe: VoeReport,
    pub seconds: f64,
}

fn l1_per_clip(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).abs().flatten(1, -1).mean_dim(1, false, Kind::Float)
}

/// Latent L1 at horizons 1..=h model steps from `clip_len − 1` real model steps, averaged over
/// clips starting every 4 frames of every episode.
fn prediction_errors(model: &WorldModel, episodes: &[EpisodeTensors], h: i64) -> (Vec<f64>, Vec<f64>, usize) {
    let (w, skip) = (model.cfg.clip_len - 1, model.cfg.frameskip);
    let len = w + h;
    let span = (len - 1) * skip + 1;
    let (mut frames, mut actions) = (vec![], vec![]);
    for ep in episodes {
        let mut s = 0;
        while s + span <= ep.len() {
            let (f, a) = ep.model_step_clip(s, len, skip);
            frames.push(f);
            actions.push(a);
            s += 4;
        }
    }
    let n = frames.len();
    let (mut model_sum, mut copy_sum) = (vec![0.0; h as usize], vec![0.0; h as usize]);
    for (f, a) in frames.chunks(64).zip(actions.chunks(64)) {
        let f = Tensor::stack(f, 0);
        let a = Tensor::stack(a, 0).to_kind(Kind::Float);
        tch::no_grad(|| {
            let (z, tgt) = model.encode_clips(&f);
            let roll = model.rollout(&z.narrow(1, 0, w), &tgt.narrow(1, 0, w), &a.narrow(1, 0, len - 1), h);
            for k in 0..h {
                let truth = tgt.select(1, w + k);
                model_sum[k as usize] += l1_per_clip(&roll.select(1, k), &truth).sum(Kind::Float).double_value(&[]);
                copy_sum[k as usize] += l1_per_clip(&tgt.select(1, w - 1), &truth).sum(Kind::Float).double_value(&[]);
            }
        });
    }
    let avg = |v: Vec<f64>| v.into_iter().map(|s| s / n.max(1) as f64).collect();
    (avg(model_sum), avg(copy_sum), n)
}

/// Ridge regression on standardised features, λ picked on the `validation` rows (`[n]` bool) of
/// the fit set. `weights [n]` (optional) weight the fit rows, e.g. to balance rare classes.
/// Returns the map in raw feature space: `y ≈ x · weight + bias` (standardisation folded in).
fn ridge_fit(x_fit: &Tensor, y_fit: &Tensor, validation: &Tensor, weights: Option<&Tensor>) -> (Tensor, Tensor) {
    let mean = x_fit.mean_dim(0, true, Kind::Float);
    let std = x_fit.std_dim(0, true, true) + 1e-4;
    let xf = (x_fit - &mean) / &std;
    let y_mean = y_fit.mean_dim(0, true, Kind::Float);
    let yc = y_fit - &y_mean;
    // Weighted least squares: scale each row by √w (the intercept stays the unweighted mean).
    let (xf, yc) = match weights {
        Some(w) => {
            let s = w.sqrt().unsqueeze(1);
            (&xf * &s, &yc * &s)
        }
        None => (xf, yc),
    };
    // Normal equations in f64: tens of thousands of rows of strongly correlated patch features.
    // The Gram matrices are the cost (rows × features², ~1e11 flops for the main job's 93,000 fit
    // rows): each is computed once and every λ solves against it.
    let rows = |keep: &Tensor| keep.nonzero().squeeze_dim(1);
    let (train, val) = (rows(&validation.logical_not()), rows(validation));
    let gram = |idx: &Tensor| {
        let (x, y) = (xf.index_select(0, idx).to_kind(Kind::Double), yc.index_select(0, idx).to_kind(Kind::Double));
        let xt = x.transpose(0, 1);
        (xt.matmul(&x), xt.matmul(&y))
    };
    let ((xx_a, xy_a), (xx_b, xy_b)) = (gram(&train), gram(&val));
    let f = xf.size()[1];
    let solve = |xx: &Tensor, xy: &Tensor, lambda: f64| {
        let a = xx + Tensor::eye(f, (Kind::Double, xf.device())) * lambda;
        Tensor::linalg_solve(&a, xy, true).to_kind(Kind::Float)
    };
    let (xb, yb) = (xf.index_select(0, &val), yc.index_select(0, &val));
    let mut best = (f64::INFINITY, 1.0);
    for lambda in [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0] {
        let err = (xb.matmul(&solve(&xx_a, &xy_a, lambda)) - &yb).square().mean(Kind::Float).double_value(&[]);
        if err < best.0 {
            best = (err, lambda);
        }
    }
    if !best.0.is_finite() {
        // No validation rows, or every λ gave a non-finite error: say so rather than pick silently.
        tracing::warn!(
            "ridge probe: no finite validation error ({} validation rows); using λ = {}",
            val.size()[0],
            best.1
        );
    }
    // The final fit on every row: the two parts' Gram matrices summed.
    let w = solve(&(xx_a + xx_b), &(xy_a + xy_b), best.1);
    let weight = &w / std.transpose(0, 1);
    let bias = y_mean - (mean / std).matmul(&w);
    (weight, bias)
}

fn r2(pred: &Tensor, truth: &Tensor) -> f64 {
    let ss_res = (pred - truth).square().sum(Kind::Float).double_value(&[]);
    let ss_tot = (truth - truth.mean(Kind::Float)).square().sum(Kind::Float).double_value(&[]);
    1.0 - ss_res / ss_tot.max(1e-12)
}

/// One row per frame: features (flattened patch latents of the frozen encoder) `[n, P·D]`, the
/// cup's (x, z) `[n, 2]`, ±1 "cup on the table" (its height within 2 cm of where it started)
/// `[n, 1]`, and whether the row is in λ's validation episodes `[n]`.
struct ProbeRows {
    x: Tensor,
    position: Tensor,
    pusher: Tensor,
    on_table: Tensor,
    validation: Tensor,
    /// The environment state `[n, 9]` (cup position and quaternion, goal), for the error breakdown.
    env: Tensor,
    /// Episode seed and frame index of each row `[n]` (i64).
    seed: Tensor,
    frame: Tensor,
}

impl ProbeRows {
    fn new(model: &WorldModel, episodes: &[&EpisodeTensors], target: bool) -> ProbeRows {
        let (mut xs, mut ps, mut pushers, mut ons, mut vals) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut envs, mut seeds, mut frames) = (vec![], vec![], vec![]);
        tch::no_grad(|| {
            for ep in episodes {
                let encode = |f: &Tensor| if target { model.encode_target(f) } else { model.encode(f) };
                let feats = ep.frames.split(128, 0).iter().map(|f| encode(f).flatten(1, 2)).collect::<Vec<_>>();
                xs.push(Tensor::cat(&feats, 0).to_device(Device::Cpu));
                ps.push(Tensor::stack(&[ep.env_state.select(1, 0), ep.env_state.select(1, 2)], 1));
                pushers.push(ep.pusher.shallow_clone());
                let y = ep.env_state.select(1, 1);
                ons.push(((y.ge_tensor(&(y.get(0) - 0.02))).to_kind(Kind::Float) * 2.0 - 1.0).unsqueeze(1));
                vals.push(Tensor::full([ep.len()], i64::from(probe_group(ep.seed) == 0), (Kind::Bool, Device::Cpu)));
                envs.push(ep.env_state.shallow_clone());
                seeds.push(Tensor::full([ep.len()], ep.seed as i64, (Kind::Int64, Device::Cpu)));
                frames.push(Tensor::arange(ep.len(), (Kind::Int64, Device::Cpu)));
            }
        });
        ProbeRows {
            x: Tensor::cat(&xs, 0),
            position: Tensor::cat(&ps, 0),
            pusher: Tensor::cat(&pushers, 0),
            on_table: Tensor::cat(&ons, 0),
            validation: Tensor::cat(&vals, 0),
            env: Tensor::cat(&envs, 0),
            seed: Tensor::cat(&seeds, 0),
            frame: Tensor::cat(&frames, 0),
        }
    }

    fn len(&self) -> usize {
        self.x.size()[0] as usize
    }

    /// The rows with the cup on the table.
    fn cup_on_table(&self) -> ProbeRows {
        let keep = self.on_table.squeeze_dim(1).gt(0.0).nonzero().squeeze_dim(1);
        ProbeRows {
            x: self.x.index_select(0, &keep),
            position: self.position.index_select(0, &keep),
            pusher: self.pusher.index_select(0, &keep),
            on_table: self.on_table.index_select(0, &keep),
            validation: self.validation.index_select(0, &keep),
            env: self.env.index_select(0, &keep),
            seed: self.seed.index_select(0, &keep),
            frame: self.frame.index_select(0, &keep),
        }
    }
}

/// Probe splits are by *episode seed*, never by episode: the push-to-goal and knock-off datasets
/// of one `gen` seed share their episode seeds, so twin episodes open on the same table, cup and
/// pusher. Splitting by episode put twins on both sides and let a probe recognise the scene
/// instead of reading the cup (held-out R² 0.82 where the honest figure is near 0.2).
fn probe_group(seed: u64) -> u64 {
    seed % 5
}

/// Which episodes the probes are fit and tested on.
struct ProbeSplit<'a> {
    fit: Vec<&'a EpisodeTensors>,
    test: Vec<&'a EpisodeTensors>,
}

impl<'a> ProbeSplit<'a> {
    /// Fit on `fit` (the training split) and test on every held-out episode; with no `fit`
    /// episodes, held-out episodes of two seed groups in five are test, the rest fit.
    fn new(heldout: &'a [EpisodeTensors], fit: &'a [EpisodeTensors]) -> Result<ProbeSplit<'a>> {
        let split = if fit.is_empty() {
            let (test, fit) = heldout.iter().partition::<Vec<_>, _>(|e| probe_group(e.seed) >= 3);
            ProbeSplit { fit, test }
        } else {
            ProbeSplit { fit: fit.iter().collect(), test: heldout.iter().collect() }
        };
        if split.fit.is_empty() || split.test.is_empty() {
            bail!(
                "the linear probes need episodes to fit and to test on: {} and {} here \
                 (give more held-out episodes, or the training datasets with --probe-data)",
                split.fit.len(),
                split.test.len()
            );
        }
        Ok(split)
    }
}

/// The viewer's ghost-marker probe: cup table-plane position from *target-space* latents (what
/// the predictor outputs), fit on the on-table frames of the fit episodes and saved as
/// `probe.safetensors` (`weight [P·D, 2]`, `bias [2]`). Returns its held-out R² (x, z).
fn save_ghost_probe(model: &WorldModel, split: &ProbeSplit, path: &std::path::Path) -> Result<[f64; 2]> {
    let fit = ProbeRows::new(model, &split.fit, true).cup_on_table();
    let test = ProbeRows::new(model, &split.test, true).cup_on_table();
    let (r2s, weight, bias) = fit_probe(&fit, &test, |r| &r.position);
    let (weight, bias) = (weight.contiguous(), bias.squeeze_dim(0).contiguous());
    Tensor::write_safetensors(&[("weight", &weight), ("bias", &bias)], path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(r2s)
}

/// What the linear probes on one encoder's latents score on the test episodes.
struct ProbeScores {
    /// Cup position R² (x, z), on-table frames.
    position_r2: [f64; 2],
    /// Pusher position R² (x, z), every frame.
    pusher_r2: [f64; 2],
    on_table_accuracy: f64,
    on_table_balanced_accuracy: f64,
    on_table_majority_baseline: f64,
    fit_frames: usize,
    test_frames: usize,
    cup: CupPredictions,
}

/// Fits a ridge map from `fit.x` to the two columns of `y(fit)`: the test R² of each, the weight
/// and the bias.
fn fit_probe(fit: &ProbeRows, test: &ProbeRows, y: impl Fn(&ProbeRows) -> &Tensor) -> ([f64; 2], Tensor, Tensor) {
    let (weight, bias) = ridge_fit(&fit.x, y(fit), &fit.validation, None);
    let pred = test.x.matmul(&weight) + &bias;
    ([0, 1].map(|c| r2(&pred.select(1, c), &y(test).select(1, c))), weight, bias)
}

/// Linear probes on the online encoder's latents.
fn probe(model: &WorldModel, split: &ProbeSplit) -> ProbeScores {
    let fit = ProbeRows::new(model, &split.fit, false);
    let test = ProbeRows::new(model, &split.test, false);
    // Table-plane position is probed on frames with the cup on the table: a cup that fell off
    // the back edge is hidden by the table, and no encoder can say where it lies.
    let (fit_on, test_on) = (fit.cup_on_table(), test.cup_on_table());
    let (position_r2, weight, bias) = fit_probe(&fit_on, &test_on, |r| &r.position);
    let cup = CupPredictions::new(&test_on, &(test_on.x.matmul(&weight) + bias));
    let pusher_r2 = fit_probe(&fit, &test, |r| &r.pusher).0;
    // Falls are rare frames: weight each class to half the total so the classifier cannot win by
    // always answering "on the table".
    let labels = fit.on_table.squeeze_dim(1);
    let n_on = labels.gt(0.0).to_kind(Kind::Float).sum(Kind::Float).double_value(&[]).max(1.0);
    let n_off = labels.lt(0.0).to_kind(Kind::Float).sum(Kind::Float).double_value(&[]).max(1.0);
    let n = labels.size()[0] as f64;
    let w = labels.gt(0.0).to_kind(Kind::Float) * (0.5 * n / n_on)
        + labels.lt(0.0).to_kind(Kind::Float) * (0.5 * n / n_off);
    let (weight, bias) = ridge_fit(&fit.x, &fit.on_table, &fit.validation, Some(&w));
    let on = test.x.matmul(&weight) + bias;
    let hit = on.sign().eq_tensor(&test.on_table).to_kind(Kind::Float);
    let correct = hit.mean(Kind::Float).double_value(&[]);
    // Balanced accuracy: the mean of the two classes' recalls (falls are rare frames).
    let recall = |cls: f64| {
        let m = test.on_table.eq(cls).to_kind(Kind::Float);
        let n = m.sum(Kind::Float).double_value(&[]);
        if n > 0.0 { (&hit * &m).sum(Kind::Float).double_value(&[]) / n } else { f64::NAN }
    };
    let balanced = 0.5 * (recall(1.0) + recall(-1.0));
    let majority = {
        let p = test.on_table.gt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        p.max(1.0 - p)
    };
    ProbeScores {
        position_r2,
        pusher_r2,
        on_table_accuracy: correct,
        on_table_balanced_accuracy: balanced,
        on_table_majority_baseline: majority,
        fit_frames: fit.len(),
        test_frames: test.len(),
        cup,
    }
}

/// The cup-position probe's predictions on the test frames (cup on the table), with what each
/// frame shows: where the errors are (paw close, cup tipped, far side of the table).
struct CupPredictions {
    seed: Vec<i64>,
    frame: Vec<i64>,
    truth: Vec<[f64; 2]>,
    predicted: Vec<[f64; 2]>,
    pusher: Vec<[f64; 2]>,
    /// Angle between the cup's axis and the vertical, degrees.
    tilt_deg: Vec<f64>,
}

impl CupPredictions {
    fn new(rows: &ProbeRows, predicted: &Tensor) -> CupPredictions {
        let pairs = |t: &Tensor| -> Vec<[f64; 2]> {
            let v = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).expect("floats");
            v.chunks(2).map(|c| [c[0], c[1]]).collect()
        };
        // The cup's up axis after rotation by q has y-component 1 − 2(qx² + qz²) = cos(tilt).
        let (qx, qz) = (rows.env.select(1, 3), rows.env.select(1, 5));
        let cos = (-(qx.square() + qz.square()) * 2.0 + 1.0).clamp(-1.0, 1.0);
        let tilt = Vec::<f64>::try_from(cos.acos().to_kind(Kind::Double)).expect("floats");
        CupPredictions {
            seed: Vec::try_from(&rows.seed).expect("ints"),
            frame: Vec::try_from(&rows.frame).expect("ints"),
            truth: pairs(&rows.position),
            predicted: pairs(predicted),
            pusher: pairs(&rows.pusher),
            tilt_deg: tilt.into_iter().map(f64::to_degrees).collect(),
        }
    }

    fn pusher_distance(&self, i: usize) -> f64 {
        let (c, p) = (self.truth[i], self.pusher[i]);
        (c[0] - p[0]).hypot(c[1] - p[1])
    }

    /// The probe's root-mean-square error (x, z) in cm, and the spread of the truth, on every test
    /// frame and on each kind: paw near or far, cup upright or tipped, near or far half of the table.
    fn breakdown(&self) -> Vec<CupErrorRow> {
        let n = self.truth.len();
        let row = |condition: &str, keep: &dyn Fn(usize) -> bool| {
            let idx: Vec<usize> = (0..n).filter(|&i| keep(i)).collect();
            let rmse = |c: usize| {
                let s: f64 = idx.iter().map(|&i| (self.predicted[i][c] - self.truth[i][c]).powi(2)).sum();
                100.0 * (s / idx.len().max(1) as f64).sqrt()
            };
            let spread = |c: usize| {
                let m = idx.iter().map(|&i| self.truth[i][c]).sum::<f64>() / idx.len().max(1) as f64;
                let s: f64 = idx.iter().map(|&i| (self.truth[i][c] - m).powi(2)).sum();
                100.0 * (s / idx.len().max(1) as f64).sqrt()
            };
            CupErrorRow {
                condition: condition.to_string(),
                frames: idx.len(),
                rmse_cm: [rmse(0), rmse(1)],
                spread_cm: [spread(0), spread(1)],
            }
        };
        vec![
            row("every test frame", &|_| true),
            row("pusher within 8 cm of the cup", &|i| self.pusher_distance(i) < 0.08),
            row("pusher farther", &|i| self.pusher_distance(i) >= 0.08),
            row("cup upright (tilt < 20°)", &|i| self.tilt_deg[i] < 20.0),
            row("cup tipped (tilt ≥ 20°)", &|i| self.tilt_deg[i] >= 20.0),
            row("near half of the table (z > 0)", &|i| self.truth[i][1] > 0.0),
            row("far half of the table (z ≤ 0)", &|i| self.truth[i][1] <= 0.0),
        ]
    }

    /// One line per test frame: where the cup was, where the probe put it, the paw, the tilt.
    fn write_csv(&self, path: &std::path::Path) -> Result<()> {
        let mut s = String::from("episode_seed,frame,cup_x,cup_z,probe_x,probe_z,pusher_x,pusher_z,tilt_deg\n");
        for i in 0..self.truth.len() {
            let (t, p, q) = (self.truth[i], self.predicted[i], self.pusher[i]);
            s += &format!(
                "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.1}\n",
                self.seed[i], self.frame[i], t[0], t[1], p[0], p[1], q[0], q[1], self.tilt_deg[i]
            );
        }
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
    }
}

/// The cup-position probe's error on one kind of test frame.
#[derive(Debug, Serialize)]
pub struct CupErrorRow {
    pub condition: String,
    pub frames: usize,
    /// Root-mean-square error of the probe, (x, z), cm.
    pub rmse_cm: [f64; 2],
    /// Standard deviation of the true position over these frames, (x, z), cm (the error of
    /// always answering their mean).
    pub spread_cm: [f64; 2],
}

/// Renders scenes in batches on one renderer; returns frames `[T, 3, H, W]` per clip.
fn render_clips(clips: &[&[types::SceneSnapshot]], size: u32) -> Result<Vec<Tensor>> {
    let s = size as i64;
    Ok(render::render_clips_rgb(clips, size)?
        .0
        .into_iter()
        .map(|f| {
            let t = f.len() as i64;
            let flat: Vec<u8> = f.into_iter().flatten().collect();
            Tensor::from_slice(&flat).reshape([t, s, s, 3]).permute([0, 3, 1, 2]).contiguous()
        })
        .collect())
}

/// Surprise of the frames from the breaking point on: (max, mean).
fn window_scores(curve: &[f64], from: usize) -> (f64, f64) {
    let w = &curve[from..];
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max, w.iter().sum::<f64>() / w.len() as f64)
}

fn change_curve(model: &WorldModel, frames: &Tensor) -> Vec<f64> {
    tch::no_grad(|| {
        let z = model.encode_target(frames);
        // Over one model step, as the predictor's surprise is (copy-last at the model's step).
        let (t, skip) = (z.size()[0], model.cfg.frameskip);
        if t <= skip {
            return vec![f64::NAN; t as usize];
        }
        let diff = (z.narrow(0, skip, t - skip) - z.narrow(0, 0, t - skip)).abs().flatten(1, -1).mean_dim(
            1,
            false,
            Kind::Float,
        );
        let mut v = vec![f64::NAN; skip as usize];
        v.extend(Vec::<f32>::try_from(diff).expect("floats").into_iter().map(f64::from));
        v
    })
}

#[derive(Clone)]
struct VoeCurves {
    /// Per pair: (category, possible curve, impossible curve).
    curves: Vec<(Category, Vec<f64>, Vec<f64>)>,
}

/// A pair's actions as `[T, 2]` (both twins take the same).
fn pair_actions(p: &VoePair) -> Tensor {
    let a: Vec<f32> = p.actions.iter().flatten().copied().collect();
    Tensor::from_slice(&a).reshape([-1, 2])
}

/// `score(frames, actions)` of both twins of every pair; `frames[2k]` and `frames[2k + 1]` are
/// pair k's possible and impossible twins.
fn per_pair<T>(pairs: &[VoePair], frames: &[Tensor], score: &dyn Fn(&Tensor, &Tensor) -> T) -> Vec<(Category, T, T)> {
    pairs
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let a = pair_actions(p);
            (p.category, score(&frames[2 * k], &a), score(&frames[2 * k + 1], &a))
        })
        .collect()
}

/// Per-patch surprise maps `[T, P]` of every VoE episode with each frame predicted `horizon`
/// model steps ahead (1: [`WorldModel::surprise`]'s), as `(category, possible, impossible)` per
/// pair. Episodes of equal length go through the model 64 at a time: one at a time, the
/// predictor's batch-1 passes cost several times more.
fn pair_maps(
    model: &WorldModel,
    pairs: &[VoePair],
    frames: &[Tensor],
    horizon: i64,
) -> Vec<(Category, Tensor, Tensor)> {
    let actions: Vec<Tensor> = pairs.iter().map(pair_actions).collect();
    // Episode k of the flat list is pair k / 2's possible (even) or impossible (odd) twin.
    let mut by_len: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (k, f) in frames.iter().enumerate() {
        by_len.entry(f.size()[0]).or_default().push(k);
    }
    let mut maps: Vec<Option<Tensor>> = (0..frames.len()).map(|_| None).collect();
    for group in by_len.values() {
        for chunk in group.chunks(64) {
            let f = Tensor::stack(&chunk.iter().map(|&k| &frames[k]).collect::<Vec<_>>(), 0);
            let a = Tensor::stack(&chunk.iter().map(|&k| &actions[k / 2]).collect::<Vec<_>>(), 0);
            let batch = model.surprise_ahead_maps(&f, &a, horizon);
            for (j, &k) in chunk.iter().enumerate() {
                maps[k] = Some(batch.get(j as i64));
            }
        }
    }
    let mut it = maps.into_iter().map(|m| m.expect("every episode scored"));
    pairs.iter().map(|p| (p.category, it.next().expect("possible"), it.next().expect("impossible"))).collect()
}

/// Per-frame curves of [`pair_maps`]'s maps, reduced over the patches by `reduce`.
fn curves_of(maps: &[(Category, Tensor, Tensor)], reduce: &dyn Fn(&Tensor) -> Vec<f64>) -> VoeCurves {
    VoeCurves { curves: maps.iter().map(|(c, p, i)| (*c, reduce(p), reduce(i))).collect() }
}

fn voe_report(curves: &VoeCurves, break_at: usize) -> VoeModelReport {
    let mut by_max = vec![];
    let mut by_mean = vec![];
    let (mut all_max, mut all_mean) = (vec![], vec![]);
    for cat in Category::ALL {
        let (mut m, mut a) = (vec![], vec![]);
        for (c, p, i) in curves.curves.iter().filter(|(c, _, _)| *c == cat) {
            let _ = c;
            let (pm, pa) = window_scores(p, break_at);
            let (im, ia) = window_scores(i, break_at);
            m.push((pm, im));
            a.push((pa, ia));
        }
        if m.is_empty() {
            continue;
        }
        all_max.extend(m.iter().copied());
        all_mean.extend(a.iter().copied());
        by_max.push((cat.name().to_string(), score(&m)));
        by_mean.push((cat.name().to_string(), score(&a)));
    }
    // Overall accuracy is the mean over pairs; AUROC pools categories (their scales differ, so
    // the per-category AUROC is the more meaningful one).
    VoeModelReport { by_max, by_mean, overall_by_max: score(&all_max), overall_by_mean: score(&all_mean) }
}

pub fn run(opts: &EvalOptions) -> Result<EvalReport> {
    let began = std::time::Instant::now();
    if !(1..=sim::voe::MAX_CONTEXT).contains(&opts.voe_context) {
        bail!("--voe-context {}: expected 1 to {} frames", opts.voe_context, sim::voe::MAX_CONTEXT);
    }
    if opts.voe_pairs == 0 {
        bail!("--voe-pairs 0: score at least one pair per category");
    }
    if opts.horizons < 1 {
        bail!("--horizons {}: score at least one model step ahead", opts.horizons);
    }
    // The probe's datasets are loaded only when the probes run: check them before any work starts
    // or --out is made (the held-out data is loaded, so checked, before --out too).
    for dir in &opts.probe_data {
        let report = dataset::verify(dir);
        if !report.ok() {
            bail!("{}: fails verification: {}", dir.display(), report.problems.join("; "));
        }
    }
    let ckpt = train::resolve_checkpoint(&opts.checkpoint)?;
    let trained =
        if opts.online_predictor { load_model_online(&ckpt, opts.device)? } else { load_model(&ckpt, opts.device)? };
    let predictor_weights = match trained.cfg.predictor.average {
        a if a > 0.0 && !opts.online_predictor => format!("average (decay {a})"),
        _ => "trained".to_string(),
    };
    let random = WorldModel::new(&trained.cfg, opts.device)?;
    let episodes = load_datasets(&opts.data, trained.cfg.image_size)?;
    if episodes.len() < 6 {
        bail!("evaluation needs at least 6 held-out episodes, the data holds {}", episodes.len());
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    tracing::info!("prediction at horizons 1..={}", opts.horizons);
    let (t_err, copy, clips) = prediction_errors(&trained, &episodes, opts.horizons);
    let (r_err, _, _) = prediction_errors(&random, &episodes, opts.horizons);
    let horizons: Vec<i64> = (1..=opts.horizons).collect();
    let prediction = PredictionReport {
        trained_below_copy_last_at_every_horizon: t_err.iter().zip(&copy).all(|(t, c)| t < c),
        horizons: horizons.clone(),
        clips,
        trained: t_err,
        copy_last: copy,
        random_init: r_err,
    };
    tracing::info!("linear probes");
    let probe_fit = load_datasets(&opts.probe_data, trained.cfg.image_size)?;
    let split = ProbeSplit::new(&episodes, &probe_fit)?;
    let (t, r) = (probe(&trained, &split), probe(&random, &split));
    let ghost_probe_position_r2 = save_ghost_probe(&trained, &split, &opts.out.join("probe.safetensors"))?;
    t.cup.write_csv(&opts.out.join("probe_cup.csv"))?;
    drop(split);
    drop(probe_fit);
    let probe = ProbeReport {
        fit_data: opts.probe_data.clone(),
        fit_frames: t.fit_frames,
        test_frames: t.test_frames,
        trained_position_r2: t.position_r2,
        random_init_position_r2: r.position_r2,
        trained_pusher_r2: t.pusher_r2,
        random_init_pusher_r2: r.pusher_r2,
        trained_on_table_accuracy: t.on_table_accuracy,
        random_init_on_table_accuracy: r.on_table_accuracy,
        trained_on_table_balanced_accuracy: t.on_table_balanced_accuracy,
        random_init_on_table_balanced_accuracy: r.on_table_balanced_accuracy,
        ghost_probe_position_r2,
        trained_cup_errors: t.cup.breakdown(),
        on_table_majority_baseline: t.on_table_majority_baseline,
    };

    tracing::info!("violation of expectation: {} pairs per category", opts.voe_pairs);
    let pairs = generate_pairs(opts.voe_pairs, opts.voe_seed, &Category::ALL, opts.voe_context)?;
    let scenes: Vec<&[types::SceneSnapshot]> =
        pairs.iter().flat_map(|p| [p.possible.as_slice(), p.impossible.as_slice()]).collect();
    let frames = render_clips(&scenes, trained.cfg.image_size as u32)?;
    let curves_for = |f: &dyn Fn(&Tensor, &Tensor) -> Vec<f64>| VoeCurves { curves: per_pair(&pairs, &frames, f) };
    // One surprise pass per episode gives both the mean-over-patches curve and the most surprising
    // patch's.
    let maps = pair_maps(&trained, &pairs, &frames, 1);
    let trained_curves = curves_of(&maps, &world_model::frame_curve);
    let patch_max_curves = curves_of(&maps, &|m| world_model::per_frame(&m.amax(-1, false)));
    drop(maps);
    let random_curves = curves_of(&pair_maps(&random, &pairs, &frames, 1), &world_model::frame_curve);
    let change_curves = curves_for(&|f, _| change_curve(&trained, f));
    let b = opts.voe_context;
    let voe = VoeReport {
        pair_seeds: pairs.iter().map(|p| (p.category.name().to_string(), p.seed)).collect(),
        pairs_per_category: opts.voe_pairs,
        frames_before_break: b,
        frames_after_break: sim::voe::FRAMES_AFTER_BREAK,
        trained: voe_report(&trained_curves, b),
        trained_patch_max: voe_report(&patch_max_curves, b),
        random_init: voe_report(&random_curves, b),
        change_detector: voe_report(&change_curves, b),
    };
    write_figures(&opts.out, &prediction, &trained_curves, &pairs, &frames, b)?;
    let report = EvalReport {
        checkpoint: ckpt,
        predictor_weights,
        data: opts.data.clone(),
        episodes: episodes.len(),
        frameskip: trained.cfg.frameskip,
        prediction,
        probe,
        voe,
        seconds: began.elapsed().as_secs_f64(),
    };
    std::fs::write(opts.out.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(opts.out.join("report.md"), markdown(&report))?;
    Ok(report)
}

fn write_figures(
    out: &Path,
    pred: &PredictionReport,
    curves: &VoeCurves,
    pairs: &[VoePair],
    frames: &[Tensor],
    break_at: usize,
) -> Result<()> {
    let h: Vec<f64> = pred.horizons.iter().map(|&h| h as f64).collect();
    let zip = |v: &[f64]| h.iter().copied().zip(v.iter().copied()).collect::<Vec<_>>();
    line_plot(
        &out.join("prediction.png"),
        &Plot {
            title: "Latent prediction error on held-out episodes",
            x_label: "horizon (model steps)",
            y_label: "latent L1",
            log_x: false,
            log_y: false,
            markers: vec![],
        },
        &[
            Series::new("trained", zip(&pred.trained)),
            Series::new("copy last latent", zip(&pred.copy_last)),
            Series::new("random init", zip(&pred.random_init)),
        ],
    )?;
    for cat in Category::ALL {
        let mine: Vec<&(Category, Vec<f64>, Vec<f64>)> = curves.curves.iter().filter(|c| c.0 == cat).collect();
        if mine.is_empty() {
            continue;
        }
        let mean = |pick: &dyn Fn(&(Category, Vec<f64>, Vec<f64>)) -> &Vec<f64>| -> Vec<(f64, f64)> {
            let n = pick(mine[0]).len();
            (1..n).map(|t| (t as f64, mine.iter().map(|c| pick(c)[t]).sum::<f64>() / mine.len() as f64)).collect()
        };
        let first =
            |v: &Vec<f64>| -> Vec<(f64, f64)> { v.iter().enumerate().skip(1).map(|(t, &s)| (t as f64, s)).collect() };
        line_plot(
            &out.join(format!("voe_{}.png", cat.name())),
            &Plot {
                title: &format!("Surprise, {} (mean over {} pairs; line = breaking point)", cat.name(), mine.len()),
                x_label: "frame",
                y_label: "surprise (latent L1)",
                log_x: false,
                log_y: false,
                markers: vec![break_at as f64],
            },
            &[
                Series::new("possible (mean)", mean(&|c| &c.1)),
                Series::new("impossible (mean)", mean(&|c| &c.2)),
                Series::new("possible (pair 1)", first(&mine[0].1)),
                Series::new("impossible (pair 1)", first(&mine[0].2)),
            ],
        )?;
    }
    // A film strip: for each category, pair 1's possible (upper) and impossible (lower) frames.
    let mut rows: Vec<&Tensor> = vec![];
    for cat in Category::ALL {
        if let Some(k) = pairs.iter().position(|p| p.category == cat) {
            rows.push(&frames[2 * k]);
            rows.push(&frames[2 * k + 1]);
        }
    }
    if let Some(first) = rows.first() {
        let (t, s) = (first.size()[0], first.size()[2]);
        let gap = 2;
        let (w, hgt) = ((t * (s + gap)) as u32, (rows.len() as i64 * (s + gap)) as u32);
        let mut img = image::RgbImage::from_pixel(w, hgt, image::Rgb([255, 255, 255]));
        for (r, clip) in rows.iter().enumerate() {
            let hwc = clip.permute([0, 2, 3, 1]).contiguous();
            let data = Vec::<u8>::try_from(hwc.flatten(0, -1)).expect("u8 frames");
            for f in 0..t {
                for y in 0..s {
                    for x in 0..s {
                        let i = (((f * s + y) * s + x) * 3) as usize;
                        let px = image::Rgb([data[i], data[i + 1], data[i + 2]]);
                        img.put_pixel((f * (s + gap) + x) as u32, (r as i64 * (s + gap) + y) as u32, px);
                    }
                }
            }
        }
        // Mark the breaking-point column with a red bar under each row.
        let bx = (break_at as i64 * (s + gap)) as u32;
        for r in 0..rows.len() as u32 {
            for x in bx..bx + s as u32 {
                img.put_pixel(x, r * (s + gap) as u32 + s as u32, image::Rgb([220, 30, 30]));
            }
        }
        img.save(out.join("voe_frames.png"))
            .with_context(|| format!("writing {}", out.join("voe_frames.png").display()))?;
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn markdown(r: &EvalReport) -> String {
    let mut s = String::new();
    s += "# World-model evaluation\n\n";
    s += &format!(
        "Checkpoint `{}` (predictor weights: {}), {} held-out episodes, {:.0} s.\n\n",
        r.checkpoint.display(),
        r.predictor_weights,
        r.episodes,
        r.seconds
    );
    s += &format!(
        "## Prediction (latent L1 on held-out clips; lower is better)\n\n![prediction](prediction.png)\n\n\
         Horizons in model steps of {} frame(s) each (`frameskip`); copy-last repeats the latents of the last real \
         model step.\n\n",
        r.frameskip
    );
    s += "| horizon | trained | copy last latent | random init |\n|---|---|---|---|\n";
    for (i, h) in r.prediction.horizons.iter().enumerate() {
        s += &format!(
            "| {h} | {:.4} | {:.4} | {:.4} |\n",
            r.prediction.trained[i], r.prediction.copy_last[i], r.prediction.random_init[i]
        );
    }
    s += &format!(
        "\n{} clips. Trained below copy-last at every horizon: **{}**.\n\n",
        r.prediction.clips, r.prediction.trained_below_copy_last_at_every_horizon
    );
    let p = &r.probe;
    s += "## Linear probes (frozen encoder latents → cup state; ridge, split by episode seed)\n\n\
          Position is probed on frames with the cup on the table (a cup fallen behind the table is hidden).\n\n";
    s += "| probe | trained | random init |\n|---|---|---|\n";
    s += &format!("| cup x, R² | {:.3} | {:.3} |\n", p.trained_position_r2[0], p.random_init_position_r2[0]);
    s += &format!("| cup z, R² | {:.3} | {:.3} |\n", p.trained_position_r2[1], p.random_init_position_r2[1]);
    s += &format!(
        "| pusher x, R² (every frame) | {:.3} | {:.3} |\n",
        p.trained_pusher_r2[0], p.random_init_pusher_r2[0]
    );
    s += &format!(
        "| pusher z, R² (every frame) | {:.3} | {:.3} |\n",
        p.trained_pusher_r2[1], p.random_init_pusher_r2[1]
    );
    s += &format!(
        "| cup on the table, accuracy (class-weighted fit) | {} | {} |\n| cup on the table, balanced accuracy | {} | {} |\n\n",
        pct(p.trained_on_table_accuracy),
        pct(p.random_init_on_table_accuracy),
        pct(p.trained_on_table_balanced_accuracy),
        pct(p.random_init_on_table_balanced_accuracy)
    );
    s += &format!(
        "{} fit frames ({}), {} test frames; always answering the majority class scores {}.\n\n\
         The viewer's ghost marker (`cupworld view --probe probe.safetensors`) uses a position probe on \
         the target encoder's latents (the space the predictor writes in): R² x {:.3}, z {:.3}.\n\n",
        p.fit_frames,
        if p.fit_data.is_empty() {
            "held-out episodes of three seed groups in five; the other two are test".to_string()
        } else {
            format!(
                "the training split: {}",
                p.fit_data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        },
        p.test_frames,
        pct(p.on_table_majority_baseline),
        p.ghost_probe_position_r2[0],
        p.ghost_probe_position_r2[1]
    );
    s += "Where the trained encoder's cup-position probe errs (root-mean-square error on the test frames \
          of each kind; spread: the error of always answering their mean; `probe_cup.csv` lists every \
          frame):\n\n| test frames | count | RMSE x / z (cm) | spread x / z (cm) |\n|---|---|---|---|\n";
    for e in &p.trained_cup_errors {
        s += &format!(
            "| {} | {} | {:.2} / {:.2} | {:.2} / {:.2} |\n",
            e.condition, e.frames, e.rmse_cm[0], e.rmse_cm[1], e.spread_cm[0], e.spread_cm[1]
        );
    }
    s += "\n";
    let v = &r.voe;
    s += &format!(
        "## Intuitive physics: violation of expectation\n\n{} matched pairs per category, each clip {} frames of \
         context and the breaking point; surprise scored over the {} frames from the breaking point on (max, and \
         mean in brackets). Pairwise accuracy = possible twin less surprising.\n\n",
        v.pairs_per_category,
        v.frames_before_break,
        v.frames_after_break + 1
    );
    let skip = r.frameskip;
    if skip > 1 {
        s += &format!(
            "The model steps {skip} frames at a time (`frameskip`), so the \"trained\" columns already predict each \
             frame from the frames {skip}, {}, … before it, with the actions taken since.\n\n",
            2 * skip
        );
    }
    s += "| category | trained acc. | trained AUROC | random init acc. | change detector acc. | trained, patch-max surprise |";
    s += "\n|---|---|---|---|---|---|\n";
    let row = |name: &str, i: Option<usize>| {
        let pick = |m: &VoeModelReport, by_mean: bool| match (i, by_mean) {
            (Some(i), false) => m.by_max[i].1.clone(),
            (Some(i), true) => m.by_mean[i].1.clone(),
            (None, false) => m.overall_by_max.clone(),
            (None, true) => m.overall_by_mean.clone(),
        };
        let t = pick(&v.trained, false);
        let bold = |x: String| if i.is_none() { format!("**{x}**") } else { x };
        let line = format!(
            "| {} | {} ({}) | {:.3} | {} ({}) | {} | {} |",
            bold(name.to_string()),
            bold(pct(t.pairwise_accuracy)),
            pct(pick(&v.trained, true).pairwise_accuracy),
            t.auroc,
            pct(pick(&v.random_init, false).pairwise_accuracy),
            pct(pick(&v.random_init, true).pairwise_accuracy),
            pct(pick(&v.change_detector, false).pairwise_accuracy),
            pct(pick(&v.trained_patch_max, false).pairwise_accuracy),
        );
        line + "\n"
    };
    for (i, (name, _)) in v.trained.by_max.iter().enumerate() {
        s += &row(name, Some(i));
    }
    s += &row("overall", None);
    s += "\n";
    s += &format!(
        "The change detector scores a frame by how much the (trained) target latents moved since one model step \
         before ({} frame(s)): it catches events that change the picture (teleport, vanish, recolor) but prefers \
         the impossible twin when the impossible event is *less* motion (levitate, pass-through), so those two \
         categories test learned physics rather than change detection. The patch-max column scores each frame by \
         its most surprising patch instead of the mean over the patches (the protocol's definition is the mean; \
         the events here cover one or two patches).\n\n",
        skip.max(1)
    );
    s += "![frames](voe_frames.png)\n\nRows in pairs, per category (teleport, vanish, levitate, pass-through, recolor): \
          possible above, impossible below; the red bar marks the breaking point.\n\n";
    for cat in Category::ALL {
        s += &format!("![{0}](voe_{0}.png)\n", cat.name());
    }
    s
}

/// `cupworld surprise`: per-episode surprise of any dataset's episodes.
/// `path` made absolute against the current directory without touching the disk (it may not exist
/// yet), with `.` and `..` resolved; symbolic links in the existing part are resolved.
fn absolute_lexical(path: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    // Resolve the longest existing ancestor, so a link to the dataset is seen through.
    let mut existing = abs.as_path();
    let mut rest = vec![];
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(abs),
        }
    }
    let mut resolved = std::fs::canonicalize(existing)?;
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

pub fn surprise_cmd(
    checkpoint: &Path,
    data: &Path,
    out: &Path,
    plots: usize,
    device: Device,
) -> Result<serde_json::Value> {
    // Writing into the dataset would make it fail verification.
    if let (Ok(d), Ok(o)) = (std::fs::canonicalize(data), absolute_lexical(out))
        && o.starts_with(&d)
    {
        bail!("--out {} lies inside the dataset {}; write the scores elsewhere", out.display(), data.display());
    }
    let ckpt = train::resolve_checkpoint(checkpoint)?;
    let model = load_model(&ckpt, device)?;
    // Scoring is read-only, and edited clips are exactly what a user may want scored: files that
    // no longer match the manifest are scored and reported (`verified: false` and the problems
    // in surprise.json), not refused.
    let report = dataset::verify(data);
    if !report.ok() {
        eprintln!(
            "warning: {}: {} file(s) differ from the manifest (edited clips?); scoring what is readable: {}",
            data.display(),
            report.problems.len(),
            report.problems.join("; ")
        );
    }
    let episodes = train::data::read_episodes(data, model.cfg.image_size)?;
    if !episodes.iter().any(|e| e.len() >= 2) {
        bail!("{}: no episode of two frames or more to score", data.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut rows = vec![];
    for (i, ep) in episodes.iter().enumerate() {
        if ep.len() < 2 {
            continue;
        }
        let (curve, _) = model.surprise(&ep.frames, &ep.actions);
        // The frames something predicts (frame 0 never; at frameskip s, frames 1..s neither).
        let valid: Vec<(usize, f64)> = curve.iter().copied().enumerate().filter(|(_, v)| !v.is_nan()).collect();
        if valid.is_empty() {
            continue;
        }
        let (max_at, max) = valid.iter().fold((0, f64::NEG_INFINITY), |m, &(k, v)| if v > m.1 { (k, v) } else { m });
        let mean = valid.iter().map(|(_, v)| v).sum::<f64>() / valid.len() as f64;
        if i < plots {
            line_plot(
                &out.join(format!("episode_{i:06}.png")),
                &Plot {
                    title: &format!("Surprise, episode {i} (seed {})", ep.seed),
                    x_label: "frame",
                    y_label: "surprise (latent L1)",
                    log_x: false,
                    log_y: false,
                    markers: vec![],
                },
                &[Series::new("surprise", valid.iter().map(|&(k, v)| (k as f64, v)).collect())],
            )?;
        }
        rows.push(serde_json::json!({
            "episode_index": i, "seed": ep.seed, "frames": ep.len(), "mean": mean, "max": max, "max_frame": max_at,
            "curve": curve.iter().map(|v| if v.is_finite() { serde_json::json!(v) } else { serde_json::Value::Null }).collect::<Vec<_>>(),
        }));
    }
    let result = serde_json::json!({
        "checkpoint": ckpt, "data": data, "verified": report.ok(), "verify_problems": report.problems, "episodes": rows,
    });
    std::fs::write(out.join("surprise.json"), serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use train::data::TrainingFrame;

    /// The breakdown sorts frames by the paw's distance, the tilt and the table half, and its RMSE
    /// and spread are in cm; the CSV has a line per frame.
    #[test]
    fn the_cup_probe_breakdown_measures_each_kind_of_frame() {
        let cup = CupPredictions {
            seed: vec![1, 1, 2, 2],
            frame: vec![0, 1, 0, 1],
            truth: vec![[0.0, 0.1], [0.0, 0.1], [0.2, -0.1], [0.2, -0.1]],
            // Errors of 3 cm in x on the first two frames, 4 cm in z on the last two.
            predicted: vec![[0.03, 0.1], [-0.03, 0.1], [0.2, -0.06], [0.2, -0.14]],
            // The paw 5 cm from the cup in frame 0, far in the others.
            pusher: vec![[0.05, 0.1], [0.3, 0.3], [-0.2, 0.0], [-0.2, 0.0]],
            tilt_deg: vec![0.0, 0.0, 0.0, 45.0],
        };
        let rows = cup.breakdown();
        let get = |name: &str| rows.iter().find(|r| r.condition.starts_with(name)).unwrap();
        let close = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6;
        let all = get("every");
        assert_eq!(all.frames, 4);
        assert!(close(all.rmse_cm, [(18.0f64 / 4.0).sqrt(), (32.0f64 / 4.0).sqrt()]), "{:?}", all.rmse_cm);
        assert!(close(all.spread_cm, [10.0, 10.0]), "{:?}", all.spread_cm);
        assert_eq!(get("pusher within").frames, 1);
        assert!(close(get("pusher within").rmse_cm, [3.0, 0.0]));
        assert_eq!(get("cup tipped").frames, 1);
        assert!(close(get("cup tipped").rmse_cm, [0.0, 4.0]));
        let (near, far) = (get("near half"), get("far half"));
        assert_eq!((near.frames, far.frames), (2, 2));
        assert!(close(near.rmse_cm, [3.0, 0.0]) && close(far.rmse_cm, [0.0, 4.0]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe_cup.csv");
        cup.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.lines().nth(4).unwrap().starts_with("2,1,0.2000,-0.1000,0.2000,-0.1400,"), "{text}");
    }

    /// The ridge probe recovers a linear map (in raw feature units, bias included) from noisy
    /// rows; its final fit is the direct solve on every row at the λ validation picked.
    #[test]
    fn ridge_fit_recovers_a_linear_map() {
        tch::manual_seed(3);
        let (n, f) = (2_000, 16);
        let x = Tensor::randn([n, f], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let true_w = Tensor::randn([f, 2], (Kind::Float, Device::Cpu));
        let y = x.matmul(&true_w)
            + Tensor::from_slice(&[0.5f32, -2.0])
            + Tensor::randn([n, 2], (Kind::Float, Device::Cpu)) * 0.05;
        let validation = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(5).eq(0);
        let (weight, bias) = ridge_fit(&x, &y, &validation, None);
        let max_err = (&weight - &true_w).abs().max().double_value(&[]);
        assert!(max_err < 0.01, "weight off by {max_err}");
        let bias: Vec<f32> = Vec::try_from(bias.flatten(0, -1)).unwrap();
        assert!((bias[0] - 0.5).abs() < 0.02 && (bias[1] + 2.0).abs() < 0.02, "{bias:?}");
        let pred = x.matmul(&weight) + Tensor::from_slice(&bias);
        assert!(r2(&pred.select(1, 0), &y.select(1, 0)) > 0.999);
        // Pure noise targets: no map to find, and a held-out R² near 0 (not above it).
        let noise = Tensor::randn([n, 2], (Kind::Float, Device::Cpu));
        let (w, b) = ridge_fit(&x, &noise, &validation, None);
        let fresh = Tensor::randn([n, f], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let r = r2(&(fresh.matmul(&w) + b).select(1, 0), &Tensor::randn([n], (Kind::Float, Device::Cpu)));
        assert!(r < 0.02, "R² {r} on noise");
    }

    fn episode(seed: u64) -> EpisodeTensors {
        let row = TrainingFrame { rgb: vec![0u8; 3 * 4 * 4], env_state: vec![0.0f32; 4], ..TrainingFrame::default() };
        EpisodeTensors::from_rows(seed, 4, &[row.clone(), row])
    }

    /// Twin episodes (push-to-goal and knock-off of one `gen` seed share episode seeds) must land
    /// on the same side of every probe split, or the probe learns to recognise the scene.
    #[test]
    fn probe_splits_keep_twin_episodes_together() {
        let seeds: Vec<u64> = (0..40u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let heldout: Vec<EpisodeTensors> = seeds.iter().chain(&seeds).map(|&s| episode(s)).collect();
        let split = ProbeSplit::new(&heldout, &[]).unwrap();
        assert!(!split.fit.is_empty() && !split.test.is_empty());
        for e in &split.test {
            assert!(split.fit.iter().all(|f| f.seed != e.seed), "seed {} on both sides", e.seed);
        }
        // With training datasets given, every held-out episode is test and none is fit.
        let train: Vec<EpisodeTensors> = (1000..1010u64).map(episode).collect();
        let split = ProbeSplit::new(&heldout, &train).unwrap();
        assert_eq!((split.fit.len(), split.test.len()), (10, 80));
        // Nothing to test on: an error, not a perfect score.
        let few: Vec<EpisodeTensors> = [5u64, 10, 15].into_iter().map(episode).collect(); // all group 0
        let e = ProbeSplit::new(&few, &[]).err().expect("refused").to_string();
        assert!(e.contains("--probe-data"), "{e}");
    }
}
