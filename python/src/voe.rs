//! The violation-of-expectation pairs `cupworld eval-wm` scores (`sim::voe`), drawn by the same
//! renderer, and their pairwise score, for a Python user's own world model.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};
use sim::voe::{Category, generate_pairs, score};

use crate::no_panic;

/// `per_category` pairs of each category (all five unless `categories` names some), with
/// `context` frames before the breaking point. `eval-wm`'s defaults: 120 pairs, seed 7000,
/// context 16, 64 × 64 frames. Each pair: category, seed, break_at, and the two twins' frames
/// (T × size × size × 3 uint8) and shared actions (T × 2 float32) as bytes.
#[pyfunction]
#[pyo3(signature = (per_category=120, seed=7000, categories=None, context=sim::voe::DEFAULT_CONTEXT, size=64))]
pub fn voe_pairs<'py>(
    py: Python<'py>,
    per_category: usize,
    seed: u64,
    categories: Option<Vec<String>>,
    context: usize,
    size: u32,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    if per_category == 0 {
        return Err(PyValueError::new_err("per_category = 0: expected at least 1"));
    }
    let categories: Vec<Category> = match categories {
        None => Category::ALL.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| n.parse::<Category>().map_err(|e| PyValueError::new_err(format!("categories: {e}"))))
            .collect::<PyResult<_>>()?,
    };
    if !(1..=sim::voe::MAX_CONTEXT).contains(&context) {
        return Err(PyValueError::new_err(format!(
            "context = {context}: expected 1 to {} frames before the breaking point",
            sim::voe::MAX_CONTEXT
        )));
    }
    if !(8..=512).contains(&size) {
        return Err(PyValueError::new_err(format!("size = {size}: expected 8 to 512 pixels")));
    }
    let (pairs, frames) = no_panic("voe_pairs", || {
        py.detach(|| {
            let pairs = generate_pairs(per_category, seed, &categories, context).map_err(|e| e.to_string())?;
            let clips: Vec<&[types::SceneSnapshot]> =
                pairs.iter().flat_map(|p| [p.possible.as_slice(), p.impossible.as_slice()]).collect();
            let (frames, _) = render::render_clips_rgb(&clips, size).map_err(|e| e.to_string())?;
            Ok::<_, String>((pairs, frames))
        })
        .map_err(PyRuntimeError::new_err)
    })?;
    let mut clips = frames.into_iter();
    pairs
        .iter()
        .map(|p| {
            let d = PyDict::new(py);
            d.set_item("category", p.category.name())?;
            d.set_item("seed", p.seed)?;
            d.set_item("break_at", p.break_at)?;
            d.set_item("frames", p.possible.len())?;
            let actions: Vec<u8> = p.actions.iter().flatten().flat_map(|v| v.to_ne_bytes()).collect();
            d.set_item("actions", PyBytes::new(py, &actions))?;
            for twin in ["possible", "impossible"] {
                let clip: Vec<u8> = clips.next().expect("two clips per pair").concat();
                d.set_item(twin, PyByteArray::new(py, &clip))?;
            }
            Ok(d)
        })
        .collect()
}

/// Pairwise accuracy (the possible twin less surprising; ties count half) and AUROC of a model's
/// surprise on each pair's possible and impossible twin, as `eval-wm` reports them.
#[pyfunction]
pub fn voe_score<'py>(py: Python<'py>, possible: Vec<f64>, impossible: Vec<f64>) -> PyResult<Bound<'py, PyDict>> {
    if possible.len() != impossible.len() || possible.is_empty() {
        return Err(PyValueError::new_err(format!(
            "possible and impossible: expected one surprise per pair in each, got {} and {}",
            possible.len(),
            impossible.len()
        )));
    }
    for (name, values) in [("possible", &possible), ("impossible", &impossible)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(format!("{name}[{i}] is {}: surprises must be finite", values[i])));
        }
    }
    let pairs: Vec<(f64, f64)> = possible.into_iter().zip(impossible).collect();
    let s = score(&pairs);
    let d = PyDict::new(py);
    d.set_item("pairs", s.pairs)?;
    d.set_item("pairwise_accuracy", s.pairwise_accuracy)?;
    d.set_item("auroc", s.auroc)?;
    Ok(d)
}
