//! The planner with perfect dynamics: its "latents" are the true state (the cup's and the
//! pusher's places on the table), imagined by running the simulator itself. Given the goal-frame
//! protocol's goals it reaches them, so the planner, its energy and its receding horizon are
//! right, and what the world-model agent misses is the world model's.

use std::cell::RefCell;

use agent::planner::{CemConfig, Cost, Energy, EnergyDistance, LatentDynamics, Planner, PlannerConfig, Solver};
use sim::{Actor, Env, EnvConfig, Info, PolicyKind, Task, episode_seed};
use tch::{Kind, Tensor};
use world_model::PlanningContext;

const FRAMESKIP: usize = 4;

fn state(info: &Info) -> [f32; 4] {
    [info.cup.position[0], info.cup.position[2], info.pusher.position[0], info.pusher.position[2]]
}

/// The simulator as dynamics: each candidate runs from the current state.
struct TrueDynamics {
    env: RefCell<Env>,
    now: sim::EnvSnapshot,
}

impl LatentDynamics for TrueDynamics {
    fn action_width(&self) -> i64 {
        2 * FRAMESKIP as i64
    }

    fn imagine(&self, _: &PlanningContext, plans: &Tensor) -> Tensor {
        let (n, h) = (plans.size()[0], plans.size()[1]);
        let plans = Vec::<f32>::try_from(plans.to_kind(Kind::Float).flatten(0, -1)).unwrap();
        let mut env = self.env.borrow_mut();
        let mut out = Vec::with_capacity((n * h * 4) as usize);
        for plan in plans.chunks((h * self.action_width()) as usize) {
            env.restore(&self.now);
            let mut info = env.current_info();
            let mut over = false;
            for block in plan.chunks(2 * FRAMESKIP) {
                for a in block.chunks(2) {
                    // Past the episode's end the state stays as it ended.
                    if !over {
                        let r = env.step([a[0], a[1]]).unwrap();
                        over = r.terminated || r.truncated;
                        info = r.info;
                    }
                }
                out.extend_from_slice(&state(&info));
            }
        }
        Tensor::from_slice(&out).view([n, h, 1, 4])
    }
}

#[test]
fn with_the_true_state_as_latents_the_planner_reaches_goal_frames() {
    let task = Task::PushToGoal;
    let mut env = Env::new(EnvConfig::for_task(task)).unwrap();
    let cfg = PlannerConfig {
        horizon: 5,
        solver: Solver::Cem(CemConfig { samples: 48, elites: 6, iterations: 3, ..CemConfig::default() }),
        energy: Energy { cost: Cost::Latent, distance: EnergyDistance::L1, along_horizon: false },
        action_bound: 1.0,
        hold: false,
        seed: 0,
    };
    let (mut tried, mut reached) = (0, 0);
    for index in 0..12 {
        if tried == 3 {
            break;
        }
        // An expert episode; the pair starts where the cup moves at least 3 cm in the next 20 steps.
        let seed = episode_seed(77, index);
        let (_, mut info) = env.reset(seed);
        let mut actor = Actor::new(PolicyKind::Expert, task, seed);
        let (mut infos, mut actions) = (vec![info.clone()], vec![]);
        loop {
            let a = actor.act(&info);
            let r = env.step(a).unwrap();
            actions.push(a);
            info = r.info;
            infos.push(info.clone());
            if r.terminated || r.truncated {
                break;
            }
        }
        let cup = |i: &Info| [i.cup.position[0], i.cup.position[2]];
        let moved = |t: usize| sim::goal::cup_distance(&infos[t], cup(&infos[t + 20])) >= 0.03;
        let Some(start) = (0..infos.len().saturating_sub(20)).find(|&t| moved(t) && infos[t + 20].upright) else {
            continue;
        };
        tried += 1;
        let goal_state = state(&infos[start + 20]);
        let goal = Tensor::from_slice(&goal_state).view([1, 4]);
        let (_, mut info) = env.reset(seed);
        for &a in &actions[..start] {
            info = env.step(a).unwrap().info;
        }
        let mut planner = Planner::new(cfg.clone()).unwrap();
        let mut success = false;
        let mut imagining = Env::new(EnvConfig::for_task(task)).unwrap();
        imagining.reset(seed);
        let mut dynamics = TrueDynamics { env: RefCell::new(imagining), now: env.snapshot() };
        for _ in 0..50 / FRAMESKIP {
            dynamics.now = env.snapshot();
            let now = Tensor::from_slice(&state(&info)).view([1, 1, 4]);
            let context = PlanningContext {
                latents: now.copy(),
                targets: now,
                actions: Tensor::zeros([0, 2 * FRAMESKIP as i64], (Kind::Float, tch::Device::Cpu)),
            };
            let plan = planner.plan(&dynamics, &context, &goal).unwrap();
            let block = Vec::<f32>::try_from(plan.actions.select(0, 0)).unwrap();
            let mut over = false;
            for a in block.chunks(2) {
                let r = env.step([a[0], a[1]]).unwrap();
                info = r.info;
                success |= sim::goal::cup_distance(&info, cup(&infos[start + 20])) <= 0.03 && info.upright;
                over = r.terminated || r.truncated;
                if over {
                    break;
                }
            }
            if over {
                break;
            }
            planner.shift(1);
        }
        reached += success as usize;
    }
    assert_eq!(tried, 3, "three goal-frame pairs");
    assert!(reached >= 2, "the planner with perfect dynamics reached {reached} of 3 goal frames");
}
