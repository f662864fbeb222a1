//! `meta/stats.json`: per-feature mean, std, min, max and count, as LeRobot computes them.

use serde_json::{Value, json};
use types::Transition;

/// Running sums for one feature of `dim` values per row.
#[derive(Clone, Debug, Default)]
struct Running {
    count: u64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl Running {
    fn add(&mut self, values: impl IntoIterator<Item = f64>) {
        let values: Vec<f64> = values.into_iter().collect();
        if self.sum.is_empty() {
            let n = values.len();
            self.sum = vec![0.0; n];
            self.sum_sq = vec![0.0; n];
            self.min = vec![f64::INFINITY; n];
            self.max = vec![f64::NEG_INFINITY; n];
        }
        for (i, v) in values.into_iter().enumerate() {
            self.sum[i] += v;
            self.sum_sq[i] += v * v;
            self.min[i] = self.min[i].min(v);
            self.max[i] = self.max[i].max(v);
        }
        self.count += 1;
    }

    /// Per-dimension statistics; `wrap` shapes each vector (images want `[c, 1, 1]`).
    fn to_json(&self, wrap: impl Fn(&[f64]) -> Value) -> Value {
        let n = self.count.max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let std: Vec<f64> = self.sum_sq.iter().zip(&mean).map(|(sq, m)| (sq / n - m * m).max(0.0).sqrt()).collect();
        json!({
            "mean": wrap(&mean),
            "std": wrap(&std),
            "min": wrap(&self.min),
            "max": wrap(&self.max),
            "count": [self.count],
        })
    }
}

/// Accumulates every feature's statistics while rows are written.
#[derive(Clone, Debug, Default)]
pub struct StatsAccumulator {
    image: Running,
    state: Running,
    env: Running,
    action: Running,
    reward: Running,
    done: Running,
    success: Running,
    timestamp: Running,
    frame_index: Running,
    episode_index: Running,
    index: Running,
    task_index: Running,
}

impl StatsAccumulator {
    pub fn add_row(&mut self, t: &Transition, rgb: &[u8], episode_index: i64, index: i64) {
        // Image statistics per channel in [0, 1] over all pixels: every frame has the same pixel
        // count, so averaging per-frame means of x and x² is exact.
        let pixels = (rgb.len() / 3).max(1) as f64;
        let mut mean = [0.0f64; 3];
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        let mut sq = [0.0f64; 3];
        for px in rgb.chunks_exact(3) {
            for c in 0..3 {
                let v = px[c] as f64 / 255.0;
                mean[c] += v;
                sq[c] += v * v;
                lo[c] = lo[c].min(v);
                hi[c] = hi[c].max(v);
            }
        }
        let img = &mut self.image;
        if img.sum.is_empty() {
            *img = Running {
                count: 0,
                sum: vec![0.0; 3],
                sum_sq: vec![0.0; 3],
                min: vec![f64::INFINITY; 3],
                max: vec![f64::NEG_INFINITY; 3],
            };
        }
        for c in 0..3 {
            img.sum[c] += mean[c] / pixels;
            img.sum_sq[c] += sq[c] / pixels;
            img.min[c] = img.min[c].min(lo[c]);
            img.max[c] = img.max[c].max(hi[c]);
        }
        img.count += 1;
        self.state.add(t.state.iter().map(|&v| v as f64));
        self.env.add(t.environment_state.iter().map(|&v| v as f64));
        self.action.add(t.action.iter().map(|&v| v as f64));
        self.reward.add([t.reward as f64]);
        self.done.add([t.done as u8 as f64]);
        self.success.add([t.success as u8 as f64]);
        self.timestamp.add([t.timestamp as f64]);
        self.frame_index.add([t.tag.step as f64]);
        self.episode_index.add([episode_index as f64]);
        self.index.add([index as f64]);
        self.task_index.add([0.0]);
    }

    pub fn to_json(&self) -> Value {
        let flat = |v: &[f64]| json!(v);
        let chw = |v: &[f64]| json!(v.iter().map(|x| vec![vec![*x]]).collect::<Vec<_>>());
        json!({
            crate::schema::IMAGE_KEY: self.image.to_json(chw),
            "observation.state": self.state.to_json(flat),
            "observation.environment_state": self.env.to_json(flat),
            "action": self.action.to_json(flat),
            "next.reward": self.reward.to_json(flat),
            "next.done": self.done.to_json(flat),
            "next.success": self.success.to_json(flat),
            "timestamp": self.timestamp.to_json(flat),
            "frame_index": self.frame_index.to_json(flat),
            "episode_index": self.episode_index.to_json(flat),
            "index": self.index.to_json(flat),
            "task_index": self.task_index.to_json(flat),
        })
    }
}
