//! The viewer's input handling driven without a window: `MinimalPlugins`, the control plugin, a
//! session, and key presses written straight into `ButtonInput<KeyCode>`.

use bevy::prelude::*;
use sim::{Category, Task};
use viewer::control::{CameraMode, ControlPlugin, ViewState};
use viewer::keys::{Action, BINDINGS, help_rows, pressed_actions};
use viewer::session::{PolicyChoice, Session};

fn app(policy: PolicyChoice, seed: u64) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .init_resource::<ButtonInput<KeyCode>>()
        .insert_resource(Session::new(Task::PushToGoal, policy, seed).unwrap())
        .add_plugins(ControlPlugin);
    app.update();
    app
}

/// Presses `key` (with Shift if asked) for one update, then releases it.
fn tap(app: &mut App, key: KeyCode, shift: bool) {
    {
        let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
        if shift {
            keys.press(KeyCode::ShiftLeft);
        }
        keys.press(key);
    }
    app.update();
    let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
    keys.release(key);
    keys.release(KeyCode::ShiftLeft);
    keys.clear();
}

fn session(app: &App) -> &Session {
    app.world().resource::<Session>()
}

#[test]
fn pause_stops_time_and_arrow_steps_exactly_once() {
    let mut app = app(PolicyChoice::Expert, 3);
    tap(&mut app, KeyCode::Space, false);
    assert!(session(&app).paused);
    let before = session(&app).step;
    // Real time passes, nothing moves while paused.
    std::thread::sleep(std::time::Duration::from_millis(250));
    app.update();
    app.update();
    assert_eq!(session(&app).step, before, "a paused session advanced");
    tap(&mut app, KeyCode::ArrowRight, false);
    assert_eq!(session(&app).step, before + 1, "→ while paused takes one control step");
    tap(&mut app, KeyCode::Period, false);
    assert_eq!(session(&app).step, before + 2, ". is the other step key");
    // Resumed, real time turns into steps (10 per second at 1×).
    tap(&mut app, KeyCode::Space, false);
    assert!(!session(&app).paused);
    std::thread::sleep(std::time::Duration::from_millis(350));
    app.update();
    assert!(session(&app).step > before + 2, "a running session did not advance");
}

#[test]
fn reset_keeps_the_seed_and_shift_reset_takes_the_next() {
    let mut app = app(PolicyChoice::Expert, 11);
    tap(&mut app, KeyCode::Space, false);
    let first_scene = session(&app).scene.clone();
    for _ in 0..5 {
        tap(&mut app, KeyCode::ArrowRight, false);
    }
    assert_eq!(session(&app).step, 5);
    assert_ne!(session(&app).scene, first_scene, "five expert steps moved nothing");
    let episode = session(&app).episode;

    tap(&mut app, KeyCode::Backspace, false);
    let s = session(&app);
    assert_eq!((s.seed, s.step, s.episode), (11, 0, episode + 1));
    assert_eq!(s.scene, first_scene, "a reset with the same seed must replay the same scene");

    tap(&mut app, KeyCode::Backspace, true);
    let s = session(&app);
    assert_eq!((s.seed, s.step), (12, 0), "Shift+Backspace starts the next seed");
    assert_ne!(s.scene, first_scene);
}

#[test]
fn keyboard_teleop_moves_the_pusher_the_way_the_keys_say() {
    let mut app = app(PolicyChoice::Keyboard, 5);
    tap(&mut app, KeyCode::Space, false);
    let start = session(&app).pusher_xz();
    // Hold D and step: the pusher moves right (+x), not in z.
    app.world_mut().resource_mut::<ButtonInput<KeyCode>>().press(KeyCode::KeyD);
    tap(&mut app, KeyCode::Period, false);
    tap(&mut app, KeyCode::Period, false);
    let after_right = session(&app).pusher_xz();
    assert!(after_right[0] > start[0] + 0.01, "D did not move the pusher right: {start:?} → {after_right:?}");
    assert!((after_right[1] - start[1]).abs() < 1e-4);
    app.world_mut().resource_mut::<ButtonInput<KeyCode>>().release(KeyCode::KeyD);
    // Hold W: away from the model camera (−z).
    app.world_mut().resource_mut::<ButtonInput<KeyCode>>().press(KeyCode::KeyW);
    tap(&mut app, KeyCode::Period, false);
    let after_up = session(&app).pusher_xz();
    assert!(after_up[1] < after_right[1] - 0.005, "W did not move the pusher away: {after_right:?} → {after_up:?}");
    app.world_mut().resource_mut::<ButtonInput<KeyCode>>().release(KeyCode::KeyW);
    // Nothing held: the pusher stays.
    app.update();
    tap(&mut app, KeyCode::Period, false);
    let still = session(&app).pusher_xz();
    assert!((still[0] - after_up[0]).abs() < 1e-4 && (still[1] - after_up[1]).abs() < 1e-4);
}

#[test]
fn speed_cameras_help_and_violations_follow_their_keys() {
    let mut app = app(PolicyChoice::Expert, 2);
    tap(&mut app, KeyCode::Equal, false);
    tap(&mut app, KeyCode::Equal, false);
    assert_eq!(session(&app).speed, 4.0);
    tap(&mut app, KeyCode::Minus, false);
    assert_eq!(session(&app).speed, 2.0);

    let camera = |app: &App| app.world().resource::<ViewState>().camera;
    assert_eq!(camera(&app), CameraMode::Free);
    tap(&mut app, KeyCode::BracketRight, false);
    assert_eq!(camera(&app), CameraMode::Model);
    tap(&mut app, KeyCode::BracketLeft, false);
    tap(&mut app, KeyCode::BracketLeft, false);
    assert_eq!(camera(&app), CameraMode::Side, "[ from free wraps to the last camera");
    tap(&mut app, KeyCode::Escape, false);
    assert_eq!(camera(&app), CameraMode::Free);

    tap(&mut app, KeyCode::F1, false);
    assert!(app.world().resource::<ViewState>().show_help);

    // V with "vanish" chosen: the cup leaves the drawn scene (physics keeps it).
    tap(&mut app, KeyCode::Space, false);
    tap(&mut app, KeyCode::KeyC, false);
    assert_eq!(session(&app).violation_choice, Category::Vanish);
    tap(&mut app, KeyCode::KeyV, false);
    let s = session(&app);
    assert!(s.scene.find(types::ObjectKind::Cup).is_none(), "the cup is still drawn after V (vanish)");
    assert_eq!(s.violation.map(|v| v.category), Some(Category::Vanish));
}

#[test]
fn the_help_panel_lists_every_binding_and_keys_resolve_through_the_table() {
    let rows = help_rows();
    for b in BINDINGS {
        assert!(rows.iter().any(|(k, h)| *k == b.label && *h == b.help), "{} missing from help", b.label);
    }
    // Backspace alone is Reset, with Shift it is NewSeed — never both.
    let mut keys = ButtonInput::<KeyCode>::default();
    keys.press(KeyCode::Backspace);
    assert_eq!(pressed_actions(&keys), vec![Action::Reset]);
    keys.press(KeyCode::ShiftLeft);
    assert_eq!(pressed_actions(&keys), vec![Action::NewSeed]);
    // No one-shot key is bound to two actions (held movement keys may share with →).
    let mut seen = std::collections::HashMap::new();
    for b in BINDINGS
        .iter()
        .filter(|b| !matches!(b.action, Action::MoveUp | Action::MoveDown | Action::MoveLeft | Action::MoveRight))
    {
        for k in b.keys {
            if let Some(other) = seen.insert((*k, b.shift), b.action) {
                panic!("{k:?} (shift {}) bound to both {other:?} and {:?}", b.shift, b.action);
            }
        }
    }
}

/// A scripted run (`--frames`) sets the frame clock: every drawn frame advances exactly one control
/// step × speed, however long the frame took in real time (a slow host shows the same steps).
#[test]
fn the_frame_clock_steps_once_per_frame_times_the_speed() {
    // The keyboard policy with no key held: the paw stays, the episode runs to its step limit.
    let mut app = app(PolicyChoice::Keyboard, 5);
    assert!(session(&app).max_steps() > 40);
    let hz = f64::from(session(&app).control_hz());
    app.world_mut().resource_mut::<Session>().frame_clock = Some(1.0 / hz);
    let start = session(&app).total_steps;
    for _ in 0..12 {
        app.update();
    }
    assert_eq!(session(&app).total_steps - start, 12, "1× speed: one control step per frame");
    // A long frame (real time far past one step) still takes one step.
    std::thread::sleep(std::time::Duration::from_millis(300));
    app.update();
    assert_eq!(session(&app).total_steps - start, 13, "a slow frame took more than one step");
    tap(&mut app, KeyCode::Equal, false);
    let (speed, before) = (session(&app).speed, session(&app).total_steps);
    assert_eq!(speed, 2.0);
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(session(&app).total_steps - before, 10, "2× speed: two control steps per frame");
}
