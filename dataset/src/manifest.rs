//! `manifest.json`: what LeRobot lacks. The sha256 of every file, the seeds, tool versions and
//! the render adapter. Written last: a dataset (or shard) without one is incomplete.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::schema::MANIFEST_PATH;
use crate::writer::DatasetInfo;
use crate::{DatasetError, Result, io_err};

pub const MANIFEST_FORMAT: &str = "cupworld-manifest-v1";

/// Size and digest of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub bytes: u64,
    pub sha256: String,
}

/// Where the episodes came from (given by the generator).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestMeta {
    pub task: String,
    pub policy: String,
    pub base_seed: u64,
    /// Global index of this dataset's first episode (non-zero for shards after the first).
    pub episode_offset: u64,
    /// Episodes in the whole (unsharded) dataset.
    pub total_episodes_planned: u64,
    pub shard_index: u32,
    pub num_shards: u32,
    /// Tool name → version.
    pub tools: BTreeMap<String, String>,
    /// The graphics adapter that rendered the frames.
    pub render_adapter: String,
    /// The environment config, as JSON.
    pub env_config: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub meta: ManifestMeta,
    pub info: DatasetInfo,
    /// Per-episode seeds, by local episode index.
    pub episode_seeds: Vec<u64>,
    /// Every file of the dataset but the manifest, by path relative to the root (`/` separated).
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    pub fn new(
        meta: ManifestMeta,
        info: DatasetInfo,
        episode_seeds: Vec<u64>,
        files: BTreeMap<String, FileEntry>,
    ) -> Self {
        Manifest { format: MANIFEST_FORMAT.into(), meta, info, episode_seeds, files }
    }

    pub fn write(&self, root: &Path) -> Result<()> {
        let value = serde_json::to_value(self).expect("manifest serialises");
        crate::writer::write_json(&root.join(MANIFEST_PATH), &value)
    }

    pub fn read(root: &Path) -> Result<Manifest> {
        let path = root.join(MANIFEST_PATH);
        if !path.exists() {
            return Err(DatasetError::Incomplete(root.to_path_buf()));
        }
        let text = fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| DatasetError::Corrupt(path.clone(), e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(DatasetError::Corrupt(path, format!("format {:?}, expected {MANIFEST_FORMAT:?}", m.format)));
        }
        Ok(m)
    }
}

pub fn sha256_file(path: &Path) -> Result<FileEntry> {
    let mut f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(FileEntry { bytes, sha256: hex::encode(hasher.finalize()) })
}

/// All regular files under `root` (relative, `/`-separated, sorted), except the manifest.
pub fn list_files(root: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else {
                let rel: PathBuf = path.strip_prefix(root).expect("under root").to_path_buf();
                let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                if rel != MANIFEST_PATH {
                    out.push(rel);
                }
            }
        }
        Ok(())
    }
    let mut out = vec![];
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

pub fn hash_tree(root: &Path) -> Result<BTreeMap<String, FileEntry>> {
    list_files(root)?.into_iter().map(|rel| Ok((rel.clone(), sha256_file(&root.join(&rel))?))).collect()
}

/// The first key (dotted path, `[i]` for array items) where two recorded settings differ, with
/// both values as JSON text; `None` when they agree. Numbers compare as the `f32` the configs
/// hold (a float read back from a manifest can differ from a fresh one in its last f64 digit).
pub fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<(String, String, String)> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let key = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                first_difference(&key, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b))
        }
        (Value::Number(x), Value::Number(y)) if same_number(x, y) => None,
        _ if a == b => None,
        _ => Some((path.to_string(), a.to_string(), b.to_string())),
    }
}

/// Integers exactly; other numbers as the `f32` the configs hold (a float read back from a
/// manifest can differ from the freshly converted one in its last f64 digit).
fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b || a as f32 == b as f32,
        _ => false,
    }
}
