//! `cupworld bench …`: the options; the measurements live in the `bench` crate.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Physics steps/s of the push-the-cup scene: one core, then all cores.
    Sim {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0, value_parser = crate::positive_seconds)]
        seconds: f64,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        repeats: u64,
        #[arg(long)]
        json: bool,
    },
    /// Rendered frames/s at 64×64 and 128×128 for several batch sizes.
    Render {
        /// Frames rendered per measurement.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        frames: u64,
        /// Batch sizes (environments per bevy update) to try.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64", value_parser = clap::value_parser!(u64).range(1..=256))]
        slots: Vec<u64>,
        #[arg(long, value_delimiter = ',', default_value = "64,128", value_parser = clap::value_parser!(u32).range(8..=2048))]
        sizes: Vec<u32>,
        /// Renderers in parallel threads (default: one per core, at most 4).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
        renderers: Option<u64>,
        #[arg(long)]
        shadows: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mamba vs causal attention (time, memory, step latency) and MoE vs dense FFN, on the CPU.
    Seq {
        /// Longest sequence for the Mamba block.
        #[arg(long, default_value_t = 32_768, value_parser = clap::value_parser!(i64).range(1..=1 << 20))]
        max_length: i64,
        /// Longest sequence for the attention block.
        #[arg(long, default_value_t = 32_768, value_parser = clap::value_parser!(i64).range(1..=1 << 20))]
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
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        episodes: u64,
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
        slots: u64,
        /// Render threads (default: one per core, at most 4).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
        renderers: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The planner: imagined plans/s by batch size, and one replan per solver at its default budget.
    Plan {
        /// tiny or small.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Model steps imagined ahead.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=64))]
        horizon: i64,
        /// Timed repeats of each measurement (after one warm-up).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        repeats: u64,
        #[arg(long)]
        json: bool,
    },
    /// The Mamba-MoE policy: one decision at batch 1, alone and with the frame's encoding, at
    /// steps 1 to 10,000 of an episode (its state stays the same size), and its state's bytes.
    Policy {
        /// mamba, or attention (the ablation's backbone: its KV cache grows with the episode).
        #[arg(long, default_value = "mamba")]
        backbone: String,
        /// The world model's preset (its encoder and latent sizes).
        #[arg(long, default_value = "small")]
        preset: String,
        /// The deepest episode step timed (1, 10, 100, 150 (a task episode's end), 1,000 and 10,000 up to it).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        depth: u64,
        /// Timed steps at each depth.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        repeats: u64,
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
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        steps: u64,
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
        BenchCommand::Sim { seconds, repeats, json } => ::bench::sim(seconds, repeats as usize, json),
        BenchCommand::Render { frames, slots, sizes, renderers, shadows, json } => {
            let slots: Vec<usize> = slots.into_iter().map(|s| s as usize).collect();
            let renderers = renderers.map_or_else(default_renderers, |n| n as usize);
            ::bench::render(frames as usize, &slots, &sizes, renderers, shadows, json)
        }
        BenchCommand::Seq { max_length, attention_max, json, plot } => {
            ::bench::seq::run(max_length, attention_max, json, plot.as_deref())
        }
        BenchCommand::SeqMemory { model, length } => ::bench::seq::memory_child(&model, length),
        BenchCommand::Gen { episodes, slots, renderers, json } => ::bench::generation(
            episodes,
            slots as usize,
            renderers.map_or_else(default_renderers, |n| n as usize),
            json,
        ),
        BenchCommand::Plan { preset, horizon, repeats, json } => {
            ::bench::plan::run(&preset, horizon, repeats as usize, json)
        }
        BenchCommand::Policy { backbone, preset, depth, repeats, json } => {
            let backbone = match backbone.as_str() {
                "mamba" => agent::Backbone::Mamba,
                "attention" => agent::Backbone::Attention,
                other => anyhow::bail!("--backbone {other:?}: expected mamba or attention"),
            };
            ::bench::policy::run(&preset, backbone, depth as usize, repeats as usize, json)
        }
        BenchCommand::Wm { preset, steps, device, json } => ::bench::wm::run(&preset, steps as usize, &device, json),
    }
}
