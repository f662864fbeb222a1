//! `cupworld voe`: the violation-of-expectation pairs that `eval-wm` scores, written to disk, so
//! that any model can be scored on the same pairs (`cupworld surprise`, or a user's own model in
//! Python), as IntPhys ships its clips. Layout of the output directory:
//!
//! - `possible/` and `impossible/`: two LeRobot datasets with one episode per pair, in the same
//!   order (episode i of each is pair i's twin), the frames exactly as `eval-wm` renders them;
//! - `pairs.json`: per pair, its category, seed and breaking point (the first frame that differs).
//!
//! The directory is written under `<out>.partial` and renamed when complete, so an interrupted run
//! leaves no half-written pairs; a rerun starts again, and a complete directory is kept.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dataset::{DatasetInfo, DatasetWriter, EpisodeRecord, FrameRow, ManifestMeta};
use serde::{Deserialize, Serialize};
use types::{FrameTag, ObjectKind, SceneSnapshot, Transition};

use sim::voe::{Category, FRAMES_AFTER_BREAK, VoePair, generate_pairs};

/// Control steps per second of the pairs' episodes (the simulator's default).
const FPS: u32 = 10;

pub struct VoeDataOptions {
    pub out: PathBuf,
    pub pairs_per_category: usize,
    pub seed: u64,
    pub categories: Vec<Category>,
    pub size: u32,
    /// Frames before the breaking point (`eval-wm --voe-context`).
    pub context: usize,
}

/// One line of `pairs.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairEntry {
    /// The episode index of this pair's twins in `possible/` and `impossible/`.
    pub episode: usize,
    pub category: String,
    pub seed: u64,
    /// Index of the first frame that differs between the twins.
    pub break_at: usize,
    pub frames: usize,
}

#[derive(Debug, Serialize)]
pub struct VoeDataSummary {
    pub out: PathBuf,
    pub pairs: usize,
    pub frames_per_twin: usize,
    pub render_adapter: String,
    /// True when `out` already held a complete set and nothing was written.
    pub skipped: bool,
}

pub fn run(opts: &VoeDataOptions) -> Result<VoeDataSummary> {
    if opts.pairs_per_category == 0 {
        bail!("--pairs 0: at least one pair per category");
    }
    if !(1..=sim::voe::MAX_CONTEXT).contains(&opts.context) {
        bail!("--context {}: expected 1 to {} frames before the breaking point", opts.context, sim::voe::MAX_CONTEXT);
    }
    let out = &opts.out;
    if out.join("pairs.json").exists() {
        let pairs = read_pairs(out)?;
        if let Some(p) = pairs.iter().find(|p| p.break_at != opts.context) {
            bail!(
                "{}: holds pairs with {} frames before the break (pair {}), not the --context {} asked for; \
                 give another --out",
                out.display(),
                p.break_at,
                p.episode,
                opts.context
            );
        }
        return Ok(VoeDataSummary {
            out: out.clone(),
            pairs: pairs.len(),
            frames_per_twin: pairs.first().map_or(0, |p| p.frames),
            render_adapter: String::new(),
            skipped: true,
        });
    }
    if out.exists() && std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?.next().is_some() {
        bail!(
            "{}: exists and is not a complete `cupworld voe` output (no pairs.json); give an empty or new directory",
            out.display()
        );
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing the interrupted {}", partial.display()))?;
    }

    let pairs = generate_pairs(opts.pairs_per_category, opts.seed, &opts.categories, opts.context)?;
    let clips: Vec<&[SceneSnapshot]> =
        pairs.iter().flat_map(|p| [p.possible.as_slice(), p.impossible.as_slice()]).collect();
    let (frames, adapter) = render::render_clips_rgb(&clips, opts.size)?;

    for (twin, name) in ["possible", "impossible"].into_iter().enumerate() {
        let info = DatasetInfo {
            fps: FPS,
            task: format!("violation-of-expectation pairs, the {name} twins"),
            width: opts.size,
            height: opts.size,
            robot_type: "cupworld-pusher".into(),
        };
        let mut writer = DatasetWriter::create(&partial.join(name), info)?;
        for (i, p) in pairs.iter().enumerate() {
            let scenes = if twin == 0 { &p.possible } else { &p.impossible };
            let rows = scenes
                .iter()
                .zip(&frames[2 * i + twin])
                .enumerate()
                .map(|(t, (_, rgb))| FrameRow { transition: transition(p, scenes, i, t), rgb: rgb.clone() })
                .collect();
            writer.write_episode(&EpisodeRecord {
                seed: p.seed,
                policy: "expert".into(),
                success: false,
                episode_return: 0.0,
                rows,
            })?;
        }
        writer.finish(ManifestMeta {
            task: format!("voe-{name}"),
            policy: "expert".into(),
            base_seed: opts.seed,
            episode_offset: 0,
            total_episodes_planned: pairs.len() as u64,
            shard_index: 0,
            num_shards: 1,
            tools: crate::tool_versions(),
            render_adapter: adapter.clone(),
            env_config: serde_json::json!({
                "voe": {
                    "seed": opts.seed,
                    "pairs_per_category": opts.pairs_per_category,
                    "categories": opts.categories.iter().map(|c| c.name()).collect::<Vec<_>>(),
                    "frames_before_break": opts.context,
                    "frames_after_break": FRAMES_AFTER_BREAK,
                },
                "camera": types::CameraSpec::default(),
                "camera_mount": sim::EnvConfig::default().camera_mount,
                "scene_version": sim::SCENE_VERSION,
            }),
        })?;
    }
    let entries: Vec<PairEntry> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| PairEntry {
            episode: i,
            category: p.category.name().into(),
            seed: p.seed,
            break_at: p.break_at,
            frames: p.possible.len(),
        })
        .collect();
    let json = serde_json::to_string_pretty(&entries)?;
    std::fs::write(partial.join("pairs.json"), json).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    Ok(VoeDataSummary {
        out: out.clone(),
        pairs: pairs.len(),
        frames_per_twin: opts.context + FRAMES_AFTER_BREAK + 1,
        render_adapter: adapter,
        skipped: false,
    })
}

/// `pairs.json` of a `cupworld voe` directory.
fn read_pairs(dir: &Path) -> Result<Vec<PairEntry>> {
    let path = dir.join("pairs.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a list of pairs", path.display()))
}

/// Frame `t` of pair `i`'s twin `scenes`, as a dataset row. The state is read off the
/// scene as drawn: the pusher's position and its velocity since the previous frame, the cup's
/// pose and the goal marker's place (0, 0 without one, as the simulator writes for knock-off). A
/// cup the impossible twin does not draw (vanish) is where the simulator still has it, the possible
/// twin's cup.
fn transition(p: &VoePair, scenes: &[SceneSnapshot], i: usize, t: usize) -> Transition {
    let scene = &scenes[t];
    let pusher = |s: &SceneSnapshot| s.find(ObjectKind::Pusher).map_or([0.0; 3], |o| o.pose.position);
    let now = pusher(scene);
    let before = if t == 0 { now } else { pusher(&scenes[t - 1]) };
    let cup = scene.find(ObjectKind::Cup).or_else(|| p.possible[t].find(ObjectKind::Cup)).map(|o| o.pose);
    let cup = cup.unwrap_or(types::Pose::IDENTITY);
    let goal = scene.find(ObjectKind::GoalMarker).map_or([0.0; 3], |o| o.pose.position);
    let fps = FPS as f32;
    Transition {
        tag: FrameTag { episode: i as u64, step: t as u32 },
        timestamp: t as f32 / fps,
        state: vec![now[0], now[2], (now[0] - before[0]) * fps, (now[2] - before[2]) * fps],
        environment_state: vec![
            cup.position[0],
            cup.position[1],
            cup.position[2],
            cup.rotation[0],
            cup.rotation[1],
            cup.rotation[2],
            cup.rotation[3],
            goal[0],
            goal[2],
        ],
        action: p.actions[t],
        reward: 0.0,
        done: t + 1 == p.possible.len(),
        success: false,
    }
}
