//! Scenes to frames in one call, for whoever needs pictures of snapshots it already has
//! (evaluation's VoE clips, the VoE datasets): batches of `slots` scenes per bevy update.

use types::{FrameTag, SceneSnapshot};

use crate::{RenderConfig, Renderer, Result};

/// Renders clips of scenes on one renderer: RGB8 frames (`size × size`, row-major) per clip, and
/// the graphics adapter's name.
pub fn render_clips_rgb(clips: &[&[SceneSnapshot]], size: u32) -> Result<(Vec<Vec<Vec<u8>>>, String)> {
    let mut renderer = Renderer::new(RenderConfig { width: size, height: size, ..Default::default() })?;
    let jobs: Vec<(usize, usize)> =
        clips.iter().enumerate().flat_map(|(c, s)| (0..s.len()).map(move |t| (c, t))).collect();
    let mut frames: Vec<Vec<Vec<u8>>> = clips.iter().map(|s| vec![vec![]; s.len()]).collect();
    let slots = renderer.config().slots;
    for batch in jobs.chunks(slots) {
        let scenes: Vec<(FrameTag, &SceneSnapshot)> =
            batch.iter().map(|&(c, t)| (FrameTag { episode: c as u64, step: t as u32 }, &clips[c][t])).collect();
        for (frame, &(c, t)) in renderer.render(&scenes)?.into_iter().zip(batch) {
            frames[c][t] = frame.rgb;
        }
    }
    Ok((frames, renderer.adapter().to_string()))
}
