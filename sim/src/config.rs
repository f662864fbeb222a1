//! Environment configuration: rates, limits and the ranges that scenes are drawn from.

use serde::{Deserialize, Serialize};

use crate::{Result, SimError};

/// Which task the episode scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Push the cup so its centre ends within `goal_tolerance` of the goal, upright, on the table.
    PushToGoal,
    /// The cat's task: push the cup off the table.
    KnockOff,
}

impl Task {
    pub const ALL: [Task; 2] = [Task::PushToGoal, Task::KnockOff];

    pub fn name(self) -> &'static str {
        match self {
            Task::PushToGoal => "push-to-goal",
            Task::KnockOff => "knock-off",
        }
    }

    /// The natural-language task string stored in datasets (LeRobot's `tasks`).
    pub fn description(self) -> &'static str {
        match self {
            Task::PushToGoal => "Push the cup to the goal marker without knocking it over.",
            Task::KnockOff => "Push the cup off the table.",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Task> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SimError::Config(format!("unknown task {s:?} (expected push-to-goal or knock-off)")))
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the camera the models see is mounted (its pose is `types::CameraSpec::default()` for a
/// table top at `CameraSpec::REFERENCE_TABLE_TOP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraMount {
    /// On the table: it rises and falls with the table top (`CameraSpec::over_table`), as a
    /// workspace camera on a table rig. Where a cup stands on the table is then a function of where
    /// it appears in the frame.
    Table,
    /// In the room, at the reference pose, whatever the table's height (scene versions 1 and 2).
    /// With the height drawn from 0.6–0.8 m, a cup's place in the frame leaves its depth on the
    /// table uncertain by several cm: the best any map from its image position can do is R² ≈ 0.86
    /// (experiments/2026-12-01-table-camera).
    Room,
}

impl std::str::FromStr for CameraMount {
    type Err = SimError;
    fn from_str(s: &str) -> Result<CameraMount> {
        match s {
            "table" => Ok(CameraMount::Table),
            "room" => Ok(CameraMount::Room),
            _ => Err(SimError::Config(format!("unknown camera mount {s:?} (expected table or room)"))),
        }
    }
}

/// A closed interval a scene parameter is drawn from, uniformly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    pub const fn new(min: f32, max: f32) -> Range {
        Range { min, max }
    }
}

/// Environment settings. Defaults: physics 240 Hz, control 10 Hz.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    pub task: Task,
    /// Physics steps per second.
    pub physics_hz: u32,
    /// Control steps (actions) per second; must divide `physics_hz`.
    pub control_hz: u32,
    /// Control steps before the episode is truncated.
    pub max_steps: u32,
    /// Pusher speed in m/s for an action of norm 1 per axis.
    pub pusher_max_speed: f32,
    /// Half extents of the pusher box (x, y, z), metres.
    pub pusher_half_extents: [f32; 3],
    /// Gap between the table top and the pusher's underside, metres.
    pub pusher_clearance: f32,
    /// How far past the table's edge the pusher may travel, metres.
    pub pusher_overhang: f32,
    /// Push-to-goal success radius, metres.
    pub goal_tolerance: f32,
    pub table_width: Range,
    pub table_depth: Range,
    pub table_height: Range,
    pub cup_radius: Range,
    pub cup_height: Range,
    pub cup_mass: Range,
    pub cup_friction: Range,
    pub table_friction: f32,
    /// Control steps an episode goes on after its terminal event (success, or the cup leaving the
    /// table), so the data shows what follows, e.g. the cup falling and landing. 0 = Gymnasium's
    /// usual immediate termination.
    pub linger_steps: u32,
    /// Where the camera is mounted: `table` (default) or `room`.
    pub camera_mount: CameraMount,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            task: Task::PushToGoal,
            physics_hz: 240,
            control_hz: 10,
            max_steps: 150,
            pusher_max_speed: 0.3,
            pusher_half_extents: [0.02, 0.02, 0.02],
            pusher_clearance: 0.004,
            pusher_overhang: 0.03,
            goal_tolerance: 0.03,
            table_width: Range::new(0.9, 1.2),
            table_depth: Range::new(0.6, 0.8),
            table_height: Range::new(0.6, 0.8),
            cup_radius: Range::new(0.03, 0.045),
            cup_height: Range::new(0.07, 0.11),
            cup_mass: Range::new(0.15, 0.35),
            cup_friction: Range::new(0.3, 0.6),
            table_friction: 0.5,
            linger_steps: 0,
            camera_mount: CameraMount::Table,
        }
    }
}

impl EnvConfig {
    pub fn for_task(task: Task) -> EnvConfig {
        EnvConfig { task, ..EnvConfig::default() }
    }

    /// Physics steps per control step.
    pub fn substeps(&self) -> u32 {
        self.physics_hz / self.control_hz
    }

    pub fn dt(&self) -> f32 {
        1.0 / self.physics_hz as f32
    }

    /// Checks ranges; the error names the offending key and value.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(SimError::Config(format!("{key}: {why}")));
        if self.physics_hz == 0 || self.control_hz == 0 {
            return bad("physics_hz/control_hz", "must be positive".into());
        }
        if !self.physics_hz.is_multiple_of(self.control_hz) {
            return bad("control_hz", format!("{} does not divide physics_hz {}", self.control_hz, self.physics_hz));
        }
        if self.max_steps == 0 {
            return bad("max_steps", "must be positive".into());
        }
        let positive = [
            ("pusher_max_speed", self.pusher_max_speed),
            ("goal_tolerance", self.goal_tolerance),
            ("table_friction", self.table_friction),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("{v} must be a positive number"));
            }
        }
        let ranges = [
            ("table_width", self.table_width),
            ("table_depth", self.table_depth),
            ("table_height", self.table_height),
            ("cup_radius", self.cup_radius),
            ("cup_height", self.cup_height),
            ("cup_mass", self.cup_mass),
            ("cup_friction", self.cup_friction),
        ];
        for (key, r) in ranges {
            if !(r.min.is_finite() && r.max.is_finite() && r.min > 0.0 && r.min <= r.max) {
                return bad(key, format!("range [{}, {}] must satisfy 0 < min <= max", r.min, r.max));
            }
        }
        if self.pusher_half_extents.iter().any(|h| !(h.is_finite() && *h > 0.0)) {
            return bad("pusher_half_extents", format!("{:?} must be positive", self.pusher_half_extents));
        }
        if self.table_width.min < 0.4 || self.table_depth.min < 0.4 {
            return bad("table_width/table_depth", "tables under 0.4 m leave no room to push".into());
        }
        // Physical upper bounds, well beyond a table-top scene, so a mistyped exponent is
        // refused here rather than met by the collision code.
        if self.physics_hz > 10_000 {
            return bad("physics_hz", format!("{} must be at most 10000", self.physics_hz));
        }
        let limits = [
            ("table_width", self.table_width.max, 5.0),
            ("table_depth", self.table_depth.max, 5.0),
            ("table_height", self.table_height.max, 3.0),
            ("cup_radius", self.cup_radius.max, 0.5),
            ("cup_height", self.cup_height.max, 1.0),
            ("cup_mass", self.cup_mass.max, 100.0),
            ("cup_friction", self.cup_friction.max, 10.0),
            ("table_friction", self.table_friction, 10.0),
            ("pusher_max_speed", self.pusher_max_speed, 10.0),
            ("goal_tolerance", self.goal_tolerance, 1.0),
            ("pusher_half_extents", self.pusher_half_extents.iter().copied().fold(0.0, f32::max), 0.5),
            ("pusher_clearance", self.pusher_clearance, 0.1),
            ("pusher_overhang", self.pusher_overhang, 1.0),
        ];
        for (key, v, max) in limits {
            if !(v <= max) {
                return bad(key, format!("{v} must be at most {max}"));
            }
        }
        for (key, v) in [("pusher_clearance", self.pusher_clearance), ("pusher_overhang", self.pusher_overhang)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("{v} must be a number >= 0"));
            }
        }
        Ok(())
    }
}
