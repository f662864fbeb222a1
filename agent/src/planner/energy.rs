//! How far imagined latents are from the goal's.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyDistance {
    /// Mean absolute difference (V-JEPA 2-AC).
    L1,
    /// Mean squared difference (DINO-WM).
    Squared,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    pub distance: EnergyDistance,
    /// Sum the distance over every imagined step, not only the last: rewards getting there
    /// early and gives a signal where the last step alone is flat.
    pub along_horizon: bool,
}

impl Default for Energy {
    fn default() -> Self {
        Energy { distance: EnergyDistance::L1, along_horizon: false }
    }
}

impl Energy {
    /// `imagined [N, H, P, D]`, `goal [P, D]` → one energy per candidate, `[N]`.
    pub fn of(&self, imagined: &Tensor, goal: &Tensor) -> Tensor {
        let diff = imagined - goal.unsqueeze(0).unsqueeze(0);
        let per_step = match self.distance {
            EnergyDistance::L1 => diff.abs(),
            EnergyDistance::Squared => diff.square(),
        }
        .mean_dim(&[-2i64, -1][..], false, Kind::Float); // [N, H]
        match self.along_horizon {
            true => per_step.sum_dim_intlist(&[1i64][..], false, Kind::Float),
            false => per_step.select(1, per_step.size()[1] - 1),
        }
    }
}
