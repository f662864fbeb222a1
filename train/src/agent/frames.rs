//! The renderer on a thread of its own, reached over bounded crossbeam channels: scenes go in,
//! frames come back, and the frozen encoder turns them into what the policy sees.

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, Sender, bounded};
use render::{RenderConfig, RenderJob, spawn_render_thread};
use tch::Tensor;
use types::{Frame, FrameTag, SceneSnapshot};
use world_model::WorldModel;

/// A render thread and the two bounded channels to it.
pub struct FrameLink {
    jobs: Option<Sender<RenderJob<usize>>>,
    frames: Receiver<(usize, Frame)>,
    thread: Option<std::thread::JoinHandle<render::Result<render::StreamStats>>>,
    pub adapter: String,
    size: u32,
}

impl FrameLink {
    /// Starts the renderer (`slots` scenes per bevy update; the channels hold four batches).
    pub fn spawn(size: u32, slots: usize) -> Result<FrameLink> {
        let (job_tx, job_rx) = bounded(4 * slots);
        let (frame_tx, frame_rx) = bounded(4 * slots);
        let (ready_tx, ready_rx) = bounded(1);
        let config = RenderConfig { width: size, height: size, slots, ..Default::default() };
        let thread = spawn_render_thread(config, job_rx, frame_tx, ready_tx);
        let adapter = ready_rx
            .recv()
            .context("the render thread stopped before it started")?
            .map_err(|e| anyhow!("starting the renderer: {e}"))?;
        Ok(FrameLink { jobs: Some(job_tx), frames: frame_rx, thread: Some(thread), adapter, size })
    }

    /// Draws `scenes`, in their order (RGB8, row-major).
    pub fn draw(&self, scenes: Vec<SceneSnapshot>) -> Result<Vec<Vec<u8>>> {
        let n = scenes.len();
        let jobs = self.jobs.as_ref().expect("open until dropped");
        let mut out: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut received = 0;
        let mut pending = scenes.into_iter().enumerate();
        // Keep the job channel fed without ever blocking on it while frames wait to be taken.
        let mut sent = 0;
        while received < n {
            while sent < n && sent - received < jobs.capacity().unwrap_or(1) {
                let (i, scene) = pending.next().expect("counted");
                jobs.send(RenderJob { tag: FrameTag { episode: i as u64, step: 0 }, scene, payload: i })
                    .map_err(|_| anyhow!("the render thread stopped"))?;
                sent += 1;
            }
            let (i, frame) = self.frames.recv().map_err(|_| anyhow!("the render thread stopped"))?;
            if frame.rgb.len() != (self.size * self.size * 3) as usize {
                bail!(
                    "the renderer returned a {}×{} frame, {}×{} was asked",
                    frame.width,
                    frame.height,
                    self.size,
                    self.size
                );
            }
            out[i] = Some(frame.rgb);
            received += 1;
        }
        Ok(out.into_iter().map(|f| f.expect("every frame came back")).collect())
    }
}

impl Drop for FrameLink {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the policy sees of RGB8 frames: the frozen target encoder's latents as
/// [`agent::acting::frame_features`], `[n, F]`, computed in batches of 256.
pub fn features_of_rgb(model: &WorldModel, rgb: &[Vec<u8>]) -> Tensor {
    let size = model.cfg.image_size;
    let frames: Vec<Tensor> = rgb.iter().map(|f| world_model::rgb_frame(f, size, size)).collect();
    features_of_frames(model, &Tensor::stack(&frames, 0))
}

/// [`features_of_rgb`] for frames already as `[n, 3, H, W]` u8.
pub fn features_of_frames(model: &WorldModel, frames: &Tensor) -> Tensor {
    let n = frames.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(256)
        .map(|s| agent::acting::frame_features(&model.encode_target(&frames.narrow(0, s, (n - s).min(256)))))
        .collect();
    Tensor::cat(&parts, 0)
}
