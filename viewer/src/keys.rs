//! Every key the viewer answers to, in one table: input handling resolves presses through it and
//! the F1 help panel is generated from it, so the two cannot disagree.

use bevy::input::{ButtonInput, keyboard::KeyCode};

/// What a key press asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    TogglePause,
    StepOnce,
    Reset,
    NewSeed,
    SpeedUp,
    SpeedDown,
    NextCamera,
    PreviousCamera,
    FreeCamera,
    ToggleHelp,
    ToggleHud,
    Screenshot,
    InjectViolation,
    NextViolation,
    /// Held, not pressed: the keyboard policy's pusher velocity.
    MoveUp,
    MoveDown,
    MoveLeft,
    MoveRight,
}

/// One row of the key table.
pub struct Binding {
    pub keys: &'static [KeyCode],
    /// The binding needs Shift held (and the same keys without Shift mean something else).
    pub shift: bool,
    pub action: Action,
    /// The label shown in the help panel for the keys.
    pub label: &'static str,
    pub help: &'static str,
}

const fn bind(keys: &'static [KeyCode], action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { keys, shift: false, action, label, help }
}

pub const BINDINGS: &[Binding] = &[
    bind(&[KeyCode::Space], Action::TogglePause, "Space", "pause / resume the simulation"),
    bind(&[KeyCode::ArrowRight, KeyCode::Period], Action::StepOnce, "→ or .", "one control step while paused"),
    bind(&[KeyCode::Backspace], Action::Reset, "Backspace", "reset the episode with the same seed"),
    Binding {
        keys: &[KeyCode::Backspace],
        shift: true,
        action: Action::NewSeed,
        label: "Shift+Backspace",
        help: "start a new episode with the next seed",
    },
    bind(&[KeyCode::Equal, KeyCode::NumpadAdd], Action::SpeedUp, "+", "simulation speed ×2 (up to 16×)"),
    bind(&[KeyCode::Minus, KeyCode::NumpadSubtract], Action::SpeedDown, "-", "simulation speed ÷2 (down to 1/16×)"),
    bind(&[KeyCode::BracketRight], Action::NextCamera, "]", "next camera (free, model's view, top, side)"),
    bind(&[KeyCode::BracketLeft], Action::PreviousCamera, "[", "previous camera"),
    bind(&[KeyCode::Escape], Action::FreeCamera, "Esc", "back to the free camera"),
    bind(&[KeyCode::F1], Action::ToggleHelp, "F1", "show / hide this help"),
    bind(&[KeyCode::KeyH], Action::ToggleHud, "H", "show / hide the HUD"),
    bind(&[KeyCode::F12], Action::Screenshot, "F12", "save a screenshot (PNG) into the run folder"),
    bind(&[KeyCode::KeyV], Action::InjectViolation, "V", "inject an impossible event of the chosen category"),
    bind(&[KeyCode::KeyC], Action::NextViolation, "C", "choose the next impossible-event category"),
    bind(
        &[KeyCode::ArrowUp, KeyCode::KeyW],
        Action::MoveUp,
        "↑ or W",
        "keyboard policy: push away from the model camera",
    ),
    bind(
        &[KeyCode::ArrowDown, KeyCode::KeyS],
        Action::MoveDown,
        "↓ or S",
        "keyboard policy: pull towards the model camera",
    ),
    bind(&[KeyCode::ArrowLeft, KeyCode::KeyA], Action::MoveLeft, "← or A", "keyboard policy: move left"),
    bind(
        &[KeyCode::ArrowRight, KeyCode::KeyD],
        Action::MoveRight,
        "→ or D",
        "keyboard policy: move right (Right also steps when paused)",
    ),
];

/// Mouse controls, listed in the help panel after the keys (the orbit camera reads the mouse).
pub const MOUSE_HELP: &[(&str, &str)] =
    &[("left drag", "orbit (free camera)"), ("right drag", "pan (free camera)"), ("scroll", "zoom (free camera)")];

fn is_held_action(action: Action) -> bool {
    matches!(action, Action::MoveUp | Action::MoveDown | Action::MoveLeft | Action::MoveRight)
}

/// The one-shot actions whose keys were pressed this frame, in table order.
pub fn pressed_actions(keys: &ButtonInput<KeyCode>) -> Vec<Action> {
    let shift = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
    let mut actions = vec![];
    for b in BINDINGS.iter().filter(|b| !is_held_action(b.action)) {
        if !b.keys.iter().any(|k| keys.just_pressed(*k)) {
            continue;
        }
        // A key with a Shift variant means the variant when Shift is held, the plain one when not.
        let has_shift_variant = BINDINGS.iter().any(|o| o.shift && o.keys.iter().any(|k| b.keys.contains(k)));
        if b.shift == shift || (!b.shift && !has_shift_variant) {
            actions.push(b.action);
        }
    }
    actions
}

/// The keyboard policy's action from the movement keys held now: pusher velocity in `[-1, 1]²`
/// along world x (right on the model camera) and z (towards the model camera).
pub fn held_motion(keys: &ButtonInput<KeyCode>) -> [f32; 2] {
    let held = |action: Action| {
        BINDINGS.iter().filter(|b| b.action == action).flat_map(|b| b.keys.iter()).any(|k| keys.pressed(*k))
    };
    let axis = |neg: Action, pos: Action| held(pos) as i32 as f32 - held(neg) as i32 as f32;
    [axis(Action::MoveLeft, Action::MoveRight), axis(Action::MoveUp, Action::MoveDown)]
}

/// The help panel's rows: (keys, what they do), generated from the table.
pub fn help_rows() -> Vec<(&'static str, &'static str)> {
    BINDINGS.iter().map(|b| (b.label, b.help)).chain(MOUSE_HELP.iter().copied()).collect()
}
