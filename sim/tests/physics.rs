//! Physical laws the scene must obey. Each test states the law it checks.

use sim::{Env, EnvConfig, Task};
use types::Pose;

const G: f32 = 9.81;

fn env(task: Task) -> Env {
    Env::new(EnvConfig::for_task(task)).unwrap()
}

/// A cup released from rest in free fall drops `½ g t²` (symplectic Euler at 240 Hz is within 1%).
#[test]
fn free_fall_matches_half_g_t_squared() {
    let mut env = env(Task::PushToGoal);
    let (_, info) = env.reset(7);
    let x = info.table_half_size[0] + 0.8; // well clear of the table
    let y0 = 2.5;
    env.set_cup_pose(Pose::at([x, y0, 0.0]));
    let steps = 120; // 0.5 s
    env.advance_physics(steps);
    let t = steps as f32 / env.config().physics_hz as f32;
    let drop = y0 - env.current_info().cup.position[1];
    let expected = 0.5 * G * t * t;
    assert!((drop - expected).abs() / expected < 0.01, "dropped {drop} m in {t} s, expected {expected} m");
    // No sideways drift in free fall.
    let [cx, _, cz] = env.current_info().cup.position;
    assert!((cx - x).abs() < 1e-4 && cz.abs() < 1e-4);
}

/// A cup at rest on the table, untouched, stays where it is (static friction and contact hold it).
#[test]
fn cup_at_rest_on_table_stays_at_rest() {
    for seed in 0..5 {
        let mut env = env(Task::PushToGoal);
        let (_, before) = env.reset(seed);
        env.advance_physics(2 * 240);
        let after = env.current_info();
        let moved: f32 = (0..3).map(|i| (after.cup.position[i] - before.cup.position[i]).powi(2)).sum::<f32>().sqrt();
        assert!(moved < 1e-3, "seed {seed}: resting cup moved {moved} m");
        assert!(after.upright && after.on_table && !after.fallen);
        let speed: f32 = after.cup_linvel.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(speed < 1e-3, "seed {seed}: resting cup has speed {speed}");
    }
}

/// A squat cup sliding on the table decelerates by Coulomb friction and stops after about
/// `v² / (2 μ g)`, with μ the mean of the cup's and the table's friction (rapier's default rule).
/// Squat (μ·h/2 far below r) so that friction cannot rock it: a tall cup near the tipping
/// threshold rocks on its rim and stops sooner, in rapier as in life.
#[test]
fn sliding_cup_stops_after_v_squared_over_two_mu_g() {
    let cfg = EnvConfig {
        cup_radius: sim::Range::new(0.045, 0.045),
        cup_height: sim::Range::new(0.06, 0.06),
        ..EnvConfig::for_task(Task::PushToGoal)
    };
    let mut env = Env::new(cfg).unwrap();
    let (_, info) = env.reset(3);
    let params = env.scene_params().unwrap().clone();
    let mu = (params.cup_friction + env.config().table_friction) / 2.0;
    let v0 = 0.6;
    // Start at the table's left side sliding right, away from the pusher if it is in the way.
    let start = [-info.table_half_size[0] + 0.15, info.cup.position[1], 0.0];
    env.set_cup_pose(Pose::at(start));
    env.set_pusher_xz([0.0, -info.table_half_size[1]]); // out of the way
    env.advance_physics(1); // settle contacts at the new place
    env.set_cup_velocity([v0, 0.0, 0.0]);
    env.advance_physics(240 * 2);
    let end = env.current_info();
    let slid = end.cup.position[0] - start[0];
    let expected = v0 * v0 / (2.0 * mu * G);
    assert!(end.cup_linvel.iter().all(|v| v.abs() < 1e-3), "cup still moving: {:?}", end.cup_linvel);
    assert!(
        (slid - expected).abs() / expected < 0.25,
        "slid {slid} m, Coulomb friction predicts {expected} m (mu {mu})"
    );
    assert!(end.upright && end.on_table);
}

/// The pusher moves the cup: driving the paw into it transfers motion (the cup is not a ghost),
/// and the cup ends displaced in the push direction.
#[test]
fn pushed_cup_slides_in_push_direction() {
    let mut env = env(Task::PushToGoal);
    let (_, info) = env.reset(11);
    let cup = info.cup.position;
    // Put the paw just left of the cup, then push right for one second.
    let gap = info.cup_radius + info.pusher_half_extents[0] + 0.01;
    env.set_pusher_xz([cup[0] - gap, cup[2]]);
    let mut last = env.current_info();
    for _ in 0..10 {
        last = env.step([0.5, 0.0]).unwrap().info;
    }
    let dx = last.cup.position[0] - cup[0];
    let dz = (last.cup.position[2] - cup[2]).abs();
    // The paw travelled 0.15 m; minus the initial gap the cup moves about 0.14 m.
    assert!(dx > 0.08, "cup moved only {dx} m along the push");
    assert!(dz < 0.05, "cup veered {dz} m sideways");
}

/// A cup pushed past the table's edge falls to the floor.
#[test]
fn cup_pushed_past_edge_falls() {
    let mut env = env(Task::KnockOff);
    let (_, info) = env.reset(5);
    let edge = info.table_half_size[0];
    env.set_cup_pose(Pose::at([edge - 0.02, info.cup.position[1], 0.0]));
    env.set_pusher_xz([edge - 0.02 - info.cup_radius - 0.03, 0.0]);
    let mut fell = false;
    for _ in 0..30 {
        let r = env.step([1.0, 0.0]).unwrap();
        if r.info.fallen {
            fell = true;
            assert!(r.terminated && r.info.success, "knock-off succeeds when the cup falls");
            break;
        }
    }
    assert!(fell, "cup never fell: {:?}", env.current_info().cup);
}
