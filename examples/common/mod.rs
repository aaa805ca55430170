//! Shared by the accuracy examples: the real-data loader, error metrics, and a log-log plot.
#![allow(dead_code)]

#[path = "../../tests/common/data.rs"]
pub mod data;

use std::path::Path;

use plotters::prelude::*;

/// The real captures: (set, layer, file).
pub const CAPTURES: [(&str, usize, &str); 7] = [
    ("gpl3", 0, "gpl3-layer0.safetensors"),
    ("gpl3", 1, "gpl3-layer1.safetensors"),
    ("gpl3", 2, "gpl3-layer2.safetensors"),
    ("gpl3", 3, "gpl3-layer3.safetensors"),
    ("gpl3", 4, "gpl3-layer4.safetensors"),
    ("gpl3", 5, "gpl3-layer5.safetensors"),
    ("gpl3-long", 3, "gpl3-long-layer3.safetensors"),
];

/// Median over rows of ‖o − o*‖ / ‖o*‖, and mean over rows of exp(lse − lse*): the exact
/// softmax probability of the keys a sparse method kept.
pub fn error_and_mass(c: &data::Capture, out: &[f32], lse: &[f32]) -> (f64, f64) {
    let d = c.head_dim;
    let mut errs: Vec<f64> = (0..c.heads * c.tokens)
        .map(|row| {
            let (o, e) = (&out[row * d..][..d], &c.out[row * d..][..d]);
            let diff: f64 = o.iter().zip(e).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            let norm: f64 = e.iter().map(|b| f64::from(*b).powi(2)).sum();
            (diff / norm.max(1e-30)).sqrt()
        })
        .collect();
    errs.sort_by(f64::total_cmp);
    let mass = lse
        .iter()
        .zip(&c.lse)
        .map(|(a, b)| f64::from(a - b).exp())
        .sum::<f64>()
        / lse.len() as f64;
    (errs[errs.len() / 2], mass)
}

/// Registers a TTF font for the plots' text; `false` (with a message) when it cannot.
pub fn register_font(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(font) => {
            let font: &'static [u8] = Box::leak(font.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, font).is_ok()
        }
        Err(e) => {
            eprintln!("no plot: font {}: {e} (pass --font)", path.display());
            false
        }
    }
}

/// One plotted line: label, points, colour index, dashed, marker-only.
pub struct Series {
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    pub dashed: bool,
    pub markers: bool,
}

/// A log-log line plot of `series` into a PNG at `path`.
pub fn plot(
    path: &Path,
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (x0, x1, y0, y1) = pts.fold((f64::MAX, 0f64, f64::MAX, 0f64), |(a, b, c, d), &(x, y)| {
        (a.min(x), b.max(x), c.min(y), d.max(y))
    });
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x0 * 0.8..x1 * 1.25).log_scale(),
            (y0 * 0.8..y1 * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(xdesc)
        .y_desc(ydesc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for s in series {
        let color = Palette99::pick(s.color).to_rgba();
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if s.markers {
            chart.draw_series(
                pts.into_iter()
                    .map(|p| TriangleMarker::new(p, 7, color.filled())),
            )?;
            continue;
        }
        let style = color.stroke_width(2);
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        if let Some(label) = &s.label {
            drawn.label(label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
