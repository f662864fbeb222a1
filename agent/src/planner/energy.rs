//! How far imagined latents are from the goal's.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use world_model::CupProbe;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyDistance {
    /// Mean absolute difference (V-JEPA 2-AC).
    L1,
    /// Mean squared difference (DINO-WM).
    Squared,
}

/// What the energy compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cost {
    /// The predicted latents against the goal image's, patch by patch (self-supervised).
    Latent,
    /// Where the cup probe (`eval-wm`'s `probe.safetensors`) reads the cup in the predicted latents
    /// against where it reads it in the goal's: metres on the table. A supervised read-out,
    /// reported apart from the latent cost.
    Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    pub cost: Cost,
    /// For the latent cost.
    pub distance: EnergyDistance,
    /// Sum the distance over every imagined step, not only the last: rewards getting there
    /// early and gives a signal where the last step alone is flat.
    pub along_horizon: bool,
}

impl Default for Energy {
    fn default() -> Self {
        Energy { cost: Cost::Latent, distance: EnergyDistance::L1, along_horizon: false }
    }
}

impl Energy {
    /// `imagined [N, H, P, D]`, `goal [P, D]` → one energy per candidate, `[N]`. The probe cost
    /// needs `probe`.
    pub fn of(&self, imagined: &Tensor, goal: &Tensor, probe: Option<&CupProbe>) -> Tensor {
        let per_step = match (self.cost, probe) {
            (Cost::Probe, Some(probe)) => {
                let (n, h) = (imagined.size()[0], imagined.size()[1]);
                let cups = probe.read(&imagined.flatten(0, 1)).view([n, h, 2]);
                let goal_cup = probe.read(&goal.unsqueeze(0)).view([1, 1, 2]);
                (cups - goal_cup).square().sum_dim_intlist(&[-1i64][..], false, Kind::Float).sqrt()
            }
            _ => {
                let diff = imagined - goal.unsqueeze(0).unsqueeze(0);
                match self.distance {
                    EnergyDistance::L1 => diff.abs(),
                    EnergyDistance::Squared => diff.square(),
                }
                .mean_dim(&[-2i64, -1][..], false, Kind::Float)
            }
        }; // [N, H]
        match self.along_horizon {
            true => per_step.sum_dim_intlist(&[1i64][..], false, Kind::Float),
            false => per_step.select(1, per_step.size()[1] - 1),
        }
    }
}
