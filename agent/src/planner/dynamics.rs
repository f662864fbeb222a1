//! What the planner imagines with: the world model's predictor, or a control without dynamics.

use tch::Tensor;
use world_model::{PlanningContext, WorldModel};

/// Predicts the latents that candidate action sequences lead to.
pub trait LatentDynamics {
    /// Width of one model step's action block (`frameskip × action_dim`).
    fn action_width(&self) -> i64;

    /// Width of one control action (the simulator's: 2).
    fn action_dim(&self) -> i64 {
        2
    }

    /// From `context`, the latents after each model step of every candidate:
    /// `plans [N, H, action_width]` → `[N, H, P, D]`. Differentiable in `plans` unless the caller
    /// is in `no_grad`.
    fn imagine(&self, context: &PlanningContext, plans: &Tensor) -> Tensor;
}

/// The trained (or random-init) world model: an autoregressive rollout of its predictor from the
/// real context, all candidates as one batch.
pub struct WorldModelDynamics<'a>(pub &'a WorldModel);

impl LatentDynamics for WorldModelDynamics<'_> {
    fn action_width(&self) -> i64 {
        self.0.cfg.step_action_dim()
    }

    fn action_dim(&self) -> i64 {
        self.0.cfg.action_dim
    }

    fn imagine(&self, context: &PlanningContext, plans: &Tensor) -> Tensor {
        let n = plans.size()[0];
        let h = plans.size()[1];
        let expand = |t: &Tensor| t.unsqueeze(0).expand([n, -1, -1, -1], false);
        let past = context.actions.to_kind(plans.kind()).unsqueeze(0).expand([n, -1, -1], false);
        let actions = Tensor::cat(&[past, plans.shallow_clone()], 1);
        self.0.rollout(&expand(&context.latents), &expand(&context.targets), &actions, h)
    }
}

/// A control with no dynamics: every step imagined as the last real frame (copy-last), so every
/// plan has the same energy and the planner's choice carries no information.
pub struct CopyLast {
    pub action_width: i64,
}

impl LatentDynamics for CopyLast {
    fn action_width(&self) -> i64 {
        self.action_width
    }

    fn imagine(&self, context: &PlanningContext, plans: &Tensor) -> Tensor {
        let (n, h) = (plans.size()[0], plans.size()[1]);
        let c = context.targets.size()[0];
        // `plans * 0` keeps the graph connected so gradient descent sees a zero gradient, not none.
        let zero = plans.sum(tch::Kind::Float) * 0.0;
        context.targets.select(0, c - 1).unsqueeze(0).unsqueeze(0).expand([n, h, -1, -1], false) + zero
    }
}
