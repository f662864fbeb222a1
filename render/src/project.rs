//! Pinhole projection matching the renderer's camera, without bevy.

use types::CameraSpec;

/// Projects a world point to pixel coordinates `(x, y)` (origin top-left) in a `width` × `height`
/// frame from `camera`; `None` if it is behind the camera.
pub fn project(camera: &CameraSpec, point: [f32; 3], width: u32, height: u32) -> Option<(f32, f32)> {
    let sub = |a: [f32; 3], b: [f32; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    let dot = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let cross =
        |a: [f32; 3], b: [f32; 3]| [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    let normalize = |a: [f32; 3]| {
        let n = dot(a, a).sqrt();
        [a[0] / n, a[1] / n, a[2] / n]
    };
    let forward = normalize(sub(camera.target, camera.eye));
    let right = normalize(cross(forward, [0.0, 1.0, 0.0]));
    let up = cross(right, forward);
    let rel = sub(point, camera.eye);
    let depth = dot(rel, forward);
    if depth <= 1e-6 {
        return None;
    }
    let f = 1.0 / (camera.fov_y_deg.to_radians() / 2.0).tan();
    let aspect = width as f32 / height as f32;
    let ndc_x = dot(rel, right) / depth * f / aspect;
    let ndc_y = dot(rel, up) / depth * f;
    Some(((ndc_x + 1.0) / 2.0 * width as f32, (1.0 - ndc_y) / 2.0 * height as f32))
}
