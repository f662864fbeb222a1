//! `bench plan`: what one replan costs. The world model's rollout of a batch of candidate plans
//! is the whole of it, so first that (imagined plans per second by batch size), then each solver
//! at its default budget. The model's weights do not change the time: a fresh model is timed.

use std::time::Instant;

use agent::planner::{LatentDynamics, Planner, PlannerConfig, Solver, WorldModelDynamics};
use anyhow::Result;

use crate::median_and_p90;
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use world_model::{LatentHistory, WmConfig, WorldModel};

#[derive(Serialize)]
struct BatchRate {
    batch: i64,
    ms: f64,
    plans_per_s: f64,
}

#[derive(Serialize)]
struct SolverTime {
    solver: String,
    imagined_per_replan: usize,
    replan_ms_median: f64,
    replan_ms_p90: f64,
}

#[derive(Serialize)]
struct PlanBench {
    cpu: String,
    threads: i32,
    preset: String,
    horizon: i64,
    rollout: Vec<BatchRate>,
    solvers: Vec<SolverTime>,
}

pub fn run(preset: &str, horizon: i64, repeats: usize, json: bool) -> Result<()> {
    let cfg = WmConfig::preset(preset)?;
    let mut model = WorldModel::new(&cfg, Device::Cpu)?;
    model.vs.freeze();
    // A planning context as an episode has it: the predictor's window of real frames.
    let mut history = LatentHistory::new(&cfg);
    let s = cfg.image_size;
    let frames = (cfg.clip_len - 1) * cfg.frameskip + 1;
    for _ in 0..frames {
        let frame = Tensor::randint(256, [3, s, s], (Kind::Uint8, Device::Cpu));
        model.observe(&mut history, &frame);
        if history.at_model_step() && history.len() as i64 == cfg.clip_len - 1 {
            break;
        }
        model.record_action(&mut history, [0.3, -0.2]);
    }
    let context = history.planning_context().expect("a model step");
    let dynamics = WorldModelDynamics(&model);
    let mut rollout = vec![];
    for batch in [1i64, 16, 64, 256] {
        let plans = Tensor::rand([batch, horizon, dynamics.action_width()], (Kind::Float, Device::Cpu));
        let times: Vec<f64> = (0..repeats + 1)
            .map(|_| {
                let t = Instant::now();
                let _ = tch::no_grad(|| dynamics.imagine(&context, &plans));
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(1)
            .collect();
        let ms = median_and_p90(times).0;
        rollout.push(BatchRate { batch, ms, plans_per_s: batch as f64 / ms * 1e3 });
    }
    let goal = tch::no_grad(|| model.encode_target(&Tensor::randint(256, [1, 3, s, s], (Kind::Uint8, Device::Cpu))))
        .squeeze_dim(0);
    let mut solvers = vec![];
    for name in ["cem", "mppi", "gd"] {
        let mut planner =
            Planner::new(PlannerConfig { horizon, solver: Solver::by_name(name)?, ..PlannerConfig::default() })?;
        let mut times = vec![];
        let mut imagined = 0;
        for _ in 0..repeats + 1 {
            let t = Instant::now();
            let plan = planner.plan(&dynamics, &context, &goal)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            imagined = plan.evaluations;
            planner.shift(1);
        }
        let (median, p90) = median_and_p90(times[1..].to_vec());
        solvers.push(SolverTime {
            solver: name.into(),
            imagined_per_replan: imagined,
            replan_ms_median: median,
            replan_ms_p90: p90,
        });
    }
    let report = PlanBench {
        cpu: datagen::host::cpu(),
        threads: tch::get_num_threads(),
        preset: preset.into(),
        horizon,
        rollout,
        solvers,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} ({} libtorch threads), preset {preset}, horizon {horizon} model steps", report.cpu, report.threads);
    println!("rollout of a batch of plans (the planner's inner loop):");
    for r in &report.rollout {
        println!("  batch {:>4}: {:>8.1} ms, {:>8.0} plans/s", r.batch, r.ms, r.plans_per_s);
    }
    println!("one replan at each solver's default budget:");
    for s in &report.solvers {
        println!(
            "  {:<5} {:>5} plans imagined, median {:>7.1} ms, p90 {:>7.1} ms",
            s.solver, s.imagined_per_replan, s.replan_ms_median, s.replan_ms_p90
        );
    }
    Ok(())
}
