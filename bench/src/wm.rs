//! `cupworld bench wm`: how fast the world model trains and infers, and what bounds training.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use world_model::{AdamW, Clips, Counterfactual, LatentHistory, WmConfig, WorldModel};

use crate::median;

#[derive(Serialize)]
struct WmBench {
    preset: String,
    device: String,
    /// The CPU this ran on (`host::cpu`).
    cpu: String,
    threads: i32,
    parameters: i64,
    batch_clips: i64,
    clip_len: i64,
    train_step_ms: f64,
    train_frames_per_s: f64,
    /// The same step with both counterfactual contrasts on (`train-wm --counterfactual-data`): one
    /// more target-encoder pass over the counterfactual frames, no extra backward.
    train_step_counterfactual_ms: f64,
    train_counterfactual_frames_per_s: f64,
    /// The encoder-first recipe (the main job's): a step of the encoder phase (contrast and graded
    /// counterfactual terms, no predictor), and a step after it with the encoder frozen.
    encoder_phase_step_ms: f64,
    encoder_phase_frames_per_s: f64,
    frozen_encoder_step_ms: f64,
    frozen_encoder_frames_per_s: f64,
    /// The frozen-encoder step on latents cached once (what `train-wm` runs from data on disk).
    frozen_encoder_cached_step_ms: f64,
    frozen_encoder_cached_frames_per_s: f64,
    /// Where a training step's time goes (ms, medians of separate runs of each part).
    encoder_fwd_bwd_ms: f64,
    predictor_fwd_bwd_ms: f64,
    optimizer_and_ema_ms: f64,
    encoder_latency_ms_per_frame: f64,
    encoder_frames_per_s_batch_64: f64,
    /// `WorldModel::step` over one model step (`frameskip` frames: one encoded, one prediction).
    step_latency_ms: f64,
    frameskip: i64,
}

fn time_ms(device: Device, f: &mut dyn FnMut()) -> f64 {
    f();
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    let t = Instant::now();
    f();
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    t.elapsed().as_secs_f64() * 1e3
}

pub fn run(preset: &str, steps: usize, device: &str, json: bool) -> Result<()> {
    let device = world_model::parse_device(device)?;
    let recipe = WmConfig::preset(preset)?;
    // The encoder and predictor trained together on the JEPA terms alone, as on data without
    // counterfactuals.
    let cfg = recipe.without_counterfactuals();
    let mut model = WorldModel::new(&cfg, device)?;
    let mut opt = AdamW::new(&model.vs);
    let (b, t, s) = (cfg.batch_size, cfg.clip_len, cfg.image_size);
    let frames = Tensor::randint(256, [b, t, 3, s, s], (Kind::Uint8, device));
    // Clips of model steps: each step's `frameskip` actions side by side.
    let actions = Tensor::rand([b, t, cfg.step_action_dim()], (Kind::Float, device)) * 2.0 - 1.0;

    // A batch of `b` clips of `t` frames with their counterfactuals, actions `a` wide.
    let batch = |b: i64, t: i64, a: i64| {
        let frames = Tensor::randint(256, [b, t, 3, s, s], (Kind::Uint8, device));
        let actions = Tensor::rand([b, t, a], (Kind::Float, device)) * 2.0 - 1.0;
        let cf = Counterfactual {
            frames: Tensor::randint(256, [b, t, 3, s, s], (Kind::Uint8, device)),
            shift: Tensor::rand([b, t], (Kind::Float, device)) * 0.25,
            moves: Tensor::rand([b, t, 4], (Kind::Float, device)) * 0.5 - 0.25,
        };
        (frames, actions, cf)
    };
    let (_, _, counterfactual) = batch(b, t, cfg.step_action_dim());
    // Median of `steps` timed train steps (numbered from `from`) after three warm-up ones, of a
    // fresh model with `cfg`, on `(frames, actions)`.
    let median_step_ms = |cfg: &WmConfig,
                          (input, actions): (Clips, &Tensor),
                          counterfactual: Option<&Counterfactual>,
                          from: u64|
     -> Result<f64> {
        let mut model = WorldModel::new(cfg, device)?;
        let mut opt = AdamW::new(&model.vs);
        Ok(median(
            (0..steps + 3)
                .map(|i| {
                    time_ms(device, &mut || {
                        let _ = model.train_step_on(&mut opt, input, actions, counterfactual, from + i as u64);
                    })
                })
                .skip(3)
                .collect(),
        ))
    };
    let clips = (Clips::Frames(&frames), &actions);
    let train_step_ms = median_step_ms(&cfg, clips, None, 0)?;
    let mut contrast = cfg.clone();
    contrast.loss.contrast = 1.0;
    let train_step_counterfactual_ms = median_step_ms(&contrast, clips, Some(&counterfactual), 0)?;
    // The encoder phase as the trainer runs it: `encoder_batch` frames as pairs.
    let encoder_phase_frames = recipe.encoder_batch_frames();
    let (pair_frames, pair_actions, pair_cf) = batch(encoder_phase_frames / 2, 2, cfg.action_dim);
    let encoder_phase_step_ms =
        median_step_ms(&recipe, (Clips::Frames(&pair_frames), &pair_actions), Some(&pair_cf), 0)?;
    let frozen_encoder_step_ms = median_step_ms(&recipe, clips, Some(&counterfactual), recipe.encoder_steps)?;
    // The same step on the clips' latents, as `train-wm` gives them once the encoder is frozen.
    let (online, target) = WorldModel::new(&recipe, device)?.encode_clips(&frames);
    let frozen_encoder_cached_step_ms = median_step_ms(
        &recipe,
        (Clips::Latents { online: &online, target: &target }, &actions),
        None,
        recipe.encoder_steps,
    )?;

    // Parts, measured alone: encoder forward+backward on the clip's frames; predictor
    // forward+backward (teacher + rollout) on fixed latents; optimiser + EMA.
    let flat = frames.flatten(0, 1);
    let reps = steps.clamp(3, 10);
    let enc: Vec<f64> = (0..reps)
        .map(|_| {
            time_ms(device, &mut || {
                model.zero_grad();
                model.encode(&flat).abs().mean(Kind::Float).backward();
            })
        })
        .collect();
    let z = model.encode_target(&flat).reshape([b, t, cfg.tokens_per_frame(), -1]);
    let pred: Vec<f64> = (0..reps)
        .map(|_| {
            time_ms(device, &mut || {
                model.zero_grad();
                let zi = z.detach().set_requires_grad(true);
                let (_, teacher, rollout) = model.prediction_terms(&zi, &z, &actions, true);
                (teacher + rollout).backward();
            })
        })
        .collect();
    let optim: Vec<f64> = (0..reps)
        .map(|i| {
            time_ms(device, &mut || {
                opt.step(&model.vs, 1e-6, &cfg.optim);
                model.ema_update(cfg.ema_at(i as u64));
            })
        })
        .collect();

    let one = frames.select(0, 0).narrow(0, 0, 1);
    let enc1 = median((0..20).map(|_| time_ms(device, &mut || drop(model.encode(&one)))).collect());
    let batch = flat.narrow(0, 0, 64.min(flat.size()[0]));
    let enc64 = median((0..5).map(|_| time_ms(device, &mut || drop(model.encode(&batch)))).collect());
    // One model step: `frameskip` frames given to `step`, the first encoded and the last predicting.
    let mut history = LatentHistory::new(&cfg);
    let model_step = |history: &mut LatentHistory, i: i64| {
        for _ in 0..cfg.frameskip {
            let _ = model.step(history, &frames.select(0, 0).select(0, i % t), [0.1, -0.2]);
        }
    };
    for i in 0..t {
        model_step(&mut history, i);
    }
    let step = median((0..20).map(|i| time_ms(device, &mut || model_step(&mut history, i))).collect());
    let r = WmBench {
        preset: preset.to_string(),
        device: format!("{device:?}"),
        cpu: datagen::host::cpu(),
        threads: tch::get_num_threads(),
        parameters: model.parameters(),
        batch_clips: b,
        clip_len: t,
        train_step_ms,
        train_frames_per_s: (b * t) as f64 / (train_step_ms / 1e3),
        train_step_counterfactual_ms,
        train_counterfactual_frames_per_s: (b * t) as f64 / (train_step_counterfactual_ms / 1e3),
        encoder_phase_step_ms,
        encoder_phase_frames_per_s: encoder_phase_frames as f64 / (encoder_phase_step_ms / 1e3),
        frozen_encoder_step_ms,
        frozen_encoder_frames_per_s: (b * t) as f64 / (frozen_encoder_step_ms / 1e3),
        frozen_encoder_cached_step_ms,
        frozen_encoder_cached_frames_per_s: (b * t) as f64 / (frozen_encoder_cached_step_ms / 1e3),
        encoder_fwd_bwd_ms: median(enc),
        predictor_fwd_bwd_ms: median(pred),
        optimizer_and_ema_ms: median(optim),
        encoder_latency_ms_per_frame: enc1,
        encoder_frames_per_s_batch_64: batch.size()[0] as f64 / (enc64 / 1e3),
        step_latency_ms: step,
        frameskip: cfg.frameskip,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "world model `{}` on {} ({} libtorch threads; {}), {} parameters",
            r.preset, r.device, r.threads, r.cpu, r.parameters
        );
        println!(
            "train step ({} clips × {} frames): {:.1} ms = {:.0} frames/s",
            r.batch_clips, r.clip_len, r.train_step_ms, r.train_frames_per_s
        );
        println!(
            "  with the counterfactual contrasts: {:.1} ms = {:.0} frames/s",
            r.train_step_counterfactual_ms, r.train_counterfactual_frames_per_s
        );
        println!(
            "  encoder-first (the main job): encoder phase {:.1} ms per {} frames = {:.0} frames/s; then, encoder frozen, {:.1} ms = {:.0} frames/s",
            r.encoder_phase_step_ms,
            encoder_phase_frames,
            r.encoder_phase_frames_per_s,
            r.frozen_encoder_step_ms,
            r.frozen_encoder_frames_per_s
        );
        println!(
            "  frozen encoder, clips as cached latents (train-wm from datasets): {:.1} ms = {:.0} frames/s",
            r.frozen_encoder_cached_step_ms, r.frozen_encoder_cached_frames_per_s
        );
        println!(
            "  encoder fwd+bwd {:.1} ms, predictor fwd+bwd (teacher + rollout) {:.1} ms, optimiser + EMA {:.1} ms",
            r.encoder_fwd_bwd_ms, r.predictor_fwd_bwd_ms, r.optimizer_and_ema_ms
        );
        println!(
            "inference: encoder {:.2} ms per frame (batch 1), {:.0} frames/s (batch 64); step {:.2} ms per model \
             step of {} frame(s)",
            r.encoder_latency_ms_per_frame, r.encoder_frames_per_s_batch_64, r.step_latency_ms, r.frameskip
        );
    }
    Ok(())
}
