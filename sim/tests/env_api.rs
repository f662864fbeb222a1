//! The Gymnasium-shaped contract: seeding, determinism, snapshots, bad input, experts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{Env, EnvConfig, PolicyKind, SimError, Task, episode_seed, run_episode};
use types::Pose;

/// Runs 1,000 control steps of seeded random actions (resetting with the next seed whenever an
/// episode ends) and returns the final state hash.
fn hash_after_1000_steps(seed: u64) -> u64 {
    let mut env = Env::new(EnvConfig { max_steps: 400, ..EnvConfig::for_task(Task::KnockOff) }).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut episode = 0;
    env.reset(seed);
    for _ in 0..1000 {
        let a = [rng.random_range(-1.0..=1.0), rng.random_range(-1.0..=1.0)];
        let r = env.step(a).unwrap();
        if r.terminated || r.truncated {
            episode += 1;
            env.reset(seed + episode);
        }
    }
    env.state_hash()
}

#[test]
fn same_seed_and_actions_give_identical_state_hash() {
    let a = hash_after_1000_steps(42);
    let b = hash_after_1000_steps(42);
    assert_eq!(a, b);
    assert_ne!(a, hash_after_1000_steps(43), "different seeds must give different states");
}

/// The same hash from two fresh processes: this test re-runs its own binary as a child.
#[test]
fn same_seed_gives_identical_state_hash_across_processes() {
    if std::env::var("CUPWORLD_HASH_CHILD").is_ok() {
        println!("HASH={}", hash_after_1000_steps(42));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let child_hash = || {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "same_seed_gives_identical_state_hash_across_processes", "--nocapture"])
            .env("CUPWORLD_HASH_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("HASH=")).expect("child printed no hash");
        line[5..].parse::<u64>().unwrap()
    };
    let (first, second) = (child_hash(), child_hash());
    assert_eq!(first, second);
    assert_eq!(first, hash_after_1000_steps(42));
}

#[test]
fn reset_with_same_seed_gives_same_observation() {
    let mut env = Env::new(EnvConfig::default()).unwrap();
    let (o1, i1) = env.reset(9);
    env.step([1.0, 0.3]).unwrap();
    let (o2, i2) = env.reset(9);
    assert_eq!(o1, o2);
    assert_eq!(i1, i2);
    let (o3, _) = env.reset(10);
    assert_ne!(o1, o3, "another seed draws another scene");
}

#[test]
fn snapshot_restore_replays_the_same_trajectory() {
    let mut env = Env::new(EnvConfig { max_steps: 1000, ..EnvConfig::default() }).unwrap();
    env.reset(5);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..30 {
        env.step([rng.random_range(-1.0..=1.0), rng.random_range(-1.0..=1.0)]).unwrap();
    }
    let snap = env.snapshot();
    let actions: Vec<[f32; 2]> = (0..100).map(|_| [rng.random_range(-1.0..=1.0), 0.5]).collect();
    let run = |env: &mut Env| -> Vec<u64> {
        let mut hashes = vec![];
        for a in &actions {
            let r = env.step(*a).unwrap();
            hashes.push(env.state_hash());
            if r.terminated || r.truncated {
                break;
            }
        }
        hashes
    };
    let first = run(&mut env);
    env.restore(&snap);
    let second = run(&mut env);
    assert!(first.len() > 10);
    assert_eq!(first, second);
}

#[test]
fn non_finite_action_is_rejected_with_a_clear_error() {
    let mut env = Env::new(EnvConfig::default()).unwrap();
    env.reset(0);
    let err = env.step([0.0, f32::NAN]).unwrap_err();
    assert!(matches!(err, SimError::NonFiniteAction { index: 1, .. }));
    assert!(err.to_string().contains("action[1]"), "{err}");
    assert!(matches!(env.step([f32::INFINITY, 0.0]), Err(SimError::NonFiniteAction { index: 0, .. })));
    // The episode is still usable.
    env.step([0.1, 0.1]).unwrap();
}

#[test]
fn step_before_reset_and_after_end_are_errors() {
    let mut env = Env::new(EnvConfig { max_steps: 2, ..EnvConfig::default() }).unwrap();
    assert!(matches!(env.step([0.0, 0.0]), Err(SimError::NotReset)));
    env.reset(0);
    env.step([0.0, 0.0]).unwrap();
    let r = env.step([0.0, 0.0]).unwrap();
    assert!(r.truncated && !r.terminated);
    assert!(matches!(env.step([0.0, 0.0]), Err(SimError::EpisodeOver)));
}

#[test]
fn diverged_state_truncates_the_episode_with_a_flag() {
    let mut env = Env::new(EnvConfig::default()).unwrap();
    env.reset(0);
    env.set_cup_pose(Pose::at([f32::NAN, 1.0, 0.0]));
    let r = env.step([0.0, 0.0]).unwrap();
    assert!(r.truncated && !r.terminated && r.info.diverged && !r.info.success);

    env.reset(1);
    env.set_cup_pose(Pose::at([0.0, 500.0, 0.0]));
    let r = env.step([0.0, 0.0]).unwrap();
    assert!(r.truncated && r.info.diverged);
}

#[test]
fn invalid_config_names_the_key() {
    let err = Env::new(EnvConfig { control_hz: 7, ..EnvConfig::default() }).err().unwrap();
    assert!(err.to_string().contains("control_hz"), "{err}");
    let mut cfg = EnvConfig::default();
    cfg.cup_mass.min = -1.0;
    let err = Env::new(cfg).err().unwrap();
    assert!(err.to_string().contains("cup_mass"), "{err}");
}

fn success_rate(task: Task, kind: PolicyKind, episodes: u64) -> f64 {
    let mut env = Env::new(EnvConfig::for_task(task)).unwrap();
    let wins = (0..episodes)
        .filter(|&i| run_episode(&mut env, kind, episode_seed(0, i), |_, _, _| {}).unwrap().success)
        .count();
    wins as f64 / episodes as f64
}

#[test]
fn push_to_goal_expert_succeeds_in_95_percent_of_200_episodes() {
    let rate = success_rate(Task::PushToGoal, PolicyKind::Expert, 200);
    assert!(rate >= 0.95, "push-to-goal expert success {rate}");
}

#[test]
fn knock_off_expert_succeeds_in_95_percent_of_200_episodes() {
    let rate = success_rate(Task::KnockOff, PolicyKind::Expert, 200);
    assert!(rate >= 0.95, "knock-off expert success {rate}");
}

#[test]
fn random_policy_rarely_succeeds_at_push_to_goal() {
    let rate = success_rate(Task::PushToGoal, PolicyKind::Random, 50);
    assert!(rate < 0.3, "random policy success {rate}: the task would be trivial");
}

#[test]
fn episode_seeds_do_not_depend_on_sharding() {
    // The seed is a pure function of (base, global index).
    assert_eq!(episode_seed(7, 123), episode_seed(7, 123));
    let seeds: std::collections::HashSet<u64> = (0..1000).map(|i| episode_seed(7, i)).collect();
    assert_eq!(seeds.len(), 1000);
    assert_ne!(episode_seed(7, 0), episode_seed(8, 0));
}

#[test]
fn linger_steps_show_the_cup_landing_after_it_falls() {
    let run = |linger: u32| {
        let mut env = Env::new(EnvConfig { linger_steps: linger, ..EnvConfig::for_task(Task::KnockOff) }).unwrap();
        let seed = sim::episode_seed(5, 0);
        let (_, mut info) = env.reset(seed);
        let mut actor = sim::Actor::new(PolicyKind::Expert, Task::KnockOff, seed);
        let (mut steps, mut fell_at, mut returns) = (0u32, None, 0.0);
        loop {
            let r = env.step(actor.act(&info)).unwrap();
            steps += 1;
            returns += r.reward;
            if r.info.fallen && fell_at.is_none() {
                fell_at = Some(steps);
            }
            info = r.info;
            if r.terminated || r.truncated {
                assert!(r.terminated && info.success, "the expert should knock the cup off");
                return (steps, fell_at.unwrap(), info.cup.position[1], info.table_top_y, returns);
            }
        }
    };
    let (steps0, fell0, _, _, ret0) = run(0);
    assert_eq!(steps0, fell0, "without lingering the episode ends at the fall");
    let (steps, fell, y, top, ret) = run(8);
    assert_eq!(fell, fell0);
    assert_eq!(steps, fell + 8, "the episode goes on 8 steps after the fall");
    assert!(y < top - 0.3, "after 0.8 s the cup should be far below the table top ({y} vs {top})");
    assert!((ret - ret0).abs() < 5.0, "the success bonus is paid once ({ret0} → {ret})");
}
