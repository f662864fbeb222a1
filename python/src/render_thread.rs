//! Renderers on threads of their own: bevy's app is not `Send`, and Python may call from any
//! thread. Scenes go in over one bounded channel and frames come back over another. Several
//! renderers draw their shares of a batch at once (lavapipe rasterises on the calling thread, so
//! one renderer keeps one core busy).

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
    /// Starts the renderer; `ready` waits until it has drawn its warm-up frames.
    fn start(config: RenderConfig) -> Result<(RenderThread, Receiver<Result<String, String>>), String> {
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
        let thread =
            RenderThread { jobs: Some(job_tx), frames: frame_rx, handle: Some(handle), adapter: String::new() };
        Ok((thread, ready_rx))
    }

    fn ready(&mut self, ready: Receiver<Result<String, String>>) -> Result<(), String> {
        self.adapter = match ready.recv() {
            Ok(result) => result?,
            Err(_) => return Err("the render thread stopped while starting (see the message above)".into()),
        };
        Ok(())
    }

    fn send(&self, scenes: Vec<SceneSnapshot>) -> Result<(), String> {
        self.jobs.as_ref().ok_or("the environment is closed")?.send(scenes).map_err(|_| stopped())
    }

    fn receive(&self) -> Reply {
        self.frames.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> String {
    "the render thread has stopped (see the message above)".to_string()
}

/// `count` renderers of one config; a batch is split into contiguous shares, one per renderer.
/// A scene draws to the same bytes whichever renderer and slot it lands in.
pub struct RenderPool {
    threads: Vec<RenderThread>,
}

impl RenderPool {
    /// Starts `count` renderers at once and waits until all have warmed up.
    pub fn spawn(config: RenderConfig, count: usize) -> Result<RenderPool, String> {
        let started = (0..count.max(1)).map(|_| RenderThread::start(config.clone())).collect::<Result<Vec<_>, _>>()?;
        let mut threads = Vec::with_capacity(started.len());
        for (mut thread, ready) in started {
            thread.ready(ready)?;
            threads.push(thread);
        }
        Ok(RenderPool { threads })
    }

    pub fn adapter(&self) -> &str {
        &self.threads[0].adapter
    }

    pub fn renderers(&self) -> usize {
        self.threads.len()
    }

    /// One RGB8 frame per scene, in order.
    pub fn render(&self, scenes: Vec<SceneSnapshot>) -> Reply {
        let share = scenes.len().div_ceil(self.threads.len()).max(1);
        let mut scenes = scenes.into_iter().peekable();
        let mut busy = 0;
        for thread in &self.threads {
            if scenes.peek().is_none() {
                break;
            }
            thread.send(scenes.by_ref().take(share).collect())?;
            busy += 1;
        }
        let mut frames = Vec::new();
        for thread in &self.threads[..busy] {
            frames.extend(thread.receive()?);
        }
        Ok(frames)
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
