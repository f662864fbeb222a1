//! The world-model commands end to end on tiny runs: refusals, live training, and the main job at its tiny scale (gen → train → eval → surprise).

use std::path::Path;

mod common;
use common::{cupworld, fails, ok};

fn dataset(dir: &Path, task: &str, seed: &str) -> String {
    gen_into(dir.join(task), task, seed, &[])
}

fn gen_into(d: std::path::PathBuf, task: &str, seed: &str, extra: &[&str]) -> String {
    let s = d.to_str().unwrap().to_string();
    let mut args = vec![
        "gen",
        "--task",
        task,
        "--episodes",
        "4",
        "--seed",
        seed,
        "--max-steps",
        "14",
        "--slots",
        "8",
        "--linger-steps",
        "3",
        "--out",
        &s,
    ];
    args.extend_from_slice(extra);
    ok(&args);
    s
}

/// The shipped overlay for data without counterfactual frames.
const NO_COUNTERFACTUALS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/world_model/no-counterfactuals.json");

/// `train-wm` of the tiny preset on data without counterfactuals, as a user gives it.
fn train(data: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--config", NO_COUNTERFACTUALS];
    v.extend_from_slice(extra);
    train_recipe(data, out, &v)
}

/// `train-wm` of the tiny preset as shipped (encoder first: it needs --counterfactual-data), or
/// of the --config in `extra`.
fn train_recipe(data: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["train-wm", "--data", data, "--out", out, "--preset", "tiny", "--threads", "1", "--checkpoint-every", "4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// An episode of `surprise.json`: its max, the frame of it, and its mean are those of its curve.
fn same_summary(e: &serde_json::Value) {
    let scored: Vec<(usize, f64)> =
        e["curve"].as_array().unwrap().iter().enumerate().filter_map(|(k, v)| v.as_f64().map(|v| (k, v))).collect();
    let (at, max) = scored.iter().copied().fold((0, f64::NEG_INFINITY), |m, (k, v)| if v > m.1 { (k, v) } else { m });
    let mean = scored.iter().map(|(_, v)| v).sum::<f64>() / scored.len() as f64;
    assert_eq!(e["max"].as_f64().unwrap(), max, "{e}");
    assert_eq!(e["max_frame"].as_u64().unwrap(), at as u64, "{e}");
    assert!((e["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{e}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// Online, target and (from `load_model`, which predicts with it) averaged predictor weights.
fn weights(ckpt: &Path) -> Vec<(String, tch::Tensor)> {
    world_model::checkpoint_weights(ckpt).unwrap()
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "push-to-goal", "2");
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    ok(&refs(&train(&data, run_s, &["--steps", "4"])));
    // Another config on resume: the differing key is named.
    let e = fails(&refs(&train(&data, run_s, &["--steps", "8", "--batch-size", "3", "--resume"])));
    assert!(e.contains("batch_size") && e.contains("step-00000004.safetensors"), "{e}");
    // A truncated checkpoint: named, not loaded.
    let ckpt = run.join("checkpoints/step-00000004.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() - 100]).unwrap();
    let e = fails(&refs(&train(&data, run_s, &["--steps", "8", "--resume"])));
    assert!(e.contains("step-00000004.safetensors"), "{e}");
    let e = fails(&["eval-wm", "--checkpoint", ckpt.to_str().unwrap(), "--data", &data, "--out", run_s]);
    assert!(e.contains("step-00000004.safetensors"), "{e}");
    // A dataset that fails verification is refused.
    let parquet = Path::new(&data).join("data/chunk-000/file-000.parquet");
    let mut p = std::fs::read(&parquet).unwrap();
    let mid = p.len() / 2;
    p[mid] ^= 0xff;
    std::fs::write(&parquet, p).unwrap();
    let other = dir.path().join("other");
    let e = fails(&refs(&train(&data, other.to_str().unwrap(), &["--steps", "2"])));
    assert!(e.contains("fails verification") && e.contains("push-to-goal"), "{e}");
    assert!(!other.exists(), "a refused train-wm left a run folder behind");
    // A config file with a typo names the key.
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"clip_lenn": 4}"#).unwrap();
    let e = fails(&["train-wm", "--data", &data, "--out", other.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert!(e.contains("bad.json") && e.contains("clip_lenn"), "{e}");
}

/// `gen --counterfactual` makes the same episodes with the cup and the pusher drawn elsewhere; `train-wm` pairs
/// them with `--counterfactual-data`, logs both contrasts, and refuses a companion that is not
/// one, or belongs to other episodes, and counterfactual loss weights without counterfactuals.
#[test]
fn counterfactual_companions_are_paired_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "push-to-goal", "5");
    let cf = gen_into(dir.path().join("cf"), "push-to-goal", "5", &["--counterfactual"]);
    // The companion holds the same actions, the cup and the pusher drawn (and recorded) elsewhere
    // in nearly every frame.
    let rows = |d: &str| {
        let mut v = vec![];
        dataset::for_each_episode(Path::new(d), |ep| {
            v.extend(ep.rows);
            Ok(())
        })
        .unwrap();
        v
    };
    let (real, moved) = (rows(&data), rows(&cf));
    assert_eq!(real.len(), moved.len());
    let (mut shown_elsewhere, mut pusher_elsewhere) = (0, 0);
    for (r, m) in real.iter().zip(&moved) {
        assert_eq!(r.transition.action, m.transition.action);
        let (a, b) = (&r.transition.environment_state, &m.transition.environment_state);
        let d = ((a[0] - b[0]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        if r.rgb != m.rgb && (0.03..=0.25).contains(&d) {
            shown_elsewhere += 1;
        }
        // The pusher too (its table-plane position in observation.state).
        let (a, b) = (&r.transition.state, &m.transition.state);
        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        if (0.03..=0.25).contains(&d) {
            pusher_elsewhere += 1;
        }
    }
    assert!(shown_elsewhere as f64 > 0.9 * real.len() as f64, "{shown_elsewhere} of {} frames", real.len());
    assert!(pusher_elsewhere as f64 > 0.9 * real.len() as f64, "pusher: {pusher_elsewhere} of {} frames", real.len());
    let run = dir.path().join("run");
    ok(&refs(&train_recipe(&data, run.to_str().unwrap(), &["--steps", "64", "--counterfactual-data", &cf])));
    // The preset trains encoder first: its encoder phase (60 steps for tiny, as `demo --scale
    // tiny`) of the encoder alone (no predictor terms; inverse dynamics), then 4 of the predictor
    // on the frozen encoder.
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 64, "{log}");
    for (i, line) in lines.iter().enumerate() {
        let (teacher, inverse) = (line["teacher"].as_f64().unwrap(), line["inverse_dynamics"].as_f64().unwrap());
        assert_eq!(teacher > 0.0, i >= 60, "step {i}: teacher {teacher}");
        assert_eq!(inverse > 0.0, i < 60, "step {i}: inverse dynamics {inverse}");
    }
    for key in ["contrast", "graded"] {
        let v = lines[59][key].as_f64().unwrap();
        assert!(v > 0.0 && v < 5.0, "{key} = {v}");
    }
    // On the frozen encoder the counterfactual terms cannot train anything: they are not
    // computed, which saves an encoder pass per predictor step.
    for key in ["contrast", "graded"] {
        assert_eq!(lines[63][key].as_f64(), Some(0.0), "{key} in the predictor phase");
    }
    let other = dir.path().join("other");
    let o = other.to_str().unwrap();
    // A companion from other episodes, a plain dataset as companion, a companion as data.
    let wrong = gen_into(dir.path().join("cf-wrong"), "push-to-goal", "6", &["--counterfactual"]);
    let short = ["--steps", "2", "--set", "encoder_steps=1", "--counterfactual-data"];
    let with_cf = |companion: &str| -> Vec<String> {
        let mut v = short.to_vec();
        v.push(companion);
        train_recipe(&data, o, &v)
    };
    let e = fails(&refs(&with_cf(&wrong)));
    assert!(e.contains("cf-wrong") && e.contains("not the same episode"), "{e}");
    let e = fails(&refs(&with_cf(&data)));
    assert!(e.contains("not a counterfactual dataset"), "{e}");
    let e = fails(&refs(&train_recipe(&cf, o, &[&short[..], &[cf.as_str()]].concat())));
    assert!(e.contains("is a counterfactual dataset"), "{e}");
    let e = fails(&refs(&train(&cf, o, &["--steps", "2"])));
    assert!(e.contains("is a counterfactual dataset") && e.contains("--counterfactual-data"), "{e}");
    // `--set encoder_steps` sets the encoder phase: 5 steps of it, then 2 of the predictor.
    let short = dir.path().join("short");
    #[rustfmt::skip]
    ok(&refs(&train_recipe(&data, short.to_str().unwrap(),
        &["--steps", "7", "--set", "encoder_steps=5", "--counterfactual-data", &cf])));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(short.join("config.json")).unwrap()).unwrap();
    assert_eq!((written["model"]["encoder_steps"].as_u64(), written["model"]["steps"].as_u64()), (Some(5), Some(7)));
    // The recipe without counterfactual data is refused, naming what to give and the way
    // without it; the overlay's run without counterfactuals refuses companions it would not use.
    let e = fails(&refs(&train_recipe(&data, o, &["--steps", "64"])));
    assert!(e.contains("loss.contrast (1)") && e.contains("--counterfactual-data"), "{e}");
    assert!(e.contains("assets/world_model/no-counterfactuals.json"), "{e}");
    let e = fails(&refs(&train(&data, o, &["--steps", "2", "--counterfactual-data", &cf])));
    assert!(e.contains("nothing trains on it"), "{e}");
    assert!(!other.exists(), "a refused train-wm made its --out");
}

#[test]
fn live_training_streams_episodes_from_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("live");
    let out = ok(&[
        "train-wm",
        "--live",
        "--config",
        NO_COUNTERFACTUALS,
        "--out",
        run.to_str().unwrap(),
        "--preset",
        "tiny",
        "--steps",
        "5",
        "--replay-episodes",
        "8",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"], 5, "{v}");
    assert!(v["episodes"].as_u64().unwrap() >= 2, "{v}");
    let cfg = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(cfg.contains("Live"), "{cfg}");
}

#[test]
fn main_job_at_tiny_scale_writes_the_report_and_surprise_scores() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let stdout = ok(&["demo", "--out", out.to_str().unwrap(), "--scale", "tiny"]);
    assert!(stdout.contains("VoE pairwise accuracy"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval/report.json")).unwrap()).unwrap();
    assert_eq!(report["prediction"]["trained"].as_array().unwrap().len(), 8);
    let acc = report["voe"]["trained"]["overall_by_max"]["pairwise_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(report["voe"]["trained"]["by_max"].as_array().unwrap().len(), 5, "all five categories");
    // The probes read the paw's position as well as the cup's (NaN if the pusher's positions were
    // not loaded from observation.state, or constant).
    for key in ["trained_position_r2", "trained_pusher_r2", "random_init_pusher_r2"] {
        for r2 in report["probe"][key].as_array().unwrap() {
            let r2 = r2.as_f64().unwrap_or(f64::NAN);
            assert!(r2.is_finite(), "{key}: {r2}");
        }
    }
    // The probes fit on the training episodes and on their counterfactual companions (the same
    // scenes with the cup elsewhere), never on held-out ones.
    let fit: Vec<&str> = report["probe"]["fit_data"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert_eq!(fit.len(), 4, "{fit:?}");
    assert_eq!(fit.iter().filter(|d| d.ends_with("-cf")).count(), 2, "{fit:?}");
    assert!(fit.iter().all(|d| d.contains("/train-")), "{fit:?}");
    let md = std::fs::read_to_string(out.join("eval/report.md")).unwrap();
    assert!(md.contains("| pusher x, R²"), "{md}");
    for f in ["report.md", "prediction.png", "voe_frames.png", "voe_levitate.png"] {
        assert!(out.join("eval").join(f).exists(), "{f} missing");
    }
    let timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("timing.json")).unwrap()).unwrap();
    // The stages' times add up to the whole (nothing runs outside them but bookkeeping).
    let part = |k: &str| timing[k].as_f64().unwrap();
    let stages =
        part("generate_s") + part("train_s") + part("evaluate_s") + part("agent_train_s") + part("agent_evaluate_s");
    assert!(part("total_s") >= stages && part("total_s") < stages + 5.0, "{timing}");

    // The agent: trained on the world model's latents and scored on both tasks beside the planner
    // and the controls, in one report with the world model's tables.
    assert!(out.join("agent/policy.safetensors").exists() && out.join("agent/cloning.safetensors").exists());
    for task in ["push-to-goal", "knock-off"] {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("agent-eval-{task}/report.json"))).unwrap())
                .unwrap();
        let names: Vec<&str> = r["agents"].as_array().unwrap().iter().map(|a| a["agent"].as_str().unwrap()).collect();
        assert_eq!(names, ["policy", "policy-cloning", "planner", "random", "zero", "expert"], "{task}");
        assert_eq!(r["agents"][0]["episodes"], 2);
        assert_eq!(r["agents"][2]["episodes"], 1, "the planner on its smaller budget");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("violation of expectation")
            && md.contains("](eval/voe_frames.png)")
            && md.contains("| policy |")
            && md.contains("knock-off, task protocol"),
        "{md}"
    );
    assert!(stdout.contains("push-to-goal policy"), "{stdout}");

    let s = dir.path().join("surprise");
    ok(&[
        "surprise",
        "--checkpoint",
        out.join("world_model").to_str().unwrap(),
        "--data",
        out.join("data/heldout-knock-off").to_str().unwrap(),
        "--out",
        s.to_str().unwrap(),
        "--plots",
        "2",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("surprise.json")).unwrap()).unwrap();
    let eps = v["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 4);
    for e in eps {
        let curve = e["curve"].as_array().unwrap();
        assert!(curve[0].is_null(), "nothing predicts the first frame");
        assert_eq!(curve.len() as u64, e["frames"].as_u64().unwrap());
        same_summary(e);
    }
    assert!(s.join("episode_000001.png").exists());

    // A dataset edited after `gen` no longer matches its manifest: `surprise` warns and scores it.
    let heldout = out.join("data/heldout-knock-off");
    let stats = heldout.join("meta/stats.json");
    let mut text = std::fs::read_to_string(&stats).unwrap();
    text.push(' ');
    std::fs::write(&stats, text).unwrap();
    let edited = dir.path().join("edited");
    let run = cupworld(&[
        "surprise",
        "--checkpoint",
        out.join("world_model").to_str().unwrap(),
        "--data",
        heldout.to_str().unwrap(),
        "--out",
        edited.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("differ from the manifest"));
    assert!(edited.join("surprise.json").exists());
}

/// `--device cuda` loads libtorch's CUDA half from the binary's run path (the linker drops it, so
/// without that load libtorch sees no GPU even on a GPU machine). On a machine without a GPU the
/// load succeeds and the refusal says how many devices libtorch sees; with one, the command runs.
/// An unknown device is refused by value, `demo` included.
#[test]
fn cuda_device_loads_libtorch_cuda_or_is_refused_by_count() {
    let out = cupworld(&["bench", "wm", "--preset", "tiny", "--steps", "1", "--device", "cuda"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(String::from_utf8_lossy(&out.stdout).contains("Cuda(0)"), "{stderr}");
    } else {
        assert!(stderr.contains("--device cuda: libtorch sees 0 CUDA device(s) here"), "{stderr}");
        assert!(!stderr.contains("could not load libtorch_cuda.so"), "{stderr}");
    }
    let e = fails(&["demo", "--scale", "tiny", "--device", "tpu", "--out", "/nonexistent/never-written"]);
    assert!(e.contains("--device \"tpu\"") && e.contains("cpu, cuda or cuda:N"), "{e}");
}

/// `cupworld voe` writes the pairs `eval-wm` scores as two datasets, one episode per twin in the
/// same order, that verify and that `surprise` scores; the twins' frames match before the break
/// and differ after it. A complete output is kept on a rerun; a foreign directory and an unknown
/// category are refused by name.
#[test]
fn voe_pairs_on_disk_verify_match_before_the_break_and_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("voe");
    let out_s = out.to_str().unwrap();
    // Six frames of context before the break, the break, eight after.
    let stdout = ok(&["voe", "--pairs", "1", "--seed", "11", "--context", "6", "--out", out_s]);
    assert!(stdout.contains("wrote 5 pairs (15 frames per twin)"), "{stdout}");
    let pairs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("pairs.json")).unwrap()).unwrap();
    let pairs = pairs.as_array().unwrap();
    let names: Vec<&str> = pairs.iter().map(|p| p["category"].as_str().unwrap()).collect();
    assert_eq!(names, ["teleport", "vanish", "levitate", "pass-through", "recolor"]);
    let mut twins = vec![];
    for name in ["possible", "impossible"] {
        let report = dataset::verify(&out.join(name));
        assert!(report.ok(), "{name}: {:?}", report.problems);
        let mut episodes = vec![];
        dataset::for_each_episode(&out.join(name), |e| {
            episodes.push(e);
            Ok(())
        })
        .unwrap();
        twins.push(episodes);
    }
    assert_eq!((twins[0].len(), twins[1].len()), (5, 5));
    for (k, p) in pairs.iter().enumerate() {
        let (a, b) = (&twins[0][k], &twins[1][k]);
        let brk = p["break_at"].as_u64().unwrap() as usize;
        assert_eq!(brk, 6);
        assert_eq!((a.seed, b.seed), (p["seed"].as_u64().unwrap(), p["seed"].as_u64().unwrap()));
        assert_eq!(a.rows.len(), 15);
        for t in 0..15 {
            assert_eq!(a.rows[t].transition.action, b.rows[t].transition.action, "pair {k} frame {t}");
        }
        // The twins are rendered apart (other slots, other batches), and one scene renders to the
        // same bytes wherever it lands: before the break the twins' frames are byte-identical.
        let differing = |x: &[u8], y: &[u8]| x.iter().zip(y).filter(|(p, q)| p != q).count();
        for t in 0..brk {
            let n = differing(&a.rows[t].rgb, &b.rows[t].rgb);
            assert_eq!(n, 0, "{}: frame {t} differs before the break ({n} bytes)", names[k]);
        }
        assert!(
            (brk..15).any(|t| differing(&a.rows[t].rgb, &b.rows[t].rgb) > 0),
            "{}: the twins never differ",
            names[k]
        );
    }
    // Rerun: kept; with another context: refused, naming both. A directory holding something
    // else: refused by name. Unknown category: named.
    assert!(
        ok(&["voe", "--pairs", "1", "--seed", "11", "--context", "6", "--out", out_s])
            .contains("already holds 5 pairs")
    );
    let e = fails(&["voe", "--pairs", "1", "--seed", "11", "--out", out_s]);
    assert!(e.contains("6 frames before the break") && e.contains("--context 16"), "{e}");
    let e = fails(&["voe", "--pairs", "1", "--context", "0", "--out", dir.path().join("ctx0").to_str().unwrap()]);
    assert!(e.contains("invalid value '0' for '--context") && e.contains("1..=40"), "{e}");
    let e = fails(&["voe", "--pairs", "1", "--out", out.join("possible").to_str().unwrap()]);
    assert!(e.contains("possible") && e.contains("not a complete `cupworld voe` output"), "{e}");
    let e = fails(&[
        "voe",
        "--category",
        "levitate",
        "--category",
        "melt",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(e.contains("--category") && e.contains("\"melt\""), "{e}");

    // A tiny model scores both twins' episodes.
    let data = dataset(dir.path(), "knock-off", "3");
    let run = dir.path().join("run");
    ok(&refs(&train(&data, run.to_str().unwrap(), &["--steps", "4"])));
    let s = dir.path().join("surprise");
    ok(&[
        "surprise",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        out.join("impossible").to_str().unwrap(),
        "--out",
        s.to_str().unwrap(),
        "--plots",
        "0",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("surprise.json")).unwrap()).unwrap();
    assert_eq!(v["episodes"].as_array().unwrap().len(), 5);
}

/// A model that steps 2 frames at a time trains, evaluates (horizons in model steps, VoE four
/// frames = two model steps ahead) and scores episodes, with the frames nothing predicts left out.
#[test]
fn frameskip_model_trains_evaluates_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "push-to-goal", "0");
    let data2 = dataset(dir.path(), "knock-off", "50");
    let plain = world_model::WmConfig::preset("tiny").unwrap().without_counterfactuals();
    let cfg = world_model::WmConfig { frameskip: 2, steps: 6, ..plain };
    let cfg_path = dir.path().join("frameskip.json");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let run = dir.path().join("run");
    let extra = ["--config", cfg_path.to_str().unwrap(), "--val-data", &data2, "--val-every", "4"];
    let stdout = ok(&refs(&train_recipe(&data, run.to_str().unwrap(), &extra)));
    assert!(stdout.contains("held-out one-step L1"), "{stdout}");
    assert!(run.join("plots/validation.png").exists());
    // Held-out validation after every 4th step and the last (steps 3 and 5 of 0..6), nowhere else.
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for (i, line) in log.lines().enumerate() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let (l1, copy) = (line["val_l1"].as_f64(), line["val_copy_last"].as_f64());
        if i == 3 || i == 5 {
            let (l1, copy) = (l1.expect("val_l1"), copy.expect("val_copy_last"));
            assert!(l1.is_finite() && l1 > 0.0 && copy.is_finite() && copy > 0.0, "step {i}: {l1} {copy}");
            assert_ne!(l1, copy, "step {i}: the trained predictor scores exactly copy-last");
        } else {
            assert!(l1.is_none() && copy.is_none(), "step {i}: {line}");
        }
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(written["model"]["frameskip"].as_i64(), Some(2));
    let eval = dir.path().join("eval");
    #[rustfmt::skip]
    ok(&[
        "eval-wm", "--checkpoint", run.to_str().unwrap(), "--data", &data, "--data", &data2,
        "--out", eval.to_str().unwrap(), "--horizons", "2", "--voe-pairs", "1",
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["frameskip"].as_i64(), Some(2));
    assert!(report["prediction"]["clips"].as_u64().unwrap() > 0, "no clip of 4 + 2 model steps");
    for h in report["prediction"]["trained"].as_array().unwrap() {
        assert!(h.as_f64().unwrap().is_finite() && h.as_f64().unwrap() > 0.0);
    }
    let md = std::fs::read_to_string(eval.join("report.md")).unwrap();
    assert!(md.contains("model steps of 2 frame(s)") && md.contains("steps 2 frames at a time"), "{md}");

    let s = dir.path().join("surprise");
    ok(&["surprise", "--checkpoint", run.to_str().unwrap(), "--data", &data, "--out", s.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("surprise.json")).unwrap()).unwrap();
    for e in v["episodes"].as_array().unwrap() {
        let curve = e["curve"].as_array().unwrap();
        assert!(curve[0].is_null() && curve[1].is_null(), "frames 0 and 1 have nothing 2 frames before them");
        assert!(curve[2..].iter().all(|x| x.as_f64().is_some_and(f64::is_finite)), "{curve:?}");
        assert!(e["max_frame"].as_u64().unwrap() >= 2);
        same_summary(e);
    }
}

/// `--init-encoder` starts a run from another run's encoder: with the encoder frozen, the new
/// run's online encoder is the source's to the bit and its predictor is its own; a source with
/// another encoder is refused by name.
#[test]
fn init_encoder_copies_a_trained_encoder_and_refuses_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "push-to-goal", "0");
    let source = dir.path().join("source");
    ok(&refs(&train(&data, source.to_str().unwrap(), &["--steps", "4"])));
    // The tiny preset's predictor phase alone, on the given encoder.
    let mut cfg = world_model::WmConfig::preset("tiny").unwrap();
    (cfg.encoder_steps, cfg.steps) = (0, 3);
    let cfg_path = dir.path().join("frozen.json");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let run = dir.path().join("predictor");
    #[rustfmt::skip]
    let args = train_recipe(&data, run.to_str().unwrap(), &[
        "--config", cfg_path.to_str().unwrap(), "--init-encoder", source.to_str().unwrap(),
    ]);
    ok(&refs(&args));
    let (src, dst) = (
        weights(&source.join("checkpoints/step-00000004.safetensors")),
        weights(&run.join("checkpoints/step-00000003.safetensors")),
    );
    let find = |v: &[(String, tch::Tensor)], name: &str| v.iter().find(|(n, _)| n == name).unwrap().1.shallow_clone();
    let mut encoder = 0;
    for (name, w) in &dst {
        if name.starts_with("encoder.") {
            assert!(w.equal(&find(&src, name)), "{name} differs from the source's");
            encoder += 1;
        }
    }
    assert!(encoder > 4, "{encoder} encoder tensors");
    let p = dst.iter().find(|(n, _)| n.starts_with("predictor.")).unwrap();
    assert!(!p.1.equal(&find(&src, &p.0)), "the predictor {} was copied too", p.0);

    cfg.encoder.latent_dim = 8;
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let other = dir.path().join("other");
    #[rustfmt::skip]
    let args = train_recipe(&data, other.to_str().unwrap(), &[
        "--config", cfg_path.to_str().unwrap(), "--init-encoder", source.to_str().unwrap(),
    ]);
    let e = fails(&refs(&args));
    assert!(e.contains("step-00000004.safetensors") && e.contains("needs the same encoder"), "{e}");
}

/// What a hostile new user tries: ranges refused by the parser naming the flag, a resumed run
/// whose newest checkpoint is damaged falls back to the one before, `--resume` on nothing, a
/// relative path for the data an absolute path trained on, refused inputs leave no folder behind,
/// `surprise` into its own dataset, and scores of edited data marked as such.
#[test]
fn hostile_inputs_are_refused_by_name_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "knock-off", "12");
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    // Numbers that mean nothing: refused before any work, naming the flag and the range.
    for (args, flag) in [
        (vec!["train-wm", "--data", &data, "--out", run_s, "--threads", "0"], "--threads"),
        (vec!["train-wm", "--data", &data, "--out", run_s, "--steps", "0"], "--steps"),
        (vec!["eval-wm", "--checkpoint", run_s, "--data", &data, "--out", run_s, "--threads", "0"], "--threads"),
        (vec!["eval-wm", "--checkpoint", run_s, "--data", &data, "--out", run_s, "--horizons", "0"], "--horizons"),
        (
            vec!["eval-wm", "--checkpoint", run_s, "--data", &data, "--out", run_s, "--voe-context", "0"],
            "--voe-context",
        ),
        (vec!["eval-wm", "--checkpoint", run_s, "--data", &data, "--out", run_s, "--voe-pairs", "0"], "--voe-pairs"),
        (vec!["gen", "--episodes", "0", "--out", run_s], "--episodes"),
        (vec!["rollout", "--episodes", "0"], "--episodes"),
    ] {
        let e = fails(&args);
        assert!(e.contains(&format!("invalid value '0' for '{flag}")) && e.contains("is not in"), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    assert!(!run.exists(), "a refused command made its --out");
    // A config value out of range names the key and the file.
    let cfg = dir.path().join("zero.json");
    std::fs::write(&cfg, r#"{"image_size": 0}"#).unwrap();
    let e =
        fails(&["train-wm", "--data", &data, "--out", run_s, "--preset", "tiny", "--config", cfg.to_str().unwrap()]);
    assert!(e.contains("zero.json") && e.contains("image_size: 0 must be positive"), "{e}");
    // --resume on a folder without a run.
    let e = fails(&refs(&train(&data, run_s, &["--steps", "8", "--resume"])));
    assert!(e.contains("holds no run"), "{e}");
    assert!(!run.exists(), "a refused --resume made the run folder");
    // A verified dataset but a broken probe set: refused before the prediction stage makes --out.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    ok(&refs(&train(&data, run_s, &["--steps", "8"])));
    let eval = dir.path().join("eval");
    #[rustfmt::skip]
    let e = fails(&["eval-wm", "--checkpoint", run_s, "--data", &data, "--probe-data", broken.to_str().unwrap(),
        "--out", eval.to_str().unwrap()]);
    assert!(e.contains("broken") && e.contains("fails verification"), "{e}");
    assert!(!eval.exists(), "eval-wm made --out before refusing its input");
    // The newest checkpoint damaged: the run resumes from the one before, saying so, and ends
    // with the weights of an uninterrupted run.
    let newest = run.join("checkpoints/step-00000008.safetensors");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let out = cupworld(&refs(&train(&data, run_s, &["--steps", "8", "--resume"])));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("step-00000008.safetensors") && log.contains("step-00000004.safetensors"), "{log}");
    assert!(log.contains("resuming from the newest good checkpoint"), "{log}");
    let whole = dir.path().join("whole");
    ok(&refs(&train(&data, whole.to_str().unwrap(), &["--steps", "8"])));
    let (a, b) = (
        weights(&whole.join("checkpoints/step-00000008.safetensors")),
        weights(&run.join("checkpoints/step-00000008.safetensors")),
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y), "{name} differs from the uninterrupted run");
    }
    // The same data by a relative path resumes; other data is refused with both paths printed.
    let parent = Path::new(&data).parent().unwrap();
    #[rustfmt::skip]
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cupworld"))
        .args(["train-wm", "--data", "knock-off", "--out", run_s, "--preset", "tiny", "--threads", "1",
            "--checkpoint-every", "4", "--steps", "8", "--resume", "--config", NO_COUNTERFACTUALS])
        .current_dir(parent)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other = dataset(&dir.path().join("o"), "knock-off", "13");
    let e = fails(&refs(&train(&other, run_s, &["--steps", "8", "--resume"])));
    assert!(e.contains(&format!("this command gives --data {other}")) && !e.contains("Datasets(["), "{e}");

    // surprise: never into its own dataset; edited data is scored and marked unverified.
    let e = fails(&["surprise", "--checkpoint", run_s, "--data", &data, "--out", &format!("{data}/scores")]);
    assert!(e.contains("inside the dataset"), "{e}");
    // Edited clips (here the same episodes drawn with shadows put in place of the frames): scored,
    // and marked as not matching their manifest.
    let shadowed = gen_into(dir.path().join("shadowed"), "knock-off", "12", &["--shadows"]);
    let file = "data/chunk-000/file-000.parquet";
    std::fs::copy(Path::new(&shadowed).join(file), Path::new(&data).join(file)).unwrap();
    let s = dir.path().join("s");
    ok(&["surprise", "--checkpoint", run_s, "--data", &data, "--out", s.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("surprise.json")).unwrap()).unwrap();
    assert_eq!(v["verified"], false, "{v}");
    assert!(v["verify_problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("file-000")), "{v}");
    assert_eq!(v["episodes"].as_array().unwrap().len(), 4, "{v}");
}
