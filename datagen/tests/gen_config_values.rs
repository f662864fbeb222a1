//! Each numeric setting of `gen`, one at a time, set to values a user may mistype (zero, one
//! past a limit, huge): refused by a message that names the option, or accepted and then writes
//! a dataset that verifies.

use datagen::GenConfig;

fn base(out: std::path::PathBuf) -> GenConfig {
    GenConfig {
        env: sim::EnvConfig { max_steps: 3, ..sim::EnvConfig::for_task(sim::Task::KnockOff) },
        policy: sim::PolicyKind::Mixed,
        episodes: 2,
        base_seed: 1,
        out,
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig { slots: 4, ..Default::default() },
        renderers: 1,
        sim_workers: 1,
        counterfactual: None,
        progress: false,
    }
}

#[test]
fn any_value_is_refused_by_name_or_makes_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    type Set = fn(&mut GenConfig, u64);
    let keys: [(&str, Set); 9] = [
        ("--episodes", |c, v| c.episodes = v),
        ("--shard-index", |c, v| c.shard_index = v as u32),
        ("--num-shards", |c, v| c.num_shards = v as u32),
        ("--renderers", |c, v| c.renderers = v as usize),
        ("--sim-workers", |c, v| c.sim_workers = v as usize),
        ("width", |c, v| c.render.width = v as u32),
        ("height", |c, v| c.render.height = v as u32),
        ("slots", |c, v| c.render.slots = v as usize),
        ("--counterfactual-range", |c, v| {
            c.counterfactual = Some(sim::counterfactual::Displacement { range: [0.03, v as f32 / 100.0] })
        }),
    ];
    let (mut refused, mut made) = (0, 0);
    for (name, set) in keys {
        for v in [0u64, 1, 3, 17, 4_294_967_297] {
            let out = dir.path().join(format!("{}-{v}", name.trim_start_matches('-')));
            let mut cfg = base(out.clone());
            set(&mut cfg, v);
            match cfg.validate() {
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains(name), "{name}={v}: refused without naming it: {e}");
                    assert!(!out.exists(), "{name}={v}: refused, but made {}", out.display());
                    refused += 1;
                }
                Ok(()) => {
                    let summary =
                        datagen::generate::run(&cfg).unwrap_or_else(|e| panic!("{name}={v}: accepted, then {e:#}"));
                    let report = dataset::verify(&summary.out);
                    assert!(report.ok(), "{name}={v}: {:?}", report.problems);
                    made += 1;
                }
            }
        }
    }
    assert!(refused >= 10 && made >= 10, "refused {refused}, made {made}");
}
