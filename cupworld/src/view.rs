//! `cupworld view`: the interactive window (the `viewer` crate, behind the `viewer` feature).

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// push-to-goal or knock-off.
    #[arg(long, default_value = "push-to-goal")]
    pub task: sim::Task,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Who moves the pusher: keyboard (arrows / WASD), expert, random, agent (the trained policy
    /// of --agent) or planner (CEM on --world-model; with --probe, its imagined cup path shows),
    /// the last two acting from the models' frames and the goal image.
    #[arg(long, default_value = "keyboard")]
    pub policy: String,
    /// With --policy agent: a `train-agent` run directory (its policy.safetensors) or a policy
    /// checkpoint. Its world model is the one it was trained on.
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// Camera at start (`[` `]` cycle, Esc back to free).
    #[arg(long, value_enum, default_value_t = CameraArg::Free)]
    pub camera: CameraArg,
    /// Simulation speed × real time (`+` / `-` change it).
    #[arg(long, default_value_t = 1.0, value_parser = crate::view_speed)]
    pub speed: f32,
    /// Open with the F1 key panel shown.
    #[arg(long)]
    pub show_help: bool,
    /// Start paused (Space resumes, → steps).
    #[arg(long)]
    pub paused: bool,
    /// The impossible-event category that V injects (C cycles): teleport, vanish, levitate,
    /// pass-through or recolor.
    #[arg(long, default_value = "teleport")]
    pub violation: sim::Category,
    /// Inject the --violation category by itself at this control step of every episode (as if V
    /// were pressed), e.g. for a scripted demonstration or screenshot.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub inject_at_step: Option<u32>,
    /// A world-model checkpoint (or a run directory: its newest checkpoint): live surprise plot
    /// of what the model sees.
    #[arg(long)]
    pub world_model: Option<PathBuf>,
    /// A position probe written by `cupworld eval-wm` (`probe.safetensors`): ghost marker where
    /// the model expects the cup after the next action.
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// Run folder (screenshots, summary).
    #[arg(long, default_value = "out/view")]
    pub out: PathBuf,
    /// Draw this many frames, then exit (with --screenshot: save the window first). The
    /// simulation then advances one control step (× --speed) per drawn frame instead of
    /// following real time, so a scripted run shows the same steps on any machine.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub frames: Option<u64>,
    /// With --frames: where to save the window as PNG (a .json beside it says what was drawn).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(240..=7680))]
    pub width: u32,
    #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(240..=7680))]
    pub height: u32,
    /// Window quality; the models' 64×64 frame is the same either way.
    #[arg(long, value_enum, default_value_t = QualityArg::High)]
    pub quality: QualityArg,
    /// Leave out the picture-in-picture of the models' 64×64 frame (and its second renderer).
    #[arg(long)]
    pub no_model_frame: bool,
}

/// `view --camera`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CameraArg {
    /// Orbit with the mouse.
    Free,
    /// The models' camera, as the datasets are drawn.
    Model,
    Top,
    Side,
}

/// `view --quality`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum QualityArg {
    /// Shadows and 4× MSAA.
    High,
    /// Neither: for software rendering.
    Low,
}

#[cfg(feature = "viewer")]
pub fn run(a: ViewArgs) -> Result<()> {
    use anyhow::{Context, bail};
    let camera = match a.camera {
        CameraArg::Free => viewer::CameraMode::Free,
        CameraArg::Model => viewer::CameraMode::Model,
        CameraArg::Top => viewer::CameraMode::Top,
        CameraArg::Side => viewer::CameraMode::Side,
    };
    if a.screenshot.is_some() && a.frames.is_none() {
        bail!("--screenshot needs --frames N (F12 takes screenshots in an interactive session)");
    }
    let world_model = match &a.world_model {
        Some(p) if !p.exists() => bail!("--world-model {}: no such file or directory", p.display()),
        Some(p) => Some(train::resolve_checkpoint(p).with_context(|| format!("--world-model {}", p.display()))?),
        None => None,
    };
    let options = viewer::ViewerOptions {
        task: a.task,
        seed: a.seed,
        policy: a.policy.parse().map_err(|e| anyhow::anyhow!("--policy: {e}"))?,
        camera,
        speed: a.speed,
        paused: a.paused,
        show_help: a.show_help,
        violation: a.violation,
        inject_at_step: a.inject_at_step,
        world_model,
        probe: a.probe,
        agent: match &a.agent {
            Some(p) if !p.exists() => bail!("--agent {}: no such file or directory", p.display()),
            Some(p) => Some(eval::acting::policy_checkpoint(p, false)),
            None => None,
        },
        out: a.out.clone(),
        frames: a.frames,
        screenshot: a.screenshot.clone(),
        width: a.width,
        height: a.height,
        model_frame: !a.no_model_frame,
        high_quality: matches!(a.quality, QualityArg::High),
    };
    if let Some(parent) = a.screenshot.as_ref().and_then(|p| p.parent()).filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let summary = viewer::run(options)?;
    let path = a.out.join("view-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "viewer: {} frames in {:.1} s, {:.1} frames/s after start-up on {}; {} control steps, {} episodes",
        summary.frames, summary.seconds, summary.fps, summary.adapter, summary.sim_steps, summary.episodes
    );
    if let Some(shot) = &a.screenshot {
        if !summary.screenshots.iter().any(|p| p == shot) {
            bail!("the screenshot {} was not written", shot.display());
        }
        println!("screenshot: {}", shot.display());
    }
    leave_without_teardown()
}

/// Ends the process at once, skipping libc's exit handlers. bevy's task-pool threads outlive
/// the window (after a few frames they may still be compiling pipelines), and the Vulkan
/// driver's static destructors that `exit` runs under them crashed a finished 3-frame run under
/// Xvfb and lavapipe with a segmentation fault (as in bevy issue 17059). Everything the viewer
/// writes is closed by now; only stdout's buffer needs flushing.
#[cfg(feature = "viewer")]
fn leave_without_teardown() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; nothing after it runs.
    unsafe { libc::_exit(0) }
}

#[cfg(not(feature = "viewer"))]
pub fn run(_: ViewArgs) -> Result<()> {
    anyhow::bail!("this cupworld was built without the viewer: rebuild with `--features viewer` (on by default)")
}
