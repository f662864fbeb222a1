//! Model-predictive control in a latent space: imagine candidate action sequences with a
//! [`LatentDynamics`], score where they end against a goal's latents ([`Energy`]), act on the
//! best, replan after a few actions from the shifted previous plan.
//!
//! Three solvers behind one [`Planner::plan`]: the cross-entropy method (V-JEPA 2-AC, DINO-WM),
//! MPPI (TD-MPC2) and gradient descent on the actions through the dynamics (tch autograd). All
//! candidates of one iteration go through the dynamics as one batch. Randomness comes from the
//! planner's own seeded generator, so a plan depends only on the seed, the calls before it and
//! its inputs.

mod dynamics;
mod energy;
mod receding;
mod solvers;

pub use dynamics::{CopyLast, LatentDynamics, WorldModelDynamics};
pub use energy::{Cost, Energy, EnergyDistance};
pub use receding::{RecedingHorizon, Replan};
pub use solvers::{CemConfig, GdConfig, MppiConfig, mppi_weights};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::{AgentError, Result};

/// Which solver plans, with its budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "solver", rename_all = "lowercase")]
pub enum Solver {
    Cem(CemConfig),
    Mppi(MppiConfig),
    Gd(GdConfig),
}

impl Solver {
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Cem(_) => "cem",
            Solver::Mppi(_) => "mppi",
            Solver::Gd(_) => "gd",
        }
    }

    /// Each solver at its default budget.
    pub fn by_name(name: &str) -> Result<Solver> {
        match name {
            "cem" => Ok(Solver::Cem(CemConfig::default())),
            "mppi" => Ok(Solver::Mppi(MppiConfig::default())),
            "gd" => Ok(Solver::Gd(GdConfig::default())),
            other => Err(AgentError::Config(format!("planner {other:?}: expected cem, mppi or gd"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    /// Model steps imagined ahead (each is `frameskip` control actions).
    pub horizon: i64,
    pub solver: Solver,
    pub energy: Energy,
    /// Every action component is kept within `[−bound, bound]` (the simulator's range is 1).
    pub action_bound: f64,
    /// Search one action per model step, held for all its `frameskip` frames, instead of each
    /// frame's: a `frameskip`-times smaller search space for the same budget.
    #[serde(default)]
    pub hold: bool,
    pub seed: u64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            horizon: 5,
            solver: Solver::Cem(CemConfig::default()),
            energy: Energy::default(),
            action_bound: 1.0,
            hold: false,
            seed: 0,
        }
    }
}

impl PlannerConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(AgentError::Config(format!("planner {key}: {why}")));
        if !(1..=64).contains(&self.horizon) {
            return bad("horizon", format!("{} must be within 1..=64 model steps", self.horizon));
        }
        if !(self.action_bound.is_finite() && self.action_bound > 0.0 && self.action_bound <= 1.0) {
            return bad("action_bound", format!("{} must be within (0, 1]", self.action_bound));
        }
        match &self.solver {
            Solver::Cem(c) => c.validate(),
            Solver::Mppi(c) => c.validate(),
            Solver::Gd(c) => c.validate(),
        }
    }
}

/// A plan: the action blocks of `horizon` model steps and what the planner paid for it.
#[derive(Debug)]
pub struct Plan {
    /// `[horizon, action width]`, within the action bound.
    pub actions: Tensor,
    /// The energy of `actions` as the dynamics imagine it.
    pub energy: f64,
    /// Action sequences the dynamics imagined to find it.
    pub evaluations: usize,
    /// The imagined latents of `actions`, `[horizon, P, D]`.
    pub imagined: Tensor,
}

/// A receding-horizon planner: [`Planner::plan`] at each replan, [`Planner::shift`] after
/// executing the first model steps of a plan, [`Planner::reset`] between episodes.
pub struct Planner {
    pub cfg: PlannerConfig,
    rng: ChaCha8Rng,
    /// The previous plan, shifted by what was executed: the next plan starts from it.
    warm: Option<Tensor>,
    /// The cup probe, for the probe cost.
    probe: Option<world_model::CupProbe>,
}

impl Planner {
    pub fn new(cfg: PlannerConfig) -> Result<Planner> {
        cfg.validate()?;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Ok(Planner { cfg, rng, warm: None, probe: None })
    }

    /// The cup probe the probe cost reads (`energy.cost = probe`).
    pub fn with_probe(mut self, probe: world_model::CupProbe) -> Planner {
        self.probe = Some(probe);
        self
    }

    /// Forgets the previous plan and reseeds from `seed` (the planner's seed mixed with it), so an
    /// episode's plans do not depend on the episodes before it.
    pub fn reset(&mut self, seed: u64) {
        self.warm = None;
        self.rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    /// The plan from `context` (what the agent has seen) towards `goal [P, D]` (the goal image's
    /// target latents). Refuses a goal of another shape than the dynamics' latents and a plan
    /// whose energy is not finite (the action never reaches the environment then).
    pub fn plan(
        &mut self,
        dynamics: &dyn LatentDynamics,
        context: &world_model::PlanningContext,
        goal: &Tensor,
    ) -> Result<Plan> {
        let latent = context.latents.size();
        if goal.size() != latent[1..] {
            return Err(AgentError::Config(format!(
                "goal latents {:?} do not match the world model's {:?} (another image size or encoder?)",
                goal.size(),
                &latent[1..]
            )));
        }
        if self.cfg.energy.cost == Cost::Probe && self.probe.is_none() {
            return Err(AgentError::Config(
                "the probe cost needs a cup probe (eval-wm writes probe.safetensors; give --probe)".into(),
            ));
        }
        let full = dynamics.action_width();
        let width = if self.cfg.hold { dynamics.action_dim() } else { full };
        // Held actions repeat across the block: [a_x, a_z] × frameskip, the block's layout.
        let reps = full / width;
        let expand = |p: &Tensor| if reps == 1 { p.shallow_clone() } else { p.repeat([1, 1, reps]) };
        let h = self.cfg.horizon;
        let start = match self.warm.take() {
            Some(w) if w.size() == [h, width] => w,
            _ => Tensor::zeros([h, width], (Kind::Float, goal.device())),
        };
        let score = |plans: &Tensor| -> (Tensor, Tensor) {
            let imagined = dynamics.imagine(context, &expand(plans));
            (self.cfg.energy.of(&imagined, goal, self.probe.as_ref()), imagined)
        };
        let bound = self.cfg.action_bound;
        let (actions, evaluations) = match &self.cfg.solver {
            Solver::Cem(c) => solvers::cem(c, &start, bound, &mut self.rng, &|p| score(p).0),
            Solver::Mppi(c) => solvers::mppi(c, &start, bound, &mut self.rng, &|p| score(p).0),
            Solver::Gd(c) => solvers::gd(c, &start, bound, &mut self.rng, &|p| score(p).0),
        };
        let actions = actions.clamp(-bound, bound).detach();
        let (energy, imagined) = tch::no_grad(|| score(&actions.unsqueeze(0)));
        let energy = energy.double_value(&[0]);
        if !energy.is_finite() || actions.isfinite().logical_not().any().int64_value(&[]) != 0 {
            return Err(AgentError::NonFinite(format!("the plan's energy is {energy}")));
        }
        self.warm = Some(actions.shallow_clone());
        let actions = expand(&actions.unsqueeze(0)).squeeze_dim(0);
        Ok(Plan { actions, energy, evaluations: evaluations + 1, imagined: imagined.squeeze_dim(0) })
    }

    /// After executing the first `executed` model steps of the last plan: the next plan starts
    /// from the rest, the new tail at zero.
    pub fn shift(&mut self, executed: i64) {
        if let Some(w) = self.warm.take() {
            let (h, width) = (w.size()[0], w.size()[1]);
            let k = executed.clamp(0, h);
            let tail = Tensor::zeros([k, width], (Kind::Float, w.device()));
            self.warm = Some(Tensor::cat(&[w.narrow(0, k, h - k), tail], 0));
        }
    }

    /// The energies of given plans `[N, horizon, width]` as the planner scores its own (to ask
    /// whether a known-good plan, such as an expert's, would have scored better than its choice).
    pub fn score(
        &self,
        dynamics: &dyn LatentDynamics,
        context: &world_model::PlanningContext,
        goal: &Tensor,
        plans: &Tensor,
    ) -> Vec<f64> {
        let imagined = tch::no_grad(|| dynamics.imagine(context, plans));
        let e = self.cfg.energy.of(&imagined, goal, self.probe.as_ref());
        Vec::<f64>::try_from(e.to_kind(Kind::Double)).unwrap_or_default()
    }

    /// The plan the next call starts from, if any (for tests and the viewer).
    pub fn warm_start(&self) -> Option<&Tensor> {
        self.warm.as_ref()
    }
}
