//! The policy's trainer through its library API: expert labels from a replayed dataset, exact
//! resume after an interruption, what a run directory holds, and the refusals.

use std::path::{Path, PathBuf};

use agent::PolicyConfig;
use agent::mamba::MambaConfig;
use agent::moe::MoeConfig;
use tch::Tensor;
use train::agent::{AgentTrainOptions, Teacher, demos};

/// A short-episode dataset of `task` driven by `policy`.
fn dataset(dir: PathBuf, task: sim::Task, policy: sim::PolicyKind) -> PathBuf {
    dataset_of(dir, task, policy, 3)
}

fn dataset_of(dir: PathBuf, task: sim::Task, policy: sim::PolicyKind, episodes: u64) -> PathBuf {
    let cfg = datagen::GenConfig {
        env: sim::EnvConfig { max_steps: 14, linger_steps: 3, ..sim::EnvConfig::for_task(task) },
        policy,
        episodes,
        base_seed: 7,
        out: dir.clone(),
        shard_index: 0,
        num_shards: 1,
        render: render::RenderConfig { slots: 8, ..Default::default() },
        renderers: 1,
        sim_workers: 1,
        counterfactual: None,
        progress: false,
    };
    datagen::generate::run(&cfg).unwrap();
    dir
}

/// A tiny world model trained for two steps on `data` (its encoder is all the policy needs).
fn world_model(data: &Path, out: &Path) -> PathBuf {
    let cfg =
        world_model::WmConfig { steps: 2, ..world_model::WmConfig::preset("tiny").unwrap().without_counterfactuals() };
    train::run(&train::TrainOptions {
        cfg,
        data: train::DataSource::Datasets(vec![data.to_path_buf()]),
        out: out.to_path_buf(),
        checkpoint_every: 2,
        ..Default::default()
    })
    .unwrap();
    train::latest_checkpoint(out).unwrap().unwrap()
}

fn options(wm: &Path, data: &Path, out: &Path) -> AgentTrainOptions {
    let base = match world_model::read_checkpoint_config(wm) {
        Ok(cfg) => agent::acting::policy_config(&cfg),
        Err(_) => PolicyConfig::default(), // for the refusals, which come before the model is read
    };
    AgentTrainOptions {
        world_model: wm.to_path_buf(),
        data: vec![data.to_path_buf()],
        tasks: vec![sim::Task::KnockOff],
        out: out.to_path_buf(),
        policy: PolicyConfig {
            mamba: MambaConfig { d_model: 16, n_layers: 1, ..Default::default() },
            moe: MoeConfig { d_model: 16, d_hidden: 16, n_experts: 2, top_k: 1, ..Default::default() },
            ..base
        },
        init: None,
        cloning_steps: 5,
        dagger_rounds: 1,
        dagger_episodes: 1,
        dagger_steps: 3,
        beta: 0.5,
        beta_decay: 0.5,
        batch: 2,
        lr: 1e-3,
        seed: 3,
        checkpoint_every: 2,
        teacher: Teacher::Expert,
        stop_before: None,
    }
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(path).unwrap();
    t.retain(|(n, _)| !n.starts_with("meta."));
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn an_expert_dataset_replayed_is_labelled_with_its_own_actions_and_a_changed_action_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path().join("data"), sim::Task::PushToGoal, sim::PolicyKind::Expert);
    let cfg = demos::recorded_env_config(&data).unwrap();
    assert_eq!((cfg.max_steps, cfg.linger_steps), (14, 3), "the manifest's environment, not the default");
    let mut env = sim::Env::new(cfg).unwrap();
    let episodes = train::data::load_dataset(&data, 64).unwrap();
    for ep in &episodes {
        let l = demos::label_episode(&mut env, ep).unwrap();
        assert_eq!(l.teacher, l.actions, "the expert labels its own episode with its own actions");
        assert_eq!((l.rewards.len() as i64, l.actions.len() as i64), (ep.len(), ep.len()));
        // One action changed: the replay leaves the recording, and the error says where.
        let mut row = ep.actions.get(2); // a view: the episode's own action changes
        row.copy_(&Tensor::from_slice(&[0.5f32, 1.0]));
        let e = demos::label_episode(&mut env, ep).unwrap_err();
        assert!(e.to_string().contains("step 3") && e.to_string().contains("not the recorded"), "{e}");
    }
}

#[test]
fn interrupted_and_resumed_training_ends_with_identical_weights() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path().join("data"), sim::Task::KnockOff, sim::PolicyKind::Mixed);
    let wm = world_model(&data, &dir.path().join("wm"));
    let (full, part) = (dir.path().join("full"), dir.path().join("part"));
    let summary = train::agent::run(&options(&wm, &data, &full)).unwrap();
    assert_eq!(summary.steps, 5 + 3);
    // Stopped before step 7, inside the DAgger round's training (its rollouts already on disk).
    let e = train::agent::run(&AgentTrainOptions { stop_before: Some(7), ..options(&wm, &data, &part) }).unwrap_err();
    assert!(e.to_string().contains("stopped before step 7"), "{e}");
    assert!(part.join("rounds/round-00.safetensors").exists() && !part.join("policy.safetensors").exists());
    train::agent::run(&options(&wm, &data, &part)).unwrap();
    let (a, b) = (tensors(&full.join("policy.safetensors")), tensors(&part.join("policy.safetensors")));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs between the uninterrupted and the resumed run");
    }
    // The metrics: one line per checkpoint of each phase and one per round, none doubled.
    let (steps, rounds) = train::agent::read_lines(&full.join("metrics.jsonl")).unwrap();
    let (steps_b, rounds_b) = train::agent::read_lines(&part.join("metrics.jsonl")).unwrap();
    let at: Vec<u64> = steps.iter().map(|m| m.step).collect();
    assert_eq!(at, [2, 4, 5, 7, 8]);
    assert_eq!(steps_b.iter().map(|m| m.step).collect::<Vec<_>>(), at);
    for (x, y) in steps.iter().zip(&steps_b) {
        assert_eq!(x.action_mse, y.action_mse, "step {}", x.step);
    }
    assert_eq!((rounds.len(), rounds_b.len()), (1, 1));
    let r = &rounds[0].stats;
    assert_eq!((r.episodes, r.episodes_per_task), (1, [0, 1]));
    assert!(r.frames > 0 && r.labels == r.frames && (0.0..=1.0).contains(&r.expert_share), "{r:?}");
    for m in &steps {
        assert!(m.action_mse.is_finite() && (0.0..=1.0 + 1e-9).contains(&m.task_expert_bits), "{m:?}");
        let knock_off_load: f64 = m.load_by_task[1].iter().sum();
        assert!((knock_off_load - 1.0).abs() < 1e-9, "top-1 shares of the one task sum to 1: {m:?}");
    }
    assert!(full.join("cloning.safetensors").exists());
    assert!(full.join("plots/action_mse.png").exists() && full.join("plots/experts.png").exists());

    // More DAgger rounds from the finished policy (--init): its weights are where they start.
    let more = dir.path().join("more");
    let init = full.join("policy.safetensors");
    let opts = AgentTrainOptions { init: Some(init.clone()), cloning_steps: 0, ..options(&wm, &data, &more) };
    let stop_at_once = AgentTrainOptions { stop_before: Some(0), ..opts.clone() };
    assert!(train::agent::run(&stop_at_once).is_err());
    let started = tensors(&more.join("checkpoints/latest.safetensors"));
    let finished = tensors(&init);
    for ((na, ta), (_, tb)) in started.iter().zip(&finished).filter(|((n, _), _)| n.starts_with("policy.")) {
        assert!(ta.equal(tb), "{na}: not the --init policy's");
    }
    train::agent::run(&opts).unwrap();
    let other = PolicyConfig { log_std_min: -4.0, ..opts.policy.clone() };
    let e = train::agent::run(&AgentTrainOptions { policy: other, out: dir.path().join("other"), ..opts }).unwrap_err();
    assert!(e.to_string().contains("another config"), "{e}");

    // Another run's options into the same directory are refused, naming the key.
    let e = train::agent::run(&AgentTrainOptions { dagger_steps: 4, ..options(&wm, &data, &full) }).unwrap_err();
    assert!(e.to_string().contains("dagger_steps"), "{e}");
    // A damaged checkpoint is named, not half-loaded.
    let ckpt = part.join("checkpoints/latest.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&ckpt, bytes).unwrap();
    let e = train::agent::run(&options(&wm, &data, &part)).unwrap_err();
    assert!(format!("{e:#}").contains("latest.safetensors"), "{e:#}");
}

/// Every 20th dataset episode is held out and scored, never trained on.
#[test]
fn held_out_episodes_are_scored_not_trained_on() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = dataset_of(dir.path().join("data"), sim::Task::KnockOff, sim::PolicyKind::Mixed, 20);
    let wm = world_model(&data, &dir.path().join("wm"));
    let opts = AgentTrainOptions { dagger_rounds: 0, cloning_steps: 2, ..options(&wm, &data, &dir.path().join("a")) };
    let last = train::agent::run(&opts).unwrap().last.unwrap();
    // 14-step episodes are too short for hindsight stretches: the 19 kept episodes are all.
    assert_eq!(last.episodes, 19);
    assert!(last.validation_mse[0].is_none(), "no push-to-goal episode: {last:?}");
    assert!(last.validation_mse[1].is_some_and(|e| e.is_finite() && e > 0.0), "{last:?}");
}

#[test]
fn options_that_cannot_train_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let base = AgentTrainOptions {
        data: vec![],
        dagger_rounds: 0,
        ..options(Path::new("/nonexistent/wm.safetensors"), Path::new("/nonexistent"), &out)
    };
    let e = train::agent::run(&AgentTrainOptions { cloning_steps: 0, ..base.clone() }).unwrap_err();
    assert!(e.to_string().contains("nothing to learn from"), "{e}");
    let e = train::agent::run(&AgentTrainOptions { dagger_rounds: 1, cloning_steps: 0, beta: 1.5, ..base.clone() })
        .unwrap_err();
    assert!(e.to_string().contains("--beta 1.5"), "{e}");
    let planner = AgentTrainOptions { teacher: Teacher::Planner, dagger_rounds: 1, cloning_steps: 0, ..base.clone() };
    let e = train::agent::run(&AgentTrainOptions { data: vec!["/nonexistent".into()], ..planner.clone() }).unwrap_err();
    assert!(e.to_string().contains("--teacher planner") && e.to_string().contains("drop --data"), "{e}");
    let e = train::agent::run(&AgentTrainOptions { dagger_rounds: 0, ..planner }).unwrap_err();
    assert!(e.to_string().contains("--dagger-rounds"), "{e}");
    let e = train::agent::run(&AgentTrainOptions { dagger_rounds: 1, cloning_steps: 0, ..base }).unwrap_err();
    assert!(format!("{e:#}").contains("/nonexistent/wm.safetensors"), "{e:#}");
    assert!(!out.exists());
}

/// Planner distillation: no datasets, the latent planner acts in round 0 (β = 1) and labels every
/// state it visits; the policy trains on its labels alone.
#[test]
fn the_planner_teaches_from_the_world_model_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path().join("data"), sim::Task::KnockOff, sim::PolicyKind::Expert);
    let wm = world_model(&data, &dir.path().join("wm"));
    let out = dir.path().join("run");
    let opts = AgentTrainOptions {
        data: vec![],
        cloning_steps: 0,
        beta: 1.0,
        teacher: Teacher::Planner,
        ..options(&wm, &data, &out)
    };
    let summary = train::agent::run(&opts).unwrap();
    let round = &summary.rounds[0];
    // β = 1: every executed action was the planner's, and it labelled every state.
    assert_eq!(round.stats.expert_share, 1.0, "{:?}", round.stats);
    assert!(round.stats.labels > 0 && round.stats.labels == round.stats.frames, "{:?}", round.stats);
    let gathered = train::agent::read_round(&out.join("rounds/round-00.safetensors")).unwrap();
    for d in &gathered {
        // The planner's labels were executed as they were given.
        assert!(d.teacher.equal(&d.taken), "taken differ from the labels");
    }
    assert!(out.join("policy.safetensors").exists());
}
