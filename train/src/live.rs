//! Live data for the world model: simulators → renderer → episode assembler → trainer, over bounded
//! crossbeam channels. The trainer owns a replay buffer and drains the
//! episode channel between steps; when it hangs up, every stage stops in turn.
//!
//! ```text
//! sim thread ──RenderJob{scene, (action, state, done)}──► render thread ──frames──► assembler ──EpisodeTensors──► trainer
//! ```

use std::thread::JoinHandle;

use anyhow::{Result, anyhow, bail};
use crossbeam_channel::{Receiver, bounded};
use render::{RenderConfig, RenderJob};
use sim::{Actor, Env, EnvConfig, PolicyKind, episode_seed};
use types::FrameTag;

use crate::data::{EpisodeTensors, TrainingFrame};

struct StepData {
    action: [f32; 2],
    env_state: Vec<f32>,
    state: Vec<f32>,
    done: bool,
    seed: u64,
}

pub struct LiveSource {
    pub episodes: Receiver<EpisodeTensors>,
    pub adapter: String,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl LiveSource {
    /// Starts the pipeline: episodes cycle through `envs` (one config per task), acting with
    /// `policy`, seeds derived from `base_seed`.
    pub fn spawn(envs: Vec<EnvConfig>, policy: PolicyKind, base_seed: u64, render: RenderConfig) -> Result<LiveSource> {
        if envs.is_empty() {
            bail!("live data needs at least one task");
        }
        let size = render.width;
        let (job_tx, job_rx) = bounded::<RenderJob<StepData>>(render.slots * 2);
        let (frame_tx, frame_rx) = bounded(render.slots * 2);
        let (ready_tx, ready_rx) = bounded(1);
        let render_thread = render::spawn_render_thread(render, job_rx, frame_tx, ready_tx);
        let adapter = match ready_rx.recv() {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => bail!("the renderer failed to start: {e}"),
            Err(_) => bail!("the render thread died while starting"),
        };
        let sim_thread = std::thread::spawn(move || -> Result<()> {
            let mut envs = envs.into_iter().map(Env::new).collect::<sim::Result<Vec<_>>>()?;
            for index in 0u64.. {
                let n = envs.len();
                let env = &mut envs[index as usize % n];
                let seed = episode_seed(base_seed, index);
                let (mut obs, mut info) = env.reset(seed);
                let mut actor = Actor::new(policy, env.config().task, seed);
                for step in 0u32.. {
                    let scene = env.scene();
                    let action = actor.act(&info);
                    let r = env.step(action)?;
                    let done = r.terminated || r.truncated;
                    let payload = StepData {
                        action,
                        env_state: obs.environment_state.to_vec(),
                        state: obs.state.to_vec(),
                        done,
                        seed,
                    };
                    if job_tx.send(RenderJob { tag: FrameTag { episode: index, step }, scene, payload }).is_err() {
                        return Ok(()); // the trainer is gone
                    }
                    if done {
                        break;
                    }
                    obs = r.obs;
                    info = r.info;
                }
            }
            Ok(())
        });
        let (ep_tx, ep_rx) = bounded(4);
        let assembler = std::thread::spawn(move || -> Result<()> {
            let mut rows = vec![];
            for (step, frame) in frame_rx.iter() {
                let step: StepData = step;
                if frame.tag.step as usize != rows.len() {
                    bail!(
                        "live episode {}: frame {} arrived after {} frames",
                        frame.tag.episode,
                        frame.tag.step,
                        rows.len()
                    );
                }
                rows.push(TrainingFrame::new(frame.rgb, step.action, step.env_state, &step.state));
                if step.done {
                    let ep = EpisodeTensors::from_rows(step.seed, size, &std::mem::take(&mut rows));
                    if ep_tx.send(ep).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        let render_thread = std::thread::spawn(move || -> Result<()> {
            render_thread.join().map_err(|_| anyhow!("the render thread panicked"))??;
            Ok(())
        });
        Ok(LiveSource { episodes: ep_rx, adapter, threads: vec![sim_thread, render_thread, assembler] })
    }

    /// Hangs up and waits for every stage to stop; reports the first error.
    pub fn stop(self) -> Result<()> {
        drop(self.episodes);
        for t in self.threads {
            t.join().map_err(|_| anyhow!("a live-data thread panicked"))??;
        }
        Ok(())
    }
}
