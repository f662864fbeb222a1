//! A headless bevy app driven in lock-step: one `update()` renders a whole batch of scenes.
//!
//! Throughput design: every environment slot has its own camera and render target, and one
//! update renders the batch; one command buffer copies every target into one readback buffer and
//! one buffer map waits for it (bevy's example submits a copy and blocks per camera). Slots share
//! the same world coordinates but each has its own render layer, so no camera sees another slot's
//! objects.
//!
//! Bit-exact frames: a scene renders to the same bytes whichever slot it lands in and whatever
//! else is in its batch. Each slot has a texture of its own (not a viewport of a shared atlas)
//! because the rasteriser adds the viewport's offset to every vertex's window position in floating
//! point: at another offset the sum rounds differently, and lavapipe drew 0.6–5% of frames one
//! level off (once an edge pixel 75 levels off) depending on the slot (experiments/2026-12-07-bit-exact-frames).

use bevy::{
    app::{AppLabel, SubApps},
    asset::RenderAssetUsages,
    camera::{ClearColorConfig, RenderTarget, visibility::RenderLayers},
    core_pipeline::tonemapping::{DebandDither, Tonemapping},
    light::NotShadowCaster,
    prelude::*,
    render::{
        Render, RenderApp, RenderPlugin, RenderSystems,
        pipelined_rendering::PipelinedRenderingPlugin,
        render_asset::RenderAssets,
        render_resource::{
            Buffer, BufferDescriptor, BufferUsages, CommandEncoderDescriptor, Extent3d, MapMode, PollType,
            TexelCopyBufferInfo, TexelCopyBufferLayout, TextureFormat, TextureUsages,
        },
        renderer::{RenderAdapterInfo, RenderDevice, RenderQueue},
        texture::GpuImage,
    },
    window::ExitCondition,
};
use types::{Frame, FrameTag, ObjectKind, SceneSnapshot, Shape};

use crate::{RenderError, Result};

/// Objects per slot (floor, table top, 4 legs, goal, cup, pusher = 9; spare room).
const MAX_OBJECTS: usize = 12;
const SKY: Color = Color::srgb(0.62, 0.72, 0.85);

/// Renderer settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderConfig {
    pub width: u32,
    pub height: u32,
    /// Environments drawn per bevy update (one camera and render target each).
    pub slots: usize,
    /// Directional-light shadow maps (2–3× slower on lavapipe).
    pub shadows: bool,
    /// 4× multisampling (bevy's default; ~1.7× slower on lavapipe at 64×64). The cup (~4 px) and
    /// pusher (~3 px) move about a pixel per frame; with it sub-pixel positions show as edge
    /// intensities. Off by default: the world model's main job was no better with it
    /// (experiments/2026-11-30-predictability) and 4 minutes slower.
    pub msaa: bool,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig { width: 64, height: 64, slots: 32, shadows: false, msaa: false }
    }
}

impl RenderConfig {
    pub fn validate(&self) -> Result<()> {
        if !(8..=2048).contains(&self.width) || !(8..=2048).contains(&self.height) {
            return Err(RenderError::Config(format!(
                "frame size (width x height) {}x{} must be within 8..=2048 on each side",
                self.width, self.height
            )));
        }
        if !(1..=256).contains(&self.slots) {
            return Err(RenderError::Config(format!("slots = {} must be within 1..=256", self.slots)));
        }
        Ok(())
    }
}

struct Slot {
    camera: Entity,
    objects: [Entity; MAX_OBJECTS],
    materials: [Handle<StandardMaterial>; MAX_OBJECTS],
    /// What each object currently shows, to skip unchanged material and mesh writes.
    shown: [Option<(Shape, [f32; 3])>; MAX_OBJECTS],
    camera_spec: Option<types::CameraSpec>,
}

/// The slots' render targets and the CPU readback buffer they are copied into (slot `i` at
/// `i × slot_bytes`), shared by the main and render worlds.
#[derive(Resource, Clone)]
struct Readback {
    images: Vec<Handle<Image>>,
    buffer: Buffer,
    size: Extent3d,
    padded_bytes_per_row: u32,
    slot_bytes: u64,
}

/// A headless renderer of [`SceneSnapshot`]s. Not `Send`: create it on the thread that uses it.
pub struct Renderer {
    apps: SubApps,
    config: RenderConfig,
    slots: Vec<Slot>,
    readback: Readback,
    cube: Handle<Mesh>,
    cylinder: Handle<Mesh>,
    adapter: String,
}

impl Renderer {
    pub fn new(config: RenderConfig) -> Result<Renderer> {
        config.validate()?;
        // Without a GPU, wgpu's Vulkan backend on Mesa's lavapipe is the one that works (Mesa's CPU Vulkan driver).
        // llvmpipe rasterising on the submitting thread beats handing 64×64 viewports to its
        // worker threads (1,066 vs 859 frames/s at 32 slots measured); ignored by real GPUs.
        for (key, value) in [("WGPU_BACKEND", "vulkan"), ("LP_NUM_THREADS", "0")] {
            if std::env::var_os(key).is_none() {
                // SAFETY: set before bevy starts any thread that could read the environment.
                unsafe { std::env::set_var(key, value) };
            }
        }
        quiet_runtime_dir();
        let mut app = App::new();
        let plugins = DefaultPlugins.build();
        // In a process that also runs a bevy window (the viewer), bevy has winit compiled in and
        // `DefaultPlugins` would open a second winit event loop, which panics.
        #[cfg(feature = "windowed-host")]
        let plugins = plugins.disable::<bevy::winit::WinitPlugin>();
        app.add_plugins(
            plugins
                .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
                .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
                .set(bevy::pbr::PbrPlugin {
                    prepass_enabled: false,
                    // GPU culling runs compute passes per view: on lavapipe they cost 4× the
                    // drawing itself (838 vs 211 frames/s at 32 slots measured).
                    // (The CPU instance-building path is 4× faster on lavapipe but draws nothing in
                    // bevy 0.19.1: every frame came back as the clear colour.)
                    use_gpu_instance_buffer_builder: true,
                    ..default()
                })
                // Lock-step: the frame must be finished when update() returns.
                .disable::<PipelinedRenderingPlugin>()
                // Leave Ctrl-C to the host program.
                .disable::<bevy::app::TerminalCtrlCHandlerPlugin>(),
        );
        app.insert_resource(ClearColor(SKY));
        app.insert_resource(GlobalAmbientLight { color: Color::WHITE, brightness: 250.0, ..default() });
        app.finish();
        app.cleanup();

        let mut apps = std::mem::take(app.sub_apps_mut());

        let adapter = match apps.sub_apps.get(&RenderApp.intern()) {
            Some(render) => match render.world().get_resource::<RenderAdapterInfo>() {
                Some(info) => format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
                None => return Err(RenderError::NoAdapter),
            },
            None => return Err(RenderError::NoAdapter),
        };

        let size = Extent3d { width: config.width, height: config.height, depth_or_array_layers: 1 };
        let world = apps.main.world_mut();
        let images: Vec<Handle<Image>> = (0..config.slots)
            .map(|_| {
                let mut target =
                    Image::new_target_texture(size.width, size.height, TextureFormat::Rgba8UnormSrgb, None);
                target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
                target.asset_usage = RenderAssetUsages::RENDER_WORLD;
                world.resource_mut::<Assets<Image>>().add(target)
            })
            .collect();
        let padded_bytes_per_row = RenderDevice::align_copy_bytes_per_row(size.width as usize * 4) as u32;
        let slot_bytes = padded_bytes_per_row as u64 * size.height as u64;
        let buffer = world.resource::<RenderDevice>().create_buffer(&BufferDescriptor {
            label: Some("cupworld readback"),
            size: slot_bytes * config.slots as u64,
            usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let readback = Readback { images: images.clone(), buffer, size, padded_bytes_per_row, slot_bytes };

        let cube = world.resource_mut::<Assets<Mesh>>().add(Cuboid::new(1.0, 1.0, 1.0));
        let cylinder = world.resource_mut::<Assets<Mesh>>().add(Cylinder::new(1.0, 1.0).mesh().resolution(32));

        world.spawn((
            DirectionalLight { illuminance: 2500.0, shadow_maps_enabled: config.shadows, ..default() },
            Transform::from_xyz(1.0, 3.0, 2.0).looking_at(Vec3::ZERO, Vec3::Y),
            RenderLayers::from_layers(&(0..=config.slots).collect::<Vec<_>>()),
        ));

        let mut slots = Vec::with_capacity(config.slots);
        for (i, image) in images.iter().enumerate() {
            let camera = world
                .spawn((
                    Camera3d::default(),
                    Camera {
                        order: i as isize,
                        clear_color: ClearColorConfig::Custom(SKY),
                        is_active: false,
                        ..default()
                    },
                    RenderTarget::Image(image.clone().into()),
                    Tonemapping::None,
                    // Dither noise varies with the frame count: off, so a scene renders the same
                    // in every update.
                    DebandDither::Disabled,
                    if config.msaa { Msaa::Sample4 } else { Msaa::Off },
                    Projection::Perspective(PerspectiveProjection { near: 0.05, far: 30.0, ..default() }),
                    Transform::IDENTITY,
                    slot_layer(i),
                ))
                .id();
            // Without indirect drawing bevy skips its per-view GPU culling compute passes, which
            // cost more than the drawing itself on lavapipe (211 → 294 frames/s at 32 slots).
            world.entity_mut(camera).insert(bevy::render::view::NoIndirectDrawing);
            let mut objects = [Entity::PLACEHOLDER; MAX_OBJECTS];
            let mut materials: [Handle<StandardMaterial>; MAX_OBJECTS] = Default::default();
            for k in 0..MAX_OBJECTS {
                let material = world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
                    base_color: Color::WHITE,
                    perceptual_roughness: 0.8,
                    ..default()
                });
                objects[k] = world
                    .spawn((
                        Mesh3d(cube.clone()),
                        MeshMaterial3d(material.clone()),
                        Transform::from_translation(Vec3::new(0.0, -100.0, 0.0)),
                        Visibility::Hidden,
                        slot_layer(i),
                    ))
                    .id();
                materials[k] = material;
            }
            slots.push(Slot { camera, objects, materials, shown: [None; MAX_OBJECTS], camera_spec: None });
        }

        let render = apps.sub_apps.get_mut(&RenderApp.intern()).ok_or(RenderError::NoAdapter)?;
        render.insert_resource(readback.clone());
        render.add_systems(Render, copy_targets_to_buffer.after(RenderSystems::Render));

        let mut renderer = Renderer { apps, config, slots, readback, cube, cylinder, adapter };
        renderer.warm_up()?;
        Ok(renderer)
    }

    /// The GPU (or lavapipe) adapter in use, as wgpu names it.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    /// Renders one frame per scene, in order, all in one bevy update. At most `slots` scenes.
    pub fn render(&mut self, jobs: &[(FrameTag, &SceneSnapshot)]) -> Result<Vec<Frame>> {
        if jobs.len() > self.slots.len() {
            return Err(RenderError::TooManyScenes { given: jobs.len(), slots: self.slots.len() });
        }
        let mut shown_changed = false;
        for (i, (_, scene)) in jobs.iter().enumerate() {
            shown_changed |= self.place_scene(i, scene)?;
        }
        for i in 0..self.slots.len() {
            let camera = self.slots[i].camera;
            let active = i < jobs.len();
            let world = self.apps.main.world_mut();
            let mut cam = world.get_mut::<Camera>(camera).expect("camera entity");
            if cam.is_active != active {
                cam.is_active = active;
            }
        }
        if shown_changed {
            // An entity that just became visible reaches the render world's mesh instances one
            // update late (CPU instance building): draw once more so this frame has it.
            self.apps.update();
        }
        self.apps.update();
        let pixels = self.read_back()?;
        Ok(jobs.iter().enumerate().map(|(i, (tag, _))| self.cut_frame(&pixels, i, *tag)).collect())
    }

    /// The first updates compile pipelines and upload assets; render until frames are stable.
    fn warm_up(&mut self) -> Result<()> {
        let scene = SceneSnapshot {
            objects: vec![types::SceneObject {
                kind: ObjectKind::Cup,
                shape: Shape::Cylinder { radius: 0.1, half_height: 0.1 },
                pose: types::Pose::at([0.0, 0.5, 0.0]),
                color: [1.0, 0.0, 0.0],
            }],
            camera: types::CameraSpec::default(),
        };
        let tag = FrameTag { episode: 0, step: 0 };
        let mut last = self.render(&[(tag, &scene)])?;
        for _ in 0..8 {
            let next = self.render(&[(tag, &scene)])?;
            if next == last {
                return Ok(());
            }
            last = next;
        }
        Err(RenderError::Unstable)
    }

    /// Poses the slot's objects for `scene`; returns whether any object appeared or disappeared.
    fn place_scene(&mut self, i: usize, scene: &SceneSnapshot) -> Result<bool> {
        let mut shown_changed = false;
        if scene.objects.len() > MAX_OBJECTS {
            return Err(RenderError::TooManyObjects { given: scene.objects.len(), max: MAX_OBJECTS });
        }
        let (cube, cylinder) = (self.cube.clone(), self.cylinder.clone());
        let world = self.apps.main.world_mut();
        let slot = &mut self.slots[i];
        if slot.camera_spec != Some(scene.camera) {
            let c = scene.camera;
            let eye = Vec3::from_array(c.eye);
            let transform = Transform::from_translation(eye).looking_at(Vec3::from_array(c.target), Vec3::Y);
            *world.get_mut::<Transform>(slot.camera).expect("camera") = transform;
            if let Projection::Perspective(p) = &mut *world.get_mut::<Projection>(slot.camera).expect("camera") {
                p.fov = c.fov_y_deg.to_radians();
            }
            slot.camera_spec = Some(scene.camera);
        }
        for k in 0..MAX_OBJECTS {
            let entity = slot.objects[k];
            let Some(object) = scene.objects.get(k) else {
                if slot.shown[k].take().is_some() {
                    *world.get_mut::<Visibility>(entity).expect("object") = Visibility::Hidden;
                    shown_changed = true;
                }
                continue;
            };
            if !object.pose.position.iter().chain(&object.pose.rotation).all(|v| v.is_finite()) {
                return Err(RenderError::NonFinitePose { object: k });
            }
            let [x, y, z] = object.pose.position;
            let [qx, qy, qz, qw] = object.pose.rotation;
            let (mesh, scale) = match object.shape {
                Shape::Cuboid { half_extents: [hx, hy, hz] } => (&cube, Vec3::new(2.0 * hx, 2.0 * hy, 2.0 * hz)),
                Shape::Cylinder { radius, half_height } => (&cylinder, Vec3::new(radius, 2.0 * half_height, radius)),
            };
            let transform = Transform {
                translation: Vec3::new(x, y, z),
                rotation: Quat::from_xyzw(qx, qy, qz, qw).normalize(),
                scale,
            };
            *world.get_mut::<Transform>(entity).expect("object") = transform;
            let current = (object.shape, object.color);
            if slot.shown[k] != Some(current) {
                let previous = slot.shown[k].replace(current);
                shown_changed |= previous.is_none();
                let shape_kind_changed =
                    previous.is_none_or(|(s, _)| std::mem::discriminant(&s) != std::mem::discriminant(&object.shape));
                if shape_kind_changed {
                    world.get_mut::<Mesh3d>(entity).expect("object").0 = mesh.clone();
                }
                if previous.is_none_or(|(_, c)| c != object.color) {
                    let [r, g, b] = object.color;
                    if let Some(mut m) = world.resource_mut::<Assets<StandardMaterial>>().get_mut(&slot.materials[k]) {
                        m.base_color = Color::linear_rgb(r, g, b);
                    }
                }
                if previous.is_none() {
                    *world.get_mut::<Visibility>(entity).expect("object") = Visibility::Visible;
                }
                let casts = !matches!(object.kind, ObjectKind::Floor | ObjectKind::GoalMarker);
                let mut e = world.entity_mut(entity);
                if casts {
                    e.remove::<NotShadowCaster>();
                } else {
                    e.insert(NotShadowCaster);
                }
            }
        }
        Ok(shown_changed)
    }

    /// Maps the readback buffer (filled by this update's copies) and returns its bytes.
    fn read_back(&mut self) -> Result<Vec<u8>> {
        let slice = self.readback.buffer.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let device = self.apps.main.world().resource::<RenderDevice>();
        device.poll(PollType::wait_indefinitely()).map_err(|e| RenderError::Gpu(e.to_string()))?;
        rx.recv().map_err(|e| RenderError::Gpu(e.to_string()))?.map_err(|e| RenderError::Gpu(e.to_string()))?;
        let bytes = slice.get_mapped_range().to_vec();
        self.readback.buffer.unmap();
        Ok(bytes)
    }

    fn cut_frame(&self, pixels: &[u8], i: usize, tag: FrameTag) -> Frame {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let stride = self.readback.padded_bytes_per_row as usize;
        let slot = &pixels[i * self.readback.slot_bytes as usize..];
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let start = y * stride;
            for px in slot[start..start + w * 4].chunks_exact(4) {
                rgb.extend_from_slice(&px[..3]);
            }
        }
        Frame { tag, width: w as u32, height: h as u32, rgb }
    }
}

/// Mesa's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" once per device it opens
/// (twice per renderer) on machines without a login session (CI, containers, SSH). Where the
/// variable is unset, point it at a private folder so the log says only what matters.
pub fn quiet_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("cupworld-runtime-{user}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a folder of our own that nobody else can read will do.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mine =
        std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o077 == 0 && Some(m.uid()) == me);
    if mine {
        // SAFETY: called before bevy starts any thread that could read the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

/// Slot `i` draws on render layer `i + 1` (layer 0 is bevy's default, left unused).
fn slot_layer(i: usize) -> RenderLayers {
    RenderLayers::none().with(i + 1)
}

/// Render-world system: after the cameras are drawn and submitted, copy every slot's target into
/// the readback buffer, all in one command buffer (queue order guarantees the copies see this frame).
fn copy_targets_to_buffer(
    readback: Res<Readback>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
) {
    let mut encoder = device.create_command_encoder(&CommandEncoderDescriptor { label: Some("cupworld readback") });
    for (i, handle) in readback.images.iter().enumerate() {
        let Some(image) = images.get(handle) else {
            return;
        };
        encoder.copy_texture_to_buffer(
            image.texture.as_image_copy(),
            TexelCopyBufferInfo {
                buffer: &readback.buffer,
                layout: TexelCopyBufferLayout {
                    offset: i as u64 * readback.slot_bytes,
                    bytes_per_row: Some(readback.padded_bytes_per_row),
                    rows_per_image: None,
                },
            },
            readback.size,
        );
    }
    queue.submit(std::iter::once(encoder.finish()));
}
