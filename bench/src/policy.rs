//! `bench policy`: what one decision of the Mamba-MoE policy costs, batch 1, at step 1 and deep
//! into an episode (its state is constant in size, so the cost should be flat), with and without
//! encoding the frame through the world model's encoder. Fresh weights: they do not change time.
//! `--backbone attention` times the ablation's attention backbone, whose cache grows.

use std::time::Instant;

use agent::acting::{PolicyActor, frame_features, policy_config};
use agent::{Backbone, MambaMoePolicy, PolicyConfig};
use anyhow::Result;

use crate::median_and_p90;
use serde::Serialize;
use tch::{Device, Kind, Tensor, nn};
use world_model::{WmConfig, WorldModel};

#[derive(Serialize)]
struct StepRow {
    /// The episode step at which the latency is read.
    step: usize,
    /// The policy's step alone (features in, action out).
    policy_ms_median: f64,
    policy_ms_p90: f64,
    /// The frame encoded by the world model's encoder, then the policy's step.
    with_encoder_ms_median: f64,
    with_encoder_ms_p90: f64,
    /// The backbone's state per episode when this step is reached.
    state_bytes: usize,
}

#[derive(Serialize)]
struct PolicyBench {
    cpu: String,
    threads: i32,
    preset: String,
    backbone: Backbone,
    rows: Vec<StepRow>,
}

pub fn run(preset: &str, backbone: Backbone, depth: usize, repeats: usize, json: bool) -> Result<()> {
    let cfg = WmConfig::preset(preset)?;
    let mut model = WorldModel::new(&cfg, Device::Cpu)?;
    model.vs.freeze();
    let vs = nn::VarStore::new(Device::Cpu);
    let policy = MambaMoePolicy::new(vs.root(), &PolicyConfig { backbone, ..policy_config(&cfg) })?;
    let s = cfg.image_size;
    let frame = Tensor::randint(256, [1, 3, s, s], (Kind::Uint8, Device::Cpu));
    let features = tch::no_grad(|| frame_features(&model.encode_target(&frame)));
    let goal = features.shallow_clone();
    let action = Tensor::zeros([1, 2], (Kind::Float, Device::Cpu));
    let marks: Vec<usize> = [1, 10, 100, 150, 1_000, 10_000].into_iter().filter(|&m| m <= depth).collect();
    let mut rows = vec![];
    for &mark in &marks {
        // A fresh episode walked to the mark, then `repeats` more steps timed there (each moves
        // it on), so that every row starts at its own step whatever the repeats.
        let mut actor = PolicyActor::new(&policy, &goal);
        for _ in 1..mark {
            actor.step(&features);
            actor.taken(&action);
        }
        let state_bytes = actor.state_bytes();
        let (mut alone, mut encoded) = (vec![], vec![]);
        for _ in 0..repeats {
            let t = Instant::now();
            let _ = actor.step(&features).mode();
            alone.push(t.elapsed().as_secs_f64() * 1e3);
            actor.taken(&action);
            let t = Instant::now();
            let f = tch::no_grad(|| frame_features(&model.encode_target(&frame)));
            let _ = actor.step(&f).mode();
            encoded.push(t.elapsed().as_secs_f64() * 1e3);
            actor.taken(&action);
        }
        let (pm, pp) = median_and_p90(alone);
        let (em, ep) = median_and_p90(encoded);
        rows.push(StepRow {
            step: mark,
            policy_ms_median: pm,
            policy_ms_p90: pp,
            with_encoder_ms_median: em,
            with_encoder_ms_p90: ep,
            state_bytes,
        });
    }
    let out = PolicyBench {
        cpu: datagen::host::cpu(),
        threads: tch::get_num_threads(),
        preset: preset.into(),
        backbone,
        rows,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("policy step ({:?} backbone), batch 1, {} libtorch threads, {}:", out.backbone, out.threads, out.cpu);
    println!("  step    policy alone (median / p90)    with the encoder (median / p90)    state per episode");
    for r in &out.rows {
        println!(
            "  {:>6}  {:>8.3} / {:>8.3} ms           {:>8.3} / {:>8.3} ms           {:>10} bytes",
            r.step, r.policy_ms_median, r.policy_ms_p90, r.with_encoder_ms_median, r.with_encoder_ms_p90, r.state_bytes
        );
    }
    Ok(())
}
