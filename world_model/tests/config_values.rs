//! Every numeric key of the config, one at a time, set to values a user may mistype (zero,
//! negatives, off-by-one, huge): each config is either refused by a message that names the key,
//! or accepted and then trains one step without a panic.

use tch::{Device, Kind, Tensor};
use world_model::{AdamW, WmConfig, WorldModel};

/// Dotted paths of the numeric leaves of a JSON object.
fn numeric_keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                numeric_keys(x, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        serde_json::Value::Number(_) => out.push(path.to_string()),
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_number()) => out.push(path.to_string()),
        _ => {}
    }
}

#[test]
fn any_value_is_refused_by_name_or_trains_a_step() {
    tch::set_num_threads(1);
    let base = WmConfig::preset("tiny").unwrap();
    let mut keys = vec![];
    numeric_keys(&serde_json::to_value(&base).unwrap(), "", &mut keys);
    assert!(keys.len() > 25, "only {} numeric keys found: {keys:?}", keys.len());
    let values = ["-1", "0", "1", "2", "3", "0.5", "-0.5", "1e9", "4294967297"];
    let (mut refused, mut trained) = (0, 0);
    for key in &keys {
        let lists = ["[]", "[0]", "[-1, 2]", "[1000000, 2, 2]", "[8, 16, 16, 16, 16, 16]"];
        let candidates: Vec<&str> =
            if serde_json::to_value(&base).unwrap().pointer(&format!("/{}", key.replace('.', "/"))).unwrap().is_array()
            {
                lists.to_vec()
            } else {
                values.to_vec()
            };
        let leaf = key.rsplit('.').next().unwrap();
        for v in candidates {
            let cfg = match base.set(&format!("{key}={v}")).and_then(|c| c.validate().map(|_| c)) {
                Ok(cfg) => cfg,
                Err(e) => {
                    let e = e.to_string();
                    // A relation between two keys may be named by the other one, with this one beside it.
                    assert!(e.contains(leaf), "{key}={v}: refused without naming it: {e}");
                    refused += 1;
                    continue;
                }
            };
            let step = std::panic::catch_unwind(|| {
                let mut model = WorldModel::new(&cfg, Device::Cpu).unwrap();
                let mut opt = AdamW::new(&model.vs);
                // A predictor-phase step, as the trainer gives it: clips of `clip_len` model steps,
                // each with its `frameskip` actions side by side.
                let (b, t, size) = (cfg.batch_size, cfg.clip_len, cfg.image_size);
                let frames = Tensor::randint(256, [b, t, 3, size, size], (Kind::Uint8, Device::Cpu));
                let actions = Tensor::rand([b, t, cfg.step_action_dim()], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
                let _ = model.train_step(&mut opt, &frames, &actions, None, cfg.encoder_steps);
            });
            assert!(step.is_ok(), "{key}={v}: accepted, then training a step panicked");
            trained += 1;
        }
    }
    // Both outcomes happen, so neither branch is dead.
    assert!(refused > 50 && trained > 50, "refused {refused}, trained {trained}");
}
