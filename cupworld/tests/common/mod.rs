//! Helpers shared by the end-to-end tests: run the real `cupworld` binary.
// Each test file uses its own subset of these.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `cupworld args…` (with no SLURM shard variables leaking in from the environment).
pub fn cupworld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cupworld")).args(args).env_remove("SLURM_ARRAY_TASK_ID").output().unwrap()
}

/// Runs it and returns stdout; fails the test with both streams if it did not succeed.
pub fn ok(args: &[&str]) -> String {
    succeeded(cupworld(args), &format!("cupworld {args:?}"))
}

/// The stdout of a run that must have succeeded; fails the test with both streams if not.
pub fn succeeded(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it, expects failure, and returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = cupworld(args);
    assert!(!out.status.success(), "cupworld {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cupworld view ARGS` in a virtual X display (xvfb-run).
pub fn view_under_xvfb(args: &[&str]) -> Output {
    let status = Command::new("xvfb-run").arg("--help").output();
    assert!(
        status.is_ok(),
        "xvfb-run is missing: install the `xvfb` package (scripts/setup.sh does) to test the viewer"
    );
    Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24", env!("CARGO_BIN_EXE_cupworld"), "view"])
        .args(args)
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap()
}
