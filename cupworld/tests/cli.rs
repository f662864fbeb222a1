//! End-to-end: the real `cupworld` binary on small runs in temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{fails, ok};

fn gen_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["gen", "--task", "knock-off", "--episodes", "5", "--policy", "mixed", "--seed", "3"];
    v.extend(["--max-steps", "12", "--slots", "8", "--out", out]);
    v.extend(extra);
    v
}

fn data_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("data/chunk-000/file-000.parquet")).unwrap()
}

/// The Python that has pyarrow: `CUPWORLD_PYTHON`, else the project venv the test script makes.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CUPWORLD_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python3");
    assert!(venv.exists(), "no Python with pyarrow: run scripts/test.sh (it makes .venv) or set CUPWORLD_PYTHON");
    venv
}

#[test]
fn rollout_prints_json_summary() {
    let out =
        ok(&["rollout", "--task", "knock-off", "--policy", "expert", "--episodes", "20", "--seed", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["episodes"], 20);
    assert!(v["success_rate"].as_f64().unwrap() >= 0.9, "{v}");
    assert!(v["mean_length"].as_f64().unwrap() > 1.0);
    assert!(v["mean_return"].is_number());
}

#[test]
fn bad_arguments_get_clear_errors() {
    assert!(fails(&["rollout", "--task", "juggle"]).contains("juggle"));
    assert!(fails(&["rollout", "--policy", "psychic"]).contains("psychic"));
    let err = fails(&["rollout", "--camera-mount", "attic"]);
    assert!(err.contains("attic") && err.contains("table or room"), "{err}");
    let err = fails(&["rollout", "--control-hz", "7"]);
    assert!(err.contains("control_hz"), "{err}");
    let out = ok(&["rollout", "--episodes", "2", "--control-hz", "20", "--max-steps", "5", "--json"]);
    assert!(out.contains("\"mean_length\": 5.0"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let err = fails(&gen_args(out.to_str().unwrap(), &["--shard-index", "3", "--num-shards", "2"]));
    assert!(err.contains("--shard-index 3"), "{err}");
    let err = fails(&gen_args(out.to_str().unwrap(), &["--width", "2"]));
    assert!(err.contains("frame size"), "{err}");
    let err = fails(&["dataset", "verify", tmp.path().join("nothing").to_str().unwrap()]);
    assert!(err.contains("manifest"), "{err}");
}

/// gen → verify → pyarrow reads it; shards merge to the same bytes; complete shards are skipped,
/// interrupted ones redone; damage is reported by file name.
#[test]
fn gen_verify_shard_merge_and_pyarrow() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let w = whole.to_str().unwrap();
    let out = ok(&gen_args(w, &["--json"]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["episodes"], 5);
    assert!(summary["frames"].as_u64().unwrap() >= 5);
    assert!(ok(&["dataset", "verify", w]).contains("OK"));

    // Python reads it unchanged.
    let py = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_dataset_pyarrow.py"))
        .arg(&whole)
        .output()
        .unwrap();
    assert!(py.status.success(), "pyarrow check failed: {}", String::from_utf8_lossy(&py.stderr));
    let report: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(report["rows"], summary["frames"]);

    // Three shards (one through SLURM's variables), merged, equal the single run byte for byte.
    let sharded = tmp.path().join("sharded");
    let s = sharded.to_str().unwrap();
    ok(&gen_args(s, &["--shard-index", "0", "--num-shards", "3"]));
    ok(&gen_args(s, &["--shard-index", "2", "--num-shards", "3"]));
    let slurm = Command::new(env!("CARGO_BIN_EXE_cupworld"))
        .args(gen_args(s, &[]))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(slurm.status.success(), "{}", String::from_utf8_lossy(&slurm.stderr));
    assert!(sharded.join("shard-00001-of-00003/manifest.json").exists());
    // Merging with a shard missing fails and names the gap.
    let err = fails(&[
        "dataset",
        "merge",
        sharded.join("shard-00000-of-00003").to_str().unwrap(),
        sharded.join("shard-00002-of-00003").to_str().unwrap(),
        "--out",
        tmp.path().join("gap").to_str().unwrap(),
    ]);
    assert!(err.contains("missing"), "{err}");
    let merged = tmp.path().join("merged");
    ok(&["dataset", "merge", s, "--out", merged.to_str().unwrap()]);
    assert!(ok(&["dataset", "verify", merged.to_str().unwrap()]).contains("OK"));
    assert_eq!(data_bytes(&whole), data_bytes(&merged), "1 shard and 3 shards merged differ");

    // Rerunning a complete shard does nothing; an interrupted one (no manifest) is redone.
    let shard1 = sharded.join("shard-00001-of-00003");
    let before = data_bytes(&shard1);
    assert!(ok(&gen_args(s, &["--shard-index", "1", "--num-shards", "3"])).contains("already complete"));
    // Shards made with other settings do not merge: the first setting that differs is named
    // with both values (here the linger steps; every recorded setting is compared).
    let mixed = tmp.path().join("mixed");
    let m = mixed.to_str().unwrap();
    ok(&gen_args(m, &["--shard-index", "0", "--num-shards", "2"]));
    ok(&gen_args(m, &["--shard-index", "1", "--num-shards", "2", "--linger-steps", "4"]));
    let err = fails(&["dataset", "merge", m, "--out", tmp.path().join("m").to_str().unwrap()]);
    assert!(err.contains("meta.env_config.linger_steps is 4 there but 0"), "{err}");
    assert!(!tmp.path().join("m").exists());
    // A complete shard made with other options is refused, naming what differs.
    let err = fails(&gen_args(s, &["--shard-index", "1", "--num-shards", "3", "--linger-steps", "4"]));
    assert!(err.contains("made with other options") && err.contains("env_config.linger_steps"), "{err}");
    // The camera's mount is part of what the frames were made with.
    let err = fails(&gen_args(s, &["--shard-index", "1", "--num-shards", "3", "--camera-mount", "room"]));
    assert!(err.contains("env_config.camera_mount: \"table\" there, \"room\" here"), "{err}");
    assert_eq!(data_bytes(&shard1), before, "a refused gen changed the shard");
    std::fs::remove_file(shard1.join("manifest.json")).unwrap();
    std::fs::write(shard1.join("data/chunk-000/file-000.parquet"), b"half-written").unwrap();
    ok(&gen_args(s, &["--shard-index", "1", "--num-shards", "3"]));
    assert_eq!(data_bytes(&shard1), before);
    assert!(ok(&["dataset", "verify", shard1.to_str().unwrap()]).contains("OK"));

    // Damage is named.
    let stats = whole.join("meta/stats.json");
    std::fs::write(&stats, b"{}").unwrap();
    let err = fails(&["dataset", "verify", w]);
    assert!(err.contains("meta/stats.json"), "{err}");
    // A gen into a damaged complete dataset refuses rather than overwriting it.
    let err = fails(&gen_args(w, &[]));
    assert!(err.contains("fails verification"), "{err}");
}

/// `gen` never deletes a folder it did not write.
#[test]
fn gen_refuses_a_folder_of_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine");
    std::fs::create_dir_all(mine.join("data")).unwrap();
    std::fs::write(mine.join("thesis.tex"), b"precious").unwrap();
    let err = fails(&gen_args(mine.to_str().unwrap(), &[]));
    assert!(err.contains("not an interrupted cupworld dataset"), "{err}");
    assert_eq!(std::fs::read(mine.join("thesis.tex")).unwrap(), b"precious");
}

#[test]
fn contact_sheet_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    ok(&gen_args(data.to_str().unwrap(), &[]));
    let sheet = tmp.path().join("sheet.png");
    ok(&[
        "contact-sheet",
        data.to_str().unwrap(),
        "--out",
        sheet.to_str().unwrap(),
        "--episodes",
        "3",
        "--frames",
        "4",
    ]);
    let img = image::open(&sheet).unwrap();
    // 4 columns of 2×64 px plus 2 px gaps; 3 rows.
    assert_eq!((img.width(), img.height()), (4 * 130 + 2, 3 * 130 + 2));
}

/// The same seeds give the same dataset, frames included, byte for byte: in separate processes,
/// with one renderer or two (which changes which scenes share a bevy update and which atlas slot
/// each lands in), and for a rerun of the case where reruns used to differ (~5% of frames, one
/// pixel by 75 levels). `verify --against` names the first difference when there is one.
#[test]
fn reruns_of_one_seed_give_byte_identical_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, task: &str, episodes: &str, seed: &str, renderers: &str| {
        let out = tmp.path().join(name);
        #[rustfmt::skip]
        ok(&[
            "gen", "--task", task, "--episodes", episodes, "--policy", "mixed", "--seed", seed,
            "--renderers", renderers, "--out", out.to_str().unwrap(),
        ]);
        out.to_str().unwrap().to_string()
    };
    let same = |a: &str, b: &str| {
        let out = ok(&["dataset", "verify", a, "--against", b]);
        assert!(out.contains("identical"), "{out}");
    };
    let a = run("a", "push-to-goal", "40", "1", "1");
    let b = run("b", "push-to-goal", "40", "1", "2");
    let c = run("c", "push-to-goal", "40", "1", "1");
    same(&a, &b);
    same(&a, &c);
    let d = run("d", "knock-off", "6", "5", "2");
    let e = run("e", "knock-off", "6", "5", "2");
    same(&d, &e);
    // Another seed: the first difference is named by episode and column.
    let f = run("f", "knock-off", "6", "6", "2");
    let err = fails(&["dataset", "verify", &d, "--against", &f]);
    assert!(err.contains("first at episode 0 column seed"), "{err}");
    let json = ok(&["dataset", "verify", &d, "--against", &e, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((v["episodes"].as_u64(), v["images_differing"].as_u64()), (Some(6), Some(0)), "{v}");
}
