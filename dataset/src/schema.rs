//! The LeRobot v3.0 layout: feature table, Arrow schemas and paths.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{Value, json};

pub const CODEBASE_VERSION: &str = "v3.0";
pub const IMAGE_KEY: &str = "observation.image";
pub const CHUNKS_SIZE: u32 = 1000;
/// A data file is closed and a new one started once it passes this size (LeRobot's default).
pub const DATA_FILE_SIZE_MB: u64 = 100;

pub const STATE_NAMES: [&str; 4] = ["pusher_x", "pusher_z", "pusher_vx", "pusher_vz"];
pub const ENV_STATE_NAMES: [&str; 9] =
    ["cup_x", "cup_y", "cup_z", "cup_qx", "cup_qy", "cup_qz", "cup_qw", "goal_x", "goal_z"];
pub const ACTION_NAMES: [&str; 2] = ["pusher_vx", "pusher_vz"];

pub fn data_path(chunk: u32, file: u32) -> String {
    format!("data/chunk-{chunk:03}/file-{file:03}.parquet")
}

pub fn episodes_path(chunk: u32, file: u32) -> String {
    format!("meta/episodes/chunk-{chunk:03}/file-{file:03}.parquet")
}

pub const TASKS_PATH: &str = "meta/tasks.parquet";
pub const INFO_PATH: &str = "meta/info.json";
pub const STATS_PATH: &str = "meta/stats.json";
pub const MANIFEST_PATH: &str = "manifest.json";

fn fixed_list(n: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), n as i32)
}

/// The Arrow type of an `image` feature as Hugging Face `datasets` stores it.
pub fn image_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]))
}

/// One row per frame.
pub fn data_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(IMAGE_KEY, image_type(), true),
        Field::new("observation.state", fixed_list(STATE_NAMES.len()), true),
        Field::new("observation.environment_state", fixed_list(ENV_STATE_NAMES.len()), true),
        Field::new("action", fixed_list(ACTION_NAMES.len()), true),
        Field::new("next.reward", DataType::Float32, true),
        Field::new("next.done", DataType::Boolean, true),
        Field::new("next.success", DataType::Boolean, true),
        Field::new("timestamp", DataType::Float32, true),
        Field::new("frame_index", DataType::Int64, true),
        Field::new("episode_index", DataType::Int64, true),
        Field::new("index", DataType::Int64, true),
        Field::new("task_index", DataType::Int64, true),
    ]))
}

/// One row per episode (LeRobot's episodes table, plus cupworld's seed and policy columns).
pub fn episodes_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("episode_index", DataType::Int64, true),
        Field::new("tasks", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        Field::new("length", DataType::Int64, true),
        Field::new("data/chunk_index", DataType::Int64, true),
        Field::new("data/file_index", DataType::Int64, true),
        Field::new("dataset_from_index", DataType::Int64, true),
        Field::new("dataset_to_index", DataType::Int64, true),
        Field::new("meta/episodes/chunk_index", DataType::Int64, true),
        Field::new("meta/episodes/file_index", DataType::Int64, true),
        Field::new("episode_seed", DataType::UInt64, true),
        Field::new("policy", DataType::Utf8, true),
        Field::new("success", DataType::Boolean, true),
        Field::new("episode_return", DataType::Float32, true),
    ]))
}

/// `meta/tasks.parquet`: the task string is the pandas index, as LeRobot writes it.
pub fn tasks_schema() -> Arc<Schema> {
    let pandas = json!({
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                             "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": null},
            {"name": null, "field_name": "__index_level_0__", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "pyarrow", "version": "21.0.0"},
        "pandas_version": "2.2.3"
    });
    let metadata = [("pandas".to_string(), pandas.to_string())].into_iter().collect();
    Arc::new(Schema::new_with_metadata(
        vec![Field::new("task_index", DataType::Int64, true), Field::new("__index_level_0__", DataType::Utf8, true)],
        metadata,
    ))
}

/// The `features` object of `meta/info.json`.
pub fn features_json(height: u32, width: u32) -> Value {
    let scalar = |dtype: &str| json!({"dtype": dtype, "shape": [1], "names": null});
    let vector = |names: &[&str]| json!({"dtype": "float32", "shape": [names.len()], "names": names});
    json!({
        IMAGE_KEY: {"dtype": "image", "shape": [height, width, 3], "names": ["height", "width", "channels"]},
        "observation.state": vector(&STATE_NAMES),
        "observation.environment_state": vector(&ENV_STATE_NAMES),
        "action": vector(&ACTION_NAMES),
        "next.reward": scalar("float32"),
        "next.done": scalar("bool"),
        "next.success": scalar("bool"),
        "timestamp": scalar("float32"),
        "frame_index": scalar("int64"),
        "episode_index": scalar("int64"),
        "index": scalar("int64"),
        "task_index": scalar("int64"),
    })
}
