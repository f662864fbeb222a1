//! The 3D scene in the window: entities mirror the session's `SceneSnapshot` every frame (poses
//! interpolated between control steps), lit with shadows; the camera follows the view mode.

use std::collections::HashMap;

use bevy::{light::NotShadowCaster, prelude::*};
use bevy_panorbit_camera::PanOrbitCamera;
use types::{CameraSpec, ObjectKind, SceneObject, SceneSnapshot, Shape};

use crate::control::{CameraMode, ViewState};
use crate::session::Session;

const SKY: Color = Color::srgb(0.62, 0.72, 0.85);

/// Shared meshes: unit shapes scaled per object, as the headless renderer draws them.
#[derive(Resource)]
struct Meshes {
    cube: Handle<Mesh>,
    cylinder: Handle<Mesh>,
}

/// The window's entity for each object, keyed by (kind, n-th of that kind): a vanished cup
/// leaves the list without shifting the pusher into its entity.
#[derive(Resource, Default)]
struct Drawn {
    entities: HashMap<(ObjectKind, usize), (Entity, Handle<StandardMaterial>, [f32; 3])>,
}

/// The objects as drawn in the window this frame (after interpolation): what a screenshot shows.
#[derive(Resource, Default, Clone)]
pub struct DisplayedScene(pub Option<SceneSnapshot>);

/// Marks the window's 3D camera.
#[derive(Component)]
pub struct MainCamera;

/// A translucent marker where the world model's probe expects the cup after the next action.
#[derive(Component)]
pub struct Ghost;

pub struct SceneViewPlugin {
    pub initial_camera: CameraMode,
    /// Shadows and 4× MSAA; off for software rendering (lavapipe), where they cost most.
    pub high_quality: bool,
}

impl Plugin for SceneViewPlugin {
    fn build(&self, app: &mut App) {
        let initial = self.initial_camera;
        let high_quality = self.high_quality;
        app.insert_resource(ClearColor(SKY))
            .insert_resource(GlobalAmbientLight { color: Color::WHITE, brightness: 250.0, ..default() })
            .init_resource::<Drawn>()
            .init_resource::<DisplayedScene>()
            .add_systems(
                Startup,
                move |commands: Commands, meshes: ResMut<Assets<Mesh>>, mut view: ResMut<ViewState>| {
                    view.camera = initial;
                    setup(commands, meshes, high_quality)
                },
            )
            .add_systems(Update, (sync_objects, follow_camera_mode).after(crate::control::ControlSet));
    }
}

fn setup(mut commands: Commands, mut meshes: ResMut<Assets<Mesh>>, high_quality: bool) {
    commands.insert_resource(Meshes {
        cube: meshes.add(Cuboid::new(1.0, 1.0, 1.0)),
        cylinder: meshes.add(Cylinder::new(1.0, 1.0).mesh().resolution(32)),
    });
    commands.spawn((
        DirectionalLight { illuminance: 2500.0, shadow_maps_enabled: high_quality, ..default() },
        Transform::from_xyz(1.0, 3.0, 2.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.spawn((
        Camera3d::default(),
        if high_quality { Msaa::Sample4 } else { Msaa::Off },
        MainCamera,
        Projection::Perspective(PerspectiveProjection { near: 0.02, far: 50.0, ..default() }),
        Transform::from_xyz(1.2, 1.4, 1.6).looking_at(Vec3::new(0.0, 0.5, 0.0), Vec3::Y),
        PanOrbitCamera {
            focus: Vec3::new(0.0, 0.55, 0.0),
            radius: Some(2.2),
            yaw: Some(0.55),
            pitch: Some(0.45),
            zoom_lower_limit: 0.2,
            zoom_upper_limit: Some(10.0),
            ..default()
        },
    ));
}

fn lerp_object(a: &SceneObject, b: &SceneObject, t: f32) -> Transform {
    let p = Vec3::from_array(a.pose.position).lerp(Vec3::from_array(b.pose.position), t);
    let qa = Quat::from_array(a.pose.rotation).normalize();
    let qb = Quat::from_array(b.pose.rotation).normalize();
    let scale = match b.shape {
        Shape::Cuboid { half_extents: [hx, hy, hz] } => Vec3::new(2.0 * hx, 2.0 * hy, 2.0 * hz),
        Shape::Cylinder { radius, half_height } => Vec3::new(radius, 2.0 * half_height, radius),
    };
    Transform { translation: p, rotation: qa.slerp(qb, t), scale }
}

/// Keys objects by (kind, n-th of that kind).
fn keyed(scene: &SceneSnapshot) -> Vec<((ObjectKind, usize), &SceneObject)> {
    let mut counts: HashMap<ObjectKind, usize> = HashMap::new();
    scene
        .objects
        .iter()
        .map(|o| {
            let n = counts.entry(o.kind).or_default();
            *n += 1;
            ((o.kind, *n - 1), o)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn sync_objects(
    mut commands: Commands,
    session: Res<Session>,
    shared: Res<Meshes>,
    mut drawn: ResMut<Drawn>,
    mut displayed: ResMut<DisplayedScene>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut transforms: Query<&mut Transform, Without<MainCamera>>,
) {
    let previous: HashMap<_, _> = keyed(&session.previous_scene).into_iter().collect();
    let now = keyed(&session.scene);
    let mut shown = SceneSnapshot { objects: Vec::with_capacity(now.len()), camera: session.scene.camera };
    for (key, object) in &now {
        // Objects that just appeared, and anything teleported, are drawn where they are now.
        let from = previous.get(key).copied().unwrap_or(object);
        let transform = lerp_object(from, object, session.phase);
        let mut drawn_object = **object;
        drawn_object.pose.position = transform.translation.to_array();
        drawn_object.pose.rotation = transform.rotation.to_array();
        shown.objects.push(drawn_object);
        match drawn.entities.get_mut(key) {
            Some((entity, material, color)) => {
                if let Ok(mut t) = transforms.get_mut(*entity) {
                    *t = transform;
                }
                if *color != object.color {
                    *color = object.color;
                    if let Some(mut m) = materials.get_mut(material.id()) {
                        m.base_color = Color::linear_rgb(object.color[0], object.color[1], object.color[2]);
                    }
                }
            }
            None => {
                let [r, g, b] = object.color;
                let material = materials.add(StandardMaterial {
                    base_color: Color::linear_rgb(r, g, b),
                    perceptual_roughness: 0.8,
                    ..default()
                });
                let mesh = match object.shape {
                    Shape::Cuboid { .. } => shared.cube.clone(),
                    Shape::Cylinder { .. } => shared.cylinder.clone(),
                };
                let mut e = commands.spawn((Mesh3d(mesh), MeshMaterial3d(material.clone()), transform));
                if matches!(object.kind, ObjectKind::Floor | ObjectKind::GoalMarker) {
                    e.insert(NotShadowCaster);
                }
                drawn.entities.insert(*key, (e.id(), material, object.color));
            }
        }
    }
    // Objects no longer in the scene (a vanished cup) are despawned, to reappear on reset.
    let keys: Vec<_> = now.iter().map(|(k, _)| *k).collect();
    drawn.entities.retain(|k, (entity, _, _)| {
        let keep = keys.contains(k);
        if !keep {
            commands.entity(*entity).despawn();
        }
        keep
    });
    displayed.0 = Some(shown);
}

/// Applies the view mode to the window camera: the free camera orbits under the mouse; the fixed
/// ones are placed, with the orbit controls off.
fn follow_camera_mode(
    view: Res<ViewState>,
    session: Res<Session>,
    mut camera: Query<(&mut Transform, &mut Projection, &mut PanOrbitCamera), With<MainCamera>>,
    mut last_mode: Local<Option<CameraMode>>,
) {
    let Ok((mut transform, mut projection, mut orbit)) = camera.single_mut() else {
        return;
    };
    let switched = *last_mode != Some(view.camera);
    *last_mode = Some(view.camera);
    match fixed_camera(view.camera, session.scene.camera, session.info.table_top_y) {
        None => {
            if switched {
                // Back from a fixed camera: the orbit puts back its own pose and lens.
                if let Projection::Perspective(p) = &mut *projection {
                    p.fov = PerspectiveProjection::default().fov;
                }
                orbit.force_update = true;
            }
            // Drags over a HUD window belong to the HUD.
            let enabled = !view.pointer_over_ui;
            if orbit.enabled != enabled {
                orbit.enabled = enabled;
            }
        }
        Some((t, fov)) => {
            if orbit.enabled {
                orbit.enabled = false;
            }
            if *transform != t {
                *transform = t;
            }
            if let Projection::Perspective(p) = &mut *projection
                && p.fov != fov
            {
                p.fov = fov;
            }
        }
    }
}

/// The pose and vertical field of view of a fixed camera mode; `None` for the free camera.
pub fn fixed_camera(mode: CameraMode, model: CameraSpec, table_top_y: f32) -> Option<(Transform, f32)> {
    let look = |eye: Vec3, target: Vec3, fov_deg: f32| {
        let up = if (eye - target).normalize().y.abs() > 0.99 { Vec3::NEG_Z } else { Vec3::Y };
        Some((Transform::from_translation(eye).looking_at(target, up), fov_deg.to_radians()))
    };
    let centre = Vec3::new(0.0, table_top_y, 0.0);
    match mode {
        CameraMode::Free => None,
        CameraMode::Model => look(Vec3::from_array(model.eye), Vec3::from_array(model.target), model.fov_y_deg),
        CameraMode::Top => look(centre + Vec3::new(0.0, 2.2, 0.0), centre, 45.0),
        CameraMode::Side => look(centre + Vec3::new(2.0, 0.15, 0.0), centre + Vec3::new(0.0, -0.1, 0.0), 45.0),
    }
}
