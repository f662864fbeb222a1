//! What the models see: every control step's scene goes to a headless renderer thread (the same
//! `render::Renderer` that writes datasets, so the picture-in-picture is the model's input pixel
//! for pixel), and with `--world-model` each frame goes through `WorldModel::step` for a live
//! surprise curve and, with a probe, a ghost marker where the model expects the cup next.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bevy::{
    asset::RenderAssetUsages,
    prelude::*,
    render::render_resource::{Extent3d, TextureDimension, TextureFormat},
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use render::{RenderConfig, RenderJob};
use tch::Device;
use types::{Frame, FrameTag};
use world_model::{CupProbe, LatentHistory, WorldModel};

use crate::control::ControlSet;
use crate::scene_view::Ghost;
use crate::session::Session;

/// Control steps of surprise kept for the plot (10 s at 1× speed).
pub const SURPRISE_WINDOW: usize = 100;

/// The headless render thread and the latest model frame.
#[derive(Resource)]
pub struct ModelFrames {
    /// Payload: the control step the frame belongs to (None: drawn for display only, e.g. paused).
    jobs: Sender<RenderJob<Option<StepInfo>>>,
    frames: Receiver<(Option<StepInfo>, Frame)>,
    /// The last scene sent, so a paused session's scene is drawn once, not every frame.
    last_sent: Option<types::SceneSnapshot>,
    pub image: Handle<Image>,
    pub size: u32,
    pub adapter: String,
    pub latest: Option<FrameTag>,
    /// Frames not rendered because the render thread was behind (the model's history restarts).
    pub dropped: u64,
    pub rendered: u64,
}

/// What the world model needs with a frame, beyond its pixels.
#[derive(Clone, Copy, Debug)]
struct StepInfo {
    action: [f32; 2],
    total_step: u64,
    violated: bool,
}

/// One point of the surprise curve.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SurprisePoint {
    pub total_step: u64,
    /// The frame's control step within its episode.
    pub step: u32,
    pub surprise: f64,
    /// An impossible event was running when this frame was drawn.
    pub violated: bool,
}

/// The world model running alongside the episode (main thread: tch models are not shared).
pub struct WorldModelView {
    model: WorldModel,
    history: LatentHistory,
    episode: Option<u64>,
    pub probe: Option<CupProbe>,
    pub checkpoint: PathBuf,
    pub curve: VecDeque<SurprisePoint>,
    /// Where the probe puts the cup in the predicted next frame.
    pub ghost: Option<[f32; 2]>,
    pub last_surprise: Option<f64>,
    /// Time of the last whole model step (its `frameskip` frames: encoding, prediction), ms.
    pub step_ms: f64,
    /// Time spent so far on the model step in progress, ms.
    partial_ms: f64,
}

impl WorldModelView {
    pub fn load(checkpoint: &Path, probe: Option<&Path>) -> Result<WorldModelView> {
        let model = world_model::load_model(checkpoint, Device::Cpu)
            .with_context(|| format!("loading world model {}", checkpoint.display()))?;
        let history = LatentHistory::new(&model.cfg);
        let probe = probe.map(|p| CupProbe::load(p, &model.cfg)).transpose()?;
        Ok(WorldModelView {
            model,
            history,
            episode: None,
            probe,
            checkpoint: checkpoint.to_owned(),
            curve: VecDeque::new(),
            ghost: None,
            last_surprise: None,
            step_ms: 0.0,
            partial_ms: 0.0,
        })
    }

    pub fn image_size(&self) -> u32 {
        self.model.cfg.image_size as u32
    }

    fn observe(&mut self, frame: &Frame, action: [f32; 2], total_step: u64, violated: bool) {
        if self.episode != Some(frame.tag.episode) {
            self.history = LatentHistory::new(&self.model.cfg);
            self.episode = Some(frame.tag.episode);
            self.curve.clear();
            self.last_surprise = None;
            self.partial_ms = 0.0;
            self.ghost = None;
        }
        let start = std::time::Instant::now();
        let (w, h) = (frame.width as i64, frame.height as i64);
        let pixels = world_model::rgb_frame(&frame.rgb, h, w);
        let surprise = self.model.step(&mut self.history, &pixels, action);
        // At frameskip s the encoding and the prediction fall on different frames of a model step.
        self.partial_ms += start.elapsed().as_secs_f64() * 1e3;
        if self.history.completed_model_step() {
            self.step_ms = std::mem::take(&mut self.partial_ms);
        }
        // With frameskip only every few frames is a model step; the others keep the last score.
        if let Some(s) = surprise {
            self.last_surprise = Some(s);
            if self.curve.len() == SURPRISE_WINDOW {
                self.curve.pop_front();
            }
            self.curve.push_back(SurprisePoint { total_step, step: frame.tag.step, surprise: s, violated });
        }
        // A prediction exists only on some frames of a model step; the ghost stays where the last
        // one put it.
        if let (Some(p), Some(pred)) = (&self.probe, self.history.prediction()) {
            self.ghost = Some(p.read_one(pred));
        }
    }
}

pub struct ModelViewPlugin;

impl Plugin for ModelViewPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (send_scenes, receive_frames, place_ghost).chain().after(ControlSet));
    }
}

/// A dark `size`² image for the HUD, drawn pixel for pixel (nearest sampling), until
/// [`show_rgb`] fills it.
pub fn frame_image(size: u32) -> Image {
    let mut image = Image::new_fill(
        Extent3d { width: size, height: size, depth_or_array_layers: 1 },
        TextureDimension::D2,
        &[40, 40, 40, 255],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    image.sampler = bevy::image::ImageSampler::nearest();
    image
}

/// Puts an RGB8 frame into an image made by [`frame_image`].
pub fn show_rgb(image: &mut Image, rgb: &[u8]) {
    image.data = Some(rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect());
}

/// Starts the headless renderer thread at the models' frame size; blocks until it is up.
pub fn start_model_frames(size: u32, images: &mut Assets<Image>) -> Result<ModelFrames> {
    let (job_tx, job_rx) = crossbeam_channel::bounded(16);
    let (frame_tx, frame_rx) = crossbeam_channel::bounded(16);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let config = RenderConfig { width: size, height: size, slots: 1, ..Default::default() };
    // The thread runs until the job sender (in `ModelFrames`) is dropped with the app.
    let _thread = render::spawn_render_thread(config, job_rx, frame_tx, ready_tx);
    let adapter = ready_rx
        .recv()
        .context("the model-frame render thread stopped before starting")?
        .map_err(|e| anyhow::anyhow!("model-frame renderer: {e}"))?;
    Ok(ModelFrames {
        jobs: job_tx,
        frames: frame_rx,
        image: images.add(frame_image(size)),
        size,
        adapter,
        latest: None,
        last_sent: None,
        dropped: 0,
        rendered: 0,
    })
}

fn send_scenes(mut session: ResMut<Session>, frames: Option<ResMut<ModelFrames>>) {
    let Some(mut frames) = frames else {
        return;
    };
    let mut sent_steps = false;
    while let Some(step) = session.frames.pop_front() {
        frames.last_sent = Some(step.scene.clone());
        let info = StepInfo { action: step.action, total_step: step.total_step, violated: step.violated };
        let job = RenderJob { tag: step.tag, scene: step.scene, payload: Some(info) };
        match frames.jobs.try_send(job) {
            Ok(()) => sent_steps = true,
            Err(TrySendError::Full(_)) => frames.dropped += 1,
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
    // Paused, just reset, or a violation injected while paused: draw the scene as it is now.
    if !sent_steps && frames.last_sent.as_ref() != Some(&session.scene) {
        let tag = FrameTag { episode: session.episode, step: session.step };
        let job = RenderJob { tag, scene: session.scene.clone(), payload: None };
        if frames.jobs.try_send(job).is_ok() {
            frames.last_sent = Some(session.scene.clone());
        }
    }
}

fn receive_frames(
    frames: Option<ResMut<ModelFrames>>,
    mut images: ResMut<Assets<Image>>,
    wm: Option<NonSendMut<WorldModelView>>,
) {
    let Some(mut frames) = frames else {
        return;
    };
    let mut wm = wm;
    let mut newest: Option<Frame> = None;
    while let Ok((step, frame)) = frames.frames.try_recv() {
        frames.rendered += 1;
        if let (Some(wm), Some(step)) = (wm.as_mut(), step) {
            wm.observe(&frame, step.action, step.total_step, step.violated);
        }
        newest = Some(frame);
    }
    let Some(frame) = newest else {
        return;
    };
    frames.latest = Some(frame.tag);
    if let Some(mut image) = images.get_mut(frames.image.id()) {
        show_rgb(&mut image, &frame.rgb);
    }
}

fn place_ghost(
    mut commands: Commands,
    session: Res<Session>,
    wm: Option<NonSend<WorldModelView>>,
    mut ghost: Query<(Entity, &mut Transform), With<Ghost>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let target = wm.as_ref().and_then(|w| w.ghost);
    match (target, ghost.single_mut()) {
        (Some([x, z]), Ok((_, mut t))) => {
            t.translation = Vec3::new(x, session.info.table_top_y + session.info.cup_height * 0.5, z);
        }
        (Some([x, z]), Err(_)) => {
            let r = session.info.cup_radius;
            commands.spawn((
                Ghost,
                Mesh3d(meshes.add(Cylinder::new(r * 1.15, session.info.cup_height).mesh().resolution(24))),
                MeshMaterial3d(materials.add(StandardMaterial {
                    base_color: Color::srgba(1.0, 1.0, 1.0, 0.35),
                    alpha_mode: AlphaMode::Blend,
                    unlit: true,
                    ..default()
                })),
                Transform::from_xyz(x, session.info.table_top_y + session.info.cup_height * 0.5, z),
                bevy::light::NotShadowCaster,
            ));
        }
        (None, Ok((e, _))) => commands.entity(e).despawn(),
        (None, Err(_)) => {}
    }
}
