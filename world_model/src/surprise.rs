//! Surprise: how far observed latents fall from predicted ones, per frame and per patch, over
//! whole episodes (batched) or one frame at a time with constant memory (`WorldModel::step`).

use std::collections::VecDeque;

use tch::{Device, Kind, Tensor};

use crate::model::model_steps;
use crate::{WmConfig, WorldModel};

/// A surprise curve from a per-patch map `[T, P]`: the mean over patches per frame, NaN at frame 0
/// (nothing predicts it).
pub fn frame_curve(map: &Tensor) -> Vec<f64> {
    per_frame(&map.mean_dim(-1, false, Kind::Float))
}

/// One value per frame `[T]` as a curve, NaN at frame 0 (nothing predicts it).
pub fn per_frame(values: &Tensor) -> Vec<f64> {
    let mut curve: Vec<f64> =
        Vec::<f32>::try_from(values.to_device(Device::Cpu)).expect("float curve").into_iter().map(f64::from).collect();
    curve[0] = f64::NAN;
    curve
}

impl WorldModel {
    /// Per-frame surprise of one episode: L1 between the predicted and the target latents of every
    /// frame t ≥ 1, the prediction made from the last `clip_len − 1` real frames (Garrido et al.).
    /// `frames [T, 3, H, W]`, `actions [T, A]`; entry 0 is NaN (nothing predicts the first frame).
    /// Also returns the per-patch surprise map `[T, P]` (entry 0 zero). With `frameskip` s > 1,
    /// frame t is predicted from frames t − s, t − 2s, … (each of the s phases of the episode is
    /// scored at the model's step), and frames 1..s, which nothing predicts, are NaN.
    pub fn surprise(&self, frames: &Tensor, actions: &Tensor) -> (Vec<f64>, Tensor) {
        let map = self
            .by_phase(&frames.unsqueeze(0), &actions.unsqueeze(0), &|f, a| {
                self.surprise_steps(&f.squeeze_dim(0), &a.squeeze_dim(0)).unsqueeze(0)
            })
            .squeeze_dim(0);
        (frame_curve(&map), map)
    }

    /// Runs `maps(frames, actions) → [B, n, P]` (row 0 of each zero: nothing predicts it) at the
    /// model's time step on each of the `frameskip` phases of `frames [B, T, 3, H, W]` and
    /// `actions [B, T, A]`, and lays the rows back on the frames they score: `[B, T, P]`, row 0
    /// zero, rows 1..frameskip NaN.
    fn by_phase(&self, frames: &Tensor, actions: &Tensor, maps: &dyn Fn(&Tensor, &Tensor) -> Tensor) -> Tensor {
        let s = self.cfg.frameskip;
        if s == 1 {
            return maps(frames, actions);
        }
        let (b, t) = (frames.size()[0], frames.size()[1]);
        let mut out = Tensor::full([b, t, self.cfg.tokens_per_frame()], f64::NAN, (Kind::Float, self.device()));
        let _ = out.select(1, 0).fill_(0.0);
        for offset in 0..s.min(t) {
            if t - offset <= s {
                continue; // one frame in this phase: nothing to predict
            }
            let (f, a) = model_steps(frames, actions, s, offset);
            let m = maps(&f, &a);
            let n = m.size()[1];
            let rows = Tensor::arange_start(1, n, (Kind::Int64, self.device())) * s + offset;
            let _ = out.index_copy_(1, &rows, &m.narrow(1, 1, n - 1));
        }
        out
    }

    /// [`WorldModel::surprise`]'s map at the model's time step: `frames [n, 3, H, W]`, actions
    /// `[n, frameskip·A]` → `[n, P]`, row 0 zero.
    fn surprise_steps(&self, frames: &Tensor, actions: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let t = frames.size()[0];
            let z = self.encode(frames);
            let target = self.encode_target(frames);
            let a = actions.to_device(self.device()).to_kind(Kind::Float);
            let w = (self.cfg.clip_len - 1).min(t - 1).max(1);
            let mut maps = vec![Tensor::zeros([1, z.size()[1]], (Kind::Float, self.device()))];
            // Frames 1..w: one growing prefix run gives all their predictions.
            if t > 1 {
                let pre = self
                    .predict(
                        &z.narrow(0, 0, w).unsqueeze(0),
                        &target.narrow(0, 0, w).unsqueeze(0),
                        &a.narrow(0, 0, w).unsqueeze(0),
                    )
                    .squeeze_dim(0);
                maps.push((&pre - target.narrow(0, 1, w)).abs().mean_dim(-1, false, Kind::Float));
            }
            // Frames w+1..T-1: full windows, batched.
            let rest = t - 1 - w;
            if rest > 0 {
                let idx = Tensor::arange(rest, (Kind::Int64, self.device())).unsqueeze(1)
                    + Tensor::arange(w, (Kind::Int64, self.device())).unsqueeze(0)
                    + 1; // windows start at 1..=rest
                let idx = idx.flatten(0, 1);
                let zw = z.index_select(0, &idx).reshape([rest, w, z.size()[1], z.size()[2]]);
                let bw = target.index_select(0, &idx).reshape([rest, w, z.size()[1], z.size()[2]]);
                let aw = a.index_select(0, &idx).reshape([rest, w, -1]);
                let pred = self.predict(&zw, &bw, &aw).select(1, w - 1);
                maps.push((&pred - target.narrow(0, w + 1, rest)).abs().mean_dim(-1, false, Kind::Float));
            }
            Tensor::cat(&maps, 0)
        })
    }

    /// Per-frame surprise with the prediction of frame t made `horizon` frames ahead: from the real
    /// frames up to t − horizon (at most `clip_len − 1` of them), rolled forward with the actions
    /// taken since (frames before `horizon` are predicted from frame 0, nearer). Garrido et al.
    /// score the predicted latents of the next frames given context frames; at horizon 1 this is
    /// [`WorldModel::surprise`]. A model that knows what a push or an unsupported cup does is
    /// surprised a few frames later when it does not happen, where a one-step prediction can only
    /// say "much as before". Returns the curve (entry 0 NaN) and the per-patch map `[T, P]`.
    pub fn surprise_ahead(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> (Vec<f64>, Tensor) {
        let map = self.surprise_ahead_maps(&frames.unsqueeze(0), &actions.unsqueeze(0), horizon).squeeze_dim(0);
        (frame_curve(&map), map)
    }

    /// [`WorldModel::surprise_ahead`]'s per-patch maps `[B, T, P]` for `B` episodes of the same
    /// length at once (`frames [B, T, 3, H, W]`, `actions [B, T, A]`; entry 0 of each is zero).
    /// `horizon` counts model steps (`frameskip` frames each); see [`WorldModel::surprise`] for
    /// how the phases are scored.
    pub fn surprise_ahead_maps(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> Tensor {
        self.by_phase(frames, actions, &|f, a| self.surprise_ahead_steps(f, a, horizon))
    }

    /// [`WorldModel::surprise_ahead_maps`] at the model's time step.
    fn surprise_ahead_steps(&self, frames: &Tensor, actions: &Tensor, horizon: i64) -> Tensor {
        let horizon = horizon.max(1);
        tch::no_grad(|| {
            let (z, target) = self.encode_clips(frames);
            let (b, t, p, d) = z.size4().expect("[b, T, P, D]");
            let a = actions.to_device(self.device()).to_kind(Kind::Float);
            let w = self.cfg.clip_len - 1;
            let map = Tensor::zeros([b, t, p], (Kind::Float, self.device()));
            let err = |pred: &Tensor, target: &Tensor| (pred - target).abs().mean_dim(-1, false, Kind::Float);
            // Targets whose context is a full window `horizon` frames back: one batched rollout.
            let first_full = w - 1 + horizon;
            if t > first_full {
                let n = t - first_full;
                let dev = (Kind::Int64, self.device());
                let windows = |len: i64| {
                    (Tensor::arange(n, dev).unsqueeze(1) + Tensor::arange(len, dev).unsqueeze(0)).flatten(0, 1)
                };
                let (idx, aidx) = (windows(w), windows(w + horizon - 1)); // window i starts at frame i
                let zw = z.index_select(1, &idx).reshape([b * n, w, p, d]);
                let bw = target.index_select(1, &idx).reshape([b * n, w, p, d]);
                let aw = a.index_select(1, &aidx).reshape([b * n, w + horizon - 1, -1]);
                let pred = self.rollout(&zw, &bw, &aw, horizon).select(1, horizon - 1).reshape([b, n, p, d]);
                map.narrow(1, first_full, n).copy_(&err(&pred, &target.narrow(1, first_full, n)));
            }
            // Frames 1..=horizon: one rollout from frame 0 predicts them all.
            let k = horizon.min(t - 1).min(first_full - 1);
            if k > 0 {
                let pred = self.rollout(&z.narrow(1, 0, 1), &target.narrow(1, 0, 1), &a.narrow(1, 0, k), k);
                map.narrow(1, 1, k).copy_(&err(&pred, &target.narrow(1, 1, k)));
            }
            // The rest before the first full window: contexts of 2..w − 1 frames.
            for i in horizon + 1..t.min(first_full) {
                let end = i - horizon; // last real frame
                let from = (end + 1 - w).max(0);
                let c = end + 1 - from;
                let pred = self
                    .rollout(
                        &z.narrow(1, from, c),
                        &target.narrow(1, from, c),
                        &a.narrow(1, from, c + horizon - 1),
                        horizon,
                    )
                    .select(1, horizon - 1);
                map.select(1, i).copy_(&err(&pred, &target.select(1, i)));
            }
            map
        })
    }

    /// One frame for acting and the viewer: encodes `frame [3, H, W]`, scores it against the
    /// prediction made for it (its surprise), then records `action` (the action now taken) and
    /// predicts the latents of the next model step. With `frameskip` s > 1 only every s-th frame
    /// is a model step: the frames between are not encoded (their surprise is `None`), their
    /// actions join the step's action block, and the prediction is made once the block is full.
    pub fn step(&self, history: &mut LatentHistory, frame: &Tensor, action: [f32; 2]) -> Option<f64> {
        let surprise = self.observe(history, frame);
        self.record_action(history, action);
        surprise
    }

    /// The first half of [`WorldModel::step`], for an agent that chooses its action from what it
    /// sees: encodes `frame` if it is a model step's and returns its surprise. Call
    /// [`WorldModel::record_action`] with the action taken before the next frame.
    pub fn observe(&self, history: &mut LatentHistory, frame: &Tensor) -> Option<f64> {
        tch::no_grad(|| {
            if !history.frames_seen.is_multiple_of(self.cfg.frameskip as u64) {
                return None;
            }
            let f = frame.unsqueeze(0);
            let z = self.encode(&f).squeeze_dim(0);
            let target = self.encode_target(&f).squeeze_dim(0);
            let surprise =
                history.pending.take().map(|pred| (pred - &target).abs().mean(Kind::Float).double_value(&[]));
            history.current = Some((z, target));
            history.block.clear();
            surprise
        })
    }

    /// The second half of [`WorldModel::step`]: the action taken after the last observed frame.
    pub fn record_action(&self, history: &mut LatentHistory, action: [f32; 2]) {
        tch::no_grad(|| {
            history.frames_seen += 1;
            history.block.extend_from_slice(&action[..self.cfg.action_dim as usize]);
            if history.block.len() as i64 == self.cfg.step_action_dim() {
                let (z, target) = history.current.take().expect("a model step's frame comes first");
                let a = Tensor::from_slice(&history.block).to_device(self.device());
                history.push(z, target, a);
                let stack = |v: &VecDeque<Tensor>| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0).unsqueeze(0);
                let (zs, bs, acts) = (stack(&history.latents), stack(&history.targets), stack(&history.actions));
                let n = zs.size()[1];
                history.pending = Some(self.predict(&zs, &bs, &acts).select(1, n - 1).squeeze_dim(0));
            }
        })
    }
}

/// What a planner imagines from: the last real model steps' latents, the current one's last,
/// and the action blocks taken between them.
pub struct PlanningContext {
    /// Online latents `[c, P, D]`.
    pub latents: Tensor,
    /// Target latents `[c, P, D]`.
    pub targets: Tensor,
    /// The `c − 1` action blocks taken after each but the last, `[c − 1, frameskip · A]`.
    pub actions: Tensor,
}

/// The cached history of `step`: latents and actions of the last frames, and the pending
/// prediction of the next frame. Memory is bounded by the predictor's window.
pub struct LatentHistory {
    capacity: usize,
    latents: VecDeque<Tensor>,
    targets: VecDeque<Tensor>,
    actions: VecDeque<Tensor>,
    pending: Option<Tensor>,
    /// Frames given to `step` so far (every `frameskip`-th is a model step).
    frames_seen: u64,
    /// The current model step's latents, waiting for its action block to fill.
    current: Option<(Tensor, Tensor)>,
    /// The actions taken since the current model step's frame.
    block: Vec<f32>,
    /// Width of a model step's action block.
    action_width: i64,
}

impl LatentHistory {
    pub fn new(cfg: &WmConfig) -> LatentHistory {
        LatentHistory {
            capacity: (cfg.clip_len - 1).max(1) as usize,
            latents: VecDeque::new(),
            targets: VecDeque::new(),
            actions: VecDeque::new(),
            pending: None,
            frames_seen: 0,
            current: None,
            block: vec![],
            action_width: cfg.step_action_dim(),
        }
    }

    pub(crate) fn push(&mut self, z: Tensor, target: Tensor, a: Tensor) {
        if self.latents.len() == self.capacity {
            self.latents.pop_front();
            self.targets.pop_front();
            self.actions.pop_front();
        }
        self.latents.push_back(z);
        self.targets.push_back(target);
        self.actions.push_back(a);
    }

    /// The predicted latents of the next model step's frame `[P, D]`, once a step's actions are in.
    pub fn prediction(&self) -> Option<&Tensor> {
        self.pending.as_ref()
    }

    /// True when the last `step` completed a model step (encoded its frame, had its action block
    /// and predicted the next); between model steps the frames only add actions.
    pub fn completed_model_step(&self) -> bool {
        self.frames_seen > 0 && self.current.is_none()
    }

    pub fn len(&self) -> usize {
        self.latents.len()
    }

    /// True on a model step's frame once it is observed and before its action block is recorded:
    /// when a planner chooses the next block.
    pub fn at_model_step(&self) -> bool {
        self.current.is_some() && self.block.is_empty()
    }

    /// The context of the current model step (see [`PlanningContext`]): at most the predictor's
    /// window (`clip_len − 1` steps), the current one included. `None` between model steps.
    pub fn planning_context(&self) -> Option<PlanningContext> {
        let (z, target) = self.current.as_ref().filter(|_| self.block.is_empty())?;
        let past = self.latents.len().min(self.capacity - 1);
        let from = self.latents.len() - past;
        let pick = |v: &VecDeque<Tensor>, now: &Tensor| {
            let mut frames: Vec<&Tensor> = v.iter().skip(from).collect();
            frames.push(now);
            Tensor::stack(&frames, 0)
        };
        let actions = match past {
            0 => Tensor::zeros([0, self.action_width], (Kind::Float, z.device())),
            _ => Tensor::stack(&self.actions.iter().skip(from).collect::<Vec<_>>(), 0),
        };
        Some(PlanningContext { latents: pick(&self.latents, z), targets: pick(&self.targets, target), actions })
    }

    pub fn is_empty(&self) -> bool {
        self.latents.is_empty()
    }
}
