//! The planner's solvers on dynamics whose answer is known: a point that moves by the actions
//! (its latent is where it is), so the plan that reaches a goal is known exactly.

use agent::planner::{
    CemConfig, Cost, Energy, EnergyDistance, GdConfig, LatentDynamics, MppiConfig, Planner, PlannerConfig, Solver,
    mppi_weights,
};
use tch::{Device, Kind, Tensor};
use world_model::PlanningContext;

/// A point in `W` dimensions that each model step moves by `0.1 ×` its action: latents `[1, W]`.
struct Integrator {
    width: i64,
}

impl LatentDynamics for Integrator {
    fn action_width(&self) -> i64 {
        self.width
    }

    fn imagine(&self, context: &PlanningContext, plans: &Tensor) -> Tensor {
        let c = context.latents.size()[0];
        let last = context.targets.select(0, c - 1); // [1, W]
        let path = plans.cumsum(1, Kind::Float) * 0.1; // [N, H, W]
        path.unsqueeze(2) + last.unsqueeze(0).unsqueeze(0)
    }
}

fn context(at: &[f32]) -> PlanningContext {
    let w = at.len() as i64;
    let z = Tensor::from_slice(at).view([1, 1, w]);
    PlanningContext { latents: z.copy(), targets: z, actions: Tensor::zeros([0, w], (Kind::Float, Device::Cpu)) }
}

fn planner(solver: Solver, seed: u64) -> Planner {
    let energy = Energy { cost: Cost::Latent, distance: EnergyDistance::Squared, along_horizon: false };
    Planner::new(PlannerConfig { horizon: 4, solver, energy, action_bound: 1.0, hold: false, seed }).unwrap()
}

fn goal(at: &[f32]) -> Tensor {
    Tensor::from_slice(at).view([1, at.len() as i64])
}

/// Where the plan's imagined path ends.
fn end(plan: &agent::planner::Plan) -> Vec<f32> {
    Vec::<f32>::try_from(plan.imagined.select(0, plan.imagined.size()[0] - 1).flatten(0, -1)).unwrap()
}

#[test]
fn cem_and_mppi_find_the_plan_that_reaches_the_goal() {
    // The goal is 0.25 away on each axis: reachable (4 steps × 0.1 = 0.4 at most), and not by a
    // plan near zero, so a solver that returned its start would fail.
    let (from, to) = ([0.0f32, 0.0, 0.0], [0.25f32, -0.25, 0.1]);
    let dynamics = Integrator { width: 3 };
    for solver in [
        Solver::Cem(CemConfig { samples: 256, elites: 16, iterations: 6, ..CemConfig::default() }),
        Solver::Mppi(MppiConfig { samples: 256, elites: 32, iterations: 6, ..MppiConfig::default() }),
    ] {
        let name = solver.name();
        let mut p = planner(solver, 1);
        let start_energy = 0.25f64.powi(2) * 2.0 / 3.0 + 0.01 / 3.0;
        let plan = p.plan(&dynamics, &context(&from), &goal(&to)).unwrap();
        assert!(plan.energy < start_energy * 0.02, "{name}: energy {} (from {start_energy})", plan.energy);
        let at = end(&plan);
        for (a, b) in at.iter().zip(to) {
            assert!((a - b).abs() < 0.03, "{name} ends at {at:?}, goal {to:?}");
        }
        let actions = Vec::<f32>::try_from(plan.actions.flatten(0, -1)).unwrap();
        assert!(actions.iter().all(|a| a.abs() <= 1.0), "{name}: an action beyond the bound");
    }
}

#[test]
fn mppi_weights_sum_to_one_and_favour_low_energy() {
    let e = Tensor::from_slice(&[0.5f32, 0.1, 0.9, 0.2, 0.3]);
    let (idx, w) = mppi_weights(&e, 0.1, 3);
    assert_eq!(Vec::<i64>::try_from(&idx).unwrap(), vec![1, 3, 4], "the three lowest, lowest first");
    let w = Vec::<f32>::try_from(&w).unwrap();
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{w:?}");
    assert!(w[0] > w[1] && w[1] > w[2], "{w:?}");
    // A higher temperature spreads the weight.
    let (_, flat) = mppi_weights(&e, 10.0, 3);
    let flat = Vec::<f32>::try_from(&flat).unwrap();
    assert!(flat[0] < w[0] && flat[0] - flat[2] < 0.01, "{flat:?}");
}

#[test]
fn gradient_descent_lowers_the_energy() {
    let dynamics = Integrator { width: 2 };
    let (from, to) = ([0.0f32, 0.0], [0.2f32, 0.3]);
    let ctx = context(&from);
    let zero_energy = (0.2f64.powi(2) + 0.3f64.powi(2)) / 2.0;
    let mut p = planner(Solver::Gd(GdConfig { restarts: 1, steps: 30, lr: 0.1, init_std: 0.0 }), 0);
    let plan = p.plan(&dynamics, &ctx, &goal(&to)).unwrap();
    assert!(plan.energy < zero_energy * 0.05, "gradient descent: {} from {zero_energy}", plan.energy);
    assert_eq!(plan.evaluations, 32, "30 steps, the final scoring and the planner's own");
}

#[test]
fn the_next_plan_starts_from_the_shifted_last_one() {
    let dynamics = Integrator { width: 2 };
    let mut p = planner(Solver::Cem(CemConfig::default()), 3);
    let plan = p.plan(&dynamics, &context(&[0.0, 0.0]), &goal(&[0.3, 0.1])).unwrap();
    assert!(p.warm_start().unwrap().equal(&plan.actions));
    p.shift(1);
    let warm = p.warm_start().unwrap();
    assert!(warm.narrow(0, 0, 3).equal(&plan.actions.narrow(0, 1, 3)), "the executed step left the front");
    assert_eq!(warm.select(0, 3).abs().sum(Kind::Float).double_value(&[]), 0.0, "the new tail starts at zero");
    p.reset(0);
    assert!(p.warm_start().is_none());
}

#[test]
fn one_seed_gives_one_plan_and_another_seed_another() {
    let dynamics = Integrator { width: 2 };
    let ctx = context(&[0.0, 0.0]);
    let g = goal(&[0.2, -0.1]);
    for solver in
        [Solver::Cem(CemConfig::default()), Solver::Mppi(MppiConfig::default()), Solver::Gd(GdConfig::default())]
    {
        let name = solver.name();
        let a = planner(solver.clone(), 7).plan(&dynamics, &ctx, &g).unwrap().actions;
        let b = planner(solver.clone(), 7).plan(&dynamics, &ctx, &g).unwrap().actions;
        let c = planner(solver, 8).plan(&dynamics, &ctx, &g).unwrap().actions;
        assert!(a.equal(&b), "{name}: one seed, two plans");
        assert!(!a.equal(&c), "{name}: two seeds, one plan (the randomness is not used)");
    }
}

/// Dynamics that imagine NaN from some action on.
struct Broken;

impl LatentDynamics for Broken {
    fn action_width(&self) -> i64 {
        2
    }

    fn imagine(&self, _: &PlanningContext, plans: &Tensor) -> Tensor {
        (plans.cumsum(1, Kind::Float) * f64::NAN).unsqueeze(2)
    }
}

#[test]
fn bad_goals_configs_and_non_finite_energies_are_refused_by_name() {
    let mut p = planner(Solver::Cem(CemConfig::default()), 0);
    let e = p.plan(&Integrator { width: 2 }, &context(&[0.0, 0.0]), &goal(&[0.1, 0.2, 0.3])).unwrap_err();
    assert!(e.to_string().contains("goal latents [1, 3]") && e.to_string().contains("[1, 2]"), "{e}");
    let e = p.plan(&Broken, &context(&[0.0, 0.0]), &goal(&[0.1, 0.2])).unwrap_err();
    assert!(e.to_string().contains("non-finite plan"), "{e}");
    for (cfg, key) in [
        (PlannerConfig { horizon: 0, ..PlannerConfig::default() }, "horizon"),
        (PlannerConfig { action_bound: f64::NAN, ..PlannerConfig::default() }, "action_bound"),
        (
            PlannerConfig {
                solver: Solver::Cem(CemConfig { elites: 100, ..CemConfig::default() }),
                ..Default::default()
            },
            "elites",
        ),
        (
            PlannerConfig {
                solver: Solver::Mppi(MppiConfig { temperature: 0.0, ..MppiConfig::default() }),
                ..Default::default()
            },
            "temperature",
        ),
    ] {
        let e = Planner::new(cfg).err().expect("refused").to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}

/// The integrator with blocks of two frames' actions (frameskip 2 of 2-D actions).
struct Blocks;

impl LatentDynamics for Blocks {
    fn action_width(&self) -> i64 {
        4
    }

    fn imagine(&self, context: &PlanningContext, plans: &Tensor) -> Tensor {
        let (n, h) = (plans.size()[0], plans.size()[1]);
        let per_frame = plans.view([n, h, 2, 2]).sum_dim_intlist(&[2i64][..], false, Kind::Float);
        Integrator { width: 2 }.imagine(context, &per_frame)
    }
}

#[test]
fn held_actions_repeat_across_the_block_and_still_reach_the_goal() {
    let cfg = PlannerConfig { horizon: 4, hold: true, ..PlannerConfig::default() };
    let mut p = Planner::new(cfg).unwrap();
    let plan = p.plan(&Blocks, &context(&[0.0, 0.0]), &goal(&[0.3, -0.2])).unwrap();
    assert_eq!(plan.actions.size(), [4, 4]);
    assert!(plan.actions.narrow(1, 0, 2).equal(&plan.actions.narrow(1, 2, 2)), "{}", plan.actions);
    assert_eq!(p.warm_start().unwrap().size(), [4, 2], "the search space is one action per model step");
    assert!(plan.energy < 0.01, "held actions: energy {}", plan.energy);
}
