//! Reads datasets back: episodes (for merge and training), verification, merging.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use types::{FrameTag, Transition};

use crate::manifest::{Manifest, ManifestMeta, list_files, sha256_file};
use crate::schema::{self, MANIFEST_PATH};
use crate::writer::{DatasetWriter, EpisodeRecord, FrameRow};
use crate::{DatasetError, Result, decode_png, io_err};

fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let perr = |e: parquet::errors::ParquetError| DatasetError::Parquet(path.to_path_buf(), e.to_string());
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(perr)?.with_batch_size(4096).build().map_err(perr)?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| DatasetError::Parquet(path.to_path_buf(), e.to_string()))
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| DatasetError::Corrupt(path.to_path_buf(), format!("column {name:?} is missing")))
}

fn i64_col(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<i64>> {
    let c = column(batch, name, path)?;
    c.as_primitive_opt::<Int64Type>()
        .map(|a| a.values().to_vec())
        .ok_or_else(|| DatasetError::Corrupt(path.to_path_buf(), format!("column {name:?} is not int64")))
}

fn f32_lists(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Vec<f32>>> {
    let c = column(batch, name, path)?;
    let list = c.as_fixed_size_list_opt().ok_or_else(|| {
        DatasetError::Corrupt(path.to_path_buf(), format!("column {name:?} is not a fixed-size list"))
    })?;
    let n = list.value_length() as usize;
    let values = list
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| DatasetError::Corrupt(path.to_path_buf(), format!("column {name:?} is not float32")))?;
    Ok(values.values().chunks(n).map(|c| c.to_vec()).collect())
}

/// One row of a data file, decoded.
struct StoredRow {
    episode_index: i64,
    frame_index: i64,
    index: i64,
    row: FrameRow,
}

fn read_data_file(path: &Path, info: &crate::DatasetInfo) -> Result<Vec<StoredRow>> {
    let mut out = vec![];
    for batch in read_batches(path)? {
        let corrupt = |m: String| DatasetError::Corrupt(path.to_path_buf(), m);
        let image = column(&batch, schema::IMAGE_KEY, path)?
            .as_struct_opt()
            .ok_or_else(|| corrupt("observation.image is not a struct".into()))?;
        let bytes = image
            .column_by_name("bytes")
            .and_then(|c| c.as_binary_opt::<i32>())
            .ok_or_else(|| corrupt("observation.image.bytes is missing".into()))?;
        let state = f32_lists(&batch, "observation.state", path)?;
        let env = f32_lists(&batch, "observation.environment_state", path)?;
        let action = f32_lists(&batch, "action", path)?;
        let reward = column(&batch, "next.reward", path)?
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| corrupt("next.reward is not float32".into()))?;
        let done = column(&batch, "next.done", path)?.as_boolean_opt().ok_or_else(|| corrupt("next.done".into()))?;
        let success =
            column(&batch, "next.success", path)?.as_boolean_opt().ok_or_else(|| corrupt("next.success".into()))?;
        let timestamp = column(&batch, "timestamp", path)?
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| corrupt("timestamp is not float32".into()))?;
        let frame_index = i64_col(&batch, "frame_index", path)?;
        let episode_index = i64_col(&batch, "episode_index", path)?;
        let index = i64_col(&batch, "index", path)?;
        for i in 0..batch.num_rows() {
            let rgb = decode_png(bytes.value(i), info.width, info.height)
                .map_err(|e| corrupt(format!("row {}: {e}", index[i])))?;
            let a = &action[i];
            if a.len() != 2 {
                return Err(corrupt(format!("action has {} values", a.len())));
            }
            out.push(StoredRow {
                episode_index: episode_index[i],
                frame_index: frame_index[i],
                index: index[i],
                row: FrameRow {
                    transition: Transition {
                        tag: FrameTag { episode: episode_index[i] as u64, step: frame_index[i] as u32 },
                        timestamp: timestamp.value(i),
                        state: state[i].clone(),
                        environment_state: env[i].clone(),
                        action: [a[0], a[1]],
                        reward: reward.value(i),
                        done: done.value(i),
                        success: success.value(i),
                    },
                    rgb,
                },
            });
        }
    }
    Ok(out)
}

/// Per-episode columns of the episodes table.
struct EpisodeRow {
    index: i64,
    length: i64,
    from: i64,
    to: i64,
    seed: u64,
    policy: String,
    success: bool,
    episode_return: f32,
}

fn read_episodes_table(root: &Path) -> Result<Vec<EpisodeRow>> {
    let path = root.join(schema::episodes_path(0, 0));
    let mut out = vec![];
    for batch in read_batches(&path)? {
        let corrupt = |m: &str| DatasetError::Corrupt(path.clone(), m.to_string());
        let index = i64_col(&batch, "episode_index", &path)?;
        let length = i64_col(&batch, "length", &path)?;
        let from = i64_col(&batch, "dataset_from_index", &path)?;
        let to = i64_col(&batch, "dataset_to_index", &path)?;
        let seed = column(&batch, "episode_seed", &path)?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| corrupt("episode_seed is not uint64"))?;
        let policy = column(&batch, "policy", &path)?.as_string_opt::<i32>().ok_or_else(|| corrupt("policy"))?;
        let success = column(&batch, "success", &path)?.as_boolean_opt().ok_or_else(|| corrupt("success"))?;
        let ret = column(&batch, "episode_return", &path)?
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| corrupt("episode_return"))?;
        for i in 0..batch.num_rows() {
            out.push(EpisodeRow {
                index: index[i],
                length: length[i],
                from: from[i],
                to: to[i],
                seed: seed.value(i),
                policy: policy.value(i).to_string(),
                success: success.value(i),
                episode_return: ret.value(i),
            });
        }
    }
    Ok(out)
}

/// The data files, in order, as the manifest lists them.
fn data_files(manifest: &Manifest) -> Vec<String> {
    manifest.files.keys().filter(|k| k.starts_with("data/") && k.ends_with(".parquet")).cloned().collect()
}

/// Calls `f` with every episode of a (verified) dataset, in episode order.
pub fn for_each_episode(root: &Path, mut f: impl FnMut(EpisodeRecord) -> Result<()>) -> Result<()> {
    let manifest = Manifest::read(root)?;
    let episodes = read_episodes_table(root)?;
    let mut next = 0usize;
    let mut pending: Vec<FrameRow> = vec![];
    for rel in data_files(&manifest) {
        for stored in read_data_file(&root.join(&rel), &manifest.info)? {
            let ep = episodes.get(next).ok_or_else(|| {
                DatasetError::Corrupt(root.join(&rel), format!("row {} beyond the episodes table", stored.index))
            })?;
            if stored.episode_index != ep.index || stored.frame_index != pending.len() as i64 {
                return Err(DatasetError::Corrupt(
                    root.join(&rel),
                    format!(
                        "row {} is episode {} frame {}, expected episode {} frame {}",
                        stored.index,
                        stored.episode_index,
                        stored.frame_index,
                        ep.index,
                        pending.len()
                    ),
                ));
            }
            pending.push(stored.row);
            if pending.len() as i64 == ep.length {
                f(EpisodeRecord {
                    seed: ep.seed,
                    policy: ep.policy.clone(),
                    success: ep.success,
                    episode_return: ep.episode_return,
                    rows: std::mem::take(&mut pending),
                })?;
                next += 1;
            }
        }
    }
    if next != episodes.len() || !pending.is_empty() {
        return Err(DatasetError::Corrupt(
            root.to_path_buf(),
            format!("data files hold {next} whole episodes, the episodes table lists {}", episodes.len()),
        ));
    }
    Ok(())
}

/// What `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub root: PathBuf,
    pub files_checked: usize,
    pub episodes: u64,
    pub frames: u64,
    /// Empty when the dataset is intact; otherwise one line per problem, naming the file.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a dataset against its manifest (missing, truncated, altered or unexpected files), then
/// its structure (row counts, contiguous indices, decodable images). Never panics on bad files.
pub fn verify(root: &Path) -> VerifyReport {
    let mut report = VerifyReport { root: root.to_path_buf(), ..Default::default() };
    let manifest = match Manifest::read(root) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    for (rel, expected) in &manifest.files {
        let path = root.join(rel);
        if !path.exists() {
            report.problems.push(format!("{rel}: missing"));
            continue;
        }
        match sha256_file(&path) {
            Ok(actual) if actual.bytes != expected.bytes => report.problems.push(format!(
                "{rel}: size {} bytes, manifest says {} (truncated or altered)",
                actual.bytes, expected.bytes
            )),
            Ok(actual) if actual.sha256 != expected.sha256 => {
                report.problems.push(format!("{rel}: sha256 mismatch (altered)"))
            }
            Ok(_) => report.files_checked += 1,
            Err(e) => report.problems.push(format!("{rel}: {e}")),
        }
    }
    match list_files(root) {
        Ok(files) => {
            for rel in files.iter().filter(|f| !manifest.files.contains_key(*f) && f.as_str() != MANIFEST_PATH) {
                report.problems.push(format!("{rel}: not in the manifest (unexpected file)"));
            }
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    if !report.problems.is_empty() {
        return report;
    }
    // Structure, now that the bytes are known to be the ones written.
    let info: serde_json::Value = match std::fs::read_to_string(root.join(schema::INFO_PATH))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            report.problems.push(format!("{}: {e}", schema::INFO_PATH));
            return report;
        }
    };
    let result = for_each_episode(root, |ep| {
        report.episodes += 1;
        report.frames += ep.rows.len() as u64;
        Ok(())
    });
    if let Err(e) = result {
        report.problems.push(e.to_string());
        return report;
    }
    let total_episodes = info["total_episodes"].as_u64();
    let total_frames = info["total_frames"].as_u64();
    if total_episodes != Some(report.episodes) {
        report.problems.push(format!(
            "{}: total_episodes {:?} but {} episodes found",
            schema::INFO_PATH,
            total_episodes,
            report.episodes
        ));
    }
    if total_frames != Some(report.frames) {
        report.problems.push(format!(
            "{}: total_frames {:?} but {} frames found",
            schema::INFO_PATH,
            total_frames,
            report.frames
        ));
    }
    if manifest.episode_seeds.len() as u64 != report.episodes {
        report.problems.push(format!(
            "{MANIFEST_PATH}: {} episode seeds for {} episodes",
            manifest.episode_seeds.len(),
            report.episodes
        ));
    }
    match read_episodes_table(root) {
        Ok(rows) => {
            let mut expected_from = 0;
            for (i, r) in rows.iter().enumerate() {
                if r.index != i as i64 || r.from != expected_from || r.to - r.from != r.length {
                    report
                        .problems
                        .push(format!("{}: episode row {i} has inconsistent indices", schema::episodes_path(0, 0)));
                    break;
                }
                if manifest.episode_seeds.get(i) != Some(&r.seed) {
                    report.problems.push(format!("episode {i}: seed differs between manifest and episodes table"));
                    break;
                }
                expected_from = r.to;
            }
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    report
}

/// Merges complete shard datasets into one at `out`, in global episode order. Shards must tile
/// `[0, total)` exactly, share the dataset settings, and each pass `verify`.
pub fn merge(shards: &[PathBuf], out: &Path, tools: std::collections::BTreeMap<String, String>) -> Result<Manifest> {
    let mut manifests = vec![];
    for shard in shards {
        let report = verify(shard);
        if !report.ok() {
            return Err(DatasetError::VerifyFailed(shard.clone(), report.problems.join("; ")));
        }
        manifests.push((Manifest::read(shard)?, shard.clone()));
    }
    if manifests.is_empty() {
        return Err(DatasetError::Invalid("no shards to merge".into()));
    }
    manifests.sort_by_key(|(m, _)| m.meta.episode_offset);
    let first = manifests[0].0.clone();
    let mut expected_offset = 0u64;
    let settings = |m: &Manifest| {
        let mut meta = serde_json::to_value(&m.meta).unwrap_or_default();
        if let Some(meta) = meta.as_object_mut() {
            // What differs between shards by design.
            meta.remove("episode_offset");
            meta.remove("shard_index");
        }
        serde_json::json!({ "meta": meta, "info": serde_json::to_value(&m.info).unwrap_or_default() })
    };
    let reference = settings(&first);
    for (m, path) in &manifests {
        if let Some((key, theirs, ours)) = crate::manifest::first_difference("", &settings(m), &reference) {
            return Err(DatasetError::Invalid(format!(
                "{}: {key} is {theirs} there but {ours} in {}; shards of one dataset must be made with the same settings",
                path.display(),
                manifests[0].1.display()
            )));
        }
        if m.meta.episode_offset != expected_offset {
            return Err(DatasetError::Invalid(format!(
                "{}: starts at episode {}, expected {expected_offset} (a shard is missing or duplicated)",
                path.display(),
                m.meta.episode_offset
            )));
        }
        expected_offset += m.episode_seeds.len() as u64;
    }
    if expected_offset != first.meta.total_episodes_planned {
        return Err(DatasetError::Invalid(format!(
            "shards hold {expected_offset} episodes of the {} planned (a shard is missing)",
            first.meta.total_episodes_planned
        )));
    }
    let mut writer = DatasetWriter::create(out, first.info.clone())?;
    for (_, path) in &manifests {
        for_each_episode(path, |ep| writer.write_episode(&ep))?;
    }
    let meta = ManifestMeta { episode_offset: 0, shard_index: 0, num_shards: 1, tools, ..first.meta };
    writer.finish(meta)
}
