//! Where the model runs: `cpu`, `cuda` or `cuda:N`, refused where libtorch sees no such GPU.

use tch::Device;

use crate::{Result, WmError};

/// Parses `cpu`, `cuda` or `cuda:N`; a CUDA device is checked against what libtorch sees.
pub fn parse_device(s: &str) -> Result<Device> {
    let d = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => return Err(WmError::Device(format!("{s:?}: expected cpu, cuda or cuda:N"))),
        },
    };
    if let Device::Cuda(n) = d {
        let loaded = load_libtorch_cuda();
        if !tch::Cuda::is_available() || n as i64 >= tch::Cuda::device_count() {
            let why = match loaded {
                Ok(()) => String::new(),
                Err(e) => format!(" ({e})"),
            };
            return Err(WmError::Device(format!(
                "{s}: libtorch sees {} CUDA device(s) here{why}",
                tch::Cuda::device_count()
            )));
        }
    }
    Ok(d)
}

/// Loads `libtorch_cuda.so` once, for the rest of the process. The binaries link only
/// libtorch's CPU half: nothing in tch names a symbol of the CUDA half, so the linker's
/// `--as-needed` drops it and libtorch would see no CUDA device even on a GPU machine. Loading it
/// registers its CUDA kernels and hooks (its static initialisers), as `import torch` does. It is
/// looked up on the binary's run path (the venv's libtorch), then the usual places. Not loaded on
/// the CPU path: it pulls in the CUDA runtime libraries (~2 GB) that a CPU run never uses.
fn load_libtorch_cuda() -> std::result::Result<(), String> {
    static LOADED: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
            // SAFETY: libtorch_cuda's initialisers only register with the libtorch already loaded.
            match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(lib) => {
                    // Kept loaded for the life of the process: its kernels are now registered.
                    std::mem::forget(lib);
                    Ok(())
                }
                Err(e) => Err(format!("could not load libtorch_cuda.so: {e}")),
            }
        })
        .clone()
}
