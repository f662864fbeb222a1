//! N push-the-cup simulators and their renderers, stepped together: the native half of the
//! Python package's `Env` (N = 1) and `VectorEnv`.
//!
//! Episode seeds follow `cupworld gen`: an environment seeded with `s` plays the episodes
//! `episode_seed(s, 0)`, `episode_seed(s, 1)`, …, so `reset(seed=s)` and `gen --seed s` show the
//! same first episode, byte for byte. An episode that ended is reset by the next `step`, whose
//! action is ignored (Gymnasium 1.x's next-step autoreset).

use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};
use render::RenderConfig;
use sim::{Actor, Env, EnvConfig, Info, Observation, PolicyKind, Task, episode_seed};
use types::SceneSnapshot;

use crate::no_panic;
use crate::render_thread::RenderPool;

/// A renderer's batch: one bevy update draws up to this many frames.
const MAX_SLOTS: usize = 64;
/// Renderers by default: one per core up to this many (as `cupworld gen`).
const DEFAULT_MAX_RENDERERS: usize = 4;

/// One environment of the vector, and where it stands in its sequence of episodes.
struct Lane {
    env: Env,
    base_seed: Option<u64>,
    /// Episodes begun since `base_seed` was set.
    episodes: u64,
    episode: Option<Episode>,
}

struct Episode {
    seed: u64,
    obs: Observation,
    info: Info,
    reward: f32,
    terminated: bool,
    truncated: bool,
    /// The scripted expert of this episode. Its action for the current state is computed once
    /// (the expert keeps a little state of its own) and kept until the next step.
    expert: Actor,
    expert_action: Option<[f32; 2]>,
    /// The goal image's scene, taken at reset as `eval-agent` takes it (`sim::goal`).
    goal: SceneSnapshot,
}

impl Lane {
    fn begin(&mut self) {
        let base = self.base_seed.expect("lanes are seeded before they begin");
        let seed = episode_seed(base, self.episodes);
        self.episodes += 1;
        let (obs, info) = self.env.reset(seed);
        let expert = Actor::new(PolicyKind::Expert, self.env.config().task, seed);
        let goal = sim::goal::task_goal_scene(&mut self.env, &info);
        let (reward, terminated, truncated, expert_action) = (0.0, false, false, None);
        self.episode = Some(Episode { seed, obs, info, reward, terminated, truncated, expert, expert_action, goal });
    }

    fn step(&mut self, action: [f32; 2]) -> Result<(), String> {
        let ep = self.episode.as_mut().expect("reset before step");
        if ep.terminated || ep.truncated {
            self.begin();
            return Ok(());
        }
        let r = self.env.step(action).map_err(|e| e.to_string())?;
        (ep.obs, ep.info, ep.reward, ep.terminated, ep.truncated) =
            (r.obs, r.info, r.reward, r.terminated, r.truncated);
        ep.expert_action = None;
        Ok(())
    }

    fn expert_action(&mut self) -> [f32; 2] {
        let ep = self.episode.as_mut().expect("reset before expert_action");
        *ep.expert_action.get_or_insert_with(|| ep.expert.act(&ep.info))
    }
}

/// Runs `f` on every lane, the lanes split over up to `threads` scoped threads. Returns the
/// first error with the index of the environment it came from.
fn each_lane(
    lanes: &mut [Lane],
    threads: usize,
    f: impl Fn(usize, &mut Lane) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let chunk = lanes.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<(), String>> = if threads <= 1 || lanes.len() <= 1 {
        lanes.iter_mut().enumerate().map(|(i, lane)| f(i, lane)).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = lanes
                .chunks_mut(chunk)
                .enumerate()
                .map(|(c, part)| {
                    let f = &f;
                    s.spawn(move || {
                        part.iter_mut().enumerate().map(|(j, lane)| f(c * chunk + j, lane)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|_| vec![Err("a simulator thread panicked".into())]))
                .collect()
        })
    };
    results.into_iter().enumerate().try_for_each(|(i, r)| r.map_err(|e| format!("environment {i}: {e}")))
}

/// N simulators of one task and the renderers that draw them.
#[pyclass(module = "cupworld._native")]
pub struct VectorSim {
    task: Task,
    lanes: Vec<Lane>,
    renderer: Option<RenderPool>,
    threads: usize,
    frame_bytes: usize,
}

impl VectorSim {
    fn renderer(&self) -> PyResult<&RenderPool> {
        self.renderer.as_ref().ok_or_else(|| PyRuntimeError::new_err("the environment is closed"))
    }

    fn started(&self) -> PyResult<()> {
        self.renderer()?;
        match self.lanes.iter().all(|l| l.episode.is_some()) {
            true => Ok(()),
            false => Err(PyRuntimeError::new_err("call reset before step (Gymnasium's ResetNeeded)")),
        }
    }

    /// Draws every lane's current scene.
    fn draw(&self) -> Result<Vec<Vec<u8>>, String> {
        let scenes = self.lanes.iter().map(|l| l.env.scene()).collect();
        self.renderer.as_ref().ok_or("the environment is closed")?.render(scenes)
    }

    fn advance(&mut self, actions: &[[f32; 2]]) -> Result<Vec<Vec<u8>>, String> {
        let threads = self.threads;
        each_lane(&mut self.lanes, threads, |i, lane| lane.step(actions[i]))?;
        self.draw()
    }

    /// The observation, reward and flags of every lane, as Python bytes the package reshapes.
    fn batch<'py>(&self, py: Python<'py>, frames: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyDict>> {
        let n = self.lanes.len();
        let fb = self.frame_bytes;
        if frames.len() != n || frames.iter().any(|f| f.len() != fb) {
            return Err(PyRuntimeError::new_err("the renderer returned frames of the wrong count or size"));
        }
        let eps: Vec<&Episode> = self.lanes.iter().map(|l| l.episode.as_ref().expect("started")).collect();
        let d = PyDict::new(py);
        let pixels = PyByteArray::new_with(py, n * fb, |buf| {
            for (dst, src) in buf.chunks_exact_mut(fb).zip(&frames) {
                dst.copy_from_slice(src);
            }
            Ok(())
        })?;
        d.set_item("pixels", pixels)?;
        let bytes = |v: Vec<u8>| PyBytes::new(py, &v);
        let f32s = |it: &mut dyn Iterator<Item = f32>| bytes(it.flat_map(f32::to_ne_bytes).collect());
        let flags = |f: &dyn Fn(&Episode) -> bool| bytes(eps.iter().map(|e| f(e) as u8).collect());
        d.set_item("state", f32s(&mut eps.iter().flat_map(|e| e.obs.state)))?;
        d.set_item("environment_state", f32s(&mut eps.iter().flat_map(|e| e.obs.environment_state)))?;
        d.set_item("reward", f32s(&mut eps.iter().map(|e| e.reward)))?;
        d.set_item("terminated", flags(&|e| e.terminated))?;
        d.set_item("truncated", flags(&|e| e.truncated))?;
        d.set_item("success", flags(&|e| e.info.success))?;
        d.set_item("diverged", flags(&|e| e.info.diverged))?;
        d.set_item("episode_seed", bytes(eps.iter().flat_map(|e| e.seed.to_ne_bytes()).collect()))?;
        d.set_item("step", bytes(eps.iter().flat_map(|e| e.info.step.to_ne_bytes()).collect()))?;
        Ok(d)
    }
}

/// Parses `N × 2` native-endian f32 actions, refusing a wrong length or a non-finite value.
fn parse_actions(raw: &[u8], n: usize) -> PyResult<Vec<[f32; 2]>> {
    if raw.len() != n * 8 {
        return Err(PyValueError::new_err(format!(
            "actions: expected {n} × 2 float32 values ({} bytes), got {} bytes",
            n * 8,
            raw.len()
        )));
    }
    let values: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "action[{}][{}] is {}: actions must be finite numbers",
            k / 2,
            k % 2,
            values[k]
        )));
    }
    Ok(values.chunks_exact(2).map(|a| [a[0], a[1]]).collect())
}

#[pymethods]
impl VectorSim {
    /// `task`: "push-to-goal" or "knock-off". `threads`: simulator threads (default: the CPU's
    /// cores, at most `num_envs`). `renderers`: render threads, each a bevy app drawing its share
    /// of the frames (default: the CPU's cores, at most 4 and at most `num_envs`).
    #[new]
    #[pyo3(signature = (task, num_envs, width=64, height=64, max_steps=None, threads=None, renderers=None))]
    fn new(
        py: Python<'_>,
        task: &str,
        num_envs: usize,
        width: u32,
        height: u32,
        max_steps: Option<u32>,
        threads: Option<usize>,
        renderers: Option<usize>,
    ) -> PyResult<VectorSim> {
        let task: Task = task.parse().map_err(|e: sim::SimError| PyValueError::new_err(format!("task: {e}")))?;
        if !(1..=4096).contains(&num_envs) {
            return Err(PyValueError::new_err(format!("num_envs = {num_envs}: expected 1 to 4096")));
        }
        if threads == Some(0) {
            return Err(PyValueError::new_err("threads = 0: expected at least 1"));
        }
        if let Some(r) = renderers.filter(|r| !(1..=16).contains(r)) {
            return Err(PyValueError::new_err(format!("renderers = {r}: expected 1 to 16")));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let renderers = renderers.unwrap_or(cores.min(DEFAULT_MAX_RENDERERS)).min(num_envs);
        let mut config = EnvConfig::for_task(task);
        if let Some(m) = max_steps {
            config.max_steps = m;
        }
        config.validate().map_err(|e| PyValueError::new_err(format!("max_steps = {max_steps:?}: {e}")))?;
        let slots = num_envs.div_ceil(renderers).min(MAX_SLOTS);
        let render = RenderConfig { width, height, slots, ..RenderConfig::default() };
        render.validate().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let lanes = (0..num_envs)
            .map(|_| Env::new(config.clone()).map(|env| Lane { env, base_seed: None, episodes: 0, episode: None }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let renderer = no_panic("starting the renderer", || {
            py.detach(|| RenderPool::spawn(render, renderers)).map_err(PyRuntimeError::new_err)
        })?;
        let threads = threads.unwrap_or(cores).min(num_envs);
        let frame_bytes = (width * height * 3) as usize;
        Ok(VectorSim { task, lanes, renderer: Some(renderer), threads, frame_bytes })
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.lanes.len()
    }

    #[getter]
    fn task(&self) -> &'static str {
        self.task.name()
    }

    #[getter]
    fn max_steps(&self) -> u32 {
        self.lanes[0].env.config().max_steps
    }

    #[getter]
    fn renderers(&self) -> PyResult<usize> {
        Ok(self.renderer()?.renderers())
    }

    /// The graphics adapter drawing the frames (lavapipe on a machine without a GPU).
    #[getter]
    fn adapter(&self) -> PyResult<String> {
        Ok(self.renderer()?.adapter().to_string())
    }

    /// Begins a new episode in every environment. `seeds[i]`: a new base seed for environment
    /// `i`, or `None` to go on with its sequence of episodes.
    fn reset<'py>(&mut self, py: Python<'py>, seeds: Vec<Option<u64>>) -> PyResult<Bound<'py, PyDict>> {
        self.renderer()?;
        if seeds.len() != self.lanes.len() {
            return Err(PyValueError::new_err(format!(
                "seed: expected {} seeds (one per environment), got {}",
                self.lanes.len(),
                seeds.len()
            )));
        }
        for (i, (lane, seed)) in self.lanes.iter_mut().zip(&seeds).enumerate() {
            match (seed, lane.base_seed) {
                (Some(s), _) => (lane.base_seed, lane.episodes) = (Some(*s), 0),
                (None, Some(_)) => {}
                (None, None) => return Err(PyValueError::new_err(format!("seed[{i}]: the first reset needs a seed"))),
            }
        }
        let frames = no_panic("reset", || {
            py.detach(|| {
                let threads = self.threads;
                each_lane(&mut self.lanes, threads, |_, lane| {
                    lane.begin();
                    Ok(())
                })?;
                self.draw()
            })
            .map_err(PyRuntimeError::new_err)
        })?;
        self.batch(py, frames)
    }

    /// One control step of every environment; `actions` holds N × 2 float32 values.
    fn step<'py>(&mut self, py: Python<'py>, actions: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        self.started()?;
        let actions = parse_actions(actions, self.lanes.len())?;
        let frames = no_panic("step", || py.detach(|| self.advance(&actions)).map_err(PyRuntimeError::new_err))?;
        self.batch(py, frames)
    }

    /// The scripted expert's action for each environment's current state (N × 2 float32): it
    /// reads the simulator's privileged state, as `cupworld gen --policy expert` does.
    fn expert_actions<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.started()?;
        let actions: Vec<u8> =
            self.lanes.iter_mut().flat_map(|l| l.expert_action()).flat_map(f32::to_ne_bytes).collect();
        Ok(PyBytes::new(py, &actions))
    }

    /// Each environment's goal image for its current episode (N × H × W × 3 uint8), as the
    /// episode began: push-to-goal's cup standing on the goal disc with the paw where it started,
    /// knock-off's table without the cup (`sim::goal`).
    fn goal_images<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyByteArray>> {
        self.started()?;
        let scenes = self.lanes.iter().map(|l| l.episode.as_ref().expect("started").goal.clone()).collect();
        let frames = no_panic("goal_images", || {
            py.detach(|| self.renderer.as_ref().ok_or("the environment is closed")?.render(scenes))
                .map_err(PyRuntimeError::new_err)
        })?;
        PyByteArray::new_with(py, frames.len() * self.frame_bytes, |buf| {
            for (dst, src) in buf.chunks_exact_mut(self.frame_bytes).zip(&frames) {
                dst.copy_from_slice(src);
            }
            Ok(())
        })
    }

    /// Seconds for `steps` vector steps with fixed pseudo-random actions, all in Rust: the
    /// benchmark's measure of what the Python layer adds on top.
    fn time_native_steps(&mut self, py: Python<'_>, steps: usize) -> PyResult<f64> {
        self.started()?;
        let n = self.lanes.len();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = move || {
            // xorshift64*: cheap, and the same actions in every run.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let plan: Vec<Vec<[f32; 2]>> = (0..steps).map(|_| (0..n).map(|_| [uniform(), uniform()]).collect()).collect();
        no_panic("time_native_steps", || {
            py.detach(|| {
                let start = Instant::now();
                for actions in &plan {
                    std::hint::black_box(self.advance(actions)?);
                }
                Ok::<_, String>(start.elapsed().as_secs_f64())
            })
            .map_err(PyRuntimeError::new_err)
        })
    }

    /// Stops the render threads; later calls raise `RuntimeError`. Safe to call twice.
    fn close(&mut self, py: Python<'_>) {
        let renderer = self.renderer.take();
        py.detach(move || drop(renderer));
    }
}
