//! The running episode the viewer shows: a client of `sim::Env`, never a second physics.
//!
//! Plain logic with no rendering, so tests can drive it (and the key handling around it) without
//! a window.

use std::collections::VecDeque;

use bevy::prelude::Resource;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim::{Actor, Category, Env, EnvConfig, Info, PolicyKind, Task, Violation};
use types::{FrameTag, SceneSnapshot};

/// Who moves the pusher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChoice {
    /// The arrow keys / WASD.
    Keyboard,
    Expert,
    Random,
    /// The trained policy (`--agent RUN`), acting from the models' frames; the session waits for
    /// each of its decisions.
    Agent,
    /// The latent planner on `--world-model` (CEM at its default budget), waited for likewise.
    Planner,
}

impl std::str::FromStr for PolicyChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<PolicyChoice, String> {
        match s {
            "keyboard" => Ok(PolicyChoice::Keyboard),
            "expert" => Ok(PolicyChoice::Expert),
            "random" => Ok(PolicyChoice::Random),
            "agent" => Ok(PolicyChoice::Agent),
            "planner" => Ok(PolicyChoice::Planner),
            _ => Err(format!("unknown policy {s:?} (expected keyboard, expert, random, agent or planner)")),
        }
    }
}

impl PolicyChoice {
    pub fn name(self) -> &'static str {
        match self {
            PolicyChoice::Keyboard => "keyboard",
            PolicyChoice::Expert => "expert",
            PolicyChoice::Random => "random",
            PolicyChoice::Agent => "agent",
            PolicyChoice::Planner => "planner",
        }
    }
}

/// One control step as the models see it: the scene drawn before the action, and the action.
#[derive(Clone, Debug)]
pub struct StepFrame {
    pub tag: FrameTag,
    pub scene: SceneSnapshot,
    pub action: [f32; 2],
    /// Steps taken in the session before this one (the surprise plot's x axis).
    pub total_step: u64,
    /// An impossible event is running in this frame.
    pub violated: bool,
}

/// Simulation speeds (× real time) reachable with `+` / `-`.
pub const MIN_SPEED: f32 = 1.0 / 16.0;
pub const MAX_SPEED: f32 = 16.0;
/// Control steps an ended episode stays on screen before the next one starts.
const END_HOLD_STEPS: u32 = 10;
/// Frames kept for a consumer that is not draining them (no picture-in-picture, in tests).
const MAX_PENDING_FRAMES: usize = 256;

#[derive(Resource)]
pub struct Session {
    env: Env,
    pub policy: PolicyChoice,
    actor: Option<Actor>,
    pub seed: u64,
    /// Episodes started in this session (1 for the first).
    pub episode: u64,
    pub step: u32,
    pub last_reward: f32,
    pub episode_return: f32,
    pub info: Info,
    pub success: bool,
    pub fell: bool,
    pub ended: bool,
    pub paused: bool,
    pub speed: f32,
    /// The keyboard policy's current action (set from the held keys every frame).
    pub teleop: [f32; 2],
    /// The category the V key injects.
    pub violation_choice: Category,
    pub violation: Option<Violation>,
    /// Inject the chosen violation by itself at this step of every episode.
    pub inject_at_step: Option<u32>,
    /// A message for the HUD (e.g. why a violation could not start).
    pub notice: Option<String>,
    rng: ChaCha8Rng,
    /// Seconds of simulated time each drawn frame advances, instead of the real time that passed
    /// (None: real time). Scripted runs (`--frames`) set it so that they show the same steps on a
    /// fast machine and a slow one.
    pub frame_clock: Option<f64>,
    /// Fractional control steps owed to real time.
    owed: f64,
    end_hold: u32,
    /// The scene before the last step (for drawing in between steps) and the current one.
    pub previous_scene: SceneSnapshot,
    pub scene: SceneSnapshot,
    /// Fraction of a control step elapsed since `scene` (0..1), for interpolation.
    pub phase: f32,
    /// Steps taken since start, over all episodes.
    pub total_steps: u64,
    /// Control steps for the model path, oldest first (drained by the picture-in-picture).
    pub frames: VecDeque<StepFrame>,
    /// The episode's goal image as a scene (`sim::goal`), for an agent given a goal.
    pub goal_scene: SceneSnapshot,
    /// The agent's action for the frame of this tag (policy or planner), until it is taken.
    agent_action: Option<(FrameTag, [f32; 2])>,
    /// Control steps that waited for the agent's decision.
    pub agent_waits: u64,
}

impl Session {
    pub fn new(task: Task, policy: PolicyChoice, seed: u64) -> anyhow::Result<Session> {
        let mut env = Env::new(EnvConfig::for_task(task))?;
        let (_, info) = env.reset(seed);
        let mut s = Session {
            env,
            policy,
            actor: None,
            seed,
            episode: 0,
            step: 0,
            last_reward: 0.0,
            episode_return: 0.0,
            info: info.clone(),
            success: false,
            fell: false,
            ended: false,
            paused: false,
            speed: 1.0,
            teleop: [0.0; 2],
            violation_choice: Category::Teleport,
            violation: None,
            inject_at_step: None,
            notice: None,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_7e1e),
            frame_clock: None,
            owed: 0.0,
            end_hold: 0,
            previous_scene: SceneSnapshot { objects: vec![], camera: Default::default() },
            scene: SceneSnapshot { objects: vec![], camera: Default::default() },
            phase: 0.0,
            total_steps: 0,
            frames: VecDeque::new(),
            goal_scene: SceneSnapshot { objects: vec![], camera: Default::default() },
            agent_action: None,
            agent_waits: 0,
        };
        s.begin_episode(seed, info);
        Ok(s)
    }

    pub fn task(&self) -> Task {
        self.env.config().task
    }

    pub fn max_steps(&self) -> u32 {
        self.env.config().max_steps
    }

    pub fn control_hz(&self) -> u32 {
        self.env.config().control_hz
    }

    /// Starts an episode from `seed` (the same seed replays the same scene).
    pub fn reset(&mut self, seed: u64) {
        let (_, info) = self.env.reset(seed);
        self.begin_episode(seed, info);
    }

    /// The session's side of a reset the environment has just done.
    fn begin_episode(&mut self, seed: u64, info: Info) {
        self.seed = seed;
        self.episode += 1;
        self.step = 0;
        self.last_reward = 0.0;
        self.episode_return = 0.0;
        self.info = info;
        self.success = false;
        self.fell = false;
        self.ended = false;
        self.end_hold = 0;
        self.violation = None;
        self.owed = 0.0;
        self.actor = match self.policy {
            PolicyChoice::Keyboard | PolicyChoice::Agent | PolicyChoice::Planner => None,
            PolicyChoice::Expert => Some(Actor::new(PolicyKind::Expert, self.task(), seed)),
            PolicyChoice::Random => Some(Actor::new(PolicyKind::Random, self.task(), seed)),
        };
        self.agent_action = None;
        self.goal_scene = sim::goal::task_goal_scene(&mut self.env, &self.info.clone());
        self.scene = self.drawn_scene();
        self.previous_scene = self.scene.clone();
        self.phase = 0.0;
    }

    /// Whether an agent outside the session (policy or planner) chooses the actions.
    pub fn piloted(&self) -> bool {
        matches!(self.policy, PolicyChoice::Agent | PolicyChoice::Planner)
    }

    /// The frame the agent must decide on, while no decision for it is in.
    pub fn decision_needed(&self) -> Option<(FrameTag, &SceneSnapshot)> {
        let waiting = self.piloted() && !self.ended && self.agent_action.is_none();
        waiting.then(|| (FrameTag { episode: self.episode, step: self.step }, &self.scene))
    }

    /// The agent's action for the frame `tag`; a decision for another frame (stale) is dropped.
    pub fn take_decision(&mut self, tag: FrameTag, action: [f32; 2]) {
        if tag == (FrameTag { episode: self.episode, step: self.step }) {
            self.agent_action = Some((tag, action));
        }
    }

    /// A new episode with the next seed.
    pub fn next_seed(&mut self) {
        self.reset(self.seed.wrapping_add(1));
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed * 2.0).min(MAX_SPEED);
    }

    pub fn slower(&mut self) {
        self.speed = (self.speed / 2.0).max(MIN_SPEED);
    }

    pub fn next_violation_choice(&mut self) {
        let all = Category::ALL;
        let i = all.iter().position(|c| *c == self.violation_choice).unwrap_or(0);
        self.violation_choice = all[(i + 1) % all.len()];
    }

    /// Breaks the chosen rule from the next drawn frame on (for the rest of the episode).
    pub fn inject_violation(&mut self) {
        if self.ended {
            self.notice = Some("the episode has ended: no violation injected".into());
            return;
        }
        match Violation::begin(self.violation_choice, &mut self.env, &mut self.rng) {
            Some(v) => {
                self.violation = Some(v);
                self.notice = Some(format!("injected: {}", self.violation_choice.name()));
                // The teleported / vanished cup shows at once, without waiting for a step.
                self.scene = self.drawn_scene();
                self.previous_scene = self.scene.clone();
                self.info = self.env.current_info();
            }
            None => {
                self.notice =
                    Some(format!("{} needs a free spot on the table: none here", self.violation_choice.name()))
            }
        }
    }

    /// Advances by `seconds` of real time: as many control steps as the speed makes due.
    /// Paused, nothing happens. Returns the steps taken.
    pub fn advance(&mut self, seconds: f64) -> u32 {
        if self.paused {
            return 0;
        }
        self.owed += seconds * self.speed as f64 * self.control_hz() as f64;
        // Never try to catch up more than a few steps after a stall (a slow frame, a drag).
        self.owed = self.owed.min(8.0);
        let mut taken = 0;
        while self.owed >= 1.0 {
            if !self.control_step() {
                // Waiting for the agent: time does not pile up behind its decision.
                self.owed = self.owed.min(1.0);
                break;
            }
            self.owed -= 1.0;
            taken += 1;
        }
        self.phase = self.owed as f32;
        taken
    }

    /// Exactly one control step, paused or not (the → key).
    pub fn step_once(&mut self) {
        let _ = self.control_step();
        self.phase = 0.0;
    }

    /// One control step; false when it waits for the agent's decision (nothing happened).
    fn control_step(&mut self) -> bool {
        if self.ended {
            self.end_hold += 1;
            if self.end_hold >= END_HOLD_STEPS {
                self.next_seed();
            }
            return true;
        }
        if self.inject_at_step == Some(self.step) && self.violation.is_none() {
            self.inject_violation();
        }
        let action = match (&mut self.actor, self.policy) {
            (Some(actor), _) => actor.act(&self.info),
            (None, PolicyChoice::Agent | PolicyChoice::Planner) => match self.agent_action.take() {
                Some((_, action)) => action,
                None => {
                    self.agent_waits += 1;
                    return false;
                }
            },
            (None, _) => self.teleop,
        };
        self.push_frame(action);
        let result = match self.env.step(action) {
            Ok(r) => r,
            Err(e) => {
                self.notice = Some(format!("simulator: {e}"));
                self.ended = true;
                return true;
            }
        };
        if let Some(v) = &self.violation {
            v.after_step(&mut self.env);
        }
        self.step += 1;
        self.total_steps += 1;
        self.last_reward = result.reward;
        self.episode_return += result.reward;
        self.info = if self.violation.is_some() { self.env.current_info() } else { result.info };
        self.success |= self.info.success;
        self.fell |= self.info.fallen || !self.info.on_table;
        self.ended = result.terminated || result.truncated;
        let drawn = self.drawn_scene();
        self.previous_scene = std::mem::replace(&mut self.scene, drawn);
        true
    }

    fn push_frame(&mut self, action: [f32; 2]) {
        if self.frames.len() >= MAX_PENDING_FRAMES {
            self.frames.pop_front();
        }
        let tag = FrameTag { episode: self.episode, step: self.step };
        let (total_step, violated) = (self.total_steps, self.violation.is_some());
        self.frames.push_back(StepFrame { tag, scene: self.scene.clone(), action, total_step, violated });
    }

    /// The scene as drawn now: physics, then whatever an active violation hides or recolours.
    fn drawn_scene(&self) -> SceneSnapshot {
        let mut scene = self.env.scene();
        if let Some(v) = &self.violation {
            v.edit_scene(&mut scene);
        }
        scene
    }

    /// The pusher's current table-plane position.
    pub fn pusher_xz(&self) -> [f32; 2] {
        [self.info.pusher.position[0], self.info.pusher.position[2]]
    }
}
