//! Plain data passed between cupworld crates.
//!
//! Nothing here knows about rapier, bevy or tensors: the simulator fills a
//! [`SceneSnapshot`], the renderer draws one and returns a [`Frame`], and the
//! dataset writer stores [`Transition`]s. Conventions: Y up, metres, SI units,
//! quaternions as `[x, y, z, w]`, colours as linear RGB in `[0, 1]`.

use serde::{Deserialize, Serialize};

/// A rigid pose: position and unit quaternion `[x, y, z, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub position: [f32; 3],
    pub rotation: [f32; 4],
}

impl Pose {
    pub const IDENTITY: Pose = Pose { position: [0.0; 3], rotation: [0.0, 0.0, 0.0, 1.0] };

    pub fn at(position: [f32; 3]) -> Pose {
        Pose { position, rotation: [0.0, 0.0, 0.0, 1.0] }
    }
}

/// The geometric shape of a scene object, centred on its pose.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// An axis-aligned box (in the object's frame) with these half extents.
    Cuboid { half_extents: [f32; 3] },
    /// A cylinder whose axis is the object's local Y.
    Cylinder { radius: f32, half_height: f32 },
}

/// What an object is, so a renderer may treat kinds differently (e.g. no shadow for the goal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    Floor,
    Table,
    Cup,
    Pusher,
    /// Visual only: never collides.
    GoalMarker,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneObject {
    pub kind: ObjectKind,
    pub shape: Shape,
    pub pose: Pose,
    /// Linear RGB in `[0, 1]`.
    pub color: [f32; 3],
}

/// A fixed pinhole camera looking from `eye` at `target`, Y up.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraSpec {
    pub eye: [f32; 3],
    pub target: [f32; 3],
    /// Vertical field of view in degrees.
    pub fov_y_deg: f32,
}

impl Default for CameraSpec {
    /// The camera the models see, for a table top at [`CameraSpec::REFERENCE_TABLE_TOP`]: in front
    /// of and above the table, looking down at its centre, wide enough for the largest table top
    /// and the floor around it (so a falling cup stays in view).
    fn default() -> Self {
        CameraSpec { eye: [0.0, 1.75, 0.95], target: [0.0, 0.5, 0.0], fov_y_deg: 50.0 }
    }
}

impl CameraSpec {
    /// The table-top height (m) the default camera is placed for: the middle of the default range.
    pub const REFERENCE_TABLE_TOP: f32 = 0.7;

    /// The default camera mounted on a table whose top is at `table_top_y`: raised or lowered with
    /// it, so the table top is seen from the same pose whatever the table's height.
    pub fn over_table(table_top_y: f32) -> CameraSpec {
        let dy = table_top_y - CameraSpec::REFERENCE_TABLE_TOP;
        let c = CameraSpec::default();
        CameraSpec {
            eye: [c.eye[0], c.eye[1] + dy, c.eye[2]],
            target: [c.target[0], c.target[1] + dy, c.target[2]],
            ..c
        }
    }
}

/// Everything a renderer needs to draw one environment at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneSnapshot {
    pub objects: Vec<SceneObject>,
    pub camera: CameraSpec,
}

impl SceneSnapshot {
    /// The first object of a kind, if any.
    pub fn find(&self, kind: ObjectKind) -> Option<&SceneObject> {
        self.objects.iter().find(|o| o.kind == kind)
    }
}

/// Identifies a frame: which episode (global index) and which control step within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FrameTag {
    pub episode: u64,
    pub step: u32,
}

/// An RGB8 image, row-major, top row first, tagged with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub tag: FrameTag,
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// The RGB value at pixel `(x, y)`, `y = 0` at the top.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// One control step of an episode as a dataset stores it (LeRobot's frame row, before the image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub tag: FrameTag,
    /// Seconds since the episode began (`step / control_hz`).
    pub timestamp: f32,
    /// `observation.state`: the agent's own body (pusher x, z, vx, vz).
    pub state: Vec<f32>,
    /// `observation.environment_state`: cup position (3), cup quaternion (4), goal x, z.
    pub environment_state: Vec<f32>,
    /// The action taken from this observation (pusher velocity in `[-1, 1]^2`).
    pub action: [f32; 2],
    pub reward: f32,
    /// True on the episode's last row (terminated or truncated).
    pub done: bool,
    pub success: bool,
}
