//! Counterfactual views: the same moment drawn with the cup somewhere else.
//!
//! The world model's encoder is trained to tell a frame from its counterfactual (`gen
//! --counterfactual`, `loss.counterfactual` in the world model's config). Only the simulator can
//! make such a pair: everything in the frame is identical except where the cup is, so the one way to
//! tell them apart is to see the cup. No label says where the cup is; the pair only says "not here".

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use types::{ObjectKind, SceneSnapshot};

use crate::Info;

/// The default range of how far the cup is moved, in metres (uniform). The lower end is about
/// one cup diameter. The graded term (`loss.counterfactual_metric`) asks latent distances to grow
/// with the shift, so the shifts span much of the table: with 3–10 cm the probe on the encoder it
/// trained read 0.77 / 0.83, with 3–25 cm 0.95 / 0.93 (experiments/2026-11-29-encoder-first).
pub const DISPLACEMENT: [f32; 2] = [0.03, 0.25];

/// The RNG of step `step` of the episode with seed `episode_seed`: a counterfactual depends only on
/// where it is in the data, not on which thread drew it.
pub fn rng_for(episode_seed: u64, step: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(episode_seed ^ (0xC0FF_EE00_0000_0000 | step as u64))
}

/// `scene` with its cup moved `range[0]`–`range[1]` metres along the table plane (height and tilt
/// kept), clear of the pusher; a cup on the table stays on the table, a falling or fallen one stays within 15 cm of
/// the table's footprint. Returns the edited scene and the cup's new position, or `None` when no
/// spot was found in 64 draws or the scene has no cup.
pub fn displaced_cup(
    scene: &SceneSnapshot,
    info: &Info,
    range: [f32; 2],
    rng: &mut ChaCha8Rng,
) -> Option<(SceneSnapshot, [f32; 3])> {
    let [hw, hd] = info.table_half_size;
    let (limit_x, limit_z) = if info.on_table {
        let margin = info.cup_radius + 0.01;
        (hw - margin, hd - margin)
    } else {
        (hw + 0.15, hd + 0.15)
    };
    let clearance = info.cup_radius + info.pusher_half_extents[0].max(info.pusher_half_extents[2]) + 0.01;
    if !scene.objects.iter().any(|o| o.kind == ObjectKind::Cup) {
        return None;
    }
    for _ in 0..64 {
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let dist = rng.random_range(range[0]..range[1]);
        let mut p = info.cup.position;
        p[0] += dist * angle.cos();
        p[2] += dist * angle.sin();
        let pusher = info.pusher.position;
        let clear = ((p[0] - pusher[0]).powi(2) + (p[2] - pusher[2]).powi(2)).sqrt() > clearance;
        if p[0].abs() < limit_x && p[2].abs() < limit_z && clear {
            let mut edited = scene.clone();
            for o in edited.objects.iter_mut().filter(|o| o.kind == ObjectKind::Cup) {
                o.pose.position = p;
            }
            return Some((edited, p));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Env, EnvConfig, Task};

    /// Every counterfactual moves only the cup, by 3–25 cm in the table plane, keeps an on-table
    /// cup on the table and away from the pusher, and is the same for the same (seed, step).
    #[test]
    fn moves_only_the_cup_within_range() {
        let mut env = Env::new(EnvConfig::for_task(Task::PushToGoal)).unwrap();
        let mut found = 0;
        for seed in 0..20 {
            env.reset(seed);
            let scene = env.scene();
            let info = env.current_info();
            let Some((edited, p)) = displaced_cup(&scene, &info, DISPLACEMENT, &mut rng_for(seed, 0)) else { continue };
            found += 1;
            let again = displaced_cup(&scene, &info, DISPLACEMENT, &mut rng_for(seed, 0)).unwrap();
            assert_eq!(again.1, p, "same (seed, step), same counterfactual");
            let c = info.cup.position;
            let d = ((p[0] - c[0]).powi(2) + (p[2] - c[2]).powi(2)).sqrt();
            assert!((DISPLACEMENT[0]..=DISPLACEMENT[1]).contains(&d), "moved {d} m");
            assert_eq!(p[1], c[1], "height kept");
            assert!(p[0].abs() < info.table_half_size[0] && p[2].abs() < info.table_half_size[1]);
            for (a, b) in scene.objects.iter().zip(&edited.objects) {
                if a.kind == ObjectKind::Cup {
                    assert_eq!(b.pose.position, p);
                    assert_eq!(a.pose.rotation, b.pose.rotation);
                } else {
                    assert_eq!(a.pose.position, b.pose.position, "{:?} moved", a.kind);
                }
            }
        }
        assert!(found >= 18, "only {found} of 20 scenes had a spot for the cup");
    }
}
