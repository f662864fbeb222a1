//! Frames over bounded crossbeam channels: render jobs in, `(payload, frame)` out.
//!
//! Backpressure: both channels are bounded, so a slow consumer blocks the render loop, which
//! stops draining jobs, which blocks the producers. Shutdown: when every job sender is dropped the
//! loop drains and returns; when the frame receiver is dropped the loop returns at once and drops
//! the job receiver, so producers' next `send` fails and they stop.

use crossbeam_channel::{Receiver, Sender};
use types::{Frame, FrameTag, SceneSnapshot};

use crate::{RenderConfig, Renderer, Result};

/// A scene to draw, with whatever the producer wants carried alongside its frame.
pub struct RenderJob<T> {
    pub tag: FrameTag,
    pub scene: SceneSnapshot,
    pub payload: T,
}

/// Anything that turns a batch of scenes into frames (the bevy renderer, or a stand-in in tests).
pub trait FrameSource {
    fn max_batch(&self) -> usize;
    fn render_batch(&mut self, jobs: &[(FrameTag, &SceneSnapshot)]) -> Result<Vec<Frame>>;
}

impl FrameSource for Renderer {
    fn max_batch(&self) -> usize {
        self.config().slots
    }
    fn render_batch(&mut self, jobs: &[(FrameTag, &SceneSnapshot)]) -> Result<Vec<Frame>> {
        self.render(jobs)
    }
}

/// How a render loop ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStats {
    pub frames: u64,
    pub batches: u64,
    /// The frame receiver was dropped before the job senders.
    pub consumer_gone: bool,
}

/// Renders jobs in arrival order, batching whatever is already queued (up to `max_batch`).
pub fn run_render_loop<T, S: FrameSource>(
    source: &mut S,
    jobs: Receiver<RenderJob<T>>,
    frames: Sender<(T, Frame)>,
) -> Result<StreamStats> {
    let mut stats = StreamStats::default();
    let mut batch: Vec<RenderJob<T>> = Vec::with_capacity(source.max_batch());
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < source.max_batch() {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let scenes: Vec<(FrameTag, &SceneSnapshot)> = batch.iter().map(|j| (j.tag, &j.scene)).collect();
        let rendered = source.render_batch(&scenes)?;
        stats.batches += 1;
        for (job, frame) in batch.drain(..).zip(rendered) {
            debug_assert_eq!(job.tag, frame.tag);
            if frames.send((job.payload, frame)).is_err() {
                stats.consumer_gone = true;
                return Ok(stats);
            }
            stats.frames += 1;
        }
    }
    Ok(stats)
}

/// Starts a thread that owns a [`Renderer`] (bevy apps are not `Send`) and runs the render loop.
/// The renderer's adapter name is sent on `ready` once it is up (or the error, if it failed).
pub fn spawn_render_thread<T: Send + 'static>(
    config: RenderConfig,
    jobs: Receiver<RenderJob<T>>,
    frames: Sender<(T, Frame)>,
    ready: Sender<std::result::Result<String, String>>,
) -> std::thread::JoinHandle<Result<StreamStats>> {
    std::thread::Builder::new()
        .name("cupworld-render".into())
        .spawn(move || {
            let mut renderer = match Renderer::new(config) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let _ = ready.send(Ok(renderer.adapter().to_string()));
            run_render_loop(&mut renderer, jobs, frames)
        })
        .expect("spawning the render thread")
}
