//! Contact sheets: a grid of frames from a dataset (rows = episodes, columns = evenly spaced steps).

use std::path::Path;

use anyhow::{Context, Result, bail};

pub fn write_contact_sheet(data: &Path, out: &Path, episodes: usize, frames: usize, scale: u32) -> Result<()> {
    if episodes == 0 || frames == 0 || scale == 0 {
        bail!("--episodes, --frames and --scale must be positive");
    }
    let mut rows: Vec<Vec<Vec<u8>>> = vec![];
    let (mut w, mut h) = (0, 0);
    let manifest = dataset::Manifest::read(data)?;
    (w, h) = (manifest.info.width.max(w), manifest.info.height.max(h));
    let result = dataset::for_each_episode(data, |ep| {
        if rows.len() < episodes {
            let n = ep.rows.len();
            let picks: Vec<usize> =
                (0..frames).map(|i| if frames == 1 { 0 } else { i * (n - 1) / (frames - 1) }).collect();
            rows.push(picks.into_iter().map(|i| ep.rows[i].rgb.clone()).collect());
        }
        Ok(())
    });
    result.with_context(|| format!("reading {}", data.display()))?;
    let gap = 2;
    let (cw, ch) = (w * scale + gap, h * scale + gap);
    let mut sheet = image::RgbImage::from_pixel(
        cw * frames as u32 + gap,
        ch * rows.len() as u32 + gap,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, rgb) in row.iter().enumerate() {
            for y in 0..h * scale {
                for x in 0..w * scale {
                    let i = (((y / scale) * w + x / scale) * 3) as usize;
                    let px = image::Rgb([rgb[i], rgb[i + 1], rgb[i + 2]]);
                    sheet.put_pixel(gap + c as u32 * cw + x, gap + r as u32 * ch + y, px);
                }
            }
        }
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    sheet.save(out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
