//! One episode of an agent acting from frames: the simulator steps, the renderer draws what the
//! agent sees, the agent chooses the next action.

use std::time::Instant;

use agent::MambaMoePolicy;
use agent::acting::PolicyActor;
use agent::planner::{LatentDynamics, Planner, RecedingHorizon};
use anyhow::{Result, anyhow};
use render::Renderer;
use serde::{Deserialize, Serialize};
use sim::{Actor, Env, Info, PolicyKind};
use tch::Tensor;
use types::{FrameTag, SceneSnapshot};
use world_model::WorldModel;

/// What acts: the planner (on some dynamics) or a control that needs no model.
pub enum Acting<'a> {
    Planner {
        model: &'a WorldModel,
        dynamics: Box<dyn LatentDynamics + 'a>,
        planner: Planner,
    },
    /// The Mamba-MoE policy on the world model's frozen encoder, one step per control step.
    Policy {
        model: &'a WorldModel,
        policy: &'a MambaMoePolicy,
        actor: Option<PolicyActor<'a>>,
    },
    /// Uniform random actions (the simulator's random policy).
    Random,
    /// No motion at all.
    Zero,
    /// The scripted expert, which reads the simulator's state.
    Expert,
}

/// What one episode came to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpisodeResult {
    pub agent: String,
    /// Index of the episode (or goal-frame pair) in the evaluation.
    pub episode: u64,
    pub seed: u64,
    /// Control step of the simulator episode the agent took over at (0 in the task protocol).
    pub start_step: u32,
    pub success_once: bool,
    pub success_at_end: bool,
    /// Distance to the goal when the episode ended (metres on the table plane).
    pub final_distance: f32,
    /// Control steps the agent acted.
    pub length: u32,
    /// Wall-clock time of each decision (milliseconds): a planner's replans, a policy's steps
    /// (frame encoding included); empty for the controls.
    pub replan_ms: Vec<f64>,
    /// Action sequences imagined per replan.
    pub evaluations_per_replan: f64,
    /// Goal-frame pairs, planners only: at the first replan, the energy of the plan chosen, of
    /// the expert's own next actions (the plan that reached the goal frame) and of doing nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_replan: Option<FirstReplan>,
    /// Where the paw and the cup were before each action, what the agent did and what the
    /// scripted expert would have done there: the record to see how an episode failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TraceStep>,
    /// Half width (x) and half depth (z) of the episode's table top (metres).
    #[serde(default)]
    pub table_half_size: [f32; 2],
}

/// One control step of an episode, on the table plane (x, z; metres).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TraceStep {
    pub paw: [f32; 2],
    pub cup: [f32; 2],
    /// The environment's goal (push-to-goal's disc; a goal-frame pair's target is its frame's cup).
    pub goal: [f32; 2],
    pub action: [f32; 2],
    pub expert: [f32; 2],
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FirstReplan {
    pub chosen: f64,
    pub expert: f64,
    pub zero: f64,
}

/// How an episode is judged, after every step: (success now, distance to the goal now).
pub type Judge<'a> = &'a dyn Fn(&Info) -> (bool, f32);

/// An agent's state within one episode.
pub struct Runner<'a, 'r> {
    pub renderer: &'r mut Renderer,
    pub acting: Acting<'a>,
    horizon: Option<RecedingHorizon>,
    actor: Option<Actor>,
    /// The expert beside the agent, stepped on every state the episode visits (its hysteresis
    /// follows them), as DAgger labels them: the `trace`'s expert column.
    labeller: Option<Actor>,
    replan_ms: Vec<f64>,
    evaluations: usize,
    /// The expert's actions from the start, to score at the first replan (goal-frame pairs).
    reference: Option<Vec<[f32; 2]>>,
    first_replan: Option<FirstReplan>,
}

impl<'a, 'r> Runner<'a, 'r> {
    pub fn new(renderer: &'r mut Renderer, acting: Acting<'a>) -> Runner<'a, 'r> {
        Runner {
            renderer,
            acting,
            horizon: None,
            actor: None,
            labeller: None,
            replan_ms: vec![],
            evaluations: 0,
            reference: None,
            first_replan: None,
        }
    }

    fn render(&mut self, scene: &SceneSnapshot, step: u32) -> Result<Vec<u8>> {
        let frames = self.renderer.render(&[(FrameTag { episode: 0, step }, scene)])?;
        Ok(frames.into_iter().next().ok_or_else(|| anyhow!("the renderer returned no frame"))?.rgb)
    }

    /// The goal image (RGB8) and, for the planner, its target latents.
    pub fn goal_latents(&mut self, goal: &SceneSnapshot) -> Result<(Vec<u8>, Option<Tensor>)> {
        let rgb = self.render(goal, 0)?;
        let latents = match &self.acting {
            Acting::Planner { model, .. } | Acting::Policy { model, .. } => {
                let size = model.cfg.image_size;
                Some(model.encode_target(&world_model::rgb_frame(&rgb, size, size).unsqueeze(0)).squeeze_dim(0))
            }
            _ => None,
        };
        Ok((rgb, latents))
    }

    /// The frame the agent sees now (RGB8).
    pub fn look(&mut self, env: &Env, step: u32) -> Result<Vec<u8>> {
        self.render(&env.scene(), step)
    }

    /// Starts an episode the simulator was just reset to (seed `seed`).
    pub fn begin(&mut self, env: &Env, seed: u64) {
        self.replan_ms.clear();
        self.evaluations = 0;
        self.actor = None;
        self.labeller = Some(Actor::new(PolicyKind::Expert, env.config().task, seed));
        self.horizon = None;
        self.reference = None;
        self.first_replan = None;
        match &mut self.acting {
            Acting::Planner { model, planner, .. } => {
                planner.reset(seed);
                self.horizon = Some(RecedingHorizon::new(model));
            }
            Acting::Policy { actor, .. } => *actor = None,
            Acting::Random => self.actor = Some(Actor::new(PolicyKind::Random, env.config().task, seed)),
            Acting::Expert => self.actor = Some(Actor::new(PolicyKind::Expert, env.config().task, seed)),
            Acting::Zero => {}
        }
    }

    /// Shows the agent a frame and the action taken after it by someone else (the expert's
    /// steps before a goal-frame pair's start), so its history holds them.
    pub fn witness(&mut self, env: &Env, info: &Info, action: [f32; 2]) -> Result<()> {
        if let Acting::Planner { model, .. } = &self.acting {
            let model: &WorldModel = model;
            let rgb = self.render(&env.scene(), info.step)?;
            let frame = world_model::rgb_frame(&rgb, model.cfg.image_size, model.cfg.image_size);
            self.horizon.as_mut().expect("begin first").witness(model, &frame, action);
        }
        for actor in [&mut self.actor, &mut self.labeller].into_iter().flatten() {
            let _ = actor.act(info); // keeps a stateful actor in step
        }
        Ok(())
    }

    /// The expert's actions from the agent's start (a goal-frame pair's), scored beside the
    /// planner's choice at its first replan.
    pub fn set_reference(&mut self, actions: Vec<[f32; 2]>) {
        self.reference = Some(actions);
    }

    /// The agent's action in the state `env` is in.
    pub fn act(&mut self, env: &Env, info: &Info, goal: Option<&Tensor>) -> Result<[f32; 2]> {
        let action = match &mut self.acting {
            Acting::Zero => [0.0, 0.0],
            Acting::Random | Acting::Expert => self.actor.as_mut().expect("begin first").act(info),
            Acting::Policy { .. } => {
                let rgb = self.render(&env.scene(), info.step)?;
                let t = Instant::now();
                let Acting::Policy { model, policy, actor } = &mut self.acting else { unreachable!() };
                let features = train::agent::frames::features_of_rgb(model, std::slice::from_ref(&rgb));
                let actor = match actor {
                    Some(a) => a,
                    None => {
                        let goal = goal.ok_or_else(|| anyhow!("the policy needs a goal"))?;
                        actor.insert(PolicyActor::new(*policy, &agent::acting::frame_features(&goal.unsqueeze(0))))
                    }
                };
                let mode = Vec::<f32>::try_from(actor.step(&features).mode().reshape([-1]))?;
                let action = [mode[0], mode[1]];
                actor.taken(&Tensor::from_slice(&action).view([1, 2]));
                self.replan_ms.push(t.elapsed().as_secs_f64() * 1e3);
                action
            }
            Acting::Planner { .. } => {
                let rgb = self.render(&env.scene(), info.step)?;
                let Acting::Planner { model, dynamics, planner } = &mut self.acting else { unreachable!() };
                let goal = goal.ok_or_else(|| anyhow!("the planner needs a goal"))?;
                let frame = world_model::rgb_frame(&rgb, model.cfg.image_size, model.cfg.image_size);
                let horizon = self.horizon.as_mut().expect("begin first");
                let (action, replan) = horizon.act(model, planner, dynamics.as_ref(), &frame, goal)?;
                if let Some(r) = replan {
                    self.replan_ms.push(r.ms);
                    if let (Some(reference), None) = (&self.reference, &self.first_replan) {
                        let (h, w) = (r.plan.actions.size()[0], r.plan.actions.size()[1]);
                        let mut flat: Vec<f32> = reference.iter().flatten().copied().collect();
                        flat.resize((h * w) as usize, 0.0);
                        let expert = Tensor::from_slice(&flat).view([1, h, w]);
                        let zero = expert.zeros_like();
                        let plans = Tensor::cat(&[expert, zero], 0);
                        let e = planner.score(dynamics.as_ref(), &r.context, goal, &plans);
                        self.first_replan = Some(FirstReplan { chosen: r.plan.energy, expert: e[0], zero: e[1] });
                    }
                    self.evaluations += r.plan.evaluations;
                }
                action
            }
        };
        if !action.iter().all(|a| a.is_finite()) {
            return Err(anyhow!("the agent chose a non-finite action {action:?}; it was not applied"));
        }
        Ok(action)
    }

    /// Acts for at most `steps` control steps from the state `env` is in, judging after each.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        env: &mut Env,
        mut info: Info,
        steps: u32,
        goal: Option<&Tensor>,
        judge: Judge,
        name: &str,
        episode: u64,
        seed: u64,
    ) -> Result<EpisodeResult> {
        let start_step = info.step;
        let (mut once, mut now, mut distance) = (false, false, judge(&info).1);
        let mut length = 0;
        let mut trace = vec![];
        for _ in 0..steps {
            let action = self.act(env, &info, goal)?;
            let plane = |p: [f32; 3]| [p[0], p[2]];
            trace.push(TraceStep {
                paw: plane(info.pusher.position),
                cup: plane(info.cup.position),
                goal: info.goal,
                action,
                expert: self.labeller.as_mut().expect("begin first").act(&info),
            });
            let r = env.step(action)?;
            info = r.info;
            length += 1;
            (now, distance) = judge(&info);
            once |= now;
            if r.terminated || r.truncated {
                break;
            }
        }
        let replans = self.replan_ms.len().max(1);
        Ok(EpisodeResult {
            agent: name.to_string(),
            episode,
            seed,
            start_step,
            success_once: once,
            success_at_end: now,
            final_distance: distance,
            length,
            replan_ms: std::mem::take(&mut self.replan_ms),
            evaluations_per_replan: self.evaluations as f64 / replans as f64,
            first_replan: self.first_replan.take(),
            trace,
            table_half_size: info.table_half_size,
        })
    }
}
