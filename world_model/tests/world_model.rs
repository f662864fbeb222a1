//! World-model properties: causality, the step path equals the batch path, EMA, checkpoints,
//! and learning on a synthetic moving-square world.

use tch::{Device, Kind, Tensor};
use world_model::{AdamW, LatentHistory, WmConfig, WorldModel, load_checkpoint, save_checkpoint};

fn tiny() -> WmConfig {
    WmConfig::preset("tiny").unwrap()
}

fn random_frames(n: i64) -> Tensor {
    Tensor::randint(256, [n, 3, 64, 64], (Kind::Uint8, Device::Cpu))
}

/// Scrambles the predictor's zero-initialised output layer so predictions depend on inputs.
fn perturb(model: &WorldModel) {
    tch::no_grad(|| {
        for (_, mut v) in model.vs.variables() {
            let noise = v.randn_like() * 0.05;
            v.copy_(&(&v + noise));
        }
    });
}

#[test]
fn predictions_never_see_the_future() {
    tch::manual_seed(1);
    let model = WorldModel::new(&tiny(), Device::Cpu).unwrap();
    perturb(&model);
    let frames = random_frames(3);
    let actions = Tensor::randn([1, 3, 2], (Kind::Float, Device::Cpu));
    let z = model.encode(&frames).unsqueeze(0);
    let before = model.predict(&z, &z, &actions);
    // Change the last frame's latents and action: predictions made from frames 0 and 1 must not move.
    let z2 = z.copy();
    let _ = z2.narrow(1, 2, 1).fill_(3.0);
    let a2 = actions.copy();
    let _ = a2.narrow(1, 2, 1).fill_(-1.0);
    let after = model.predict(&z2, &z2, &a2);
    let early = (before.narrow(1, 0, 2) - after.narrow(1, 0, 2)).abs().max().double_value(&[]);
    assert!(early < 1e-6, "frames 0..1 predictions changed by {early} when frame 2 changed");
    let last = (before.narrow(1, 2, 1) - after.narrow(1, 2, 1)).abs().max().double_value(&[]);
    assert!(last > 1e-3, "frame 2's own prediction ignored its inputs ({last})");
}

#[test]
fn step_path_agrees_with_the_batch_surprise() {
    tch::manual_seed(2);
    let model = WorldModel::new(&tiny(), Device::Cpu).unwrap();
    perturb(&model);
    let t = 9; // longer than the window (clip_len − 1 = 3), so windows slide
    let frames = random_frames(t);
    let actions = Tensor::randn([t, 2], (Kind::Float, Device::Cpu));
    let (curve, map) = model.surprise(&frames, &actions);
    assert_eq!(curve.len(), t as usize);
    assert_eq!(map.size(), [t, model.cfg.patches()]);
    assert!(curve[0].is_nan());
    let mut history = LatentHistory::new(&model.cfg);
    for i in 0..t {
        let a = Vec::<f32>::try_from(actions.get(i)).unwrap();
        let s = model.step(&mut history, &frames.get(i), [a[0], a[1]]);
        match s {
            None => assert_eq!(i, 0),
            Some(s) => {
                assert!((s - curve[i as usize]).abs() < 1e-5, "frame {i}: step {s} vs batch {}", curve[i as usize])
            }
        }
        assert!(history.len() <= 3, "the cached history grows past the window");
    }
}

#[test]
fn rollout_of_one_step_is_the_teacher_forced_prediction() {
    tch::manual_seed(3);
    let model = WorldModel::new(&tiny(), Device::Cpu).unwrap();
    perturb(&model);
    let f = random_frames(3);
    let (z, base) = (model.encode(&f).unsqueeze(0), model.encode_target(&f).unsqueeze(0));
    let a = Tensor::randn([1, 3, 2], (Kind::Float, Device::Cpu));
    let teacher = model.predict(&z, &base, &a).select(1, 2);
    let roll = model.rollout(&z, &base, &a, 1).select(1, 0);
    assert!((teacher - roll).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn untrained_predictor_copies_the_last_latent() {
    let model = WorldModel::new(&tiny(), Device::Cpu).unwrap();
    let f = random_frames(2);
    let (z, base) = (model.encode(&f).unsqueeze(0), model.encode_target(&f).unsqueeze(0) * 1.5);
    let pred = model.predict(&z, &base, &Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu)));
    // The residual base is the target latents (re-normalised), whatever the online inputs.
    let diff = (pred - world_model::model::layer_norm(&base)).abs().max().double_value(&[]);
    assert!(diff < 1e-3, "zero-initialised output should give copy-last, differs by {diff}");
}

#[test]
fn ema_momentum_bounds() {
    let mut model = WorldModel::new(&tiny(), Device::Cpu).unwrap();
    perturb(&model);
    let frames = random_frames(2);
    let before = model.encode_target(&frames);
    model.ema_update(1.0);
    assert!((model.encode_target(&frames) - &before).abs().max().double_value(&[]) < 1e-7, "m = 1 moved the target");
    model.ema_update(0.0);
    let online = model.encode(&frames);
    assert!((model.encode_target(&frames) - online).abs().max().double_value(&[]) < 1e-6, "m = 0 did not copy");
}

#[test]
fn checkpoints_round_trip_and_name_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let cfg = tiny();
    let model = WorldModel::new(&cfg, Device::Cpu).unwrap();
    perturb(&model);
    let mut opt = AdamW::new(&model.vs);
    opt.t = 7;
    let state = serde_json::json!({"step": 7, "rng": [1, 2]});
    save_checkpoint(&path, &model, &opt, &state).unwrap();

    let mut other = WorldModel::new(&WmConfig { seed: 9, ..cfg.clone() }, Device::Cpu).unwrap();
    // Another seed is another config: refused, naming the key.
    let e = load_checkpoint(&path, &mut other, None).unwrap_err().to_string();
    assert!(e.contains("ckpt.safetensors") && e.contains("seed"), "{e}");

    let mut same = WorldModel::new(&cfg, Device::Cpu).unwrap();
    let mut opt2 = AdamW::new(&same.vs);
    let ck = load_checkpoint(&path, &mut same, Some(&mut opt2)).unwrap();
    assert_eq!(ck.trainer_state, state);
    assert_eq!(opt2.t, 7);
    let frames = random_frames(2);
    assert!(model.encode(&frames).equal(&same.encode(&frames)), "weights differ after the round trip");
    assert!(model.encode_target(&frames).equal(&same.encode_target(&frames)));

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_checkpoint(&truncated, &mut same, None).unwrap_err().to_string();
    assert!(e.contains("truncated.safetensors") && e.contains("safetensors"), "{e}");

    let mut altered_bytes = bytes.clone();
    let at = altered_bytes.len() - 40; // inside the tensor data, past the header
    altered_bytes[at] ^= 0x5a;
    let altered = dir.path().join("altered.safetensors");
    std::fs::write(&altered, &altered_bytes).unwrap();
    let e = load_checkpoint(&altered, &mut same, None).unwrap_err().to_string();
    assert!(e.contains("altered.safetensors") && e.contains("SHA-256"), "{e}");
}

#[test]
fn config_errors_name_the_key() {
    let mut cfg = tiny();
    cfg.predictor.heads = 3;
    let e = WorldModel::new(&cfg, Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("predictor.heads"), "{e}");
    let mut cfg = tiny();
    cfg.rollout_steps = 9;
    assert!(cfg.validate().unwrap_err().to_string().contains("rollout_steps"));
    let e = serde_json::from_str::<WmConfig>(r#"{"clip_lenn": 3}"#).unwrap_err().to_string();
    assert!(e.contains("clip_lenn"), "{e}");
}

/// A synthetic world: a white square on black moves by the action (8 px per unit).
fn square_clip(b: i64, t: i64, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed;
    let mut rnd = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) as f32
    };
    let mut frames = vec![0u8; (b * t * 3 * 64 * 64) as usize];
    let mut actions = vec![0f32; (b * t * 2) as usize];
    for i in 0..b {
        let (mut x, mut y) = (16.0 + 32.0 * rnd(), 16.0 + 32.0 * rnd());
        for j in 0..t {
            for c in 0..3 {
                for yy in (y as i64 - 4).max(0)..(y as i64 + 4).min(64) {
                    for xx in (x as i64 - 4).max(0)..(x as i64 + 4).min(64) {
                        frames[((((i * t + j) * 3 + c) * 64 + yy) * 64 + xx) as usize] = 255;
                    }
                }
            }
            let (ax, ay) = (rnd() * 2.0 - 1.0, rnd() * 2.0 - 1.0);
            actions[((i * t + j) * 2) as usize] = ax;
            actions[((i * t + j) * 2 + 1) as usize] = ay;
            x = (x + 8.0 * ax).clamp(6.0, 58.0);
            y = (y + 8.0 * ay).clamp(6.0, 58.0);
        }
    }
    (Tensor::from_slice(&frames).reshape([b, t, 3, 64, 64]), Tensor::from_slice(&actions).reshape([b, t, 2]))
}

/// `tiny`, a little wider, for 300 steps on the moving-square world.
fn square_world_config() -> WmConfig {
    let mut cfg = tiny();
    cfg.steps = 300;
    cfg.batch_size = 8;
    cfg.encoder.latent_dim = 32;
    cfg.predictor.width = 64;
    cfg.predictor.depth = 2;
    cfg.optim.lr = 3e-3;
    cfg
}

#[test]
fn learns_action_conditioned_motion_better_than_copying() {
    tch::set_num_threads(1);
    let cfg = square_world_config();
    let mut model = WorldModel::new(&cfg, Device::Cpu).unwrap();
    let mut opt = AdamW::new(&model.vs);
    for step in 0..cfg.steps {
        let (f, a) = square_clip(cfg.batch_size, cfg.clip_len, step);
        let report = model.train_step(&mut opt, &f, &a, None, step);
        assert!(!report.skipped, "step {step} skipped: {report:?}");
    }
    // Held-out clips: one-step prediction error vs copying the last target latent.
    let (f, a) = square_clip(32, cfg.clip_len, 10_000);
    let b = 32;
    let flat = f.flatten(0, 1);
    let z = model.encode(&flat).reshape([b, cfg.clip_len, cfg.patches(), -1]);
    let tgt = model.encode_target(&flat).reshape([b, cfg.clip_len, cfg.patches(), -1]);
    let n = cfg.clip_len - 1;
    let pred = tch::no_grad(|| model.predict(&z.narrow(1, 0, n), &tgt.narrow(1, 0, n), &a.narrow(1, 0, n)));
    let err = (&pred - tgt.narrow(1, 1, cfg.clip_len - 1)).abs().mean(Kind::Float).double_value(&[]);
    let copy = (tgt.narrow(1, 0, cfg.clip_len - 1) - tgt.narrow(1, 1, cfg.clip_len - 1))
        .abs()
        .mean(Kind::Float)
        .double_value(&[]);
    let stats = world_model::collapse_stats(&tgt);
    assert!(stats.mean_std > 0.05, "latents collapsed: {stats:?}");
    assert!(err < 0.9 * copy, "prediction error {err} is not clearly below copy-last {copy}");
}

/// The variance hinge over time: a still clip pays it in full (std of zero change is the 1e-2
/// floor), a moving one pays less, and at weight 0 it is neither computed nor added.
#[test]
fn temporal_variance_hinge_charges_still_clips() {
    tch::manual_seed(4);
    let mut cfg = tiny();
    cfg.loss.temporal_variance = 1.0;
    cfg.loss.temporal_std_target = 0.5;
    let model = WorldModel::new(&cfg, Device::Cpu).unwrap();
    let t = cfg.clip_len;
    let still = random_frames(1).unsqueeze(0).expand([2, t, 3, 64, 64], false).contiguous();
    let actions = Tensor::zeros([2, t, 2], (Kind::Float, Device::Cpu));
    let parts = tch::no_grad(|| model.losses(&still, &actions, None));
    assert!((parts.temporal - (0.5 - 0.01)).abs() < 1e-4, "still clip: {}", parts.temporal);
    let (moving, actions) = square_clip(2, t, 7);
    let moving_parts = tch::no_grad(|| model.losses(&moving, &actions, None));
    assert!(
        moving_parts.temporal < parts.temporal - 1e-3,
        "moving {} vs still {}",
        moving_parts.temporal,
        parts.temporal
    );
    cfg.loss.temporal_variance = 0.0;
    let off = WorldModel::new(&cfg, Device::Cpu).unwrap();
    assert_eq!(tch::no_grad(|| off.losses(&still, &actions, None)).temporal, 0.0);
}

/// The per-patch variance hinge is not fooled by patch identity: clips that are all one frame
/// differ between patches (so the hinge across tokens is nearly met) but not between samples
/// at any one patch position (so the per-patch hinge is charged in full: 0.5 − the 1e-2 floor).
#[test]
fn per_patch_variance_ignores_patch_identity() {
    tch::manual_seed(5);
    let mut cfg = tiny();
    cfg.loss.std_target = 0.5;
    let t = cfg.clip_len;
    let same = random_frames(1).unsqueeze(0).expand([4, t, 3, 64, 64], false).contiguous();
    let actions = Tensor::zeros([4, t, 2], (Kind::Float, Device::Cpu));
    let across = tch::no_grad(|| WorldModel::new(&cfg, Device::Cpu).unwrap().losses(&same, &actions, None)).variance;
    cfg.loss.variance_per_patch = true;
    let per_patch = tch::no_grad(|| WorldModel::new(&cfg, Device::Cpu).unwrap().losses(&same, &actions, None)).variance;
    assert!((per_patch - (0.5 - 0.01)).abs() < 1e-4, "per patch: {per_patch}");
    assert!(across < per_patch - 0.05, "across tokens {across} vs per patch {per_patch}");
}

/// With `encoder.keypoints`, every frame gains one token of coordinates in [-1, 1], and the
/// step path still agrees with the batch surprise.
#[test]
fn keypoint_token_rides_along() {
    tch::manual_seed(6);
    let mut cfg = tiny();
    cfg.encoder.keypoints = true;
    let model = WorldModel::new(&cfg, Device::Cpu).unwrap();
    perturb(&model);
    let grid = cfg.grid() * cfg.grid();
    assert_eq!(cfg.patches(), grid + 1);
    let t = 6;
    let frames = random_frames(t);
    let z = model.encode(&frames);
    assert_eq!(z.size(), [t, grid + 1, cfg.encoder.latent_dim]);
    let kp = z.select(1, grid);
    assert!(kp.abs().max().double_value(&[]) <= 1.0, "keypoints outside [-1, 1]");
    let actions = Tensor::randn([t, 2], (Kind::Float, Device::Cpu));
    let (curve, _) = model.surprise(&frames, &actions);
    let mut history = LatentHistory::new(&model.cfg);
    for i in 0..t {
        let a = Vec::<f32>::try_from(actions.get(i)).unwrap();
        let s = model.step(&mut history, &frames.get(i), [a[0], a[1]]);
        if i > 0 {
            let s = s.unwrap();
            assert!((s - curve[i as usize]).abs() < 1e-5, "frame {i}: step {s} vs batch {}", curve[i as usize]);
        }
    }
    cfg.encoder.latent_dim = 15;
    assert!(cfg.validate().unwrap_err().to_string().contains("encoder.latent_dim"));
}

/// The counterfactual contrast: a counterfactual identical to the frame costs exactly ln 2 (the
/// two cannot be told apart). With "the square did not move" as every frame's counterfactual, an
/// untrained model (which predicts no change) matches the counterfactual, not the frame; training
/// teaches it to predict the move, so on held-out clips the contrast falls to under a quarter.
#[test]
fn counterfactual_contrast_learns_where_the_square_goes() {
    tch::set_num_threads(1);
    tch::manual_seed(8);
    let mut cfg = square_world_config();
    cfg.loss.counterfactual = 1.0;
    cfg.loss.counterfactual_encoder = 1.0;
    let mut model = WorldModel::new(&cfg, Device::Cpu).unwrap();
    let (f, a) = square_clip(4, cfg.clip_len, 20_000);
    let same = tch::no_grad(|| model.losses(&f, &a, Some(&f)));
    let ln2 = std::f64::consts::LN_2;
    assert!((same.counterfactual - ln2).abs() < 1e-5, "identical counterfactual: {}", same.counterfactual);
    assert!((same.counterfactual_encoder - ln2).abs() < 1e-5, "identical: {}", same.counterfactual_encoder);
    // Frame t + 1's counterfactual is frame t: the square where it was.
    let stale = |f: &Tensor| Tensor::cat(&[f.narrow(1, 0, 1), f.narrow(1, 0, cfg.clip_len - 1)], 1);
    let before = tch::no_grad(|| model.losses(&f, &a, Some(&stale(&f))));
    assert!(before.counterfactual > ln2, "untrained: {} (it predicts no change)", before.counterfactual);
    let mut opt = AdamW::new(&model.vs);
    for step in 0..cfg.steps {
        let (f, a) = square_clip(cfg.batch_size, cfg.clip_len, step);
        let report = model.train_step(&mut opt, &f, &a, Some(&stale(&f)), step);
        assert!(!report.skipped, "step {step} skipped: {report:?}");
    }
    let after = tch::no_grad(|| model.losses(&f, &a, Some(&stale(&f))));
    assert!(
        after.counterfactual < 0.25 * before.counterfactual,
        "prediction contrast {} → {}: still nearer 'nothing moved'",
        before.counterfactual,
        after.counterfactual
    );
    assert!(after.counterfactual_encoder < 0.5 * ln2, "encoder contrast {}", after.counterfactual_encoder);
}
