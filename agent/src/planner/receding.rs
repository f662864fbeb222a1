//! Receding-horizon control: the world model observes every real frame (encoder once per frame,
//! history from `WorldModel::observe`); at a model step with nothing queued the planner replans,
//! warm-started from its shifted previous plan, and the plan's first model step of actions is
//! executed before the next replan. `eval-agent` and the viewer act through this one loop.

use std::collections::VecDeque;
use std::time::Instant;

use tch::{Kind, Tensor};
use world_model::{LatentHistory, PlanningContext, WorldModel};

use super::{LatentDynamics, Plan, Planner};
use crate::Result;

/// One replan: the plan, the context it was made from and how long it took.
pub struct Replan {
    pub plan: Plan,
    pub context: PlanningContext,
    pub ms: f64,
}

/// The planner's state within one episode.
pub struct RecedingHorizon {
    history: LatentHistory,
    queue: VecDeque<[f32; 2]>,
}

impl RecedingHorizon {
    pub fn new(model: &WorldModel) -> RecedingHorizon {
        RecedingHorizon { history: LatentHistory::new(&model.cfg), queue: VecDeque::new() }
    }

    /// A frame (`[3, H, W]` u8) and the action someone else took after it (a goal-frame pair's
    /// expert steps before the agent takes over), so the history holds them.
    pub fn witness(&mut self, model: &WorldModel, frame: &Tensor, action: [f32; 2]) {
        model.observe(&mut self.history, frame);
        model.record_action(&mut self.history, action);
    }

    /// The action for `frame` (`[3, H, W]` u8) towards `goal`'s latents, taken: the replan, if
    /// this frame began one, comes with it.
    pub fn act(
        &mut self,
        model: &WorldModel,
        planner: &mut Planner,
        dynamics: &dyn LatentDynamics,
        frame: &Tensor,
        goal: &Tensor,
    ) -> Result<([f32; 2], Option<Replan>)> {
        let (action, replan) = self.decide(model, planner, dynamics, frame, goal)?;
        self.executed(model, action);
        Ok((action, replan))
    }

    /// The planner's action for `frame` without taking it: as a teacher's label, when someone
    /// else may act. Call [`RecedingHorizon::executed`] with what was done.
    pub fn decide(
        &mut self,
        model: &WorldModel,
        planner: &mut Planner,
        dynamics: &dyn LatentDynamics,
        frame: &Tensor,
        goal: &Tensor,
    ) -> Result<([f32; 2], Option<Replan>)> {
        model.observe(&mut self.history, frame);
        let mut replan = None;
        if self.history.at_model_step() && self.queue.is_empty() {
            let context = self.history.planning_context().expect("at a model step");
            let start = Instant::now();
            let plan = planner.plan(dynamics, &context, goal)?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            // Execute the first model step of the plan, then replan from the next frame.
            let block = Vec::<f32>::try_from(plan.actions.select(0, 0).to_kind(Kind::Float))?;
            self.queue.extend(block.chunks(model.cfg.action_dim as usize).map(|a| [a[0], a[1]]));
            planner.shift(1);
            replan = Some(Replan { plan, context, ms });
        }
        Ok((self.queue.pop_front().unwrap_or([0.0, 0.0]), replan))
    }

    /// The action executed after the last frame (the plan's, or another agent's): the next
    /// plans start from what happened.
    pub fn executed(&mut self, model: &WorldModel, action: [f32; 2]) {
        model.record_action(&mut self.history, action);
    }
}
