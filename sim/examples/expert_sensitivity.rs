//! How learnable the scripted expert is from rough perception: its success and episode length,
//! and how far its action moves when the paw's and the cup's positions are off by Gaussian noise
//! of `sigma` metres (the floor of a cloned policy's error if it sees the state that roughly).
//!
//!     cargo run --example expert_sensitivity -- [episodes a task, 200] [sigma, 0.015]
//!
//! Sensitivity is split by where the paw is: touching the cup (within 3.5 cm of its side), near
//! it (within 12 cm of its centre), or far.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim::policy::gaussian;
use sim::{Actor, Env, EnvConfig, Info, PolicyKind, Task, episode_seed};

fn main() {
    let mut args = std::env::args().skip(1);
    let episodes: u64 = args.next().map_or(200, |s| s.parse().expect("episodes: a whole number"));
    let sigma: f32 = args.next().map_or(0.015, |s| s.parse().expect("sigma: metres"));
    for task in [Task::PushToGoal, Task::KnockOff] {
        let mut env = Env::new(EnvConfig::for_task(task)).expect("the default config is valid");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut wins, mut length, mut steps, mut speed, mut square) = (0u64, 0u64, 0u64, 0f64, 0f64);
        // Per region: squared action change with the paw moved, with the cup moved, and steps.
        let mut regions = [[0f64; 3]; 3];
        for i in 0..episodes {
            let seed = episode_seed(0, i);
            let (_, mut info) = env.reset(seed);
            let mut actor = Actor::new(PolicyKind::Expert, task, seed);
            let mut success = false;
            loop {
                let region = region(&info);
                // On clones, so an expert with a mode kept between steps is asked in the same mode.
                let a = actor.clone().act(&info);
                for moved in 0..2 {
                    let mut noisy = info.clone();
                    let p = if moved == 0 { &mut noisy.pusher.position } else { &mut noisy.cup.position };
                    p[0] += sigma * gaussian(&mut rng);
                    p[2] += sigma * gaussian(&mut rng);
                    let b = actor.clone().act(&noisy);
                    regions[region][moved] += ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)) as f64;
                }
                regions[region][2] += 1.0;
                let a = actor.act(&info);
                speed += (a[0] * a[0] + a[1] * a[1]).sqrt() as f64;
                square += (a[0] * a[0] + a[1] * a[1]) as f64;
                steps += 1;
                let r = env.step(a).expect("the expert's actions are finite");
                success |= r.info.success;
                info = r.info;
                if r.terminated || r.truncated {
                    break;
                }
            }
            length += info.step as u64;
            wins += success as u64;
        }
        let total: f64 = regions.iter().map(|r| (r[0] + r[1]) / 2.0).sum::<f64>() / steps as f64;
        println!(
            "{task:?}: success {wins}/{episodes}, mean length {:.1}, mean |action| {:.2}, mean |action|² {:.2}, \
             E|a(s + noise) - a(s)|² {total:.3} (sigma {sigma} m)",
            length as f64 / episodes as f64,
            speed / steps as f64,
            square / steps as f64,
        );
        for (r, name) in regions.iter().zip(["touching", "near", "far"]) {
            println!(
                "  {name}: {:.0}% of steps, paw moved {:.3}, cup moved {:.3}",
                100.0 * r[2] / steps as f64,
                r[0] / r[2].max(1.0),
                r[1] / r[2].max(1.0)
            );
        }
    }
}

fn region(info: &Info) -> usize {
    let dx = info.pusher.position[0] - info.cup.position[0];
    let dz = info.pusher.position[2] - info.cup.position[2];
    let d = (dx * dx + dz * dz).sqrt();
    if d < info.cup_radius + 0.035 {
        0
    } else if d < 0.12 {
        1
    } else {
        2
    }
}
