//! `cupworld._native`: the simulator and the batch renderer behind the Python package.
//!
//! The Python side (`python/cupworld/`) wraps this in Gymnasium's `Env` and `VectorEnv`. This
//! module moves plain bytes across: actions in, frames, states and flags out, all N environments
//! in one call, so Python never loops over environments.
//!
//! - [`vector`]: N simulators stepped on Rust threads with the GIL released ([`vector::VectorSim`]).
//! - [`render_thread`]: the bevy renderer on a thread of its own, one update per batch of frames.
//! - [`voe`]: the violation-of-expectation pairs `eval-wm` scores, and their score.

mod render_thread;
mod vector;
mod voe;

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<vector::VectorSim>()?;
    m.add_function(wrap_pyfunction!(voe::voe_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(voe::voe_score, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add("SCENE_VERSION", sim::SCENE_VERSION)?;
    Ok(())
}

/// Runs `f`, turning a Rust panic (a bug, never bad input) into a Python `RuntimeError` that
/// names `what`, so no panic crosses into the interpreter as a `BaseException`.
pub(crate) fn no_panic<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(PyRuntimeError::new_err(format!("{what}: internal error in cupworld (Rust panic: {message})")))
    })
}

/// Panics inside [`no_panic`]: lets the tests check that a panic arrives as a `RuntimeError`.
#[pyfunction]
fn _panic_for_test() -> PyResult<()> {
    no_panic("_panic_for_test", || panic!("deliberate panic"))
}
