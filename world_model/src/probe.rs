//! The cup probe `eval-wm` writes (`probe.safetensors`): a linear map from a frame's flattened
//! target-space latents to the cup's table-plane (x, z). The viewer's ghost cup and the planner's
//! supervised cost read it.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::{Result, WmConfig, WmError};

pub struct CupProbe {
    weight: Tensor,
    bias: Tensor,
}

impl Clone for CupProbe {
    fn clone(&self) -> Self {
        CupProbe { weight: self.weight.shallow_clone(), bias: self.bias.shallow_clone() }
    }
}

impl CupProbe {
    /// Reads `path` and checks it fits a model of `cfg` (`weight [P·D, 2]`, `bias [2]`).
    pub fn load(path: &Path, cfg: &WmConfig) -> Result<CupProbe> {
        let err = |m: String| WmError::Checkpoint(path.to_path_buf(), m);
        let named = Tensor::read_safetensors(path).map_err(|e| err(format!("not a readable probe: {e}")))?;
        let get = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.to_kind(Kind::Float).to_device(Device::Cpu))
                .ok_or_else(|| err(format!("no tensor {name:?}: not a probe written by eval-wm")))
        };
        let (weight, bias) = (get("weight")?, get("bias")?);
        let features = cfg.tokens_per_frame() * cfg.encoder.latent_dim;
        if weight.size() != [features, 2] || bias.size() != [2] {
            return Err(err(format!(
                "weight {:?} and bias {:?}, but this world model needs weight [{features}, 2] and bias [2] \
                 (was it written by eval-wm for another checkpoint?)",
                weight.size(),
                bias.size()
            )));
        }
        Ok(CupProbe { weight, bias })
    }

    /// Cup positions read from latents `[N, P, D]`: `[N, 2]` (differentiable).
    pub fn read(&self, latents: &Tensor) -> Tensor {
        let device = latents.device();
        latents.flatten(1, -1).matmul(&self.weight.to_device(device)) + self.bias.to_device(device)
    }

    /// One frame's latents `[P, D]` → the cup's (x, z).
    pub fn read_one(&self, latents: &Tensor) -> [f32; 2] {
        let y = Vec::<f32>::try_from(self.read(&latents.unsqueeze(0)).flatten(0, -1).to_device(Device::Cpu))
            .expect("two floats");
        [y[0], y[1]]
    }
}
