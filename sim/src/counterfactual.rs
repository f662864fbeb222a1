//! Counterfactual views: the same moment drawn with the cup and the pusher somewhere else.
//!
//! The world model's encoder is trained to tell a frame from its counterfactual (`gen
//! --counterfactual`, `loss.counterfactual` in the world model's config). Only the simulator can
//! make such a pair: everything in the frame is identical except where the cup and the pusher are,
//! so the one way to tell them apart is to see them. No label says where they are; the pair only
//! says "not here", and how far away (the graded term).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use types::{ObjectKind, SceneSnapshot};

use crate::Info;

/// The default range of how far the cup is moved, in metres (uniform). The lower end is about
/// one cup diameter. The graded term (`loss.graded`) asks latent distances to grow
/// with the shift, so the shifts span much of the table: with 3–10 cm the probe on the encoder it
/// trained read 0.77 / 0.83, with 3–25 cm 0.95 / 0.93 (experiments/2026-11-29-encoder-first).
pub const DISPLACEMENT: [f32; 2] = [0.03, 0.25];

/// What a counterfactual view moves, and how far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Displacement {
    /// How far each object moves, `[min, max]` metres (uniform).
    pub range: [f32; 2],
}

impl Default for Displacement {
    fn default() -> Self {
        Displacement { range: DISPLACEMENT }
    }
}

/// The RNG of step `step` of the episode with seed `episode_seed`: a counterfactual depends only on
/// where it is in the data, not on which thread drew it.
pub fn rng_for(episode_seed: u64, step: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(episode_seed ^ (0xC0FF_EE00_0000_0000 | step as u64))
}

/// `scene` with its cup moved `how.range[0]`–`how.range[1]` metres along the table plane (height and tilt
/// kept), clear of the pusher; a cup on the table stays on the table, a falling or fallen one stays
/// within 15 cm of the table's footprint. Then the pusher is moved the same way (another draw),
/// over the table and clear of the moved cup; where no spot is found in 64 draws it stays.
/// Returns the edited scene, the cup's new position and the pusher's new
/// table-plane (x, z), or `None` when no spot for the cup was found in 64 draws or the scene has
/// no cup.
///
/// Why the pusher too: moving only the cup, the encoder kept the cup (probe R² 0.84) but not the
/// paw (0.37 / 0.23), and a predictor cannot foresee a push without knowing where the paw is.
pub fn displaced_objects(
    scene: &SceneSnapshot,
    info: &Info,
    how: Displacement,
    rng: &mut ChaCha8Rng,
) -> Option<(SceneSnapshot, [f32; 3], [f32; 2])> {
    let range = how.range;
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
    let plane = |p: [f32; 3]| [p[0], p[2]];
    let (cup, here) = (plane(info.cup.position), plane(info.pusher.position));
    let [x, z] = draw_spot(cup, range, [limit_x, limit_z], here, clearance, rng)?;
    let p = [x, info.cup.position[1], z];
    let q = draw_spot(here, range, [hw, hd], [x, z], clearance, rng).unwrap_or(here);
    let mut edited = scene.clone();
    for o in edited.objects.iter_mut() {
        match o.kind {
            ObjectKind::Cup => o.pose.position = p,
            ObjectKind::Pusher => (o.pose.position[0], o.pose.position[2]) = (q[0], q[1]),
            _ => {}
        }
    }
    Some((edited, p, q))
}

/// A table-plane spot `range` metres from `from` in a uniformly drawn direction, within
/// `|x| < limit[0]`, `|z| < limit[1]` and more than `clearance` from `avoid`; `None` when 64 draws
/// found none.
fn draw_spot(
    from: [f32; 2],
    range: [f32; 2],
    limit: [f32; 2],
    avoid: [f32; 2],
    clearance: f32,
    rng: &mut ChaCha8Rng,
) -> Option<[f32; 2]> {
    for _ in 0..64 {
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let dist = rng.random_range(range[0]..range[1]);
        let q = [from[0] + dist * angle.cos(), from[1] + dist * angle.sin()];
        let clear = ((q[0] - avoid[0]).powi(2) + (q[1] - avoid[1]).powi(2)).sqrt() > clearance;
        if q[0].abs() < limit[0] && q[1].abs() < limit[1] && clear {
            return Some(q);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Env, EnvConfig, Task};

    /// Every counterfactual moves the cup and the pusher, each by 3–25 cm in the table plane (the
    /// pusher at its height), keeps an on-table cup on the table, the pusher over it and the two
    /// apart, changes nothing else, and is the same for the same (seed, step).
    #[test]
    fn moves_the_cup_and_the_pusher_within_range() {
        let mut env = Env::new(EnvConfig::for_task(Task::PushToGoal)).unwrap();
        let (mut found, mut pusher_moved) = (0, 0);
        for seed in 0..20 {
            env.reset(seed);
            let scene = env.scene();
            let info = env.current_info();
            let Some((edited, p, q)) = displaced_objects(&scene, &info, Displacement::default(), &mut rng_for(seed, 0))
            else {
                continue;
            };
            found += 1;
            let again = displaced_objects(&scene, &info, Displacement::default(), &mut rng_for(seed, 0)).unwrap();
            assert_eq!((again.1, again.2), (p, q), "same (seed, step), same counterfactual");
            let here = info.pusher.position;
            let moved = ((q[0] - here[0]).powi(2) + (q[1] - here[2]).powi(2)).sqrt();
            if moved > 0.0 {
                pusher_moved += 1;
                assert!((DISPLACEMENT[0]..=DISPLACEMENT[1]).contains(&moved), "pusher moved {moved} m");
            }
            assert!(q[0].abs() < info.table_half_size[0] && q[1].abs() < info.table_half_size[1]);
            let apart = ((q[0] - p[0]).powi(2) + (q[1] - p[2]).powi(2)).sqrt();
            assert!(apart > info.cup_radius, "pusher {q:?} inside the cup at {p:?}");
            let c = info.cup.position;
            let d = ((p[0] - c[0]).powi(2) + (p[2] - c[2]).powi(2)).sqrt();
            assert!((DISPLACEMENT[0]..=DISPLACEMENT[1]).contains(&d), "moved {d} m");
            assert_eq!(p[1], c[1], "height kept");
            assert!(p[0].abs() < info.table_half_size[0] && p[2].abs() < info.table_half_size[1]);
            for (a, b) in scene.objects.iter().zip(&edited.objects) {
                if a.kind == ObjectKind::Cup {
                    assert_eq!(b.pose.position, p);
                    assert_eq!(a.pose.rotation, b.pose.rotation);
                } else if a.kind == ObjectKind::Pusher {
                    assert_eq!(b.pose.position, [q[0], a.pose.position[1], q[1]]);
                    assert_eq!(a.pose.rotation, b.pose.rotation);
                } else {
                    assert_eq!(a.pose.position, b.pose.position, "{:?} moved", a.kind);
                }
            }
        }
        assert!(found >= 18, "only {found} of 20 scenes had a spot for the cup");
        assert!(pusher_moved >= 18, "the pusher moved in only {pusher_moved} of {found} scenes");
    }
}
