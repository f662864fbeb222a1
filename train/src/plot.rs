//! Line plots as PNG (plotters, with an embedded DejaVu Sans so no system fonts are needed).

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // Registration fails only on a malformed font, which the build embeds: a programming error.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            panic!("embedded DejaVuSans.ttf did not load");
        }
    });
}

/// One named line.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points: points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect(),
        }
    }
}

pub struct Plot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    /// Vertical marker lines (e.g. a VoE breaking point).
    pub markers: Vec<f64>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (if log { 0.1 } else { 0.0 }, 1.0);
    }
    if log {
        (lo / 1.2, hi * 1.2)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-9);
        (lo - pad, hi + pad)
    }
}

/// Writes `series` as a line plot of 800×500 pixels to `path`.
pub fn line_plot(path: &Path, plot: &Plot, series: &[Series]) -> Result<()> {
    register_font();
    let err = |e: String| anyhow!("plotting {}: {e}", path.display());
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), plot.log_x);
    let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), plot.log_y);
    let mut builder = ChartBuilder::on(&root);
    builder.caption(plot.title, ("sans-serif", 22)).margin(12).x_label_area_size(40).y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(plot.x_label)
                .y_desc(plot.y_label)
                .x_label_formatter(&tick_label)
                .y_label_formatter(&tick_label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (i, s) in series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
                if s.points.len() <= 40 {
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                        .map_err(|e| err(e.to_string()))?;
                }
            }
            for &m in &plot.markers {
                chart
                    .draw_series(LineSeries::new(vec![(m, y0), (m, y1)], BLACK.mix(0.85).stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?;
            }
            chart
                .configure_series_labels()
                .position(legend_corner(series, (x0, x1, plot.log_x), (y0, y1, plot.log_y)))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }};
    }
    match (plot.log_x, plot.log_y) {
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| err(e.to_string()))?),
        (true, false) => {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(|e| err(e.to_string()))?)
        }
        (false, true) => {
            draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(|e| err(e.to_string()))?)
        }
        (true, true) => {
            draw!(
                builder
                    .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                    .map_err(|e| err(e.to_string()))?
            )
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// The corner of the plot whose quarter holds the fewest data points, for the legend (the first
/// of upper right, upper left, lower right, lower left on a tie), so it hides as little as it can.
fn legend_corner(series: &[Series], x: (f64, f64, bool), y: (f64, f64, bool)) -> SeriesLabelPosition {
    // A point's place along an axis, 0 at the low end and 1 at the high end.
    let along = |v: f64, (lo, hi, log): (f64, f64, bool)| {
        if log { (v.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (v - lo) / (hi - lo) }
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let count = |right: bool, upper: bool| {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .filter(|p| {
                let (u, v) = (along(p.0, x), along(p.1, y));
                (if right { u > 0.6 } else { u < 0.4 }) && (if upper { v > 0.6 } else { v < 0.4 })
            })
            .count()
    };
    corners.into_iter().min_by_key(|&(_, right, upper)| count(right, upper)).map(|c| c.0).expect("four corners")
}

/// A tick label without float noise: whole numbers as integers (step 500, horizon 3), small
/// values to three significant digits (0.05, 1e-6).
fn tick_label(v: &f64) -> String {
    let v = *v;
    if v == 0.0 || (v.fract() == 0.0 && v.abs() < 1e9) {
        format!("{v:.0}")
    } else if v.abs() >= 1e-3 && v.abs() < 1e6 {
        let s = format!("{:.*}", (2 - v.abs().log10().floor() as i32).max(0) as usize, v);
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    } else {
        format!("{v:.0e}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tick_labels_are_short() {
        let cases = [(1.0, "1"), (2500.0, "2500"), (0.05, "0.05"), (0.1234, "0.123"), (12.5, "12.5"), (1e-6, "1e-6")];
        for (v, want) in cases {
            assert_eq!(super::tick_label(&v), want, "{v}");
        }
        assert_eq!(super::tick_label(&9.999999e-6), "1e-5");
    }

    #[test]
    fn the_legend_goes_where_the_data_is_not() {
        use super::{Series, SeriesLabelPosition, legend_corner};
        let at = |s: Series| legend_corner(&[s], (0.0, 10.0, false), (0.0, 10.0, false));
        // A falling curve (a loss) leaves the upper right free; a rising one does not.
        let falling = Series::new("loss", (0..=10).map(|i| (i as f64, 10.0 - i as f64)).collect());
        assert!(matches!(at(falling), SeriesLabelPosition::UpperRight));
        let rising = Series::new("frames/s", (0..=10).map(|i| (i as f64, i as f64)).collect());
        assert!(matches!(at(rising), SeriesLabelPosition::UpperLeft));
        // High everywhere: a lower corner.
        let high = Series::new("high", (0..=10).map(|i| (i as f64, 9.0 + 0.1 * i as f64)).collect());
        assert!(matches!(at(high), SeriesLabelPosition::LowerRight));
        // Log axes place points by their logarithm: 100…300 of 1…1000 sit in the upper right
        // on log axes, in the lower left on linear ones.
        let mid = || Series::new("mid", [100.0, 200.0, 300.0].iter().map(|&v| (v, v)).collect());
        let log_axis = (1.0, 1000.0, true);
        assert!(matches!(legend_corner(&[mid()], log_axis, log_axis), SeriesLabelPosition::UpperLeft));
        let linear_axis = (1.0, 1000.0, false);
        assert!(matches!(legend_corner(&[mid()], linear_axis, linear_axis), SeriesLabelPosition::UpperRight));
    }
}
