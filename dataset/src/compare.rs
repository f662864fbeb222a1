//! Two datasets compared episode by episode and column by column (`dataset verify --against`):
//! seeded generation promises the same data for the same seeds, and this is how a user checks it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::writer::{EpisodeRecord, FrameRow};
use crate::{DatasetError, Result, for_each_episode};

/// Where two datasets first differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// Episode index (in both datasets' order).
    pub episode: u64,
    /// Frame within the episode; `None` for a per-episode column (seed, policy, length, …).
    pub frame: Option<u64>,
    /// The column, as LeRobot names it (`image`, `action`, `observation.state`, …).
    pub column: String,
    pub left: String,
    pub right: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.frame {
            Some(frame) => write!(f, "episode {} frame {} column {}: ", self.episode, frame, self.column)?,
            None => write!(f, "episode {} column {}: ", self.episode, self.column)?,
        }
        write!(f, "{} vs {}", self.left, self.right)
    }
}

/// What [`compare`] found.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub left: PathBuf,
    pub right: PathBuf,
    /// Episodes compared (those both datasets hold).
    pub episodes: u64,
    /// Frames compared.
    pub frames: u64,
    /// Frames with any column different, and of those, frames whose image differs.
    pub frames_differing: u64,
    pub images_differing: u64,
    /// The largest difference of one image channel value, over all frames (0..=255).
    pub max_pixel_difference: u8,
    /// The first difference in episode, frame and column order; `None` when identical.
    pub first: Option<Difference>,
}

impl Comparison {
    pub fn identical(&self) -> bool {
        self.first.is_none()
    }
}

/// Compares every episode of `left` and `right` (both verified first: a corrupt dataset is an
/// error, not a difference): the episode columns, then each frame's columns and image bytes.
pub fn compare(left: &Path, right: &Path) -> Result<Comparison> {
    for root in [left, right] {
        let report = crate::verify(root);
        if !report.ok() {
            return Err(DatasetError::VerifyFailed(root.to_path_buf(), report.problems.join("; ")));
        }
    }
    let mut c = Comparison {
        left: left.to_path_buf(),
        right: right.to_path_buf(),
        episodes: 0,
        frames: 0,
        frames_differing: 0,
        images_differing: 0,
        max_pixel_difference: 0,
        first: None,
    };
    // The left dataset streams from a thread, one episode ahead, so neither is held whole.
    let (tx, rx) = std::sync::mpsc::sync_channel::<EpisodeRecord>(1);
    let left_owned = left.to_path_buf();
    let reader = std::thread::spawn(move || for_each_episode(&left_owned, |e| tx.send(e).map_err(|_| stop())));
    let mut right_count = 0u64;
    let walked = for_each_episode(right, |r| {
        right_count += 1;
        let Ok(l) = rx.recv() else {
            return Ok(()); // left has fewer episodes: counted below
        };
        compare_episode(&mut c, &l, &r);
        Ok(())
    });
    let left_count = c.episodes + rx.iter().count() as u64;
    drop(rx);
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) if !is_stop(&e) => return Err(e),
        Ok(Err(_)) => {}
        Err(_) => return Err(DatasetError::Invalid(format!("{}: the reading thread failed", left.display()))),
    }
    walked?;
    if left_count != right_count && c.first.is_none() {
        c.first = Some(Difference {
            episode: c.episodes,
            frame: None,
            column: "episodes".into(),
            left: format!("{left_count} episodes"),
            right: format!("{right_count} episodes"),
        });
    }
    Ok(c)
}

fn stop() -> DatasetError {
    DatasetError::Invalid("comparison stopped".into())
}

fn is_stop(e: &DatasetError) -> bool {
    matches!(e, DatasetError::Invalid(m) if m == "comparison stopped")
}

fn compare_episode(c: &mut Comparison, l: &EpisodeRecord, r: &EpisodeRecord) {
    let episode = c.episodes;
    c.episodes += 1;
    let mut note = |frame: Option<u64>, column: &str, left: String, right: String| {
        if c.first.is_none() {
            c.first = Some(Difference { episode, frame, column: column.into(), left, right });
        }
    };
    let episode_columns = [
        ("seed", l.seed.to_string(), r.seed.to_string()),
        ("policy", l.policy.clone(), r.policy.clone()),
        ("success", l.success.to_string(), r.success.to_string()),
        ("length", l.rows.len().to_string(), r.rows.len().to_string()),
    ];
    for (column, a, b) in episode_columns {
        if a != b {
            note(None, column, a, b);
        }
    }
    if l.episode_return.to_bits() != r.episode_return.to_bits() {
        note(None, "episode_return", l.episode_return.to_string(), r.episode_return.to_string());
    }
    for (k, (a, b)) in l.rows.iter().zip(&r.rows).enumerate() {
        c.frames += 1;
        let mut differs = false;
        for (column, x, y) in differing_columns(a, b) {
            differs = true;
            note(Some(k as u64), column, x, y);
        }
        if a.rgb != b.rgb {
            differs = true;
            c.images_differing += 1;
            let max = a.rgb.iter().zip(&b.rgb).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
            c.max_pixel_difference = c.max_pixel_difference.max(max);
            let (left, right) = match a.rgb.iter().zip(&b.rgb).position(|(p, q)| p != q) {
                Some(i) => (format!("byte {i} = {}", a.rgb[i]), format!("{}", b.rgb[i])),
                None => (format!("{} bytes", a.rgb.len()), format!("{} bytes", b.rgb.len())),
            };
            note(Some(k as u64), "image", left, right);
        }
        c.frames_differing += u64::from(differs);
    }
}

/// The non-image columns that differ between two frames, as exact text (floats by their bits:
/// -0 ≠ 0, NaN = NaN). Text is made only for a column that differs: most frames have none.
fn differing_columns(a: &FrameRow, b: &FrameRow) -> Vec<(&'static str, String, String)> {
    let same = |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
    let text = |v: &[f32]| v.iter().map(|x| format!("{x:?} ({:#010x})", x.to_bits())).collect::<Vec<_>>().join(", ");
    let (s, t) = (&a.transition, &b.transition);
    let floats: [(&'static str, &[f32], &[f32]); 5] = [
        ("timestamp", &[s.timestamp], &[t.timestamp]),
        ("observation.state", &s.state, &t.state),
        ("observation.environment_state", &s.environment_state, &t.environment_state),
        ("action", &s.action, &t.action),
        ("next.reward", &[s.reward], &[t.reward]),
    ];
    let mut out = vec![];
    if s.tag.step != t.tag.step {
        out.push(("frame_index", s.tag.step.to_string(), t.tag.step.to_string()));
    }
    for (column, x, y) in floats {
        if !same(x, y) {
            out.push((column, text(x), text(y)));
        }
    }
    for (column, x, y) in [("next.done", s.done, t.done), ("next.success", s.success, t.success)] {
        if x != y {
            out.push((column, x.to_string(), y.to_string()));
        }
    }
    out
}
