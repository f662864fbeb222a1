//! Records the compiler version and the resolved versions of the crates that shape a dataset
//! (from the workspace's Cargo.lock) for dataset manifests.
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CUPWORLD_RUSTC_VERSION={}", version.trim());

    let lock_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for (krate, var) in [
        ("rapier3d", "CUPWORLD_RAPIER3D_VERSION"),
        ("bevy", "CUPWORLD_BEVY_VERSION"),
        ("parquet", "CUPWORLD_PARQUET_VERSION"),
    ] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, krate).unwrap_or("unknown"));
    }
}

/// The version of `krate` in a Cargo.lock (`name = "…"` followed by `version = "…"`).
fn locked_version<'a>(lock: &'a str, krate: &str) -> Option<&'a str> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{krate}\"") {
            return lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"');
        }
    }
    None
}
