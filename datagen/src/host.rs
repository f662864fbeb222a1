//! What this process runs on: its cores and its CPU, for thread counts and for naming the machine
//! next to every timing.

/// The threads this process may use (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// One render thread per core, at most 4 (each bevy app costs memory and start-up time).
pub fn default_renderers() -> usize {
    cores().clamp(1, 4)
}

/// The host's CPU as `/proc/cpuinfo` names it, with its family and model numbers and the threads
/// this process may use, e.g. "AMD EPYC (family 23, model 1), 2 threads". Timings compare only on
/// one CPU: `gen` rendered 313 frames/s on one 2-core machine of this project and 150 on another
/// (a Zen 1 EPYC; experiments/2026-12-01-keypoints).
pub fn cpu() -> String {
    let threads = cores();
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{name} (family {f}, model {m}), {threads} threads"),
        _ => format!("{name}, {threads} threads"),
    }
}
