//! Write, read back, verify (catching every kind of damage) and merge, on synthetic episodes.

use std::collections::BTreeMap;
use std::path::Path;

use dataset::{
    DatasetInfo, DatasetWriter, EpisodeRecord, FrameRow, Manifest, ManifestMeta, for_each_episode, merge, verify,
};
use types::{FrameTag, Transition};

const W: u32 = 16;
const H: u32 = 12;

fn info() -> DatasetInfo {
    DatasetInfo { fps: 10, task: "Push the cup.".into(), width: W, height: H, robot_type: "test".into() }
}

/// Global episode `e`: a deterministic pattern, `3 + e % 4` frames long.
fn episode(e: u64) -> EpisodeRecord {
    let len = 3 + (e % 4) as u32;
    let rows = (0..len)
        .map(|s| FrameRow {
            transition: Transition {
                tag: FrameTag { episode: e, step: s },
                timestamp: s as f32 / 10.0,
                state: vec![e as f32, s as f32, 0.5, -0.5],
                environment_state: (0..9).map(|k| k as f32 * 0.1 + e as f32).collect(),
                action: [0.25 * s as f32, -1.0],
                reward: s as f32 * 0.5,
                done: s + 1 == len,
                success: s + 1 == len && e.is_multiple_of(2),
            },
            rgb: (0..W * H * 3).map(|k| ((k as u64 * 7 + e * 31 + s as u64 * 13) % 256) as u8).collect(),
        })
        .collect();
    EpisodeRecord {
        seed: 1000 + e,
        policy: "expert".into(),
        success: e.is_multiple_of(2),
        episode_return: e as f32,
        rows,
    }
}

fn meta(offset: u64, total: u64, shard: u32, shards: u32) -> ManifestMeta {
    ManifestMeta {
        task: "push-to-goal".into(),
        policy: "expert".into(),
        base_seed: 0,
        episode_offset: offset,
        total_episodes_planned: total,
        shard_index: shard,
        num_shards: shards,
        tools: BTreeMap::new(),
        render_adapter: "test".into(),
        env_config: serde_json::json!({}),
    }
}

fn write(dir: &Path, episodes: std::ops::Range<u64>, total: u64, shard: u32, shards: u32) -> Manifest {
    let mut w = DatasetWriter::create(dir, info()).unwrap();
    for e in episodes.clone() {
        w.write_episode(&episode(e)).unwrap();
    }
    w.finish(meta(episodes.start, total, shard, shards)).unwrap()
}

fn read_all(dir: &Path) -> Vec<EpisodeRecord> {
    let mut out = vec![];
    for_each_episode(dir, |e| {
        out.push(e);
        Ok(())
    })
    .unwrap();
    out
}

/// Episode contents independent of the (re-assigned) episode index in the tags.
fn strip_tags(mut e: EpisodeRecord) -> EpisodeRecord {
    for (s, r) in e.rows.iter_mut().enumerate() {
        r.transition.tag = FrameTag { episode: 0, step: s as u32 };
    }
    e
}

#[test]
fn written_dataset_verifies_and_reads_back_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let manifest = write(&dir, 0..6, 6, 0, 1);
    assert_eq!(manifest.episode_seeds, (1000..1006).collect::<Vec<_>>());
    let report = verify(&dir);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.episodes, 6);
    assert_eq!(report.frames, (0..6).map(|e| 3 + e % 4).sum::<u64>());
    let back = read_all(&dir);
    for (e, got) in back.into_iter().enumerate() {
        assert_eq!(strip_tags(got), strip_tags(episode(e as u64)));
    }
    // LeRobot's layout.
    for f in [
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta/info.json")).unwrap()).unwrap();
    assert_eq!(info["codebase_version"], "v3.0");
    assert_eq!(info["total_frames"], report.frames);
    assert_eq!(info["features"]["observation.image"]["dtype"], "image");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta/stats.json")).unwrap()).unwrap();
    assert_eq!(stats["action"]["max"][0], 0.25 * 5.0);
    assert_eq!(stats["next.reward"]["count"][0], report.frames);
}

#[test]
fn verify_names_missing_truncated_altered_and_unexpected_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = "data/chunk-000/file-000.parquet";
    let cases: Vec<(&str, Box<dyn Fn(&Path)>, &str)> = vec![
        (
            "missing",
            Box::new(|d: &Path| std::fs::remove_file(d.join("meta/stats.json")).unwrap()),
            "meta/stats.json: missing",
        ),
        (
            "truncated",
            Box::new(move |d: &Path| {
                let p = d.join(data);
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "truncated",
        ),
        (
            "altered",
            Box::new(move |d: &Path| {
                let p = d.join(data);
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&p, bytes).unwrap();
            }),
            "sha256 mismatch",
        ),
        (
            "unexpected",
            Box::new(|d: &Path| std::fs::write(d.join("data/extra.bin"), b"x").unwrap()),
            "data/extra.bin: not in the manifest",
        ),
        ("no manifest", Box::new(|d: &Path| std::fs::remove_file(d.join("manifest.json")).unwrap()), "incomplete"),
        (
            "bad manifest",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), b"{not json").unwrap()),
            "manifest.json: corrupt",
        ),
    ];
    for (name, damage, expect) in cases {
        let dir = tmp.path().join(name.replace(' ', "_"));
        write(&dir, 0..3, 3, 0, 1);
        damage(&dir);
        let report = verify(&dir);
        assert!(!report.ok(), "{name}: damage not detected");
        assert!(
            report.problems.iter().any(|p| p.contains(expect)),
            "{name}: expected a problem mentioning {expect:?}, got {:?}",
            report.problems
        );
    }
}

#[test]
fn writer_refuses_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), b"mine").unwrap();
    let err = DatasetWriter::create(tmp.path(), info()).err().unwrap();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(tmp.path().join("keep.txt").exists(), "nothing is lost");
}

#[test]
fn merged_shards_equal_the_unsharded_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    write(&whole, 0..7, 7, 0, 3);
    let ranges = [0..2u64, 2..4, 4..7];
    let shards: Vec<_> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let d = tmp.path().join(format!("shard-{i}"));
            write(&d, r.clone(), 7, i as u32, 3);
            d
        })
        .collect();
    // Given out of order on purpose: merge sorts by episode offset.
    let merged = tmp.path().join("merged");
    let order = vec![shards[2].clone(), shards[0].clone(), shards[1].clone()];
    merge(&order, &merged, BTreeMap::new()).unwrap();
    assert!(verify(&merged).ok());
    let a: Vec<_> = read_all(&whole).into_iter().map(strip_tags).collect();
    let b: Vec<_> = read_all(&merged).into_iter().map(strip_tags).collect();
    assert_eq!(a, b);
    // Byte-identical data files and metadata tables.
    for f in [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/stats.json",
        "meta/info.json",
    ] {
        assert_eq!(std::fs::read(whole.join(f)).unwrap(), std::fs::read(merged.join(f)).unwrap(), "{f} differs");
    }

    // A missing shard is refused, naming the gap.
    let err = merge(&[shards[0].clone(), shards[2].clone()], &tmp.path().join("gap"), BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("expected 2"), "{err}");
    // A damaged shard is refused, naming it.
    std::fs::remove_file(shards[1].join("meta/stats.json")).unwrap();
    let err = merge(&shards, &tmp.path().join("bad"), BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("shard-1"), "{err}");
}
