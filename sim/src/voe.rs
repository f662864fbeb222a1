//! Violation-of-expectation pairs from the simulator (Garrido et al. 2025's protocol on our world).
//!
//! Each pair shares a seed and an action sequence: the *possible* twin is the episode as physics
//! plays it; the *impossible* twin is the same episode with one rule broken from the breaking
//! point `b` on. Frames before `b` are identical in both, so any difference in surprise comes from
//! the event alone.

use crate::{Actor, Env, EnvConfig, Info, PolicyKind, Result, SimError, Task, Violation, episode_seed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use types::SceneSnapshot;

pub use crate::Category;

/// A matched pair of episodes, as scenes to render.
pub struct VoePair {
    pub category: Category,
    pub seed: u64,
    /// Index (within the clip) of the first frame that differs.
    pub break_at: usize,
    pub actions: Vec<[f32; 2]>,
    pub possible: Vec<SceneSnapshot>,
    pub impossible: Vec<SceneSnapshot>,
}

/// Frames kept before the breaking point unless told otherwise: the context a prediction has.
/// At `frameskip` 4 sixteen frames give the first frames after the break four model steps of
/// context (with six, one: a model cannot know how fast the cup moves from one frame, and the
/// moving twin was the surprising one for that alone).
pub const DEFAULT_CONTEXT: usize = 16;
/// Frames kept after the breaking point.
pub const FRAMES_AFTER_BREAK: usize = 8;
/// The most context frames a pair may have (episodes must be longer than context + `FRAMES_AFTER_BREAK`).
pub const MAX_CONTEXT: usize = 40;

fn env_config(task: Task) -> EnvConfig {
    // Lingering after the fall shows the cup landing (and, in the impossible twin, hovering).
    EnvConfig { linger_steps: FRAMES_AFTER_BREAK as u32 + 2, ..EnvConfig::for_task(task) }
}

/// The possible episode: scenes (frame t is drawn before action t), actions, infos.
struct Trace {
    scenes: Vec<SceneSnapshot>,
    actions: Vec<[f32; 2]>,
    infos: Vec<Info>,
}

fn record(env: &mut Env, seed: u64) -> Result<Trace> {
    let (_, mut info) = env.reset(seed);
    let mut actor = Actor::new(PolicyKind::Expert, env.config().task, seed);
    let mut t = Trace { scenes: vec![], actions: vec![], infos: vec![] };
    loop {
        t.scenes.push(env.scene());
        t.infos.push(info.clone());
        let a = actor.act(&info);
        t.actions.push(a);
        let r = env.step(a)?;
        info = r.info;
        if r.terminated || r.truncated {
            return Ok(t);
        }
    }
}

/// Replays `actions` from `seed`, breaking physics from frame `b` on as `category` says.
fn replay_impossible(
    env: &mut Env,
    seed: u64,
    actions: &[[f32; 2]],
    b: usize,
    category: Category,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Vec<SceneSnapshot>>> {
    env.reset(seed);
    let mut scenes = vec![];
    let mut violation: Option<Violation> = None;
    for (t, &a) in actions.iter().enumerate() {
        if t == b {
            match Violation::begin(category, env, rng) {
                Some(v) => violation = Some(v),
                None => return Ok(None),
            }
        }
        let mut scene = env.scene();
        if let Some(v) = &violation {
            v.edit_scene(&mut scene);
        }
        scenes.push(scene);
        match env.step(a) {
            Ok(r) if r.terminated || r.truncated => break,
            Ok(_) => {}
            Err(SimError::EpisodeOver) => break,
            Err(e) => return Err(e.into()),
        }
        if let Some(v) = &violation {
            v.after_step(env);
        }
    }
    Ok(Some(scenes))
}

/// The breaking point for an episode with `context` frames before it, or None if this episode
/// cannot show the category well.
fn break_point(category: Category, trace: &Trace, context: usize, rng: &mut ChaCha8Rng) -> Option<usize> {
    let len = trace.scenes.len();
    if len < context + FRAMES_AFTER_BREAK + 3 {
        return None;
    }
    let b = match category {
        Category::Teleport | Category::Vanish | Category::Recolor => {
            let b = rng.random_range(context + 2..len - FRAMES_AFTER_BREAK);
            trace.infos[b].on_table.then_some(b)?
        }
        Category::PassThrough => {
            // The last frame before the pusher moves the cup.
            let start = trace.infos[0].cup.position;
            let moved = trace.infos.iter().position(|i| {
                let p = i.cup.position;
                ((p[0] - start[0]).powi(2) + (p[2] - start[2]).powi(2)).sqrt() > 0.003
            })?;
            moved.checked_sub(1)?
        }
        Category::Levitate => {
            // The first frame with the cup's centre past the edge, visible from the camera
            // (the table hides falls off its back edge).
            let b = trace.infos.iter().position(|i| !i.on_table)?;
            let i = &trace.infos[b];
            (i.cup.position[2] > -i.table_half_size[1] + 0.02).then_some(b)?
        }
    };
    (b >= context && b + FRAMES_AFTER_BREAK < len).then_some(b)
}

/// `per_category` pairs of each category with `context` frames before the breaking point and
/// `FRAMES_AFTER_BREAK` after it, deterministic in `base_seed` and `context`.
pub fn generate_pairs(
    per_category: usize,
    base_seed: u64,
    categories: &[Category],
    context: usize,
) -> Result<Vec<VoePair>> {
    if !(1..=MAX_CONTEXT).contains(&context) {
        return Err(SimError::Voe(format!(
            "VoE context {context}: expected 1 to {MAX_CONTEXT} frames before the breaking point"
        )));
    }
    let mut pairs = vec![];
    for &category in categories {
        let mut env = Env::new(env_config(category.task()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(base_seed ^ ((category as u64 + 1) * 0x9e37_79b9));
        let mut found = 0;
        let mut index = 0u64;
        while found < per_category {
            if index > 200 + 50 * per_category as u64 {
                return Err(SimError::Voe(format!(
                    "only {found} usable {} episodes in {index} seeds",
                    category.name()
                )));
            }
            let seed = episode_seed(base_seed.wrapping_add(category as u64 * 1_000_003), index);
            index += 1;
            let trace = record(&mut env, seed)?;
            let Some(b) = break_point(category, &trace, context, &mut rng) else { continue };
            let Some(impossible) = replay_impossible(&mut env, seed, &trace.actions, b, category, &mut rng)? else {
                continue;
            };
            let (from, to) = (b - context, b + FRAMES_AFTER_BREAK + 1);
            if impossible.len() < to {
                continue;
            }
            pairs.push(VoePair {
                category,
                seed,
                break_at: context,
                actions: trace.actions[from..to].to_vec(),
                possible: trace.scenes[from..to].to_vec(),
                impossible: impossible[from..to].to_vec(),
            });
            found += 1;
        }
    }
    Ok(pairs)
}

/// Pairwise accuracy and AUROC of surprise scores.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VoeScore {
    pub pairs: usize,
    /// Fraction of pairs whose possible twin is less surprising (ties count half).
    pub pairwise_accuracy: f64,
    /// Probability that an impossible clip scores above a possible one (all clips pooled).
    pub auroc: f64,
}

pub fn score(pairs: &[(f64, f64)]) -> VoeScore {
    let n = pairs.len();
    if n == 0 {
        return VoeScore::default();
    }
    let wins: f64 = pairs
        .iter()
        .map(|(p, i)| {
            if p < i {
                1.0
            } else if p == i {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    let mut auc = 0.0;
    for (p, _) in pairs {
        for (_, i) in pairs {
            auc += if p < i {
                1.0
            } else if p == i {
                0.5
            } else {
                0.0
            };
        }
    }
    VoeScore { pairs: n, pairwise_accuracy: wins / n as f64, auroc: auc / (n * n) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::ObjectKind;

    fn cup(s: &SceneSnapshot) -> Option<types::SceneObject> {
        s.find(ObjectKind::Cup).copied()
    }

    fn dist_xz(a: [f32; 3], b: [f32; 3]) -> f32 {
        ((a[0] - b[0]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    #[test]
    fn twins_match_before_the_break_and_break_one_rule_after() {
        let pairs = generate_pairs(3, 11, &Category::ALL, DEFAULT_CONTEXT).unwrap();
        assert_eq!(pairs.len(), 15);
        for p in &pairs {
            let b = p.break_at;
            assert_eq!(b, DEFAULT_CONTEXT);
            assert_eq!(p.possible.len(), DEFAULT_CONTEXT + FRAMES_AFTER_BREAK + 1);
            assert_eq!(p.impossible.len(), p.possible.len());
            assert_eq!(p.actions.len(), p.possible.len());
            assert_eq!(
                p.possible[..b],
                p.impossible[..b],
                "{:?} seed {}: twins differ before the break",
                p.category,
                p.seed
            );
            let differs = (b..p.possible.len()).any(|t| p.possible[t] != p.impossible[t]);
            assert!(differs, "{:?} seed {}: the impossible twin is not different", p.category, p.seed);
            let last = p.possible.len() - 1;
            match p.category {
                Category::Teleport => {
                    let jump = dist_xz(
                        cup(&p.impossible[b]).unwrap().pose.position,
                        cup(&p.impossible[b - 1]).unwrap().pose.position,
                    );
                    assert!(jump >= 0.10, "teleport of only {jump} m");
                    let step = dist_xz(
                        cup(&p.possible[b]).unwrap().pose.position,
                        cup(&p.possible[b - 1]).unwrap().pose.position,
                    );
                    assert!(step < 0.05, "the possible twin moved {step} m in one step");
                }
                Category::Vanish => {
                    assert!(p.impossible[b..].iter().all(|s| cup(s).is_none()));
                    assert!(p.possible[b..].iter().all(|s| cup(s).is_some()));
                }
                Category::Recolor => {
                    let (a, c) = (cup(&p.possible[b]).unwrap(), cup(&p.impossible[b]).unwrap());
                    assert_eq!(a.pose, c.pose);
                    assert!(a.color.iter().zip(c.color).map(|(x, y)| (x - y).abs()).sum::<f32>() > 0.3);
                }
                Category::Levitate => {
                    let y_b = cup(&p.possible[b]).unwrap().pose.position[1];
                    let held = cup(&p.impossible[last]).unwrap().pose.position[1];
                    let fell = cup(&p.possible[last]).unwrap().pose.position[1];
                    assert!((held - y_b).abs() < 0.01, "the impossible cup should hover at {y_b}, is at {held}");
                    assert!(fell < y_b - 0.2, "the possible cup should fall from {y_b}, is at {fell}");
                }
                Category::PassThrough => {
                    let start = cup(&p.impossible[b]).unwrap().pose.position;
                    for s in &p.impossible[b..] {
                        assert!(dist_xz(cup(s).unwrap().pose.position, start) < 0.002, "the held cup moved");
                    }
                    let moved = dist_xz(cup(&p.possible[last]).unwrap().pose.position, start);
                    assert!(moved > 0.01, "the possible cup should be pushed, moved {moved} m");
                    let overlap = p.impossible[b..]
                        .iter()
                        .any(|s| dist_xz(s.find(ObjectKind::Pusher).unwrap().pose.position, start) < 0.04);
                    assert!(overlap, "the pusher never entered the cup");
                }
            }
        }
    }

    /// The context is a choice of clip, not of pair: a shorter one cuts the same kind of pairs,
    /// and a context out of range is refused by name.
    #[test]
    fn context_sets_the_frames_before_the_break() {
        let pairs = generate_pairs(2, 11, &[Category::Vanish], 6).unwrap();
        assert!(pairs.iter().all(|p| p.break_at == 6 && p.possible.len() == 6 + FRAMES_AFTER_BREAK + 1));
        for bad in [0, MAX_CONTEXT + 1] {
            let e = generate_pairs(1, 11, &[Category::Vanish], bad).err().expect("refused").to_string();
            assert!(e.contains(&format!("VoE context {bad}")), "{e}");
        }
    }

    #[test]
    fn pairwise_accuracy_and_auroc() {
        let s = score(&[(0.1, 0.2), (0.3, 0.2), (0.1, 0.1)]);
        assert!((s.pairwise_accuracy - 0.5).abs() < 1e-12);
        let perfect = score(&[(0.1, 0.5), (0.2, 0.6)]);
        assert_eq!((perfect.pairwise_accuracy, perfect.auroc), (1.0, 1.0));
        let inverted = score(&[(0.5, 0.1), (0.6, 0.2)]);
        assert_eq!((inverted.pairwise_accuracy, inverted.auroc), (0.0, 0.0));
    }
}
