//! The egui overlay: HUD (episode state and rates), F1 help generated from the key table, the
//! model's 64×64 frame, and the world model's surprise curve.

use bevy::{
    diagnostic::{DiagnosticsStore, FrameTimeDiagnosticsPlugin},
    prelude::*,
};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, EguiTextureHandle, egui};

use crate::control::ViewState;
use crate::keys::help_rows;
use crate::model_view::{ModelFrames, SURPRISE_WINDOW, WorldModelView};
use crate::pilot::{Pilot, PilotKind};
use crate::session::Session;

/// Control steps actually taken per second of wall time, smoothed.
#[derive(Resource, Default)]
pub struct Rates {
    last_total: u64,
    window_start: Option<f64>,
    pub sim_steps_per_s: f64,
}

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Rates>().add_systems(Update, measure_rates).add_systems(EguiPrimaryContextPass, draw_hud);
    }
}

fn measure_rates(time: Res<Time<Real>>, session: Res<Session>, mut rates: ResMut<Rates>) {
    let now = time.elapsed_secs_f64();
    let start = *rates.window_start.get_or_insert(now);
    if now - start >= 1.0 {
        rates.sim_steps_per_s = (session.total_steps - rates.last_total) as f64 / (now - start);
        rates.last_total = session.total_steps;
        rates.window_start = Some(now);
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_hud(
    mut contexts: EguiContexts,
    session: Res<Session>,
    mut view: ResMut<ViewState>,
    rates: Res<Rates>,
    diagnostics: Res<DiagnosticsStore>,
    frames: Option<Res<ModelFrames>>,
    wm: Option<NonSend<WorldModelView>>,
    pilot: Option<Res<Pilot>>,
    mut pip_texture: Local<Option<egui::TextureId>>,
    mut goal_texture: Local<Option<egui::TextureId>>,
) -> Result {
    if let (Some(f), None) = (&frames, *pip_texture) {
        *pip_texture = Some(contexts.add_image(EguiTextureHandle::Weak(f.image.id())));
    }
    if let (Some(p), None) = (&pilot, *goal_texture) {
        *goal_texture = Some(contexts.add_image(EguiTextureHandle::Weak(p.goal_image.id())));
    }
    let ctx = contexts.ctx_mut()?;
    let over_ui = ctx.is_pointer_over_egui() || ctx.egui_wants_pointer_input();
    if view.pointer_over_ui != over_ui {
        view.pointer_over_ui = over_ui;
    }
    let fps = diagnostics.get(&FrameTimeDiagnosticsPlugin::FPS).and_then(|d| d.smoothed()).unwrap_or(0.0);

    if view.show_hud {
        egui::Window::new("cupworld")
            .anchor(egui::Align2::LEFT_TOP, [8.0, 8.0])
            .resizable(false)
            .collapsible(false)
            .show(ctx, |ui| {
                egui::Grid::new("hud").num_columns(2).striped(true).show(ui, |ui| {
                    let mut row = |k: &str, v: String| {
                        ui.label(k);
                        ui.monospace(v);
                        ui.end_row();
                    };
                    row("task", session.task().name().to_string());
                    row("seed", session.seed.to_string());
                    row("episode", session.episode.to_string());
                    row("step", format!("{} / {}", session.step, session.max_steps()));
                    row("reward", format!("{:+.3}", session.last_reward));
                    row("return", format!("{:+.3}", session.episode_return));
                    row("success", yes_no(session.success));
                    row("fell", yes_no(session.fell));
                    row("policy", session.policy.name().to_string());
                    row(
                        "speed",
                        format!("{}×{}", fmt_speed(session.speed), if session.paused { " (paused)" } else { "" }),
                    );
                    row("camera", view.camera.name().to_string());
                    row("violation [V]", session.violation_choice.name().to_string());
                    row("sim rate", format!("{:.1} steps/s", rates.sim_steps_per_s));
                    row("render rate", format!("{fps:.1} frames/s"));
                });
                if let Some(notice) = &session.notice {
                    ui.colored_label(egui::Color32::from_rgb(255, 200, 80), notice);
                }
                ui.small("F1: keys");
            });
    }

    if let (Some(f), Some(tex)) = (&frames, *pip_texture) {
        egui::Window::new("model's view")
            .anchor(egui::Align2::RIGHT_TOP, [-8.0, 8.0])
            .resizable(false)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.add(egui::Image::new((tex, egui::vec2(192.0, 192.0))));
                let tag = f.latest.map_or("—".to_string(), |t| format!("episode {} step {}", t.episode, t.step));
                ui.small(format!("{}×{} as the models get it · {tag}", f.size, f.size));
                if f.dropped > 0 {
                    ui.small(format!("{} frames dropped (renderer behind)", f.dropped));
                }
            });
    }

    if let (Some(p), Some(tex)) = (&pilot, *goal_texture) {
        egui::Window::new("agent")
            .anchor(egui::Align2::RIGHT_BOTTOM, [-8.0, -8.0])
            .resizable(false)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.add(egui::Image::new((tex, egui::vec2(128.0, 128.0))));
                    ui.vertical(|ui| {
                        ui.small("goal image");
                        match (&p.kind, &p.last, &p.last_replan) {
                            (PilotKind::Policy { .. }, Some(d), _) => {
                                ui.monospace(format!("value    {:+.3}", d.value.unwrap_or(f32::NAN)));
                                ui.monospace(format!("action   {:+.2} {:+.2}", d.action[0], d.action[1]));
                                ui.monospace(format!("experts  {:?}", d.experts));
                                ui.monospace(format!("decision {:.1} ms", d.ms));
                            }
                            (PilotKind::Planner { probe, .. }, Some(d), Some(r)) => {
                                ui.monospace(format!("energy   {:.4}", r.energy.unwrap_or(f64::NAN)));
                                ui.monospace(format!("action   {:+.2} {:+.2}", d.action[0], d.action[1]));
                                ui.monospace(format!("replan   {:.0} ms", r.ms));
                                ui.monospace(format!("replans  {}", p.replans));
                                if probe.is_none() {
                                    ui.small("no --probe: no imagined cup path");
                                }
                            }
                            _ => {
                                ui.monospace("deciding…");
                            }
                        }
                    });
                });
                match &p.kind {
                    PilotKind::Policy { checkpoint } => {
                        ui.small(format!("top-1 expert load, {} (this session)", session.task().name()));
                        expert_bars(ui, &p.expert_load);
                        ui.small(checkpoint.display().to_string());
                    }
                    PilotKind::Planner { world_model, .. } => {
                        ui.small(format!("CEM on {} · orange: the plan's imagined cup", world_model.display()));
                    }
                }
                if let Some(e) = &p.error {
                    ui.colored_label(egui::Color32::from_rgb(255, 120, 90), e);
                }
            });
    }

    if let Some(wm) = wm {
        egui::Window::new("world-model surprise")
            .anchor(egui::Align2::LEFT_BOTTOM, [8.0, -8.0])
            .resizable(false)
            .collapsible(false)
            .fixed_size([620.0, 140.0])
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.label(match wm.last_surprise {
                        Some(s) => format!("now {s:.4}"),
                        None => "warming up".into(),
                    });
                    ui.label(format!("· model step {:.1} ms", wm.step_ms));
                    ui.label(format!("· {}", wm.checkpoint.display()));
                    if wm.probe.is_none() {
                        ui.label("· no probe (no ghost marker)");
                    }
                });
                surprise_plot(ui, &wm);
            });
    }

    if view.show_help {
        egui::Window::new("keys (F1 to close)")
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("help").num_columns(2).striped(true).show(ui, |ui| {
                    for (keys, what) in help_rows() {
                        ui.monospace(keys);
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
    }
    Ok(())
}

/// The last `SURPRISE_WINDOW` steps of surprise; frames drawn during an impossible event in red.
fn surprise_plot(ui: &mut egui::Ui, wm: &WorldModelView) {
    let (rect, _) = ui.allocate_exact_size(ui.available_size(), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, egui::Color32::from_gray(24));
    let Some(last) = wm.curve.back() else {
        return;
    };
    let max = wm.curve.iter().map(|p| p.surprise).fold(1e-6, f64::max) * 1.1;
    let first_step = last.total_step.saturating_sub(SURPRISE_WINDOW as u64 - 1);
    let at = |step: u64, s: f64| {
        let x = rect.left() + (step - first_step) as f32 / (SURPRISE_WINDOW - 1) as f32 * rect.width();
        let y = rect.bottom() - (s / max) as f32 * (rect.height() - 4.0);
        egui::pos2(x, y)
    };
    for pair in wm.curve.iter().collect::<Vec<_>>().windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.total_step < first_step {
            continue;
        }
        let color =
            if b.violated { egui::Color32::from_rgb(240, 80, 60) } else { egui::Color32::from_rgb(120, 200, 255) };
        painter.line_segment([at(a.total_step, a.surprise), at(b.total_step, b.surprise)], (2.0, color));
    }
    painter.text(
        rect.left_top() + egui::vec2(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        format!("max {max:.3}"),
        egui::FontId::monospace(11.0),
        egui::Color32::GRAY,
    );
}

/// One bar per expert: its share of the top-1 routings so far.
fn expert_bars(ui: &mut egui::Ui, load: &[u64]) {
    let total = load.iter().sum::<u64>().max(1) as f32;
    let (rect, _) = ui.allocate_exact_size(egui::vec2(240.0, 14.0 * load.len() as f32), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    for (i, &n) in load.iter().enumerate() {
        let share = n as f32 / total;
        let top = rect.top() + 14.0 * i as f32;
        let bar = egui::Rect::from_min_size(egui::pos2(rect.left() + 28.0, top + 2.0), egui::vec2(170.0 * share, 10.0));
        painter.rect_filled(bar, 1.0, egui::Color32::from_rgb(120, 200, 255));
        let font = egui::FontId::monospace(10.0);
        painter.text(
            egui::pos2(rect.left(), top),
            egui::Align2::LEFT_TOP,
            format!("e{i}"),
            font.clone(),
            egui::Color32::GRAY,
        );
        let label = format!("{:.0}%", 100.0 * share);
        painter.text(egui::pos2(rect.right() - 36.0, top), egui::Align2::LEFT_TOP, label, font, egui::Color32::GRAY);
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn fmt_speed(s: f32) -> String {
    if s >= 1.0 { format!("{s}") } else { format!("1/{}", (1.0 / s).round()) }
}
