//! How precisely do the frozen world model's latents say where the paw and the cup are, read by
//! a linear map or by a small MLP fitted on the training datasets' frames and scored on held-out
//! episodes (root-mean-square error in cm per axis; the cup only while it stands)? The policy reads
//! these latents, so this bounds what it can know of the scene.
//!
//!     cargo run --example latent_readout -- WM_CHECKPOINT TRAIN_DIR,TRAIN_DIR HELD_OUT_DIR,HELD_OUT_DIR [steps]

use std::path::PathBuf;

use tch::{Device, Kind, Tensor, nn, nn::Module, nn::OptimizerConfig};

/// Metres to target units.
const SCALE: f64 = 4.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wm, train_dirs, test_dirs] = [0, 1, 2].map(|i| args.get(i).cloned().unwrap_or_default());
    let steps: i64 = args.get(3).map_or(Ok(20_000), |s| s.parse())?;
    tch::manual_seed(0);
    let model = world_model::load_model(&PathBuf::from(wm), Device::Cpu)?;
    let read = |dirs: &str| -> anyhow::Result<(Tensor, Tensor, Tensor)> {
        let (mut x, mut y, mut k) = (vec![], vec![], vec![]);
        for dir in dirs.split(',') {
            for ep in train::data::load_dataset(&PathBuf::from(dir), model.cfg.image_size)? {
                x.push(tch::no_grad(|| train::agent::frames::features_of_frames(&model, &ep.frames)));
                let e = ep.env_state.to_kind(Kind::Float);
                let cup_y = e.select(1, 1);
                let up = cup_y.gt_tensor(&(cup_y.get(0) - 0.05)).to_kind(Kind::Float).unsqueeze(1);
                y.push(
                    Tensor::cat(
                        &[ep.pusher.to_kind(Kind::Float), e.select(1, 0).unsqueeze(1), e.select(1, 2).unsqueeze(1)],
                        1,
                    ) * SCALE,
                );
                k.push(Tensor::cat(&[up.ones_like(), up.ones_like(), up.shallow_clone(), up], 1));
            }
        }
        Ok((Tensor::cat(&x, 0), Tensor::cat(&y, 0), Tensor::cat(&k, 0)))
    };
    let (x, y, k) = read(&train_dirs)?;
    let (xt, yt, kt) = read(&test_dirs)?;
    // Standardised inputs: one scale for every feature dimension keeps Adam's steps comparable.
    let (mean, std) = (x.mean_dim(0, true, Kind::Float), x.std_dim(0, true, true).clamp_min(1e-6));
    let (x, xt) = ((&x - &mean) / &std, (&xt - &mean) / &std);
    println!("{} training frames, {} held-out frames, {} features", x.size()[0], xt.size()[0], x.size()[1]);
    let f = x.size()[1];
    for name in ["linear", "mlp"] {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root();
        let net: nn::Sequential = if name == "linear" {
            nn::seq().add(nn::linear(&p / "l", f, 4, Default::default()))
        } else {
            nn::seq()
                .add(nn::linear(&p / "a", f, 512, Default::default()))
                .add_fn(|t| t.relu())
                .add(nn::linear(&p / "b", 512, 256, Default::default()))
                .add_fn(|t| t.relu())
                .add(nn::linear(&p / "c", 256, 4, Default::default()))
        };
        let mut opt = nn::AdamW { wd: 1e-4, ..Default::default() }.build(&vs, 1e-3)?;
        let n = x.size()[0];
        for step in 0..steps {
            opt.set_lr(1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps as f64).cos()));
            let i = Tensor::randint(n, [256], (Kind::Int64, Device::Cpu));
            let (ki, pred) = (k.index_select(0, &i), net.forward(&x.index_select(0, &i)));
            let loss = ((pred - y.index_select(0, &i)).square() * &ki).sum(Kind::Float) / ki.sum(Kind::Float);
            opt.backward_step(&loss);
        }
        let pred = tch::no_grad(|| net.forward(&xt));
        let err = ((pred - &yt).square() * &kt).sum_dim_intlist(0, false, Kind::Float)
            / kt.sum_dim_intlist(0, false, Kind::Float);
        let cm = Vec::<f64>::try_from(err.sqrt() * (100.0 / SCALE))?;
        println!(
            "{name}, {steps} steps: held-out RMSE (cm) paw x {:.2} z {:.2}, cup x {:.2} z {:.2}",
            cm[0], cm[1], cm[2], cm[3]
        );
    }
    Ok(())
}
