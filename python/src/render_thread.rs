//! The renderer on a thread of its own: bevy's app is not `Send`, and Python may call from any
//! thread. Scenes go in over one bounded channel and frames come back over another.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use render::{RenderConfig, Renderer};
use types::{FrameTag, SceneSnapshot};

type Reply = Result<Vec<Vec<u8>>, String>;

pub struct RenderThread {
    jobs: Option<Sender<Vec<SceneSnapshot>>>,
    frames: Receiver<Reply>,
    handle: Option<JoinHandle<()>>,
    adapter: String,
}

impl RenderThread {
    /// Starts the renderer and waits until it has drawn its warm-up frames.
    pub fn spawn(config: RenderConfig) -> Result<RenderThread, String> {
        let (job_tx, job_rx) = bounded::<Vec<SceneSnapshot>>(1);
        let (frame_tx, frame_rx) = bounded::<Reply>(1);
        let (ready_tx, ready_rx) = bounded::<Result<String, String>>(1);
        let handle = std::thread::Builder::new()
            .name("cupworld-render".into())
            .spawn(move || {
                let mut renderer = match Renderer::new(config) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                if ready_tx.send(Ok(renderer.adapter().to_string())).is_err() {
                    return;
                }
                // Ends when the owner drops its sender (close) or stops listening.
                for scenes in job_rx {
                    if frame_tx.send(draw(&mut renderer, &scenes)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("could not start the render thread: {e}"))?;
        let adapter = match ready_rx.recv() {
            Ok(Ok(adapter)) => adapter,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("the render thread stopped while starting (see the message above)".into()),
        };
        Ok(RenderThread { jobs: Some(job_tx), frames: frame_rx, handle: Some(handle), adapter })
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// One RGB8 frame per scene, in order.
    pub fn render(&self, scenes: Vec<SceneSnapshot>) -> Result<Vec<Vec<u8>>, String> {
        let stopped = || "the render thread has stopped (see the message above)".to_string();
        self.jobs.as_ref().ok_or("the environment is closed")?.send(scenes).map_err(|_| stopped())?;
        self.frames.recv().map_err(|_| stopped())?
    }
}

impl Drop for RenderThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// All scenes, `slots` per bevy update.
fn draw(renderer: &mut Renderer, scenes: &[SceneSnapshot]) -> Reply {
    let mut frames = Vec::with_capacity(scenes.len());
    for (b, batch) in scenes.chunks(renderer.config().slots).enumerate() {
        let jobs: Vec<(FrameTag, &SceneSnapshot)> = batch
            .iter()
            .enumerate()
            .map(|(i, s)| (FrameTag { episode: (b * batch.len() + i) as u64, step: 0 }, s))
            .collect();
        frames.extend(renderer.render(&jobs).map_err(|e| e.to_string())?.into_iter().map(|f| f.rgb));
    }
    Ok(frames)
}
