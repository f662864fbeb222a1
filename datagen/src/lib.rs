//! `datagen`: datasets from the simulator, with no tensor library in sight.
//!
//! - [`generate`]: the `gen` pipeline: simulator threads → bevy renderers → LeRobot v3.0 writer,
//!   sharded, resumable, verified.
//! - [`voe_datasets`]: the violation-of-expectation pairs written as two datasets and `pairs.json`.
//! - [`contact_sheet`]: a grid of a dataset's frames as one PNG.
//! - [`host`]: the cores and CPU this process runs on.

pub mod contact_sheet;
pub mod generate;
pub mod host;
pub mod voe_datasets;

pub use contact_sheet::write_contact_sheet;
pub use generate::{GenConfig, GenSummary, find_shards, tool_versions};

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, unit: &str, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}
