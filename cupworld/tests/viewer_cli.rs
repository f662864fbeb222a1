//! `cupworld view` end to end: the window under Xvfb (installed by `scripts/test.sh`), checked by
//! what its screenshot shows; and the errors a user gets without a display or with bad flags.
#![cfg(feature = "viewer")]

mod common;

use std::path::Path;
use std::process::Command;

use types::{CameraSpec, ObjectKind, SceneSnapshot};

#[derive(serde::Deserialize)]
struct Shot {
    window: [u32; 2],
    camera: String,
    scene: SceneSnapshot,
    hud: bool,
}

fn srgb(linear: [f32; 3]) -> [f32; 3] {
    linear.map(|c| if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 })
}

/// Chromaticity (rgb / sum): lighting scales a colour, it hardly moves its chromaticity.
fn chroma(c: [f32; 3]) -> [f32; 3] {
    let s = c[0] + c[1] + c[2] + 1e-6;
    c.map(|v| v / s)
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt()
}

/// Which of the named colours the pixel's chromaticity is closest to.
fn nearest<'a>(pixel: [u8; 3], palette: &[(&'a str, [f32; 3])]) -> &'a str {
    let p = chroma(pixel.map(|v| v as f32 / 255.0));
    palette
        .iter()
        .min_by(|a, b| dist(p, chroma(srgb(a.1))).total_cmp(&dist(p, chroma(srgb(b.1)))))
        .map(|(name, _)| *name)
        .unwrap()
}

#[test]
fn the_window_shows_table_cup_pusher_and_hud_under_xvfb() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("view.png");
    let out = common::view_under_xvfb(&[
        "--policy",
        "expert",
        "--camera",
        "model",
        "--seed",
        "3",
        "--paused",
        "--frames",
        "40",
        "--screenshot",
        png.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let stdout = common::succeeded(out, "cupworld view");
    assert!(stdout.contains("frames/s"), "no rate line: {stdout}");

    let image = image::open(&png).unwrap().to_rgb8();
    let shot: Shot = serde_json::from_str(&std::fs::read_to_string(png.with_extension("json")).unwrap()).unwrap();
    assert_eq!(shot.camera, "model's view");
    assert!(shot.hud);
    let [w, h] = shot.window;
    assert_eq!((image.width(), image.height()), (w, h), "screenshot is not the window's size");

    let object = |kind| *shot.scene.find(kind).unwrap_or_else(|| panic!("{kind:?} not in the scene"));
    let (cup, pusher, table) = (object(ObjectKind::Cup), object(ObjectKind::Pusher), object(ObjectKind::Table));
    let palette = [
        ("cup", cup.color),
        ("pusher", pusher.color),
        ("table", table.color),
        ("floor", [0.32, 0.33, 0.36]),
        ("sky", [0.34, 0.48, 0.70]), // the clear colour sRGB(0.62, 0.72, 0.85), in linear RGB
    ];
    let camera: CameraSpec = shot.scene.camera;
    let at = |p: [f32; 3]| {
        let (x, y) = render::project::project(&camera, p, w, h).expect("in front of the camera");
        image.get_pixel(x.round() as u32, y.round() as u32).0
    };
    assert_eq!(nearest(at(cup.pose.position), &palette), "cup", "no cup where the scene puts it");
    assert_eq!(nearest(at(pusher.pose.position), &palette), "pusher", "no pusher where the scene puts it");
    // The table top, at points away from the cup, pusher and goal: most must show the table.
    let top = table.pose.position;
    let types::Shape::Cuboid { half_extents: [hw, hy, hd] } = table.shape else { panic!("table top is a box") };
    let y = top[1] + hy;
    let probes = [[-0.8 * hw, y, 0.8 * hd], [0.8 * hw, y, 0.8 * hd], [0.0, y, 0.85 * hd], [-0.8 * hw, y, -0.7 * hd]];
    let table_hits = probes.iter().filter(|p| nearest(at(**p), &palette) == "table").count();
    assert!(table_hits >= 3, "only {table_hits} of 4 table-top points show the table");
    // Beyond the floor's far edge, at the top centre of the window: sky.
    assert_eq!(nearest(image.get_pixel(w / 2, 40).0, &palette), "sky");

    // The HUD (egui, dark theme) in the top-left corner: a dark panel with light text.
    let (mut dark, mut light, mut n) = (0, 0, 0);
    for yy in 50..300 {
        for xx in 16..300 {
            let p = image.get_pixel(xx, yy).0;
            n += 1;
            dark += p.iter().all(|&c| c < 50) as usize;
            light += p.iter().all(|&c| c > 110) as usize;
        }
    }
    assert!(dark * 2 > n, "HUD panel missing: {dark} of {n} pixels dark");
    assert!(light * 100 > n, "HUD text missing: {light} of {n} pixels light");
    // The picture-in-picture (top right) shows the models' frame: table colour inside it.
    let pip_table = (950..1120)
        .flat_map(|xx| (60..230).map(move |yy| (xx, yy)))
        .filter(|&(xx, yy)| nearest(image.get_pixel(xx, yy).0, &palette) == "table")
        .count();
    assert!(pip_table > 2000, "the models' frame is not in the corner ({pip_table} table pixels)");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("view-summary.json")).unwrap()).unwrap();
    assert!(summary["model_frames_rendered"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["fps"].as_f64().unwrap() > 0.0, "{summary}");
}

#[test]
fn without_a_display_the_viewer_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_cupworld"))
        .args(["view", "--frames", "1"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no display") && err.contains("xvfb-run"), "{err}");
    assert!(!err.contains("panicked"), "{err}"); // A Wayland session without XWayland: this build opens X11 windows only.
    let out = Command::new(env!("CARGO_BIN_EXE_cupworld"))
        .args(["view", "--frames", "1"])
        .env_remove("DISPLAY")
        .env("WAYLAND_DISPLAY", "wayland-0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("X11 windows only"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_viewer_flags_are_named() {
    let err = common::fails(&["view", "--policy", "joystick"]);
    assert!(err.contains("--policy") && err.contains("joystick"), "{err}");
    let err = common::fails(&["view", "--policy", "planner", "--frames", "1"]);
    assert!(err.contains("--policy planner needs --world-model"), "{err}");
    let err = common::fails(&["view", "--violation", "explode"]);
    assert!(err.contains("--violation") && err.contains("explode"), "{err}");
    let err = common::fails(&["view", "--world-model", "/nonexistent/wm.safetensors"]);
    assert!(err.contains("/nonexistent/wm.safetensors"), "{err}");
    let err = common::fails(&["view", "--width", "0"]);
    assert!(err.contains("invalid value '0' for '--width") && err.contains("240..=7680"), "{err}");
    let err = common::fails(&["view", "--speed", "100"]);
    assert!(err.contains("'--speed") && err.contains("0.0625..=16"), "{err}");
    let err = common::fails(&["view", "--screenshot", "x.png"]);
    assert!(err.contains("--frames"), "{err}");
    assert!(!Path::new("x.png").exists());
}

#[test]
fn the_world_model_overlay_scores_every_step_and_places_the_ghost() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("wm");
    common::ok(&[
        "train-wm",
        "--live",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/world_model/no-counterfactuals.json"),
        "--out",
        run.to_str().unwrap(),
        "--preset",
        "tiny",
        "--steps",
        "3",
        "--replay-episodes",
        "4",
    ]);
    // A probe that ignores the latents: the ghost must sit exactly at its bias.
    let features = 16 * 16; // tiny preset: 4×4 patches × 16 dims
    let probe = dir.path().join("probe.safetensors");
    let weight = tch::Tensor::zeros([features, 2], (tch::Kind::Float, tch::Device::Cpu));
    let bias = tch::Tensor::from_slice(&[0.05f32, -0.02]);
    tch::Tensor::write_safetensors(&[("weight", &weight), ("bias", &bias)], &probe).unwrap();
    let out = common::view_under_xvfb(&[
        "--policy",
        "expert",
        "--seed",
        "1",
        "--world-model",
        run.to_str().unwrap(),
        "--probe",
        probe.to_str().unwrap(),
        "--violation",
        "vanish",
        "--inject-at-step",
        "4",
        "--quality",
        "low",
        "--frames",
        "60",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    common::succeeded(out, "cupworld view --world-model");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("view-summary.json")).unwrap()).unwrap();
    // Scripted (`--frames`): one control step a drawn frame at most, however slowly it draws
    // (on real time a 1.3 frames/s software renderer took 113 steps in 60 frames).
    let steps = summary["sim_steps"].as_u64().unwrap();
    assert!((5..=61).contains(&steps), "{steps} control steps in 60 frames: {summary}");
    // The last episode's curve: one score per model step (`frameskip` control steps).
    let curve = summary["surprise_curve"].as_array().unwrap();
    assert!(curve.len() >= 2, "too few scored steps: {summary}");
    let frameskip = world_model::WmConfig::preset("tiny").unwrap().frameskip as u64;
    for pair in curve.windows(2) {
        assert_eq!(pair[1]["step"].as_u64().unwrap() - pair[0]["step"].as_u64().unwrap(), frameskip, "{summary}");
    }
    for p in curve {
        let (step, surprise, violated) =
            (p["step"].as_u64().unwrap(), p["surprise"].as_f64().unwrap(), p["violated"].as_bool().unwrap());
        assert!(surprise.is_finite() && surprise >= 0.0, "{p}");
        assert_eq!(step % frameskip, 0, "scored between model steps: {p}");
        assert_eq!(violated, step >= 4, "the vanish starts at step 4 of every episode: {p}");
    }
    let ghost = summary["ghost"].as_array().expect("a ghost position");
    assert!((ghost[0].as_f64().unwrap() - 0.05).abs() < 1e-6 && (ghost[1].as_f64().unwrap() + 0.02).abs() < 1e-6);

    // The planner drives the paw on the same model; the probe (all bias) reads its imagined cup
    // path, one point per model step of the plan.
    let planner_out = dir.path().join("planner");
    #[rustfmt::skip]
    let out = common::view_under_xvfb(&["--policy", "planner", "--world-model", run.to_str().unwrap(),
        "--probe", probe.to_str().unwrap(), "--quality", "low", "--frames", "12",
        "--out", planner_out.to_str().unwrap()]);
    common::succeeded(out, "cupworld view --policy planner");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(planner_out.join("view-summary.json")).unwrap()).unwrap();
    let (steps, decisions) = (summary["sim_steps"].as_u64().unwrap(), summary["agent_decisions"].as_u64().unwrap());
    assert!(steps >= 2 && (steps..=steps + 1).contains(&decisions), "{summary}");
    assert!(summary["agent_replans"].as_u64().unwrap() >= 1 && summary["agent_energy"].is_number(), "{summary}");
    let path = summary["agent_path"].as_array().unwrap();
    assert_eq!(path.len(), agent::planner::PlannerConfig::default().horizon as usize, "{summary}");
    for p in path {
        assert!((p[0].as_f64().unwrap() - 0.05).abs() < 1e-6 && (p[1].as_f64().unwrap() + 0.02).abs() < 1e-6, "{p}");
    }

    // A probe of the wrong size is refused, naming the file.
    let bad = dir.path().join("bad_probe.safetensors");
    let weight = tch::Tensor::zeros([7, 2], (tch::Kind::Float, tch::Device::Cpu));
    tch::Tensor::write_safetensors(&[("weight", &weight), ("bias", &bias)], &bad).unwrap();
    let out = common::view_under_xvfb(&[
        "--world-model",
        run.to_str().unwrap(),
        "--probe",
        bad.to_str().unwrap(),
        "--frames",
        "5",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad_probe.safetensors") && err.contains("[256, 2]"), "{err}");
}

/// A screenshot of the third frame shows the scene: the first frames of a window can be captured
/// before anything is drawn (an all-black or sky-only picture), and those are retaken.
#[test]
fn an_early_screenshot_shows_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("early.png");
    #[rustfmt::skip]
    let out = common::view_under_xvfb(&["--seed", "3", "--camera", "model", "--frames", "3", "--screenshot", png.to_str().unwrap(),
        "--out", dir.path().to_str().unwrap()]);
    common::succeeded(out, "cupworld view --frames 3");
    let image = image::open(&png).unwrap().to_rgb8();
    let shot: Shot = serde_json::from_str(&std::fs::read_to_string(png.with_extension("json")).unwrap()).unwrap();
    let [w, h] = shot.window;
    let (cup, table) = (*shot.scene.find(ObjectKind::Cup).unwrap(), *shot.scene.find(ObjectKind::Table).unwrap());
    let palette =
        [("cup", cup.color), ("table", table.color), ("floor", [0.32, 0.33, 0.36]), ("sky", [0.34, 0.48, 0.70])];
    let at = |p: [f32; 3]| {
        let (x, y) = render::project::project(&shot.scene.camera, p, w, h).expect("in front of the camera");
        nearest(image.get_pixel(x.round() as u32, y.round() as u32).0, &palette)
    };
    assert_eq!(at(cup.pose.position), "cup", "no cup in the third frame's screenshot");
    let types::Shape::Cuboid { half_extents: [hw, hy, hd] } = table.shape else { panic!("table top is a box") };
    let y = table.pose.position[1] + hy;
    let hits = [[-0.8 * hw, y, 0.8 * hd], [0.8 * hw, y, 0.8 * hd], [0.0, y, 0.85 * hd], [-0.8 * hw, y, -0.7 * hd]]
        .iter()
        .filter(|p| at(**p) == "table")
        .count();
    assert!(hits >= 3, "only {hits} of 4 table-top points show the table");
}
