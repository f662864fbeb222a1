//! How precisely must an agent see the scene to act as the scripted expert does? The expert's
//! success when the paw's, the cup's and the goal's positions it reads are off by Gaussian noise
//! of `sigma` metres on each axis: drawn afresh every step (a jittery detector), or once per
//! episode (a biased one, the same error all along). Velocities, sizes and the table stay exact.
//!
//!     cargo run --example expert_under_noise -- [episodes a task, 100] [sigmas in cm, 0,0.5,1,2,3,5]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim::policy::gaussian;
use sim::{Actor, Env, EnvConfig, Info, PolicyKind, Task, episode_seed};

fn main() {
    let mut args = std::env::args().skip(1);
    let episodes: u64 = args.next().map_or(100, |s| s.parse().expect("episodes: a whole number"));
    let sigmas: Vec<f32> = args.next().map_or(vec![0.0, 0.5, 1.0, 2.0, 3.0, 5.0], |s| {
        s.split(',').map(|x| x.parse().expect("sigmas: centimetres, comma-separated")).collect()
    });
    println!("task, noise, sigma (cm), success, mean final distance to the goal (cm, push-to-goal)");
    for task in [Task::PushToGoal, Task::KnockOff] {
        let mut env = Env::new(EnvConfig::for_task(task)).expect("the default config is valid");
        for &sigma_cm in &sigmas {
            for per_step in [true, false] {
                let sigma = sigma_cm / 100.0;
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                let (mut wins, mut distance) = (0u64, 0f64);
                for i in 0..episodes {
                    let seed = episode_seed(0, i);
                    let (_, mut info) = env.reset(seed);
                    let mut actor = Actor::new(PolicyKind::Expert, task, seed);
                    let mut bias = [0f32; 6];
                    let draw =
                        |rng: &mut ChaCha8Rng, b: &mut [f32; 6]| b.iter_mut().for_each(|x| *x = sigma * gaussian(rng));
                    draw(&mut rng, &mut bias);
                    let mut success = false;
                    loop {
                        if per_step {
                            draw(&mut rng, &mut bias);
                        }
                        let a = actor.act(&seen(&info, &bias));
                        let r = env.step(a).expect("the expert's actions are finite");
                        success |= r.info.success;
                        info = r.info;
                        if r.terminated || r.truncated {
                            break;
                        }
                    }
                    wins += success as u64;
                    distance += info.goal_distance() as f64;
                }
                let noise = if per_step { "every step" } else { "per episode" };
                let d = if task == Task::PushToGoal { 100.0 * distance / episodes as f64 } else { f64::NAN };
                println!("{task:?}, {noise}, {sigma_cm}, {wins}/{episodes}, {d:.1}");
            }
        }
    }
}

/// The state as a detector off by `e` (paw x, z, cup x, z, goal x, z) would report it.
fn seen(info: &Info, e: &[f32; 6]) -> Info {
    let mut s = info.clone();
    s.pusher.position[0] += e[0];
    s.pusher.position[2] += e[1];
    s.cup.position[0] += e[2];
    s.cup.position[2] += e[3];
    s.goal[0] += e[4];
    s.goal[1] += e[5];
    s
}
