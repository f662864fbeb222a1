//! `render`: draws plain [`types::SceneSnapshot`]s with bevy, headless, in lock-step.
//!
//! - [`renderer`]: the bevy app ([`Renderer`]): a batch of scenes in, one RGB frame per scene out.
//! - [`stream`]: bounded crossbeam channels around a renderer thread ([`run_render_loop`]).
//! - [`project`]: where a world point lands in a frame (for tests and overlays).
//! - [`batch`]: clips of scenes to frames in one call ([`render_clips_rgb`]).

pub mod batch;
pub mod project;
pub mod renderer;
pub mod stream;

pub use batch::render_clips_rgb;
pub use renderer::{RenderConfig, Renderer, quiet_runtime_dir};
pub use stream::{FrameSource, RenderJob, StreamStats, run_render_loop, spawn_render_thread};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("invalid render config: {0}")]
    Config(String),
    #[error(
        "no graphics adapter: install Mesa's Vulkan drivers (apt-get install mesa-vulkan-drivers libvulkan1) or run on a GPU"
    )]
    NoAdapter,
    #[error("{given} scenes given but the renderer has {slots} slots")]
    TooManyScenes { given: usize, slots: usize },
    #[error("scene has {given} objects, at most {max} are drawn")]
    TooManyObjects { given: usize, max: usize },
    #[error("object {object} has a non-finite pose")]
    NonFinitePose { object: usize },
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("warm-up frames never became stable")]
    Unstable,
}

pub type Result<T> = std::result::Result<T, RenderError>;
