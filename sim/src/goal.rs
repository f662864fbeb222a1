//! Goals as scenes: the task's end state for an agent given a goal image (the renderer draws it
//! through the same pipeline as every frame), and the distance an evaluation judges by.

use crate::{Env, Info, Task};
use types::{ObjectKind, Pose, SceneSnapshot};

/// Control steps between a goal-frame pair's start and its goal frame (the goal-frame protocol
/// of DINO-WM and stable-worldmodel; the policy's hindsight goals use the same gap).
pub const GOAL_FRAME_GAP: u32 = 20;

/// The task protocol's goal scene of the episode `env` was just reset to. Push-to-goal: the cup
/// standing on the goal disc, the pusher where the episode started. Knock-off: the table without
/// the cup (fallen, out of the frame). The environment is left as it was.
pub fn task_goal_scene(env: &mut Env, info: &Info) -> SceneSnapshot {
    match env.config().task {
        Task::PushToGoal => {
            let saved = env.snapshot();
            let y = info.cup.position[1];
            env.set_cup_pose(Pose { position: [info.goal[0], y, info.goal[1]], rotation: Pose::IDENTITY.rotation });
            let scene = env.scene();
            env.restore(&saved);
            scene
        }
        Task::KnockOff => {
            let mut scene = env.scene();
            scene.objects.retain(|o| o.kind != ObjectKind::Cup);
            scene
        }
    }
}

/// Distance on the table plane between the cup of `info` and `goal` (x, z).
pub fn cup_distance(info: &Info, goal: [f32; 2]) -> f32 {
    let [x, _, z] = info.cup.position;
    ((x - goal[0]).powi(2) + (z - goal[1]).powi(2)).sqrt()
}
