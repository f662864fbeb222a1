//! `viewer`: the interactive window onto cupworld (`cupworld view`).
//!
//! A client of the same `sim::Env` the headless path runs (never a second physics) and of the same
//! `render::Renderer` for the picture-in-picture of what the models see. Kept out of the headless
//! crates: only this crate enables bevy's windowing (winit, X11) and egui.
//!
//! - [`keys`]: the one key table (input handling and the F1 panel both read it).
//! - [`session`]: the running episode, policies, speed, pause/step, injected violations.
//! - [`control`]: key presses → session and view changes (testable under `MinimalPlugins`).
//! - [`scene_view`]: 3D entities mirroring the scene; free / fixed cameras.
//! - [`model_view`]: the models' 64×64 frames and the world model's surprise and ghost.
//! - [`pilot`]: the trained policy or the latent planner at the controls, on a thread of its own.
//! - [`hud`]: the egui overlay.

pub mod control;
pub mod hud;
pub mod keys;
pub mod model_view;
pub mod pilot;
pub mod scene_view;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bevy::{
    diagnostic::FrameTimeDiagnosticsPlugin,
    prelude::*,
    render::view::screenshot::{Screenshot, ScreenshotCaptured},
    window::{PresentMode, WindowResolution},
};
use serde::Serialize;
use sim::{Category, Task};

pub use control::{CameraMode, ControlPlugin, ViewState};
pub use session::{PolicyChoice, Session};

/// Everything `cupworld view` takes.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    pub task: Task,
    pub seed: u64,
    pub policy: PolicyChoice,
    pub camera: CameraMode,
    pub speed: f32,
    pub paused: bool,
    pub show_help: bool,
    pub violation: Category,
    /// Inject `violation` at this control step of every episode (scripted V).
    pub inject_at_step: Option<u32>,
    pub world_model: Option<PathBuf>,
    pub probe: Option<PathBuf>,
    /// The policy checkpoint that drives the paw with `policy: Agent`.
    pub agent: Option<PathBuf>,
    /// Folder for screenshots taken with F12 and the run summary.
    pub out: PathBuf,
    /// Run this many frames, then (after the screenshot, if any) exit.
    pub frames: Option<u64>,
    /// With `frames`: save the window here after the last frame.
    pub screenshot: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    /// Show the picture-in-picture of the models' frame (needs a second, headless renderer).
    pub model_frame: bool,
    /// Shadows and 4× MSAA in the window (the models' frame is unaffected).
    pub high_quality: bool,
}

/// What a run measured, written as `view-summary.json` (and alongside a `--screenshot` as
/// `<name>.json` with the scene as drawn, so a test can check where things are in the picture).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ViewerSummary {
    pub frames: u64,
    pub seconds: f64,
    /// Window frames per second after the first 30 (start-up and shader compilation excluded).
    pub fps: f64,
    pub sim_steps: u64,
    pub episodes: u64,
    pub adapter: String,
    pub model_frame_adapter: Option<String>,
    pub model_frames_rendered: u64,
    pub model_frames_dropped: u64,
    pub screenshots: Vec<PathBuf>,
    pub mean_surprise: Option<f64>,
    /// The world model's surprise over the current episode's last steps (at exit).
    pub surprise_curve: Vec<model_view::SurprisePoint>,
    /// Where the probe put the ghost cup last (table-plane x, z).
    pub ghost: Option<[f32; 2]>,
    /// With `--policy agent` or `planner`: its decisions, their median time (encoder and policy,
    /// or a replan, ms), the control steps that waited for one, each expert's top-1 count
    /// (policy), the replans and the last one's energy and imagined cup path (planner).
    pub agent_decisions: u64,
    pub agent_decision_ms_median: Option<f64>,
    pub agent_waits: u64,
    pub agent_expert_load: Vec<u64>,
    pub agent_replans: u64,
    pub agent_energy: Option<f64>,
    pub agent_path: Vec<[f32; 2]>,
    pub window: [u32; 2],
}

/// The scene as drawn in a screenshot, with the window size (for checks on the picture).
#[derive(Serialize)]
struct ScreenshotScene<'a> {
    window: [u32; 2],
    camera: &'a str,
    scene: &'a types::SceneSnapshot,
    hud: bool,
}

/// Fails early, with a message, where a window cannot open (winit would panic).
pub fn check_display() -> Result<()> {
    let x11 = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let wayland = std::env::var_os("WAYLAND_DISPLAY").filter(|d| !d.is_empty());
    match (x11, wayland) {
        (None, None) => bail!(
            "no display: DISPLAY and WAYLAND_DISPLAY are unset. Run on a desktop, or headless under Xvfb: \
             xvfb-run -s \"-screen 0 1280x800x24\" cupworld view ..."
        ),
        (Some(d), None) => {
            // A local display ":N" needs its socket; winit panics instead of erroring without it.
            if let Some(n) = d.strip_prefix(':').and_then(|r| r.split('.').next())
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                bail!("DISPLAY={d} but no X server listens there (/tmp/.X11-unix/X{n} is missing)");
            }
            Ok(())
        }
        // winit is built with X11 only (Wayland would pull in more system libraries): under a
        // Wayland session without XWayland's DISPLAY it cannot open a window.
        (None, Some(w)) => bail!(
            "WAYLAND_DISPLAY={} is set but DISPLAY is not: this viewer opens X11 windows only. Enable XWayland (it sets DISPLAY), or run headless: xvfb-run -s \"-screen 0 1280x800x24\" cupworld view ...",
            w.to_string_lossy()
        ),
        (Some(_), Some(_)) => Ok(()),
    }
}

#[derive(Resource)]
struct RunControl {
    options: ViewerOptions,
    frame: u64,
    measure_from: Option<std::time::Instant>,
    measured_frames: u64,
    started: std::time::Instant,
    /// Paths of screenshots taken (filled by the capture observer).
    captured: Arc<Mutex<Vec<std::result::Result<PathBuf, String>>>>,
    final_requested_at: Option<u64>,
    summary: Arc<Mutex<ViewerSummary>>,
}

/// Opens the window and runs until it is closed (or `frames` have been drawn).
pub fn run(options: ViewerOptions) -> Result<ViewerSummary> {
    let pilot_kind = match (options.policy, &options.agent, &options.world_model) {
        (PolicyChoice::Agent, Some(a), _) => Some(pilot::PilotKind::Policy { checkpoint: a.clone() }),
        (PolicyChoice::Agent, None, _) => {
            bail!("--policy agent needs --agent (a train-agent run or policy checkpoint)")
        }
        (_, Some(_), _) => bail!("--agent drives the paw only with --policy agent"),
        (PolicyChoice::Planner, None, Some(wm)) => {
            Some(pilot::PilotKind::Planner { world_model: wm.clone(), probe: options.probe.clone() })
        }
        (PolicyChoice::Planner, None, None) => bail!("--policy planner needs --world-model (the model it plans with)"),
        _ => None,
    };
    check_display()?;
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let mut session = Session::new(options.task, options.policy, options.seed)?;
    session.paused = options.paused;
    session.speed = options.speed.clamp(session::MIN_SPEED, session::MAX_SPEED);
    session.violation_choice = options.violation;
    session.inject_at_step = options.inject_at_step;
    // A scripted run draws one control step (× speed) a frame: on real time, a software renderer
    // at 1.3 frames/s ran three episodes in 60 frames where a faster machine ran one.
    session.frame_clock = options.frames.map(|_| 1.0 / f64::from(session.control_hz()));

    // Load the world model before the window opens: a bad checkpoint is an error, not a panic.
    let wm = match &options.world_model {
        Some(path) => Some(model_view::WorldModelView::load(path, options.probe.as_deref())?),
        None => {
            if options.probe.is_some() {
                bail!("--probe needs --world-model (the probe reads the world model's latents)");
            }
            None
        }
    };
    // Same backend choice as the headless renderer: Vulkan (lavapipe without a GPU).
    if std::env::var_os("WGPU_BACKEND").is_none() {
        // SAFETY: no other thread has started yet.
        unsafe { std::env::set_var("WGPU_BACKEND", "vulkan") };
    }
    render::quiet_runtime_dir();

    let summary = Arc::new(Mutex::new(ViewerSummary { window: [options.width, options.height], ..default() }));
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("cupworld · {} · seed {}", options.task.name(), options.seed),
                    resolution: WindowResolution::new(options.width, options.height),
                    present_mode: PresentMode::AutoVsync,
                    ..default()
                }),
                ..default()
            })
            // Pipelines compiled before the first frame that needs them, so no frame (and no
            // `--frames 3 --screenshot`) shows the sky where the scene is still compiling.
            .set(bevy::render::RenderPlugin { synchronous_pipeline_compilation: true, ..default() }),
    )
    .add_plugins(FrameTimeDiagnosticsPlugin::default())
    .add_plugins(bevy_egui::EguiPlugin::default())
    .add_plugins(bevy_panorbit_camera::PanOrbitCameraPlugin)
    .insert_resource(session)
    .add_plugins(ControlPlugin)
    .insert_resource(ViewState { show_help: options.show_help, ..default() })
    .add_plugins(scene_view::SceneViewPlugin { initial_camera: options.camera, high_quality: options.high_quality })
    .add_plugins(model_view::ModelViewPlugin)
    .add_plugins(pilot::PilotPlugin)
    .add_plugins(hud::HudPlugin);

    if options.model_frame || wm.is_some() {
        let size = wm.as_ref().map_or(64, |w| w.image_size());
        let frames = model_view::start_model_frames(size, &mut app.world_mut().resource_mut::<Assets<Image>>())?;
        summary.lock().expect("summary").model_frame_adapter = Some(frames.adapter.clone());
        app.insert_resource(frames);
    }
    if let Some(wm) = wm {
        app.insert_non_send(wm);
    }
    if let Some(kind) = &pilot_kind {
        let pilot = pilot::start_pilot(kind, &mut app.world_mut().resource_mut::<Assets<Image>>())?;
        app.insert_resource(pilot);
    }
    app.insert_resource(RunControl {
        options,
        frame: 0,
        measure_from: None,
        measured_frames: 0,
        started: std::time::Instant::now(),
        captured: Arc::new(Mutex::new(vec![])),
        final_requested_at: None,
        summary: summary.clone(),
    })
    .add_systems(Update, (take_screenshots, count_frames).after(control::ControlSet))
    .add_systems(Last, record_summary);
    let exit = app.run();
    let summary = summary.lock().expect("summary").clone();
    if let AppExit::Error(code) = exit {
        bail!("the viewer stopped with error code {code}");
    }
    Ok(summary)
}

/// What a capture of a window that shows one flat colour reports (it is retaken).
const BLANK: &str = "blank capture";

fn spawn_screenshot(
    commands: &mut Commands,
    path: PathBuf,
    captured: Arc<Mutex<Vec<std::result::Result<PathBuf, String>>>>,
) {
    commands.spawn(Screenshot::primary_window()).observe(move |shot: On<ScreenshotCaptured>| {
        let result = shot.image.clone().try_into_dynamic().map_err(|e| e.to_string()).and_then(|img| {
            let rgb = img.to_rgb8();
            // The first frames of a window can be captured before anything was drawn into them.
            if rgb.pixels().all(|p| p == rgb.get_pixel(0, 0)) {
                return Err(format!("{BLANK}: {}", path.display()));
            }
            rgb.save(&path).map_err(|e| format!("{}: {e}", path.display())).map(|_| path.clone())
        });
        captured.lock().expect("screenshot list").push(result);
    });
}

fn take_screenshots(
    mut commands: Commands,
    mut view: ResMut<ViewState>,
    run: Res<RunControl>,
    displayed: Res<scene_view::DisplayedScene>,
) {
    while view.screenshot_requests > 0 {
        view.screenshot_requests -= 1;
        let n = run.captured.lock().expect("screenshot list").len() + 1;
        let path = run.options.out.join(format!("screenshot-{n:04}.png"));
        request_screenshot(&mut commands, path, &run, &view, &displayed);
    }
}

/// Saves the window to `path` once this frame is drawn, with the scene as drawn beside it (JSON).
fn request_screenshot(
    commands: &mut Commands,
    path: PathBuf,
    run: &RunControl,
    view: &ViewState,
    displayed: &scene_view::DisplayedScene,
) {
    write_scene_json(&path, &run.options, view, displayed);
    spawn_screenshot(commands, path, run.captured.clone());
}

fn write_scene_json(png: &Path, options: &ViewerOptions, view: &ViewState, displayed: &scene_view::DisplayedScene) {
    if let Some(scene) = &displayed.0 {
        let meta = ScreenshotScene {
            window: [options.width, options.height],
            camera: view.camera.name(),
            scene,
            hud: view.show_hud,
        };
        if let Ok(json) = serde_json::to_string_pretty(&meta) {
            let _ = std::fs::write(png.with_extension("json"), json);
        }
    }
}

fn count_frames(
    mut commands: Commands,
    mut run: ResMut<RunControl>,
    view: Res<ViewState>,
    displayed: Res<scene_view::DisplayedScene>,
    mut exit: MessageWriter<AppExit>,
) {
    run.frame += 1;
    // Rates exclude start-up (pipeline compilation, the first uploads).
    if run.frame == 30 {
        run.measure_from = Some(std::time::Instant::now());
    } else if run.frame > 30 {
        run.measured_frames += 1;
    }
    let Some(limit) = run.options.frames else {
        return;
    };
    if run.frame == limit {
        match run.options.screenshot.clone() {
            Some(path) => {
                request_screenshot(&mut commands, path, &run, &view, &displayed);
                run.final_requested_at = Some(run.frame);
            }
            None => {
                exit.write(AppExit::Success);
            }
        }
    } else if let Some(at) = run.final_requested_at {
        // A blank capture (the window not yet drawn) is taken again on a later frame.
        let retake = {
            let mut captured = run.captured.lock().expect("screenshot list");
            let before = captured.len();
            captured.retain(|r| !matches!(r, Err(e) if e.starts_with(BLANK)));
            captured.len() < before
        };
        if retake && run.frame <= at + 300 {
            if let Some(path) = run.options.screenshot.clone() {
                request_screenshot(&mut commands, path, &run, &view, &displayed);
            }
            return;
        }
        // Exit once the final screenshot is saved (or failed: the summary then lacks it and
        // `cupworld view` reports the error).
        let finished = run.captured.lock().expect("screenshot list").iter().any(|r| match r {
            Ok(p) => Some(p) == run.options.screenshot.as_ref(),
            Err(e) => {
                tracing::error!("screenshot: {e}");
                true
            }
        });
        if finished {
            exit.write(AppExit::Success);
        } else if run.frame > at + 300 {
            tracing::error!("the screenshot was never captured");
            exit.write(AppExit::error());
        }
    }
}

fn record_summary(
    run: Res<RunControl>,
    session: Res<Session>,
    frames: Option<Res<model_view::ModelFrames>>,
    wm: Option<NonSend<model_view::WorldModelView>>,
    pilot: Option<Res<pilot::Pilot>>,
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
) {
    let mut s = run.summary.lock().expect("summary");
    s.frames = run.frame;
    s.seconds = run.started.elapsed().as_secs_f64();
    if let Some(from) = run.measure_from {
        let t = from.elapsed().as_secs_f64();
        if t > 0.0 {
            s.fps = run.measured_frames as f64 / t;
        }
    }
    s.sim_steps = session.total_steps;
    s.episodes = session.episode;
    if let Some(a) = adapter {
        s.adapter = format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type);
    }
    if let Some(f) = frames {
        s.model_frames_rendered = f.rendered;
        s.model_frames_dropped = f.dropped;
    }
    if let Some(wm) = wm
        && !wm.curve.is_empty()
    {
        s.mean_surprise = Some(wm.curve.iter().map(|p| p.surprise).sum::<f64>() / wm.curve.len() as f64);
        s.surprise_curve = wm.curve.iter().copied().collect();
        s.ghost = wm.ghost;
    }
    s.agent_waits = session.agent_waits;
    if let Some(p) = pilot {
        s.agent_decisions = p.decisions;
        let mut ms = p.decision_ms.clone();
        ms.sort_by(f64::total_cmp);
        s.agent_decision_ms_median = ms.get(ms.len() / 2).copied();
        s.agent_expert_load = p.expert_load.clone();
        s.agent_replans = p.replans;
        if let Some(r) = &p.last_replan {
            s.agent_energy = r.energy;
            s.agent_path = r.path.clone().unwrap_or_default();
        }
    }
    s.screenshots =
        run.captured.lock().expect("screenshot list").iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
}
