//! Impossible events: one rule of physics broken from a chosen moment on.
//!
//! The evaluation's violation-of-expectation pairs (`cupworld eval-wm`) and the viewer's
//! "inject an impossible event" key both use this, so a teleport in the viewer is the same
//! teleport the world model is scored on.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use types::{ObjectKind, Pose, SceneSnapshot};

use crate::{Env, Info, Task};

/// Which rule an impossible event breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Continuity: the cup jumps 12–16 cm along the table.
    Teleport,
    /// Permanence: the cup stops being drawn.
    Vanish,
    /// Gravity/support: the cup pushed past the edge stays in the air.
    Levitate,
    /// Solidity: the pusher passes through the cup, which does not move.
    PassThrough,
    /// Immutability: the cup changes colour.
    Recolor,
}

impl Category {
    pub const ALL: [Category; 5] =
        [Category::Teleport, Category::Vanish, Category::Levitate, Category::PassThrough, Category::Recolor];

    pub fn name(self) -> &'static str {
        match self {
            Category::Teleport => "teleport",
            Category::Vanish => "vanish",
            Category::Levitate => "levitate",
            Category::PassThrough => "pass-through",
            Category::Recolor => "recolor",
        }
    }

    /// The task whose episodes show this category best (levitation needs a cup pushed off).
    pub fn task(self) -> Task {
        match self {
            Category::Levitate => Task::KnockOff,
            _ => Task::PushToGoal,
        }
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Category, String> {
        Category::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            format!("unknown violation {s:?} (expected teleport, vanish, levitate, pass-through or recolor)")
        })
    }
}

/// A violation in progress. Call [`Violation::begin`] at the breaking point, then after every
/// `Env::step` call [`Violation::after_step`], and pass every scene drawn through
/// [`Violation::edit_scene`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Violation {
    pub category: Category,
    /// Levitate and pass-through: the cup is held at this pose whatever physics says.
    held: Option<Pose>,
}

impl Violation {
    /// Breaks `category` from now on. `None` when the current state cannot show it: a teleport
    /// needs a free spot on the table 12–16 cm away (drawn from `rng`).
    pub fn begin(category: Category, env: &mut Env, rng: &mut ChaCha8Rng) -> Option<Violation> {
        let info = env.current_info();
        let held = match category {
            Category::Teleport => {
                env.set_cup_pose(teleport_target(&info, rng)?);
                None
            }
            Category::Levitate | Category::PassThrough => Some(info.cup),
            Category::Vanish | Category::Recolor => None,
        };
        Some(Violation { category, held })
    }

    /// Undoes what physics did to a held cup during the last step: no fall, no push.
    pub fn after_step(&self, env: &mut Env) {
        if let Some(pose) = self.held {
            env.set_cup_pose(pose);
        }
    }

    /// Edits what is drawn: a vanished cup is left out, a recoloured one changes hue.
    pub fn edit_scene(&self, scene: &mut SceneSnapshot) {
        match self.category {
            Category::Vanish => scene.objects.retain(|o| o.kind != ObjectKind::Cup),
            Category::Recolor => {
                for o in scene.objects.iter_mut().filter(|o| o.kind == ObjectKind::Cup) {
                    let [r, g, b] = o.color;
                    o.color = [b, r, g]; // a channel rotation: another saturated hue
                }
            }
            _ => {}
        }
    }
}

/// A spot 12–16 cm away on the table top, clear of the pusher, or None.
fn teleport_target(info: &Info, rng: &mut ChaCha8Rng) -> Option<Pose> {
    let [hw, hd] = info.table_half_size;
    let margin = info.cup_radius + 0.03;
    for _ in 0..64 {
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let dist = rng.random_range(0.12..0.16);
        let mut p = info.cup;
        p.position[0] += dist * angle.cos();
        p.position[2] += dist * angle.sin();
        let (x, z) = (p.position[0], p.position[2]);
        let pusher = info.pusher.position;
        let clear = ((x - pusher[0]).powi(2) + (z - pusher[2]).powi(2)).sqrt() > 0.1;
        if x.abs() < hw - margin && z.abs() < hd - margin && clear {
            return Some(p);
        }
    }
    None
}
