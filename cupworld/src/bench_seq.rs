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
    mamba_ms: f64,
    attention_ms: Option<f64>,
    /// Mamba time / attention time.
    ratio: Option<f64>,
    mamba_peak_mb: f64,
    attention_peak_mb: Option<f64>,
}

#[derive(Serialize)]
struct ScanRow {
    length: i64,
    sequential_ms: f64,
    parallel_ms: f64,
    speedup: f64,
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

/// Peak resident memory (MB) while `f` runs, via Linux's resettable high-water mark.
fn peak_mb<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let read = || -> Option<f64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
    };
    let rss = || -> Option<f64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = rss().unwrap_or(0.0);
    let out = f();
    (out, (read().unwrap_or(0.0) - base).max(0.0))
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

pub fn run(max_length: i64, attention_max: i64, json: bool) -> Result<()> {
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
        let (mamba_ms, mamba_peak_mb) = peak_mb(|| time_ms(repeats, || drop(mamba.forward(&x, Scan::Chunked))));
        let (attention_ms, attention_peak_mb) = if l <= attention_max {
            let (t, m) = peak_mb(|| time_ms(repeats, || drop(attention.forward(&x))));
            (Some(t), Some(m))
        } else {
            (None, None)
        };
        eprintln!("length {l}: mamba {mamba_ms:.1} ms, attention {attention_ms:?} ms");
        lengths.push(LengthRow {
            length: l,
            mamba_ms,
            attention_ms,
            ratio: attention_ms.map(|a| mamba_ms / a),
            mamba_peak_mb,
            attention_peak_mb,
        });
        l *= 2;
    }

    let mut scan = vec![];
    for l in [1024, 8192] {
        let x = input(l);
        let sequential_ms = time_ms(1, || drop(mamba.forward(&x, Scan::Reference)));
        let parallel_ms = time_ms(3, || drop(mamba.forward(&x, Scan::Chunked)));
        scan.push(ScanRow { length: l, sequential_ms, parallel_ms, speedup: sequential_ms / parallel_ms });
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
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Mamba block vs causal attention block, d_model {d}, batch 1, CPU ({} threads)", report.threads);
    println!(
        "{:>7} {:>10} {:>12} {:>7} {:>10} {:>12}",
        "length", "mamba ms", "attention ms", "ratio", "mamba MB", "attention MB"
    );
    for r in &report.lengths {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:>7} {:>10.1} {:>12} {:>7} {:>10.0} {:>12}",
            r.length,
            r.mamba_ms,
            opt(r.attention_ms, 1),
            opt(r.ratio, 2),
            r.mamba_peak_mb,
            opt(r.attention_peak_mb, 0)
        );
    }
    println!("\nscan           sequential ms  parallel ms  speedup");
    for r in &report.scan {
        println!("length {:>6} {:>14.1} {:>12.1} {:>8.1}", r.length, r.sequential_ms, r.parallel_ms, r.speedup);
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
