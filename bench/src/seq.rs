//! `cupworld bench seq`: Mamba vs causal attention on this machine's CPU (the seed's claims):
//! forward time and peak memory against length, parallel vs sequential scan, recurrent step
//! latency against position, and MoE cost against dense FFNs.

use std::time::Instant;

use agent::attention::{AttentionBlock, KvCache};
use agent::mamba::{MambaBlock, MambaConfig, Scan};
use agent::moe::{Expert, Moe, MoeConfig};
use anyhow::Result;
use serde::Serialize;
use tch::{Device, Kind, Tensor, nn, nn::Module};

#[derive(Serialize)]
struct LengthRow {
    length: i64,
    /// Mamba block with the chunked parallel scan (the training path).
    mamba_ms: f64,
    /// Mamba block with the sequential reference scan.
    mamba_sequential_ms: Option<f64>,
    attention_ms: Option<f64>,
    /// Best Mamba time / attention time.
    ratio: Option<f64>,
    /// Peak memory of one forward pass above the process's baseline, each in its own process.
    mamba_peak_mb: f64,
    mamba_sequential_peak_mb: Option<f64>,
    attention_peak_mb: Option<f64>,
}

#[derive(Serialize)]
struct ScanRow {
    length: i64,
    /// Forward pass (no gradients).
    sequential_ms: f64,
    parallel_ms: f64,
    speedup: f64,
    /// Forward and backward pass (the training step's cost).
    sequential_train_ms: f64,
    parallel_train_ms: f64,
    train_speedup: f64,
}

#[derive(Serialize)]
struct StepRow {
    position: i64,
    mamba_step_us: f64,
    attention_kv_step_us: f64,
    mamba_state_kb: f64,
    kv_cache_kb: f64,
}

#[derive(Serialize)]
struct MoeRow {
    name: String,
    params_m: f64,
    active_params_m: f64,
    us_per_token: f64,
}

#[derive(Serialize)]
struct SeqReport {
    d_model: i64,
    threads: i32,
    lengths: Vec<LengthRow>,
    scan: Vec<ScanRow>,
    steps: Vec<StepRow>,
    moe: Vec<MoeRow>,
}

/// Resident memory figures of this process (MB): (current, high-water mark).
fn rss_mb() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs one forward pass of `model` at `length` in this (fresh) process and prints the peak
/// memory it added above the baseline after setup, in MB.
pub fn memory_child(model: &str, length: i64) -> Result<()> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(0);
    let d = 256;
    let vs = nn::VarStore::new(Device::Cpu);
    let x = Tensor::randn([1, length, d], (Kind::Float, Device::Cpu));
    let run: Box<dyn Fn()> = match model {
        "mamba-reference" | "mamba-chunked" => {
            let block = MambaBlock::new(vs.root() / "mamba", &MambaConfig { d_model: d, ..Default::default() });
            let scan = if model == "mamba-chunked" { Scan::Chunked } else { Scan::Reference };
            Box::new(move || drop(block.forward(&x, scan)))
        }
        "attention" => {
            let block = AttentionBlock::new(vs.root() / "attention", d, 4);
            Box::new(move || drop(block.forward(&x)))
        }
        other => anyhow::bail!("--model {other:?}: expected mamba-reference, mamba-chunked or attention"),
    };
    let (base, _) = rss_mb();
    run();
    let (_, peak) = rss_mb();
    println!("{:.1}", (peak - base).max(0.0));
    Ok(())
}

/// Peak memory (MB) of one forward pass of `model` at `length`, measured in a child process.
fn peak_mb(model: &str, length: i64) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["bench", "seq-memory", "--model", model, "--length", &length.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("memory of {model} at {length}: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn time_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    times[times.len() / 2]
}

/// Steps a model from position 0 and, around each of `positions`, returns the median time of 50
/// steps (µs) and the state size after them (KB). `step` advances one position and returns the
/// bytes of state it now holds.
fn step_latencies(positions: &[i64], mut step: impl FnMut() -> usize) -> Vec<(f64, f64)> {
    let mut t = 0i64;
    let mut out = vec![];
    for &p in positions {
        while t + 25 < p {
            step();
            t += 1;
        }
        let mut bytes = 0;
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let s = Instant::now();
                bytes = step();
                s.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t += 50;
        times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        out.push((times[25], bytes as f64 / 1024.0));
    }
    out
}

pub fn run(max_length: i64, attention_max: i64, json: bool, plot: Option<&std::path::Path>) -> Result<()> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(0);
    let d = 256;
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = MambaConfig { d_model: d, ..Default::default() };
    let mamba = MambaBlock::new(vs.root() / "mamba", &cfg);
    let attention = AttentionBlock::new(vs.root() / "attention", d, 4);
    let input = |l: i64| Tensor::randn([1, l, d], (Kind::Float, Device::Cpu));

    let mut lengths = vec![];
    let mut l = 256;
    while l <= max_length {
        let x = input(l);
        let repeats = if l >= 8192 { 1 } else { 3 };
        let mamba_ms = time_ms(repeats, || drop(mamba.forward(&x, Scan::Chunked)));
        // The sequential scan is one small op chain per token: measured up to 16,384 (it takes
        // seconds beyond, and grows linearly).
        let mamba_sequential_ms =
            (l <= 16_384).then(|| time_ms(if l >= 4096 { 1 } else { 3 }, || drop(mamba.forward(&x, Scan::Reference))));
        let attention_ms = (l <= attention_max).then(|| time_ms(repeats, || drop(attention.forward(&x))));
        let best = mamba_sequential_ms.map_or(mamba_ms, |s| s.min(mamba_ms));
        let row = LengthRow {
            length: l,
            mamba_ms,
            mamba_sequential_ms,
            attention_ms,
            ratio: attention_ms.map(|a| best / a),
            mamba_peak_mb: peak_mb("mamba-chunked", l).unwrap_or(f64::NAN),
            mamba_sequential_peak_mb: mamba_sequential_ms.and_then(|_| peak_mb("mamba-reference", l)),
            attention_peak_mb: attention_ms.and_then(|_| peak_mb("attention", l)),
        };
        eprintln!(
            "length {l}: mamba chunked {mamba_ms:.1} ms, sequential {mamba_sequential_ms:?} ms, attention {attention_ms:?} ms; \
             memory {:.0} / {:?} / {:?} MB",
            row.mamba_peak_mb, row.mamba_sequential_peak_mb, row.attention_peak_mb
        );
        lengths.push(row);
        l *= 2;
    }

    let mut scan = vec![];
    for l in [1024, 8192] {
        let x = input(l);
        let sequential_ms = time_ms(if l <= 1024 { 3 } else { 1 }, || drop(mamba.forward(&x, Scan::Reference)));
        let parallel_ms = time_ms(3, || drop(mamba.forward(&x, Scan::Chunked)));
        // Backward through the block's weights and its input, as training does.
        let train = |scan: Scan| {
            tch::with_grad(|| {
                let x = x.set_requires_grad(true);
                mamba.forward(&x, scan).sum(Kind::Float).backward();
            })
        };
        let sequential_train_ms = time_ms(1, || train(Scan::Reference));
        let parallel_train_ms = time_ms(3, || train(Scan::Chunked));
        scan.push(ScanRow {
            length: l,
            sequential_ms,
            parallel_ms,
            speedup: sequential_ms / parallel_ms,
            sequential_train_ms,
            parallel_train_ms,
            train_speedup: sequential_train_ms / parallel_train_ms,
        });
    }

    // Step latency at positions 1, 1,000 and 10,000: median of 50 steps around each position.
    // Each model runs alone: interleaving them let the growing KV cache evict Mamba's weights
    // from the CPU caches (Mamba's step read 3× slower at 10,000 when interleaved).
    let positions = [1i64, 1000, 10_000];
    let x1 = Tensor::randn([1, d], (Kind::Float, Device::Cpu));
    let mut state = mamba.zero_state(1, Device::Cpu);
    let mamba_us = step_latencies(&positions, || {
        let _ = mamba.step(&x1, &mut state);
        state.bytes()
    });
    let mut cache = KvCache::default();
    let attention_us = step_latencies(&positions, || {
        let _ = attention.step(&x1, &mut cache);
        cache.bytes()
    });
    let steps: Vec<StepRow> = positions
        .iter()
        .zip(mamba_us.iter().zip(&attention_us))
        .map(|(&position, (&(m, mkb), &(a, akb)))| StepRow {
            position,
            mamba_step_us: m,
            attention_kv_step_us: a,
            mamba_state_kb: mkb,
            kv_cache_kb: akb,
        })
        .collect();

    // MoE: 4,096 tokens, 8 experts of hidden 512, against dense FFNs.
    let tokens = Tensor::randn([4096, d], (Kind::Float, Device::Cpu));
    let h = 512;
    let mut moe_rows = vec![];
    let per_token = |ms: f64| ms * 1000.0 / 4096.0;
    let params = |d_hidden: i64, n: i64| (2 * d * d_hidden + d_hidden + d) as f64 * n as f64 / 1e6;
    for k in [1, 2] {
        let m = Moe::new(
            vs.root() / format!("moe{k}"),
            &MoeConfig { d_model: d, d_hidden: h, n_experts: 8, top_k: k, ..Default::default() },
        );
        let ms = time_ms(5, || drop(m.forward(&tokens)));
        moe_rows.push(MoeRow {
            name: format!("MoE top-{k} of 8"),
            params_m: params(h, 8),
            active_params_m: params(h, k),
            us_per_token: per_token(ms),
        });
    }
    for (name, hidden) in [
        ("dense, same total params", 8 * h),
        ("dense, active params of top-1", h),
        ("dense, active params of top-2", 2 * h),
    ] {
        let ffn = Expert::new(vs.root() / format!("dense{hidden}"), d, hidden);
        let ms = time_ms(5, || drop(ffn.forward(&tokens)));
        moe_rows.push(MoeRow {
            name: name.into(),
            params_m: params(hidden, 1),
            active_params_m: params(hidden, 1),
            us_per_token: per_token(ms),
        });
    }

    let report = SeqReport { d_model: d, threads: tch::get_num_threads(), lengths, scan, steps, moe: moe_rows };
    if let Some(path) = plot {
        write_plots(path, &report)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Mamba block vs causal attention block, d_model {d}, batch 1, CPU ({} threads)", report.threads);
    println!(
        "{:>7} {:>12} {:>10} {:>12} {:>7} {:>11} {:>10} {:>12}",
        "length", "chunked ms", "seq ms", "attention ms", "ratio", "chunked MB", "seq MB", "attention MB"
    );
    for r in &report.lengths {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:>7} {:>12.1} {:>10} {:>12} {:>7} {:>11.0} {:>10} {:>12}",
            r.length,
            r.mamba_ms,
            opt(r.mamba_sequential_ms, 1),
            opt(r.attention_ms, 1),
            opt(r.ratio, 2),
            r.mamba_peak_mb,
            opt(r.mamba_sequential_peak_mb, 0),
            opt(r.attention_peak_mb, 0)
        );
    }
    println!("(ratio: the faster Mamba scan / attention)");
    println!(
        "\nscan           sequential ms  parallel ms  speedup | forward+backward: sequential ms  parallel ms  speedup"
    );
    for r in &report.scan {
        println!(
            "length {:>6} {:>14.1} {:>12.1} {:>8.1} | {:>32.1} {:>12.1} {:>8.1}",
            r.length,
            r.sequential_ms,
            r.parallel_ms,
            r.speedup,
            r.sequential_train_ms,
            r.parallel_train_ms,
            r.train_speedup
        );
    }
    println!("\nposition  mamba step µs  attention+KV step µs  mamba state KB  KV cache KB");
    for r in &report.steps {
        println!(
            "{:>8} {:>14.0} {:>21.0} {:>15.0} {:>12.0}",
            r.position, r.mamba_step_us, r.attention_kv_step_us, r.mamba_state_kb, r.kv_cache_kb
        );
    }
    println!("\n{:<32} {:>9} {:>10} {:>12}", "feed-forward (4,096 tokens)", "params M", "active M", "µs/token");
    for r in &report.moe {
        println!("{:<32} {:>9.2} {:>10.2} {:>12.2}", r.name, r.params_m, r.active_params_m, r.us_per_token);
    }
    Ok(())
}

/// Time and memory against length, log-log (a straight line of slope 1 is linear, 2 quadratic).
fn write_plots(path: &std::path::Path, report: &SeqReport) -> Result<()> {
    use train::plot::{Plot, Series, line_plot};
    let rows = &report.lengths;
    let pick = |f: &dyn Fn(&LengthRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).map(|v| (r.length as f64, v))).collect()
    };
    line_plot(
        path,
        &Plot {
            title: "Forward time vs length (batch 1, d_model 256, CPU)",
            x_label: "sequence length (tokens)",
            y_label: "ms",
            log_x: true,
            log_y: true,
            markers: vec![],
        },
        &[
            Series::new("Mamba, chunked parallel scan", pick(&|r| Some(r.mamba_ms))),
            Series::new("Mamba, sequential scan", pick(&|r| r.mamba_sequential_ms)),
            Series::new("causal attention (SDPA)", pick(&|r| r.attention_ms)),
        ],
    )?;
    let memory = path.with_file_name(format!(
        "{}-memory.png",
        path.file_stem().map_or("seq".into(), |s| s.to_string_lossy().into_owned())
    ));
    line_plot(
        &memory,
        &Plot {
            title: "Peak memory of one forward pass vs length",
            x_label: "sequence length (tokens)",
            y_label: "MB above baseline",
            log_x: true,
            log_y: true,
            markers: vec![],
        },
        &[
            Series::new("Mamba, chunked parallel scan", pick(&|r| Some(r.mamba_peak_mb))),
            Series::new("Mamba, sequential scan", pick(&|r| r.mamba_sequential_peak_mb)),
            Series::new("causal attention (SDPA)", pick(&|r| r.attention_peak_mb)),
        ],
    )?;
    Ok(())
}
