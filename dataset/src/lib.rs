//! `dataset`: LeRobot v3.0 datasets on disk, plus what LeRobot lacks (manifest, verify, merge).
//!
//! - [`schema`]: feature table, Arrow schemas, file paths.
//! - [`writer`]: [`DatasetWriter`], episode by episode; the manifest is the commit point.
//! - [`stats`], `meta/stats.json`.
//! - [`manifest`]: sha256 of every file, seeds, tool versions, render adapter.
//! - [`reader`]: read episodes back, [`verify`], [`merge`].
//! - [`compare`]: two datasets column by column (`dataset verify --against`).

pub mod compare;
pub mod manifest;
pub mod reader;
pub mod schema;
pub mod stats;
pub mod writer;

use std::path::{Path, PathBuf};

pub use compare::{Comparison, Difference, compare};
pub use manifest::{Manifest, ManifestMeta};
pub use reader::{VerifyReport, for_each_episode, merge, verify};
pub use writer::{DatasetInfo, DatasetWriter, EpisodeRecord, FrameRow};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: parquet: {1}")]
    Parquet(PathBuf, String),
    #[error("{0}: corrupt: {1}")]
    Corrupt(PathBuf, String),
    #[error("{0}: no manifest.json, so the dataset is incomplete (interrupted, or not a cupworld dataset)")]
    Incomplete(PathBuf),
    #[error("{0}: directory is not empty; choose a new --out or remove it")]
    NotEmpty(PathBuf),
    #[error("{0}: fails verification: {1}")]
    VerifyFailed(PathBuf, String),
    #[error("invalid data: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DatasetError>;

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> DatasetError {
    DatasetError::Io(path.to_path_buf(), e)
}

/// Encodes RGB8 pixels as PNG (fast settings; deterministic for equal input).
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::with_capacity(rgb.len() / 2);
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
    .map_err(|e| DatasetError::Invalid(format!("PNG encoding: {e}")))?;
    Ok(out)
}

/// Decodes a PNG that must be `width` × `height` RGB8.
pub fn decode_png(bytes: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, String> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(|e| format!("PNG: {e}"))?;
    if img.width() != width || img.height() != height {
        return Err(format!("image is {}x{}, expected {width}x{height}", img.width(), img.height()));
    }
    Ok(img.to_rgb8().into_raw())
}
