//! Writes a LeRobot v3.0 dataset episode by episode; the manifest is written last.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, FixedSizeListBuilder, Float32Builder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, UInt64Array,
};
use parquet::arrow::ArrowWriter;
use serde_json::json;
use types::Transition;

use crate::manifest::{Manifest, ManifestMeta, hash_tree};
use crate::schema::{self, CHUNKS_SIZE, DATA_FILE_SIZE_MB};
use crate::stats::StatsAccumulator;
use crate::{DatasetError, Result, io_err};

/// Dataset-wide settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetInfo {
    pub fps: u32,
    /// The natural-language task (LeRobot's task string).
    pub task: String,
    pub width: u32,
    pub height: u32,
    pub robot_type: String,
}

/// One frame: the transition and its RGB8 image.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameRow {
    pub transition: Transition,
    pub rgb: Vec<u8>,
}

/// A whole episode, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeRecord {
    pub seed: u64,
    pub policy: String,
    pub success: bool,
    pub episode_return: f32,
    pub rows: Vec<FrameRow>,
}

#[derive(Clone, Debug)]
struct EpisodeMeta {
    index: i64,
    length: i64,
    chunk: u32,
    file: u32,
    from: i64,
    seed: u64,
    policy: String,
    success: bool,
    episode_return: f32,
}

struct OpenFile {
    writer: ArrowWriter<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

/// Streams episodes into `data/chunk-…/file-….parquet` (one row group per episode).
pub struct DatasetWriter {
    root: PathBuf,
    info: DatasetInfo,
    current: Option<OpenFile>,
    next_file: u32,
    episodes: Vec<EpisodeMeta>,
    total_frames: i64,
    stats: StatsAccumulator,
}

impl DatasetWriter {
    /// Starts a dataset in `root`, which must be empty or absent.
    pub fn create(root: &Path, info: DatasetInfo) -> Result<DatasetWriter> {
        if root.exists() && fs::read_dir(root).map_err(|e| io_err(root, e))?.next().is_some() {
            return Err(DatasetError::NotEmpty(root.to_path_buf()));
        }
        fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        Ok(DatasetWriter {
            root: root.to_path_buf(),
            info,
            current: None,
            next_file: 0,
            episodes: vec![],
            total_frames: 0,
            stats: StatsAccumulator::default(),
        })
    }

    pub fn episodes_written(&self) -> usize {
        self.episodes.len()
    }

    /// Appends an episode; episode and frame indices are assigned here, in call order.
    pub fn write_episode(&mut self, episode: &EpisodeRecord) -> Result<()> {
        let (w, h) = (self.info.width, self.info.height);
        for row in &episode.rows {
            if row.rgb.len() != (w * h * 3) as usize {
                return Err(DatasetError::Invalid(format!(
                    "frame {:?} has {} bytes, expected {}x{}x3",
                    row.transition.tag,
                    row.rgb.len(),
                    w,
                    h
                )));
            }
        }
        if episode.rows.is_empty() {
            return Err(DatasetError::Invalid("empty episode".into()));
        }
        if self.current.is_none() {
            self.open_next_file()?;
        }
        let index = self.episodes.len() as i64;
        let from = self.total_frames;
        let batch = self.episode_batch(episode, index, from)?;
        let file = self.current.as_mut().expect("opened above");
        file.writer.write(&batch).map_err(|e| DatasetError::Parquet(file.path.clone(), e.to_string()))?;
        file.writer.flush().map_err(|e| DatasetError::Parquet(file.path.clone(), e.to_string()))?;
        let file_index = self.next_file - 1;
        self.episodes.push(EpisodeMeta {
            index,
            length: episode.rows.len() as i64,
            chunk: file_index / CHUNKS_SIZE,
            file: file_index % CHUNKS_SIZE,
            from,
            seed: episode.seed,
            policy: episode.policy.clone(),
            success: episode.success,
            episode_return: episode.episode_return,
        });
        self.total_frames += episode.rows.len() as i64;
        if file.writer.bytes_written() as u64 > DATA_FILE_SIZE_MB * 1024 * 1024 {
            self.close_file()?;
        }
        Ok(())
    }

    fn open_next_file(&mut self) -> Result<()> {
        let n = self.next_file;
        let rel = schema::data_path(n / CHUNKS_SIZE, n % CHUNKS_SIZE);
        let path = self.root.join(&rel);
        let partial = path.with_extension("parquet.partial");
        fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| io_err(&path, e))?;
        let f = File::create(&partial).map_err(|e| io_err(&partial, e))?;
        let writer = ArrowWriter::try_new(BufWriter::new(f), schema::data_schema(), None)
            .map_err(|e| DatasetError::Parquet(path.clone(), e.to_string()))?;
        self.current = Some(OpenFile { writer, partial, path });
        self.next_file += 1;
        Ok(())
    }

    fn close_file(&mut self) -> Result<()> {
        if let Some(f) = self.current.take() {
            f.writer.close().map_err(|e| DatasetError::Parquet(f.path.clone(), e.to_string()))?;
            fs::rename(&f.partial, &f.path).map_err(|e| io_err(&f.path, e))?;
        }
        Ok(())
    }

    fn episode_batch(&mut self, ep: &EpisodeRecord, episode_index: i64, from: i64) -> Result<RecordBatch> {
        let n = ep.rows.len();
        let mut png = BinaryBuilder::new();
        let mut state = FixedSizeListBuilder::new(Float32Builder::new(), schema::STATE_NAMES.len() as i32);
        let mut env = FixedSizeListBuilder::new(Float32Builder::new(), schema::ENV_STATE_NAMES.len() as i32);
        let mut action = FixedSizeListBuilder::new(Float32Builder::new(), schema::ACTION_NAMES.len() as i32);
        for (i, row) in ep.rows.iter().enumerate() {
            let t = &row.transition;
            check_len("observation.state", &t.state, schema::STATE_NAMES.len())?;
            check_len("observation.environment_state", &t.environment_state, schema::ENV_STATE_NAMES.len())?;
            png.append_value(crate::encode_png(&row.rgb, self.info.width, self.info.height)?);
            state.values().append_slice(&t.state);
            state.append(true);
            env.values().append_slice(&t.environment_state);
            env.append(true);
            action.values().append_slice(&t.action);
            action.append(true);
            self.stats.add_row(t, &row.rgb, episode_index, from + i as i64);
        }
        let image = StructArray::from(vec![
            (
                Arc::new(arrow_schema::Field::new("bytes", arrow_schema::DataType::Binary, true)),
                Arc::new(png.finish()) as ArrayRef,
            ),
            (
                Arc::new(arrow_schema::Field::new("path", arrow_schema::DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef,
            ),
        ]);
        let rows = &ep.rows;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(image),
            Arc::new(with_item_field(state.finish())),
            Arc::new(with_item_field(env.finish())),
            Arc::new(with_item_field(action.finish())),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.transition.reward))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.transition.done)))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.transition.success)))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.transition.timestamp))),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(episode_index, n))),
            Arc::new(Int64Array::from_iter_values(from..from + n as i64)),
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(0, n))),
        ];
        RecordBatch::try_new(schema::data_schema(), columns).map_err(|e| DatasetError::Invalid(e.to_string()))
    }

    /// Closes the data files, writes the metadata, then the manifest (the dataset's commit point).
    pub fn finish(mut self, meta: ManifestMeta) -> Result<Manifest> {
        self.close_file()?;
        self.write_episodes_table()?;
        self.write_tasks()?;
        let info = json!({
            "codebase_version": schema::CODEBASE_VERSION,
            "robot_type": self.info.robot_type,
            "total_episodes": self.episodes.len(),
            "total_frames": self.total_frames,
            "total_tasks": 1,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_SIZE_MB,
            "video_files_size_in_mb": 500,
            "fps": self.info.fps,
            "splits": {"train": format!("0:{}", self.episodes.len())},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": null,
            "features": schema::features_json(self.info.height, self.info.width),
        });
        write_json(&self.root.join(schema::INFO_PATH), &info)?;
        write_json(&self.root.join(schema::STATS_PATH), &self.stats.to_json())?;
        let files = hash_tree(&self.root)?;
        let manifest = Manifest::new(meta, self.info.clone(), self.episodes.iter().map(|e| e.seed).collect(), files);
        manifest.write(&self.root)?;
        Ok(manifest)
    }

    fn write_episodes_table(&self) -> Result<()> {
        let e = &self.episodes;
        let tasks = {
            let mut b = arrow_array::builder::ListBuilder::new(StringBuilder::new());
            for _ in e {
                b.values().append_value(&self.info.task);
                b.append(true);
            }
            b.finish()
        };
        let tasks: ListArray = tasks;
        let int = |f: &dyn Fn(&EpisodeMeta) -> i64| Arc::new(Int64Array::from_iter_values(e.iter().map(f))) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            int(&|m| m.index),
            Arc::new(tasks),
            int(&|m| m.length),
            int(&|m| m.chunk as i64),
            int(&|m| m.file as i64),
            int(&|m| m.from),
            int(&|m| m.from + m.length),
            int(&|_| 0),
            int(&|_| 0),
            Arc::new(UInt64Array::from_iter_values(e.iter().map(|m| m.seed))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|m| m.policy.as_str()))),
            Arc::new(BooleanArray::from_iter(e.iter().map(|m| Some(m.success)))),
            Arc::new(Float32Array::from_iter_values(e.iter().map(|m| m.episode_return))),
        ];
        let batch = RecordBatch::try_new(schema::episodes_schema(), columns)
            .map_err(|err| DatasetError::Invalid(err.to_string()))?;
        write_parquet(&self.root.join(schema::episodes_path(0, 0)), &batch)
    }

    fn write_tasks(&self) -> Result<()> {
        let batch = RecordBatch::try_new(
            schema::tasks_schema(),
            vec![
                Arc::new(Int64Array::from(vec![0])) as ArrayRef,
                Arc::new(StringArray::from(vec![self.info.task.as_str()])),
            ],
        )
        .map_err(|e| DatasetError::Invalid(e.to_string()))?;
        write_parquet(&self.root.join(schema::TASKS_PATH), &batch)
    }
}

fn check_len(key: &str, v: &[f32], n: usize) -> Result<()> {
    if v.len() != n {
        return Err(DatasetError::Invalid(format!("{key} has {} values, expected {n}", v.len())));
    }
    Ok(())
}

/// `FixedSizeListBuilder` names its child "item" only when asked; make the field match the schema.
fn with_item_field(a: arrow_array::FixedSizeListArray) -> arrow_array::FixedSizeListArray {
    let (_, size, values, nulls) = a.into_parts();
    let field = Arc::new(arrow_schema::Field::new("item", arrow_schema::DataType::Float32, true));
    arrow_array::FixedSizeListArray::new(field, size, values, nulls)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| io_err(path, e))?;
    let tmp = path.with_extension("parquet.partial");
    let f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let perr = |e: parquet::errors::ParquetError| DatasetError::Parquet(path.to_path_buf(), e.to_string());
    let mut w = ArrowWriter::try_new(BufWriter::new(f), batch.schema(), None).map_err(perr)?;
    w.write(batch).map_err(perr)?;
    w.close().map_err(perr)?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Writes JSON atomically (temp file, then rename).
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| io_err(path, e))?;
    let tmp = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}
