//! The trainer through its library API: exact resume after an interruption (a stop hook), on
//! frames and on the frozen encoder's cached latents, and the non-finite guard (a batch hook).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tch::Tensor;
use train::{DataSource, Hooks, TrainOptions};
use world_model::WmConfig;

/// A 4-episode knock-off dataset of short episodes (or its counterfactual companion).
fn dataset(dir: PathBuf, seed: u64, counterfactual: bool) -> PathBuf {
    let cfg = datagen::GenConfig {
        env: sim::EnvConfig { max_steps: 14, linger_steps: 3, ..sim::EnvConfig::for_task(sim::Task::KnockOff) },
        policy: sim::PolicyKind::Mixed,
        episodes: 4,
        base_seed: seed,
        out: dir.clone(),
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig { slots: 8, ..Default::default() },
        renderers: 1,
        sim_workers: 1,
        counterfactual: counterfactual.then(sim::counterfactual::Displacement::default),
        progress: false,
    };
    datagen::generate::run(&cfg).unwrap();
    dir
}

/// libtorch's random generator is one per process: runs in parallel threads would interleave
/// their draws (a model's initialisation seeds it), so these tests take turns.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn options(cfg: WmConfig, data: DataSource, out: &Path) -> TrainOptions {
    // Bit-identical training needs one intra-op thread.
    tch::set_num_threads(1);
    TrainOptions { cfg, data, out: out.to_path_buf(), checkpoint_every: 4, ..TrainOptions::default() }
}

/// The tiny preset for data without counterfactuals: encoder and predictor train together.
fn tiny(steps: u64) -> WmConfig {
    WmConfig { steps, ..WmConfig::preset("tiny").unwrap().without_counterfactuals() }
}

fn stop_at(step: u64) -> Hooks {
    Hooks { stop_before: Some(Arc::new(move |s| s >= step)), ..Hooks::default() }
}

/// Online, target and averaged predictor weights of a checkpoint, sorted by name.
fn weights(ckpt: &Path) -> Vec<(String, Tensor)> {
    world_model::checkpoint_weights(ckpt).unwrap()
}

fn same_weights(a: &Path, b: &Path) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between the uninterrupted and the resumed run");
    }
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn interrupted_and_resumed_training_ends_with_identical_weights() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = DataSource::Datasets(vec![dataset(dir.path().join("data"), 1, false)]);
    let (full, part) = (dir.path().join("full"), dir.path().join("part"));
    train::run(&options(tiny(12), data.clone(), &full)).unwrap();
    // Stopped at step 6: the newest checkpoint is step 4, so steps 4 and 5 are redone on resume.
    let e = train::run(&TrainOptions { hooks: stop_at(6), ..options(tiny(12), data.clone(), &part) }).unwrap_err();
    assert!(e.to_string().contains("interrupted at step 6"), "{e}");
    assert!(part.join("checkpoints/step-00000004.safetensors").exists());
    assert!(!part.join("checkpoints/step-00000006.safetensors").exists());
    // Without resume the run directory is not overwritten.
    let e = train::run(&options(tiny(12), data.clone(), &part)).unwrap_err();
    assert!(format!("{e:#}").contains("--resume"), "{e:#}");
    train::run(&TrainOptions { resume: true, ..options(tiny(12), data, &part) }).unwrap();

    same_weights(
        &full.join("checkpoints/step-00000012.safetensors"),
        &part.join("checkpoints/step-00000012.safetensors"),
    );
    // One metrics line per step, the redone steps not doubled, and equal losses.
    let (la, lb) = (metrics(&full), metrics(&part));
    assert_eq!(lb.len(), 12);
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(x["step"], y["step"]);
        assert_eq!(x["loss"], y["loss"], "step {}", x["step"]);
    }
    assert!(full.join("plots/loss.png").exists() && full.join("plots/collapse.png").exists());
    // Only the newest 3 checkpoints are kept.
    assert_eq!(std::fs::read_dir(full.join("checkpoints")).unwrap().count(), 3);
}

/// The encoder-first recipe resumed inside its predictor phase, where training reads the frozen
/// encoders' latents cached once (rebuilt on resume from the checkpoint): the same weights as
/// the uninterrupted run.
#[test]
fn resumed_on_the_frozen_encoder_with_cached_latents_ends_with_identical_weights() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = DataSource::DatasetsWithCounterfactuals {
        data: vec![dataset(dir.path().join("data"), 3, false)],
        counterfactual: vec![dataset(dir.path().join("cf"), 3, true)],
    };
    let cfg = WmConfig { encoder_steps: 4, steps: 12, ..WmConfig::preset("tiny").unwrap() };
    assert!(cfg.latents_cacheable_at(8), "the predictor phase must read cached latents");
    let (full, part) = (dir.path().join("full"), dir.path().join("part"));
    train::run(&options(cfg.clone(), data.clone(), &full)).unwrap();
    // Stopped at step 10 (newest checkpoint 8, in the predictor phase), then resumed.
    let e = train::run(&TrainOptions { hooks: stop_at(10), ..options(cfg.clone(), data.clone(), &part) }).unwrap_err();
    assert!(e.to_string().contains("interrupted at step 10"), "{e}");
    train::run(&TrainOptions { resume: true, ..options(cfg, data, &part) }).unwrap();
    same_weights(
        &full.join("checkpoints/step-00000012.safetensors"),
        &part.join("checkpoints/step-00000012.safetensors"),
    );
}

#[test]
fn non_finite_steps_are_skipped_and_counted_then_stop_the_run() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = DataSource::Datasets(vec![dataset(dir.path().join("data"), 4, false)]);
    let poison_first = |n: u64| Hooks {
        transform_batch: Some(Arc::new(
            move |step, x: Tensor| {
                if step < n { x.to_kind(tch::Kind::Float) * f64::NAN } else { x }
            },
        )),
        ..Hooks::default()
    };
    let s =
        train::run(&TrainOptions { hooks: poison_first(2), ..options(tiny(6), data.clone(), &dir.path().join("a")) })
            .unwrap();
    assert_eq!(s.nonfinite_steps, 2);
    assert!(s.final_loss.is_finite());
    let e = train::run(&TrainOptions {
        hooks: poison_first(6),
        max_nonfinite: 3,
        ..options(tiny(6), data, &dir.path().join("b"))
    })
    .unwrap_err();
    assert!(e.to_string().contains("3 non-finite steps in a row"), "{e}");
}
