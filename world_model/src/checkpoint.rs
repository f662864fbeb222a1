//! Checkpoints: one safetensors file holding the online and target weights, the optimiser's
//! moments, the config and the trainer's state (step, RNG, data cursor) as JSON bytes, and a
//! SHA-256 over everything else, so a truncated or altered file is named, never half-loaded.
//! Written to a temporary name and renamed: a crash leaves the previous checkpoint intact.

use std::path::Path;

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::{AdamW, Result, WmConfig, WmError, WorldModel};

const CONFIG: &str = "meta.config";
const STATE: &str = "meta.trainer_state";
const CHECKSUM: &str = "meta.sha256";

/// What a checkpoint holds besides tensors.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub config: WmConfig,
    /// The trainer's own state (step, RNG, data cursor…), opaque to this crate.
    pub trainer_state: serde_json::Value,
}

fn bytes_tensor(b: &[u8]) -> Tensor {
    Tensor::from_slice(b)
}

fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.to_device(Device::Cpu).contiguous();
    let n = t.numel() * t.kind().elt_size_in_bytes();
    let mut out = vec![0u8; n];
    t.view_dtype(Kind::Uint8).reshape([-1]).copy_data_u8(&mut out, n);
    out
}

fn digest(named: &[(String, Tensor)]) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut sorted: Vec<&(String, Tensor)> = named.iter().filter(|(n, _)| n != CHECKSUM).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in sorted {
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.kind(), t.size()).as_bytes());
        h.update(tensor_bytes(t));
    }
    h.finalize().to_vec()
}

/// Saves model, optimiser and trainer state to `path` atomically.
pub fn save_checkpoint(path: &Path, model: &WorldModel, opt: &AdamW, trainer_state: &serde_json::Value) -> Result<()> {
    let err = |m: String| WmError::Checkpoint(path.to_path_buf(), m);
    let mut named: Vec<(String, Tensor)> = vec![];
    for (k, v) in model.vs.variables() {
        named.push((format!("online.{k}"), v.detach()));
    }
    for (k, v) in model.target_vs.variables() {
        named.push((format!("target.{k}"), v.detach()));
    }
    for (k, v) in model.average.iter().flatten() {
        named.push((format!("average.{k}"), v.detach()));
    }
    for (k, v) in &opt.m {
        named.push((format!("adam_m.{k}"), v.detach()));
    }
    for (k, v) in &opt.v {
        named.push((format!("adam_v.{k}"), v.detach()));
    }
    named.push(("meta.adam_t".into(), Tensor::from_slice(&[opt.t as i64])));
    let config = serde_json::to_value(&model.cfg).map_err(|e| err(e.to_string()))?;
    write_checked(path, named, &[(CONFIG, &config), (STATE, trainer_state)])
}

/// Writes tensors and JSON entries (`meta.*` names) to `path` with a SHA-256 over all of them,
/// atomically (a temporary name, then a rename): the format every cupworld checkpoint shares.
pub fn write_checked(path: &Path, mut named: Vec<(String, Tensor)>, meta: &[(&str, &serde_json::Value)]) -> Result<()> {
    let err = |m: String| WmError::Checkpoint(path.to_path_buf(), m);
    for (name, value) in meta {
        let bytes = serde_json::to_vec(value).map_err(|e| err(e.to_string()))?;
        named.push((name.to_string(), bytes_tensor(&bytes)));
    }
    let sum = digest(&named);
    named.push((CHECKSUM.into(), bytes_tensor(&sum)));
    // tch picks the format from the extension: the temporary name must end in .safetensors too.
    let tmp = path.with_extension("partial.safetensors");
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, &tmp).map_err(|e| err(format!("writing: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| err(format!("renaming into place: {e}")))
}

/// A file [`write_checked`] wrote, its checksum verified: the tensors, and its JSON entries by name.
pub struct CheckedFile {
    pub path: std::path::PathBuf,
    pub tensors: Vec<(String, Tensor)>,
}

impl CheckedFile {
    /// Reads `path`; a missing, truncated or altered file is an error naming it. `kind` names
    /// what the file should be, for the error when it is something else.
    pub fn read(path: &Path, kind: &str) -> Result<CheckedFile> {
        let err = |m: String| WmError::Checkpoint(path.to_path_buf(), m);
        if !path.exists() {
            return Err(err("no such file".into()));
        }
        let tensors = Tensor::read_safetensors(path)
            .map_err(|e| err(format!("not a readable safetensors file (truncated or damaged?): {e}")))?;
        let file = CheckedFile { path: path.to_path_buf(), tensors };
        let stored = file.bytes(CHECKSUM, kind)?;
        if stored != digest(&file.tensors) {
            return Err(err("its SHA-256 does not match its contents: the file was altered or damaged".into()));
        }
        Ok(file)
    }

    fn bytes(&self, name: &str, kind: &str) -> Result<Vec<u8>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| tensor_bytes(t)).ok_or_else(|| {
            WmError::Checkpoint(self.path.clone(), format!("{name:?} is missing: not a cupworld {kind}"))
        })
    }

    /// The stored SHA-256 (hex): what names this file's contents.
    pub fn sha256(&self) -> String {
        hex::encode(self.bytes(CHECKSUM, "checkpoint").unwrap_or_default())
    }

    /// The JSON entry `name`, read as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str, kind: &str) -> Result<T> {
        serde_json::from_slice(&self.bytes(name, kind)?)
            .map_err(|e| WmError::Checkpoint(self.path.clone(), format!("{name}: {e}")))
    }

    /// The tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| WmError::Checkpoint(self.path.clone(), format!("{name:?} is missing")))
    }
}

/// Reads and checks a checkpoint file: format, checksum, config. Returns the named tensors too.
fn read_checked(path: &Path) -> Result<(Checkpoint, Vec<(String, Tensor)>)> {
    const KIND: &str = "world-model checkpoint";
    let file = CheckedFile::read(path, KIND)?;
    let config: WmConfig = file.json(CONFIG, KIND)?;
    let trainer_state = file.json(STATE, KIND)?;
    Ok((Checkpoint { config, trainer_state }, file.tensors))
}

/// The config stored in a checkpoint (to build a model before loading it).
pub fn read_checkpoint_config(path: &Path) -> Result<WmConfig> {
    Ok(read_checked(path)?.0.config)
}

/// Loads a checkpoint into `model` (and `opt`, when resuming). The stored config must equal the
/// model's; the error lists the keys that differ.
pub fn load_checkpoint(path: &Path, model: &mut WorldModel, opt: Option<&mut AdamW>) -> Result<Checkpoint> {
    let err = |m: String| WmError::Checkpoint(path.to_path_buf(), m);
    let (ckpt, named) = read_checked(path)?;
    if ckpt.config != model.cfg {
        let a = serde_json::to_value(&ckpt.config).unwrap_or_default();
        let b = serde_json::to_value(&model.cfg).unwrap_or_default();
        return Err(err(format!("was written with another config: {}", config_diff(&a, &b, "").join(", "))));
    }
    let map: std::collections::HashMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let fill = |prefix: &str, vars: Vec<(String, Tensor)>| -> Result<()> {
        tch::no_grad(|| {
            for (k, mut v) in vars {
                let key = format!("{prefix}.{k}");
                let src = map.get(key.as_str()).ok_or_else(|| err(format!("{key:?} is missing")))?;
                if src.size() != v.size() {
                    return Err(err(format!("{key:?} has shape {:?}, the model {:?}", src.size(), v.size())));
                }
                v.copy_(src);
            }
            Ok(())
        })
    };
    fill("online", model.vs.variables().into_iter().collect())?;
    fill("target", model.target_vs.variables().into_iter().collect())?;
    if let Some(average) = &model.average {
        fill("average", average.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect())?;
    }
    if let Some(opt) = opt {
        fill("adam_m", opt.m.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect())?;
        fill("adam_v", opt.v.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect())?;
        let t = map.get("meta.adam_t").ok_or_else(|| err("\"meta.adam_t\" is missing".into()))?;
        opt.t = t.int64_value(&[0]) as u64;
    }
    Ok(ckpt)
}

/// Loads a model for evaluation from a checkpoint alone (its config comes from the file),
/// predicting with the predictor's average when the run kept one (`predictor.average`).
pub fn load_model(path: &Path, device: Device) -> Result<WorldModel> {
    let mut model = load_model_online(path, device)?;
    model.swap_predictor_average();
    Ok(model)
}

/// [`load_model`] with the predictor's trained weights as they are, average or not.
pub fn load_model_online(path: &Path, device: Device) -> Result<WorldModel> {
    let cfg = read_checkpoint_config(path)?;
    let mut model = WorldModel::new(&cfg, device)?;
    load_checkpoint(path, &mut model, None)?;
    Ok(model)
}

/// Every weight a checkpoint holds, sorted by name: the online model's, the target encoder's
/// (`target.`…) and the predictor's average (`average.`…): what two runs must share to be the same.
pub fn checkpoint_weights(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let model = load_model_online(path, Device::Cpu)?;
    let averaged = load_model(path, Device::Cpu)?.vs.variables();
    let mut v: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .chain(model.target_vs.variables().into_iter().map(|(k, t)| (format!("target.{k}"), t)))
        .chain(
            averaged.into_iter().filter(|(k, _)| k.starts_with("predictor.")).map(|(k, t)| (format!("average.{k}"), t)),
        )
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// `key: a ≠ b` for every leaf where two JSON values differ.
fn config_diff(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(x), Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    config_diff(
                        x.get(k).unwrap_or(&serde_json::Value::Null),
                        y.get(k).unwrap_or(&serde_json::Value::Null),
                        &p,
                    )
                })
                .collect()
        }
        _ if a != b => vec![format!("{prefix}: checkpoint {a}, this run {b}")],
        _ => vec![],
    }
}
