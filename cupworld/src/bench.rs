//! `cupworld bench …`: the options; the measurements live in the `bench` crate.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Physics steps/s of the push-the-cup scene: one core, then all cores.
    Sim {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        #[arg(long)]
        json: bool,
    },
    /// Rendered frames/s at 64×64 and 128×128 for several batch sizes.
    Render {
        /// Frames rendered per measurement.
        #[arg(long, default_value_t = 1024)]
        frames: usize,
        /// Batch sizes (environments per bevy update) to try.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        slots: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,128")]
        sizes: Vec<u32>,
        /// Renderers in parallel threads (default: one per core, at most 4).
        #[arg(long)]
        renderers: Option<usize>,
        #[arg(long)]
        shadows: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mamba vs causal attention (time, memory, step latency) and MoE vs dense FFN, on the CPU.
    Seq {
        /// Longest sequence for the Mamba block.
        #[arg(long, default_value_t = 32_768)]
        max_length: i64,
        /// Longest sequence for the attention block.
        #[arg(long, default_value_t = 32_768)]
        attention_max: i64,
        #[arg(long)]
        json: bool,
        /// Also write time and memory against length as log-log PNGs (`<PLOT>` and `<PLOT>-memory.png`).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// One forward pass in this process, printing its peak memory (bench seq runs it per
    /// measurement so allocations of earlier runs cannot hide in the high-water mark).
    #[command(hide = true)]
    SeqMemory {
        /// mamba-reference, mamba-chunked or attention.
        #[arg(long)]
        model: String,
        #[arg(long)]
        length: i64,
    },
    /// End-to-end `gen`: episodes/s and frames/s into a temporary dataset.
    Gen {
        #[arg(long, default_value_t = 64)]
        episodes: u64,
        #[arg(long, default_value_t = 32)]
        slots: usize,
        /// Render threads (default: one per core, at most 4).
        #[arg(long)]
        renderers: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// World model: training frames/s (and where the step's time goes), encoder and predictor
    /// inference latency.
    Wm {
        /// tiny or small.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Training steps timed (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    let default_renderers = datagen::host::default_renderers;
    match cmd {
        BenchCommand::Sim { seconds, repeats, json } => ::bench::sim(seconds, repeats, json),
        BenchCommand::Render { frames, slots, sizes, renderers, shadows, json } => {
            ::bench::render(frames, &slots, &sizes, renderers.unwrap_or_else(default_renderers).max(1), shadows, json)
        }
        BenchCommand::Seq { max_length, attention_max, json, plot } => {
            ::bench::seq::run(max_length, attention_max, json, plot.as_deref())
        }
        BenchCommand::SeqMemory { model, length } => ::bench::seq::memory_child(&model, length),
        BenchCommand::Gen { episodes, slots, renderers, json } => {
            ::bench::generation(episodes, slots, renderers.unwrap_or_else(default_renderers), json)
        }
        BenchCommand::Wm { preset, steps, device, json } => ::bench::wm::run(&preset, steps, &device, json),
    }
}
