//! Keys in, session and view changes out. No rendering here: tests run this plugin under
//! `MinimalPlugins` with a hand-pressed `ButtonInput<KeyCode>`.

use bevy::prelude::*;

use crate::keys::{Action, held_motion, pressed_actions};
use crate::session::{PolicyChoice, Session};

/// Which camera the window shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraMode {
    /// Orbit / pan / zoom with the mouse.
    Free,
    /// Exactly the camera the models see (its pose and field of view).
    Model,
    Top,
    Side,
}

impl CameraMode {
    pub const CYCLE: [CameraMode; 4] = [CameraMode::Free, CameraMode::Model, CameraMode::Top, CameraMode::Side];

    pub fn name(self) -> &'static str {
        match self {
            CameraMode::Free => "free",
            CameraMode::Model => "model's view",
            CameraMode::Top => "top",
            CameraMode::Side => "side",
        }
    }

    fn shifted(self, by: isize) -> CameraMode {
        let n = Self::CYCLE.len() as isize;
        let i = Self::CYCLE.iter().position(|m| *m == self).unwrap_or(0) as isize;
        Self::CYCLE[(i + by).rem_euclid(n) as usize]
    }
}

/// What the window shows, as the keys left it.
#[derive(Resource, Debug)]
pub struct ViewState {
    pub camera: CameraMode,
    pub show_help: bool,
    pub show_hud: bool,
    /// Screenshots asked for by key, not yet taken.
    pub screenshot_requests: u32,
    /// The mouse is over a HUD window: drags there must not orbit the camera.
    pub pointer_over_ui: bool,
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            camera: CameraMode::Free,
            show_help: false,
            show_hud: true,
            screenshot_requests: 0,
            pointer_over_ui: false,
        }
    }
}

/// Runs the session: key presses, teleop, then as many control steps as real time owes.
pub struct ControlPlugin;

/// The control systems; everything that reads the session this frame runs after them.
#[derive(SystemSet, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ControlSet;

impl Plugin for ControlPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ViewState>().add_systems(Update, (handle_keys, advance_session).chain().in_set(ControlSet));
    }
}

pub fn apply_action(action: Action, session: &mut Session, view: &mut ViewState) {
    match action {
        Action::TogglePause => session.paused = !session.paused,
        Action::StepOnce => {
            if session.paused {
                session.step_once();
            }
        }
        Action::Reset => {
            let seed = session.seed;
            session.reset(seed);
        }
        Action::NewSeed => session.next_seed(),
        Action::SpeedUp => session.faster(),
        Action::SpeedDown => session.slower(),
        Action::NextCamera => view.camera = view.camera.shifted(1),
        Action::PreviousCamera => view.camera = view.camera.shifted(-1),
        Action::FreeCamera => view.camera = CameraMode::Free,
        Action::ToggleHelp => view.show_help = !view.show_help,
        Action::ToggleHud => view.show_hud = !view.show_hud,
        Action::Screenshot => view.screenshot_requests += 1,
        Action::InjectViolation => session.inject_violation(),
        Action::NextViolation => session.next_violation_choice(),
        Action::MoveUp | Action::MoveDown | Action::MoveLeft | Action::MoveRight => {}
    }
}

fn handle_keys(keys: Res<ButtonInput<KeyCode>>, mut session: ResMut<Session>, mut view: ResMut<ViewState>) {
    // Teleop first, so a step taken by → this frame uses the keys held now.
    if session.policy == PolicyChoice::Keyboard {
        let motion = held_motion(&keys);
        if session.teleop != motion {
            session.teleop = motion;
        }
    }
    for action in pressed_actions(&keys) {
        apply_action(action, &mut session, &mut view);
    }
}

fn advance_session(time: Res<Time>, mut session: ResMut<Session>) {
    let seconds = session.frame_clock.unwrap_or(time.delta_secs_f64());
    session.advance(seconds);
}
