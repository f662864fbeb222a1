//! An agent at the controls: the trained Mamba-MoE policy (`cupworld view --policy agent`) or the
//! latent planner (`--policy planner`) acts from the frames the models see and the episode's goal
//! image, as `eval-agent` runs them, on a thread of its own (a headless renderer, the world
//! model, the policy or planner). The session waits for each decision, so the agent sees every
//! frame however slowly the window draws, and a planner's seconds-long replans do not freeze it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent::acting::{PolicyActor, frame_features, load_policy};
use agent::planner::{Planner, PlannerConfig, RecedingHorizon, WorldModelDynamics};
use anyhow::{Context, Result, anyhow, bail};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use render::{RenderConfig, Renderer};
use tch::{Device, Tensor};
use types::{FrameTag, SceneSnapshot};
use world_model::{CupProbe, WorldModel};

use crate::control::ControlSet;
use crate::model_view::{frame_image, show_rgb};
use crate::session::Session;

/// How long a drawn frame waits for the decision it asked for (the window stays responsive).
const DECISION_WAIT: Duration = Duration::from_millis(50);

enum Request {
    /// A new episode and its goal image's scene.
    Episode { episode: u64, goal: SceneSnapshot },
    /// The action for the frame `scene` draws.
    Decide { tag: FrameTag, scene: SceneSnapshot },
}

/// Who flies.
#[derive(Clone, Debug)]
pub enum PilotKind {
    /// A policy checkpoint; its world model is the one it was trained on.
    Policy { checkpoint: PathBuf },
    /// The CEM planner at its default budget on a world model; with a probe, the plan's imagined
    /// cup path is shown.
    Planner { world_model: PathBuf, probe: Option<PathBuf> },
}

/// One decision, with what the HUD shows of it.
#[derive(Clone, Debug)]
pub struct Decision {
    pub tag: FrameTag,
    pub action: [f32; 2],
    /// The policy's value estimate of the state.
    pub value: Option<f32>,
    /// The experts this step was routed to, best first (policy).
    pub experts: Vec<i64>,
    /// The best plan's energy, when this frame began a replan (planner).
    pub energy: Option<f64>,
    /// Where the probe reads the cup in the plan's imagined latents, one point per model step.
    pub path: Option<Vec<[f32; 2]>>,
    /// Encoding and deciding, milliseconds (the frame's rendering excluded).
    pub ms: f64,
}

enum Reply {
    Goal { episode: u64, rgb: Vec<u8> },
    Decision(Decision),
    Failed(String),
}

/// The agent's thread, its latest decision and its goal image.
#[derive(Resource)]
pub struct Pilot {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    pub kind: PilotKind,
    pub goal_image: Handle<Image>,
    pub last: Option<Decision>,
    /// The planner's last replan: its energy and imagined cup path.
    pub last_replan: Option<Decision>,
    pub replans: u64,
    /// Top-1 expert counts in this session, per expert (one task per session).
    pub expert_load: Vec<u64>,
    pub decisions: u64,
    pub decision_ms: Vec<f64>,
    episode_sent: Option<u64>,
    requested: Option<FrameTag>,
    pub error: Option<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Pilot {
    /// Ends the agent's thread before the process does: a replan still running in libtorch
    /// while the process tears down crashed it.
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.requests, crossbeam_channel::bounded(0).0));
        drop(std::mem::replace(&mut self.replies, crossbeam_channel::never()));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Loads the agent (a policy with the world model it was trained on, checked to belong together,
/// or the planner on a world model) and starts its thread; blocks until it is ready.
pub fn start_pilot(kind: &PilotKind, images: &mut Assets<Image>) -> Result<Pilot> {
    let (req_tx, req_rx) = crossbeam_channel::bounded::<Request>(4);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded::<Reply>(4);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(u32, usize), String>>(1);
    let thread_kind = kind.clone();
    let thread = std::thread::Builder::new()
        .name("cupworld-agent".into())
        .spawn(move || {
            let result = match &thread_kind {
                PilotKind::Policy { checkpoint } => policy_thread(checkpoint, req_rx, &rep_tx, &ready_tx),
                PilotKind::Planner { world_model, probe } => {
                    planner_thread(world_model, probe.as_deref(), req_rx, &rep_tx, &ready_tx)
                }
            };
            if let Err(e) = result {
                // Before ready: the start fails with it; after: the HUD shows it.
                let message = format!("{e:#}");
                if ready_tx.try_send(Err(message.clone())).is_err() {
                    let _ = rep_tx.send(Reply::Failed(message));
                }
            }
        })
        .context("starting the agent's thread")?;
    let (size, experts) =
        ready_rx.recv().map_err(|_| anyhow!("the agent's thread stopped while starting"))?.map_err(|e| {
            anyhow!(
                "{}: {e}",
                match kind {
                    PilotKind::Policy { .. } => "--agent",
                    PilotKind::Planner { .. } => "--policy planner",
                }
            )
        })?;
    Ok(Pilot {
        requests: req_tx,
        replies: rep_rx,
        kind: kind.clone(),
        goal_image: images.add(frame_image(size)),
        last: None,
        last_replan: None,
        replans: 0,
        expert_load: vec![0; experts],
        decisions: 0,
        decision_ms: vec![],
        episode_sent: None,
        requested: None,
        error: None,
        thread: Some(thread),
    })
}

fn policy_thread(
    checkpoint: &Path,
    requests: Receiver<Request>,
    replies: &Sender<Reply>,
    ready: &Sender<Result<(u32, usize), String>>,
) -> Result<()> {
    let loaded = load_policy(checkpoint, Device::Cpu)?;
    let wm_path = &loaded.record.world_model;
    let sha = world_model::CheckedFile::read(wm_path, "world-model checkpoint")
        .with_context(|| format!("{} names its world model {}", checkpoint.display(), wm_path.display()))?
        .sha256();
    if sha != loaded.record.world_model_sha256 {
        bail!(
            "{} was trained on the world model {} with sha256 {}; that file now has {sha}",
            checkpoint.display(),
            wm_path.display(),
            loaded.record.world_model_sha256
        );
    }
    let model = world_model::load_model(wm_path, Device::Cpu)?;
    let size = model.cfg.image_size as u32;
    let mut renderer = Renderer::new(RenderConfig { width: size, height: size, slots: 1, ..Default::default() })?;
    let _ = ready.send(Ok((size, loaded.record.config.moe.n_experts as usize)));
    let features = |model: &WorldModel, rgb: &[u8]| {
        frame_features(&model.encode_target(&world_model::rgb_frame(rgb, size as i64, size as i64).unsqueeze(0)))
    };
    let mut actor: Option<PolicyActor> = None;
    for request in requests {
        match request {
            Request::Episode { episode, goal } => {
                let rgb = draw(&mut renderer, &goal)?;
                actor = Some(PolicyActor::new(&loaded.policy, &features(&model, &rgb)));
                if replies.send(Reply::Goal { episode, rgb }).is_err() {
                    break;
                }
            }
            Request::Decide { tag, scene } => {
                let rgb = draw(&mut renderer, &scene)?;
                let start = Instant::now();
                let actor = actor.as_mut().context("a decision before the episode's goal")?;
                let out = actor.step(&features(&model, &rgb));
                let mode = Vec::<f32>::try_from(out.mode().reshape([-1]))?;
                let action = [mode[0], mode[1]];
                if !action.iter().all(|a| a.is_finite()) {
                    bail!("the policy chose a non-finite action {action:?} at step {}; it was not applied", tag.step);
                }
                actor.taken(&Tensor::from_slice(&action).view([1, 2]));
                let decision = Decision {
                    tag,
                    action,
                    value: Some(out.value.double_value(&[0]) as f32),
                    experts: Vec::<i64>::try_from(out.experts.reshape([-1]))?,
                    energy: None,
                    path: None,
                    ms: start.elapsed().as_secs_f64() * 1e3,
                };
                if replies.send(Reply::Decision(decision)).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn planner_thread(
    world_model: &Path,
    probe: Option<&Path>,
    requests: Receiver<Request>,
    replies: &Sender<Reply>,
    ready: &Sender<Result<(u32, usize), String>>,
) -> Result<()> {
    let mut model = world_model::load_model(world_model, Device::Cpu)
        .with_context(|| format!("loading the world model {}", world_model.display()))?;
    model.vs.freeze();
    let probe = probe.map(|p| CupProbe::load(p, &model.cfg)).transpose()?;
    let size = model.cfg.image_size as u32;
    let mut renderer = Renderer::new(RenderConfig { width: size, height: size, slots: 1, ..Default::default() })?;
    let mut planner = Planner::new(PlannerConfig::default())?;
    let dynamics = WorldModelDynamics(&model);
    let _ = ready.send(Ok((size, 0)));
    let frame = |rgb: &[u8]| world_model::rgb_frame(rgb, size as i64, size as i64);
    let mut episode: Option<(Tensor, RecedingHorizon)> = None;
    for request in requests {
        match request {
            Request::Episode { episode: number, goal } => {
                let rgb = draw(&mut renderer, &goal)?;
                let latents = model.encode_target(&frame(&rgb).unsqueeze(0)).squeeze_dim(0);
                planner.reset(number);
                episode = Some((latents, RecedingHorizon::new(&model)));
                if replies.send(Reply::Goal { episode: number, rgb }).is_err() {
                    break;
                }
            }
            Request::Decide { tag, scene } => {
                let rgb = draw(&mut renderer, &scene)?;
                let start = Instant::now();
                let (goal, horizon) = episode.as_mut().context("a decision before the episode's goal")?;
                let (action, replan) = horizon.act(&model, &mut planner, &dynamics, &frame(&rgb), goal)?;
                if !action.iter().all(|a| a.is_finite()) {
                    bail!("the planner chose a non-finite action {action:?} at step {}; it was not applied", tag.step);
                }
                let path = match (&replan, &probe) {
                    (Some(r), Some(p)) => {
                        Some((0..r.plan.imagined.size()[0]).map(|h| p.read_one(&r.plan.imagined.get(h))).collect())
                    }
                    _ => None,
                };
                let energy = replan.map(|r| r.plan.energy);
                let ms = start.elapsed().as_secs_f64() * 1e3;
                let decision = Decision { tag, action, value: None, experts: vec![], energy, path, ms };
                if replies.send(Reply::Decision(decision)).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn draw(renderer: &mut Renderer, scene: &SceneSnapshot) -> Result<Vec<u8>> {
    let frames = renderer.render(&[(FrameTag { episode: 0, step: 0 }, scene)])?;
    Ok(frames.into_iter().next().context("the renderer returned no frame")?.rgb)
}

pub struct PilotPlugin;

impl Plugin for PilotPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (drive, place_plan_markers).chain().after(ControlSet));
    }
}

/// A marker where the planner's best plan imagines the cup after one of its model steps.
#[derive(Component)]
pub struct PlanMarker(usize);

/// Shows the last replan's imagined cup path (with a probe) as small discs on the table.
fn place_plan_markers(
    mut commands: Commands,
    session: Res<Session>,
    pilot: Option<Res<Pilot>>,
    mut markers: Query<(Entity, &PlanMarker, &mut Transform)>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let path = pilot.as_ref().and_then(|p| p.last_replan.as_ref()).and_then(|d| d.path.clone()).unwrap_or_default();
    let y = session.info.table_top_y + 0.006;
    let mut shown = 0;
    for (entity, marker, mut transform) in &mut markers {
        match path.get(marker.0) {
            Some([x, z]) => {
                transform.translation = Vec3::new(*x, y, *z);
                shown += 1;
            }
            None => commands.entity(entity).despawn(),
        }
    }
    for (i, [x, z]) in path.iter().enumerate().skip(shown) {
        // Later model steps fade: the plan is surest about its first.
        let alpha = 0.8 - 0.5 * i as f32 / path.len().max(1) as f32;
        commands.spawn((
            PlanMarker(i),
            Mesh3d(meshes.add(Cylinder::new(session.info.cup_radius * 0.8, 0.01).mesh().resolution(16))),
            MeshMaterial3d(materials.add(StandardMaterial {
                base_color: Color::srgba(1.0, 0.55, 0.1, alpha),
                alpha_mode: AlphaMode::Blend,
                unlit: true,
                ..default()
            })),
            Transform::from_xyz(*x, y, *z),
            bevy::light::NotShadowCaster,
        ));
    }
}

/// Sends the episode's goal and each frame that needs a decision; hands decisions to the session.
fn drive(pilot: Option<ResMut<Pilot>>, mut session: ResMut<Session>, mut images: ResMut<Assets<Image>>) {
    let Some(mut pilot) = pilot else {
        return;
    };
    if pilot.error.is_some() {
        return;
    }
    if pilot.episode_sent != Some(session.episode) {
        let goal = session.goal_scene.clone();
        if pilot.requests.try_send(Request::Episode { episode: session.episode, goal }).is_ok() {
            pilot.episode_sent = Some(session.episode);
            pilot.requested = None;
        }
    }
    let mut sent = false;
    if let Some((tag, scene)) = session.decision_needed()
        && pilot.requested != Some(tag)
        && pilot.requests.try_send(Request::Decide { tag, scene: scene.clone() }).is_ok()
    {
        pilot.requested = Some(tag);
        sent = true;
    }
    // A policy decides in milliseconds: waiting a little for it here lets the next frame step,
    // instead of every step costing two drawn frames.
    let first = sent.then(|| pilot.replies.recv_timeout(DECISION_WAIT).ok()).flatten();
    let rest: Vec<Reply> = pilot.replies.try_iter().collect();
    for reply in first.into_iter().chain(rest) {
        match reply {
            Reply::Goal { episode, rgb } if episode == session.episode => {
                if let Some(mut image) = images.get_mut(pilot.goal_image.id()) {
                    show_rgb(&mut image, &rgb);
                }
            }
            Reply::Goal { .. } => {}
            Reply::Decision(d) => {
                pilot.decisions += 1;
                if d.energy.is_some() {
                    pilot.replans += 1;
                    pilot.last_replan = Some(d.clone());
                }
                // A planner's decisions between replans are queued actions: its time is the replans'.
                if d.energy.is_some() || matches!(pilot.kind, PilotKind::Policy { .. }) {
                    pilot.decision_ms.push(d.ms);
                }
                if let Some(&e) = d.experts.first()
                    && let Some(load) = pilot.expert_load.get_mut(e as usize)
                {
                    *load += 1;
                }
                session.take_decision(d.tag, d.action);
                pilot.last = Some(d);
            }
            Reply::Failed(e) => {
                session.notice = Some(format!("agent stopped: {e}"));
                pilot.error = Some(e);
            }
        }
    }
}
