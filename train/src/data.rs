//! Episodes as tensors for the world model: loaded from verified datasets, or streamed live from
//! simulators and the renderer into a replay buffer; clips sampled from either with a seeded RNG.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};
use world_model::Counterfactual;

/// One episode: frames `[T, 3, H, W]` u8, actions `[T, 2]` f32, environment state `[T, 9]` f32
/// (cup position, cup quaternion, goal), the pusher's table-plane position `[T, 2]` f32, as plain
/// tensors on the CPU.
pub struct EpisodeTensors {
    pub frames: Tensor,
    pub actions: Tensor,
    pub env_state: Tensor,
    pub pusher: Tensor,
    pub seed: u64,
    /// The same frames drawn with the cup moved (`gen --counterfactual`) and how far, when paired.
    pub counterfactual: Option<Counterfactual>,
    /// [`EpisodeTensors::fall_start`], found once: the clip sampler asks for every episode's on
    /// every draw (2–3 ms a batch for 800 episodes when read from `env_state` each time).
    fall_start: Option<i64>,
}

/// One frame of an episode as read from a dataset or a live simulator.
#[derive(Clone, Debug, Default)]
pub struct TrainingFrame {
    /// RGB8, row-major (HWC).
    pub rgb: Vec<u8>,
    pub action: [f32; 2],
    /// `observation.environment_state` (cup position, cup quaternion, goal).
    pub env_state: Vec<f32>,
    /// The pusher's table-plane position (x, z), from `observation.state`.
    pub pusher: [f32; 2],
}

impl TrainingFrame {
    pub fn new(rgb: Vec<u8>, action: [f32; 2], env_state: Vec<f32>, state: &[f32]) -> TrainingFrame {
        let at = |i: usize| state.get(i).copied().unwrap_or(f32::NAN);
        TrainingFrame { rgb, action, env_state, pusher: [at(0), at(1)] }
    }
}

impl EpisodeTensors {
    /// The clip of `steps` model steps of `skip` frames from frame `start` (it spans
    /// `(steps − 1)·skip + 1` frames, which must exist): frames `[steps, 3, H, W]` and each step's
    /// `skip` actions side by side `[steps, skip·2]`. The last step's block reaches past the clip:
    /// the episode's own actions where there are any, zeros past its end (the predictor never reads
    /// that block; it keeps clips alike).
    pub fn model_step_clip(&self, start: i64, steps: i64, skip: i64) -> (Tensor, Tensor) {
        let span = (steps - 1) * skip + 1;
        let acts = self.actions.narrow(0, start, (span + skip - 1).min(self.len() - start));
        world_model::model_steps(&self.frames.narrow(0, start, span), &acts, skip, 0)
    }

    /// From plain rows (one per frame).
    pub fn from_rows(seed: u64, size: u32, rows: &[TrainingFrame]) -> EpisodeTensors {
        let t = rows.len() as i64;
        let s = size as i64;
        let rgb: Vec<u8> = rows.iter().flat_map(|r| r.rgb.iter().copied()).collect();
        let frames = Tensor::from_slice(&rgb).reshape([t, s, s, 3]).permute([0, 3, 1, 2]).contiguous();
        let actions: Vec<f32> = rows.iter().flat_map(|r| r.action).collect();
        let env: Vec<f32> = rows.iter().flat_map(|r| r.env_state.iter().copied()).collect();
        let pusher: Vec<f32> = rows.iter().flat_map(|r| r.pusher).collect();
        let cup_y: Vec<f32> = rows.iter().map(|r| r.env_state.get(1).copied().unwrap_or(0.0)).collect();
        EpisodeTensors {
            frames,
            actions: Tensor::from_slice(&actions).reshape([t, 2]),
            env_state: Tensor::from_slice(&env).reshape([t, -1]),
            pusher: Tensor::from_slice(&pusher).reshape([t, 2]),
            seed,
            counterfactual: None,
            fall_start: first_fall(&cup_y),
        }
    }

    /// The first frame whose cup is 2 cm or more below its starting height (a fall), if any.
    pub fn fall_start(&self) -> Option<i64> {
        self.fall_start
    }

    pub fn len(&self) -> i64 {
        self.frames.size()[0]
    }
}

/// The first index whose cup height `y` is 2 cm or more below the first one.
fn first_fall(y: &[f32]) -> Option<i64> {
    let y0 = *y.first()?;
    y.iter().position(|&v| v < y0 - 0.02).map(|p| p as i64)
}

/// Loads every episode of the given datasets; each must pass verification (sha256 of every file,
/// structure), else it is refused with the problems named.
pub fn load_datasets(dirs: &[PathBuf], image_size: i64) -> Result<Vec<EpisodeTensors>> {
    let mut out = vec![];
    for dir in dirs {
        out.extend(load_dataset(dir, image_size)?);
    }
    Ok(out)
}

/// Whether `dir` is a counterfactual companion (made by `gen --counterfactual`).
fn is_counterfactual(dir: &Path) -> Result<bool> {
    Ok(dataset::Manifest::read(dir)?.meta.env_config.get("counterfactual").is_some())
}

/// Refuses a counterfactual companion given as training data: its frames show the cup where it
/// is not, so training on them as real teaches the wrong world.
pub fn refuse_counterfactual(dir: &Path) -> Result<()> {
    if is_counterfactual(dir)? {
        bail!(
            "{}: is a counterfactual dataset (gen --counterfactual); give it as --counterfactual-data",
            dir.display()
        );
    }
    Ok(())
}

/// Loads every episode of `dirs` with the frames of its counterfactual companion (`dirs[i]` pairs
/// with `counterfactual[i]`): both verified, the companion made by `gen --counterfactual` from
/// the same episodes (same seeds, same lengths), else refused naming both directories.
pub fn load_paired(dirs: &[PathBuf], counterfactual: &[PathBuf], image_size: i64) -> Result<Vec<EpisodeTensors>> {
    if dirs.len() != counterfactual.len() {
        bail!(
            "{} dataset(s) but {} counterfactual companion(s): give one --counterfactual-data per --data, in order",
            dirs.len(),
            counterfactual.len()
        );
    }
    let mut out = vec![];
    for (dir, cf_dir) in dirs.iter().zip(counterfactual) {
        refuse_counterfactual(dir)?;
        if !is_counterfactual(cf_dir)? {
            bail!("{}: not a counterfactual dataset (made without gen --counterfactual)", cf_dir.display());
        }
        let mut real = load_dataset(dir, image_size)?;
        let cf = load_dataset(cf_dir, image_size)?;
        if real.len() != cf.len() {
            bail!(
                "{} has {} episodes, its counterfactual {} has {}",
                dir.display(),
                real.len(),
                cf_dir.display(),
                cf.len()
            );
        }
        for (i, (r, c)) in real.iter_mut().zip(cf).enumerate() {
            if r.seed != c.seed || r.len() != c.len() || !r.actions.equal(&c.actions) {
                bail!(
                    "episode {i}: {} (seed {}, {} steps) and {} (seed {}, {} steps) are not the same episode; \
                     make the counterfactual with the same gen options plus --counterfactual",
                    dir.display(),
                    r.seed,
                    r.len(),
                    cf_dir.display(),
                    c.seed,
                    c.len()
                );
            }
            let (shift, moves) = (companion_shift(r, &c), companion_moves(r, &c));
            r.counterfactual = Some(Counterfactual { frames: c.frames, shift, moves });
        }
        out.extend(real);
    }
    Ok(out)
}

/// How far a counterfactual companion moved things, per frame `[T]`: the companion's environment
/// state says where its cup was drawn, its state where its pusher was (companions made before the
/// pusher moved too have it in place), and the shift is the sum of the two table-plane moves.
pub fn companion_shift(real: &EpisodeTensors, companion: &EpisodeTensors) -> Tensor {
    let moves = companion_moves(real, companion);
    let length = |m: Tensor| m.square().sum_dim_intlist(1, false, Kind::Float).sqrt();
    length(moves.narrow(1, 0, 2)) + length(moves.narrow(1, 2, 2))
}

/// What a counterfactual companion moved, per frame `[T, 4]`: the cup's and the pusher's
/// table-plane moves (Δx, Δz each, metres; 0 for a pusher that stayed or was not recorded).
pub fn companion_moves(real: &EpisodeTensors, companion: &EpisodeTensors) -> Tensor {
    let plane = Tensor::from_slice(&[0i64, 2]);
    let cup = companion.env_state.index_select(1, &plane) - real.env_state.index_select(1, &plane);
    let pusher = (&companion.pusher - &real.pusher).nan_to_num(0.0, None, None);
    Tensor::cat(&[cup, pusher], 1).to_kind(Kind::Float)
}

pub fn load_dataset(dir: &Path, image_size: i64) -> Result<Vec<EpisodeTensors>> {
    let report = dataset::verify(dir);
    if !report.ok() {
        bail!("{}: the dataset fails verification, refusing to use it: {}", dir.display(), report.problems.join("; "));
    }
    read_episodes(dir, image_size)
}

/// Reads episodes whatever their checksums say (for scoring clips a user edited after `gen`);
/// anything unreadable is still an error naming the file.
pub fn read_episodes(dir: &Path, image_size: i64) -> Result<Vec<EpisodeTensors>> {
    let manifest = dataset::Manifest::read(dir)?;
    if manifest.info.width as i64 != image_size || manifest.info.height as i64 != image_size {
        bail!(
            "{}: frames are {}×{}, the world model takes {image_size}×{image_size}",
            dir.display(),
            manifest.info.width,
            manifest.info.height
        );
    }
    let mut out = vec![];
    dataset::for_each_episode(dir, |ep| {
        let rows: Vec<_> = ep
            .rows
            .into_iter()
            .map(|r| {
                TrainingFrame::new(r.rgb, r.transition.action, r.transition.environment_state, &r.transition.state)
            })
            .collect();
        out.push(EpisodeTensors::from_rows(ep.seed, image_size as u32, &rows));
        Ok(())
    })?;
    Ok(out)
}

/// Samples training clips uniformly over every valid (episode, start) pair.
pub struct ClipSampler {
    rng: ChaCha8Rng,
    seed: u64,
}

/// Where the sampler is: enough to continue the exact same stream after a resume.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplerState {
    pub seed: u64,
    /// ChaCha8's position in its stream (a u128, as a decimal string for JSON).
    pub word_pos: String,
}

impl ClipSampler {
    pub fn new(seed: u64) -> ClipSampler {
        ClipSampler { rng: ChaCha8Rng::seed_from_u64(seed), seed }
    }

    pub fn state(&self) -> SamplerState {
        SamplerState { seed: self.seed, word_pos: self.rng.get_word_pos().to_string() }
    }

    /// An index drawn uniformly from `0..n` (whole episodes, for the policy's batches).
    pub fn draw_index(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    pub fn restore(state: &SamplerState) -> Result<ClipSampler> {
        let mut s = ClipSampler::new(state.seed);
        let pos: u128 = state.word_pos.parse().map_err(|_| anyhow::anyhow!("sampler word_pos {:?}", state.word_pos))?;
        s.rng.set_word_pos(pos);
        Ok(s)
    }

    /// `batch` clips of `len` model steps of `skip` frames each (`skip` 1: `len` consecutive
    /// frames): `(frames [b, len, 3, H, W] u8, actions [b, len, skip·2] (each step's `skip`
    /// actions side by side, `world_model::model_steps`), counterfactual frames like `frames` and
    /// shifts [b, len] when every episode has them)`. A clip spans `(len − 1)·skip + 1` frames.
    /// Clips showing a fall are `fall_weight` times as likely as others (rejection sampling).
    /// With `mirror`, each clip is mirrored left–right with probability ½ ([`mirror_clip`]).
    pub fn sample<'a>(
        &mut self,
        episodes: impl Iterator<Item = &'a EpisodeTensors> + Clone,
        batch: i64,
        len: i64,
        skip: i64,
        fall_weight: f64,
        mirror: bool,
    ) -> Result<(Tensor, Tensor, Option<Counterfactual>)> {
        let eps: Vec<&EpisodeTensors> = episodes.collect();
        let draws = self.draw(&eps, ClipSpec { batch, len, skip, fall_weight, mirror })?;
        let span = (len - 1) * skip + 1;
        let paired = eps.iter().all(|e| e.counterfactual.is_some());
        let (mut frames, mut actions, mut cf_frames, mut cf_shifts, mut cf_moves) =
            (vec![], vec![], vec![], vec![], vec![]);
        for &ClipDraw { episode, start, flip } in &draws {
            let (mut f, mut a) = eps[episode].model_step_clip(start, len, skip);
            if flip {
                (f, a) = mirror_clip(&f, &a);
            }
            frames.push(f);
            actions.push(a);
            if let Some(cf) = eps[episode].counterfactual.as_ref().filter(|_| paired) {
                let cf_f = cf.frames.narrow(0, start, span).slice(0, 0, span, skip);
                cf_frames.push(if flip { cf_f.flip([-1]) } else { cf_f });
                cf_shifts.push(cf.shift.narrow(0, start, span).slice(0, 0, span, skip));
                let moves = cf.moves.narrow(0, start, span).slice(0, 0, span, skip);
                // A mirrored clip's moves along x point the other way.
                cf_moves.push(if flip { moves * Tensor::from_slice(&[-1.0f32, 1.0, -1.0, 1.0]) } else { moves });
            }
        }
        let counterfactual = paired.then(|| Counterfactual {
            frames: Tensor::stack(&cf_frames, 0),
            shift: Tensor::stack(&cf_shifts, 0),
            moves: Tensor::stack(&cf_moves, 0),
        });
        Ok((Tensor::stack(&frames, 0), Tensor::stack(&actions, 0).to_kind(Kind::Float), counterfactual))
    }

    /// The clips [`ClipSampler::sample`] draws (the same draws from the same state), as the
    /// frozen encoders' latents from `cache` (built on `episodes`): `(online [b, len, P, D],
    /// target [b, len, P, D], actions [b, len, skip·2])`.
    pub fn sample_latents(
        &mut self,
        episodes: &[EpisodeTensors],
        cache: &LatentCache,
        spec: ClipSpec,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let ClipSpec { len, skip, .. } = spec;
        let eps: Vec<&EpisodeTensors> = episodes.iter().collect();
        if cache.online.len() != eps.len() {
            bail!("the latent cache holds {} episodes, the data {}", cache.online.len(), eps.len());
        }
        let draws = self.draw(&eps, spec)?;
        let span = (len - 1) * skip + 1;
        let (mut online, mut target, mut actions) = (vec![], vec![], vec![]);
        for &ClipDraw { episode, start, flip } in &draws {
            let steps = |z: &Tensor| z.narrow(0, start, span).slice(0, 0, span, skip);
            online.push(steps(&cache.online[episode][usize::from(flip)]));
            target.push(steps(&cache.target[episode][usize::from(flip)]));
            let a = eps[episode].model_step_clip(start, len, skip).1;
            actions.push(if flip { mirror_actions(&a) } else { a });
        }
        Ok((Tensor::stack(&online, 0), Tensor::stack(&target, 0), Tensor::stack(&actions, 0).to_kind(Kind::Float)))
    }

    /// Draws clips as `spec` asks: uniform over every valid (episode, start), falls
    /// `fall_weight` times as likely, each mirrored with probability ½ under `mirror` (the coin
    /// is drawn only then, so runs without it keep their stream).
    fn draw(&mut self, eps: &[&EpisodeTensors], spec: ClipSpec) -> Result<Vec<ClipDraw>> {
        let ClipSpec { batch, len, skip, fall_weight, mirror } = spec;
        let len = (len - 1) * skip + 1;
        let starts: Vec<i64> = eps.iter().map(|e| (e.len() - len + 1).max(0)).collect();
        let total: i64 = starts.iter().sum();
        if total == 0 {
            bail!("no episode has the {len} frames a training clip needs");
        }
        let falls: Vec<Option<i64>> =
            if fall_weight > 1.0 { eps.iter().map(|e| e.fall_start()).collect() } else { vec![] };
        let mut draws = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            let (episode, start) = loop {
                let mut k = self.rng.random_range(0..total);
                let mut i = 0;
                while k >= starts[i] {
                    k -= starts[i];
                    i += 1;
                }
                if fall_weight <= 1.0 {
                    break (i, k);
                }
                let shows_fall = falls[i].is_some_and(|f| k + len > f);
                if shows_fall || self.rng.random::<f64>() < 1.0 / fall_weight {
                    break (i, k);
                }
            };
            let flip = mirror && self.rng.random::<bool>();
            draws.push(ClipDraw { episode, start, flip });
        }
        Ok(draws)
    }
}

/// Which training clips to draw: `batch` clips of `len` model steps of `skip` frames, clips
/// showing a fall `fall_weight` times as likely, each mirrored with probability ½ under `mirror`.
#[derive(Clone, Copy, Debug)]
pub struct ClipSpec {
    pub batch: i64,
    pub len: i64,
    pub skip: i64,
    pub fall_weight: f64,
    pub mirror: bool,
}

/// One drawn training clip: its episode, its first frame, and whether it is seen in a mirror.
#[derive(Clone, Copy, Debug)]
struct ClipDraw {
    episode: usize,
    start: i64,
    flip: bool,
}

/// Every frame of the training episodes as the frozen encoders see it, as drawn and mirrored:
/// `online[e][m]`, `target[e][m]` are `[T, P, D]` for episode `e`, `m` 1 for the mirror. Once the
/// encoder and its target are frozen these never change, and encoding a batch's frames again
/// at every step was a fifth of a predictor step on the CPU (`cupworld bench wm`).
pub struct LatentCache {
    online: Vec<[Tensor; 2]>,
    target: Vec<[Tensor; 2]>,
}

impl LatentCache {
    /// Encodes every frame of `episodes` (and its mirror image) with both of `model`'s encoders,
    /// in batches of `BATCH` frames; the latents stay on the model's device.
    pub fn build(model: &world_model::WorldModel, episodes: &[EpisodeTensors]) -> LatentCache {
        const BATCH: i64 = 256;
        let (mut online, mut target) = (vec![], vec![]);
        tch::no_grad(|| {
            for ep in episodes {
                let pair = |flip: bool| {
                    let frames = if flip { ep.frames.flip([-1]) } else { ep.frames.shallow_clone() };
                    let chunks = frames.split(BATCH, 0);
                    let z: Vec<Tensor> = chunks.iter().map(|f| model.encode(f)).collect();
                    let t: Vec<Tensor> = chunks.iter().map(|f| model.encode_target(f)).collect();
                    (Tensor::cat(&z, 0), Tensor::cat(&t, 0))
                };
                let ((z0, t0), (z1, t1)) = (pair(false), pair(true));
                online.push([z0, z1]);
                target.push([t0, t1]);
            }
        });
        LatentCache { online, target }
    }

    /// Bytes held.
    pub fn bytes(&self) -> i64 {
        let size = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as i64;
        self.online.iter().chain(&self.target).flat_map(|p| p.iter()).map(size).sum()
    }
}

/// The clip `frames [T, 3, H, W]`, `actions [T, 2·n]` seen in a mirror: every frame flipped
/// left–right and every action's x (the pusher's velocity across the table) negated. The camera
/// sits on the plane x = 0 looking along −z, so image columns run along world x and the table is
/// centred on that plane: the mirrored clip is the same physics played on the mirrored scene.
/// (The directional light comes from +x, so the cup's shading is the one thing not mirrored.)
pub fn mirror_clip(frames: &Tensor, actions: &Tensor) -> (Tensor, Tensor) {
    (frames.flip([-1]), mirror_actions(actions))
}

/// Actions `[…, 2·n]` seen in a mirror: every x (even column) negated ([`mirror_clip`]).
fn mirror_actions(actions: &Tensor) -> Tensor {
    let n = actions.size()[actions.dim() - 1];
    let sign: Vec<f32> = (0..n).map(|j| if j % 2 == 0 { -1.0 } else { 1.0 }).collect();
    actions * Tensor::from_slice(&sign).to_device(actions.device()).to_kind(actions.kind())
}

/// A FIFO of the most recent episodes, fed by a live generator.
pub struct ReplayBuffer {
    pub capacity: usize,
    pub episodes: VecDeque<EpisodeTensors>,
    pub received: u64,
}

impl ReplayBuffer {
    pub fn new(capacity: usize) -> ReplayBuffer {
        ReplayBuffer { capacity: capacity.max(1), episodes: VecDeque::new(), received: 0 }
    }

    pub fn push(&mut self, ep: EpisodeTensors) {
        if self.episodes.len() == self.capacity {
            self.episodes.pop_front();
        }
        self.episodes.push_back(ep);
        self.received += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40-frame episode whose frame `t` has every pixel `t`, and whose cup falls from frame 34
    /// on (when `falls`): 6 of its 35 six-frame clips (those starting at 29…34) reach the fall.
    fn episode(falls: bool) -> EpisodeTensors {
        let rows: Vec<TrainingFrame> = (0..40)
            .map(|t| {
                let y = if falls && t >= 34 { 0.5 } else { 0.8 };
                TrainingFrame {
                    rgb: vec![t as u8; 4 * 4 * 3],
                    env_state: vec![0.0, y, 0.0],
                    ..TrainingFrame::default()
                }
            })
            .collect();
        EpisodeTensors::from_rows(0, 4, &rows)
    }

    fn fall_fraction(weight: f64) -> f64 {
        let eps = [episode(true), episode(false)];
        assert_eq!(eps[0].fall_start(), Some(34));
        assert_eq!(eps[1].fall_start(), None);
        let mut sampler = ClipSampler::new(3);
        let (frames, _, cf) = sampler.sample(eps.iter(), 4000, 6, 1, weight, false).unwrap();
        assert!(cf.is_none());
        // A clip from episode 0 reaches the fall when its first frame is 29 or later; clips from
        // the other episode never do. Which episode a clip came from does not matter for the
        // count of "late" starts, so compare against the uniform expectation instead.
        let first: Vec<u8> = Vec::try_from(frames.select(1, 0).flatten(1, -1).select(1, 0)).unwrap();
        first.iter().filter(|&&t| t >= 29).count() as f64 / first.len() as f64
    }

    /// The graded term's shift: the cup's table-plane move plus the pusher's (a companion whose
    /// pusher found no free spot kept it in place: the cup's move alone).
    #[test]
    fn a_companion_shift_adds_the_cup_and_the_pusher_moves() {
        let row = |cup: [f32; 3], pusher: [f32; 2]| TrainingFrame {
            rgb: vec![0; 4 * 4 * 3],
            env_state: cup.to_vec(),
            pusher,
            ..TrainingFrame::default()
        };
        let real = EpisodeTensors::from_rows(0, 4, &vec![row([0.0, 0.8, 0.0], [0.1, 0.1]); 2]);
        let both =
            EpisodeTensors::from_rows(0, 4, &[row([0.3, 0.8, 0.4], [0.1, 0.1]), row([0.0, 0.5, 0.0], [0.1, -0.1])]);
        let shift: Vec<f32> = Vec::try_from(companion_shift(&real, &both)).unwrap();
        // Frame 0: the cup 0.5 m in the plane; frame 1: its height alone changed, the pusher 0.2 m.
        assert!((shift[0] - 0.5).abs() < 1e-6 && (shift[1] - 0.2).abs() < 1e-6, "{shift:?}");
        // The same moves as vectors: cup (Δx, Δz), pusher (Δx, Δz).
        let moves: Vec<f32> = Vec::try_from(companion_moves(&real, &both).flatten(0, 1)).unwrap();
        let want = [0.3, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2];
        assert!(moves.iter().zip(want).all(|(m, w)| (m - w).abs() < 1e-6), "{moves:?}");
    }

    /// The cached path draws the clips the frame path draws (same sampler state, mirrors
    /// included), as the encoders' latents of those frames, with the same actions.
    #[test]
    fn cached_latent_clips_are_the_sampled_frames_encoded() {
        tch::manual_seed(4);
        let eps: Vec<EpisodeTensors> = (0..3)
            .map(|e| {
                let frames = Tensor::randint(256, [30, 64, 64, 3], (Kind::Uint8, tch::Device::Cpu));
                let rows: Vec<TrainingFrame> = (0..30)
                    .map(|t| TrainingFrame {
                        rgb: Vec::try_from(frames.get(t).flatten(0, -1)).unwrap(),
                        action: [t as f32 * 0.1, e as f32 - 1.0],
                        env_state: vec![0.0, 0.8 - 0.01 * t as f32, 0.0],
                        ..TrainingFrame::default()
                    })
                    .collect();
                EpisodeTensors::from_rows(e, 64, &rows)
            })
            .collect();
        let cfg = world_model::WmConfig::preset("tiny").unwrap();
        let model = world_model::WorldModel::new(&cfg, tch::Device::Cpu).unwrap();
        let cache = LatentCache::build(&model, &eps);
        let (mut a, mut b) = (ClipSampler::new(5), ClipSampler::new(5));
        let (frames, actions, _) = a.sample(eps.iter(), 16, 4, 3, 2.0, true).unwrap();
        let spec = ClipSpec { batch: 16, len: 4, skip: 3, fall_weight: 2.0, mirror: true };
        let (online, target, cached_actions) = b.sample_latents(&eps, &cache, spec).unwrap();
        assert_eq!(a.state(), b.state(), "the two paths drew differently");
        assert!(actions.equal(&cached_actions));
        let mirrored = actions.select(2, 0).lt(0.0).any().int64_value(&[]) == 1;
        assert!(mirrored, "no clip mirrored: the check would not cover the mirror images");
        let (z, t) = model.encode_clips(&frames);
        for (got, want, what) in [(&online, &z, "online"), (&target, &t, "target")] {
            let diff = (got - want).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{what} latents differ from the frames' by {diff}");
        }
        assert_eq!(cache.bytes(), 2 * 2 * 90 * cfg.tokens_per_frame() * cfg.encoder.latent_dim * 4);
    }

    #[test]
    fn model_step_clips_stride_through_the_episode_with_their_action_blocks() {
        let rows: Vec<TrainingFrame> = (0..20)
            .map(|t| TrainingFrame {
                rgb: vec![t as u8; 4 * 4 * 3],
                action: [t as f32, -(t as f32)],
                env_state: vec![0.0, 0.8, 0.0],
                ..TrainingFrame::default()
            })
            .collect();
        let eps = [EpisodeTensors::from_rows(0, 4, &rows)];
        let mut sampler = ClipSampler::new(1);
        // 4 model steps of 3 frames span 10 frames: starts 0..=10.
        let (frames, actions, _) = sampler.sample(eps.iter(), 64, 4, 3, 1.0, false).unwrap();
        assert_eq!(frames.size(), [64, 4, 3, 4, 4]);
        assert_eq!(actions.size(), [64, 4, 6]);
        let mut starts = std::collections::BTreeSet::new();
        for b in 0..64 {
            let f: Vec<u8> = Vec::try_from(frames.get(b).flatten(1, -1).select(1, 0)).unwrap();
            let k = f[0];
            starts.insert(k);
            assert_eq!(f, vec![k, k + 3, k + 6, k + 9], "frames step by 3");
            // Step i's block: the actions of frames k + 3i, k + 3i + 1, k + 3i + 2 (zeros past
            // the episode's 20 frames).
            let a: Vec<f32> = Vec::try_from(actions.get(b).flatten(0, -1)).unwrap();
            let want: Vec<f32> = (k as usize..k as usize + 12)
                .flat_map(|t| if t < 20 { [t as f32, -(t as f32)] } else { [0.0, 0.0] })
                .collect();
            assert_eq!(a, want, "clip starting at {k}");
        }
        assert!(starts.iter().all(|&k| k <= 10) && starts.len() > 8, "starts {starts:?}");
    }

    #[test]
    fn a_mirrored_clip_is_flipped_left_right_with_the_x_velocities_negated() {
        // Frame t's pixel (row, column) holds 10·t + column, so a flip is visible per column.
        let (t, s) = (3i64, 4i64);
        let frames = (Tensor::arange(s, (Kind::Uint8, tch::Device::Cpu)).view([1, 1, 1, s])
            + Tensor::arange(t, (Kind::Uint8, tch::Device::Cpu)).view([t, 1, 1, 1]) * 10)
            .expand([t, 3, s, s], false)
            .contiguous();
        let actions =
            Tensor::from_slice(&[0.5f32, 0.25, -1.0, 0.75, 0.0, -0.5, 1.0, 1.0, 0.2, 0.1, 0.3, 0.4]).view([t, 4]);
        let (f, a) = mirror_clip(&frames, &actions);
        let row: Vec<u8> = Vec::try_from(f.get(2).get(1).get(3)).unwrap();
        assert_eq!(row, vec![23, 22, 21, 20], "columns reversed, nothing else moved");
        let flat: Vec<f32> = Vec::try_from(a.flatten(0, -1)).unwrap();
        assert_eq!(flat, vec![-0.5, 0.25, 1.0, 0.75, 0.0, -0.5, -1.0, 1.0, -0.2, 0.1, -0.3, 0.4]);
        // Mirroring twice gives the clip back.
        let (f2, a2) = mirror_clip(&f, &a);
        assert!(f2.equal(&frames) && a2.equal(&actions));
    }

    #[test]
    fn mirror_flips_about_half_the_clips_with_their_actions() {
        // Column c of every frame holds c; action x is +1 everywhere.
        let rows: Vec<TrainingFrame> = (0..12)
            .map(|_| TrainingFrame {
                rgb: (0..4 * 4).flat_map(|i| [(i % 4) as u8; 3]).collect(),
                action: [1.0, 0.5],
                env_state: vec![0.0, 0.8, 0.0],
                ..TrainingFrame::default()
            })
            .collect();
        let eps = [EpisodeTensors::from_rows(0, 4, &rows)];
        let (frames, actions, _) = ClipSampler::new(5).sample(eps.iter(), 400, 3, 2, 1.0, true).unwrap();
        let mut flipped = 0;
        for b in 0..400 {
            let first: Vec<u8> = Vec::try_from(frames.get(b).get(0).get(0).get(0)).unwrap();
            let a: Vec<f32> = Vec::try_from(actions.get(b).flatten(0, -1)).unwrap();
            let mirrored = first == [3, 2, 1, 0];
            assert!(mirrored || first == [0, 1, 2, 3], "clip {b}: row {first:?}");
            // Frames and actions of a clip are mirrored together (z is never touched; zeros pad
            // the actions past the episode's end).
            let want_x = if mirrored { -1.0 } else { 1.0 };
            assert!(a.chunks(2).all(|p| p == [want_x, 0.5] || p == [0.0, 0.0]), "clip {b}: actions {a:?}");
            assert_eq!(a[..2], [want_x, 0.5], "clip {b}");
            flipped += usize::from(mirrored);
        }
        assert!((160..=240).contains(&flipped), "{flipped} of 400 clips mirrored");
        // Off, no clip is mirrored.
        let (off, _, _) = ClipSampler::new(5).sample(eps.iter(), 400, 3, 2, 1.0, false).unwrap();
        let first_rows = off.select(1, 0).select(1, 0).select(1, 0);
        assert!(first_rows.equal(&Tensor::from_slice(&[0u8, 1, 2, 3]).expand([400, 4], false)));
    }

    #[test]
    fn fall_weight_draws_falling_clips_more_often() {
        // Uniform: 12 of 70 clips start at 29 or later (6 fall clips + the other episode's 6).
        let uniform = fall_fraction(1.0);
        assert!((uniform - 12.0 / 70.0).abs() < 0.02, "uniform {uniform}");
        // Weight 8: the 6 fall clips count 8× against 64 others: (6·8 + 6) / (6·8 + 64).
        let weighted = fall_fraction(8.0);
        let expected = (6.0 * 8.0 + 6.0) / (6.0 * 8.0 + 64.0);
        assert!((weighted - expected).abs() < 0.03, "weighted {weighted}, expected {expected}");
    }
}
