//! `biofeedback plot`: PNG and SVG figures of one or several runs.
//!
//! Four figures, each written as `<name>.png` and `<name>.svg`:
//!
//! ```text
//! loss          train loss | test loss, per epoch, one line per run
//! error         train top-1 error | test top-1 error (%), per epoch, one line per run
//! weight_angle  angle between B and W^T (degrees) per epoch
//! delta_angle   angle between the rule's delta and backprop's (degrees) per epoch
//! ```
//!
//! For the angle figures, one run gives one panel with a line per layer; several runs give a
//! panel per layer with a line per run, so rules are compared layer by layer (as does one run
//! of more than ten layers). One legend column at the right names every line. Text is drawn
//! with an embedded font (DejaVu Sans), so no system font library is needed.

use crate::aggregate::{self, Group, Summary};
use crate::atomic::write_atomically;
use crate::run_record::{self, RunRecord};
use crate::train::EpochMetrics;
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;
use thiserror::Error;

/// DejaVu Sans (Bitstream Vera license, `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Why a figure cannot be written.
#[derive(Debug, Error)]
#[error("{path}: {what}")]
pub struct PlotError {
    /// The figure file.
    pub path: PathBuf,
    /// What went wrong.
    pub what: String,
}

impl PlotError {
    fn at(path: &Path, what: impl ToString) -> Self {
        Self {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }
}

/// The colour of series `i`: the ten of [`PALETTE`], then hues spread by the golden angle at
/// alternating lightness, so runs beyond ten never share a colour.
fn colour(i: usize) -> RGBColor {
    if let Some(&c) = PALETTE.get(i) {
        return c;
    }
    let k = i - PALETTE.len();
    let hue = (k as f64 * 137.508).rem_euclid(360.0) / 60.0;
    let lightness = [0.35, 0.55, 0.45][k % 3];
    let chroma = (1.0 - (2.0 * lightness - 1.0f64).abs()) * 0.8;
    let x = chroma * (1.0 - (hue.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match hue as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = lightness - chroma / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(byte(r), byte(g), byte(b))
}

/// Ten colours that stay distinct (the "tab10" palette).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a panel: `(epoch, value)` points, and for a group of runs the band of one
/// standard deviation around their mean, `(epoch, low, high)`.
#[derive(Debug, Clone)]
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    band: Vec<(f64, f64, f64)>,
}

/// One chart.
#[derive(Debug, Clone)]
struct Panel {
    title: String,
    y_desc: String,
    series: Vec<Series>,
}

/// A figure: a title over a grid of panels.
#[derive(Debug, Clone)]
struct Figure {
    name: &'static str,
    title: String,
    panels: Vec<Panel>,
    cols: usize,
}

impl Figure {
    /// Width of the legend column at the right, pixels.
    const LEGEND_WIDTH: u32 = 240;

    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.cols) as u32;
        let legend = 24 * self.legend().len() as u32 + 90;
        (
            560 * self.cols as u32 + Self::LEGEND_WIDTH,
            (420 * rows + 50).max(legend),
        )
    }

    /// Every series label once, with its colour, in the order the panels list them.
    fn legend(&self) -> Vec<(&str, RGBColor)> {
        let mut entries: Vec<(&str, RGBColor)> = Vec::new();
        for series in self.panels.iter().flat_map(|p| &p.series) {
            if !entries.iter().any(|(label, _)| *label == series.label) {
                entries.push((&series.label, series.color));
            }
        }
        entries
    }
}

/// Writes the four figures of `runs` into `out` (created if needed), PNG and SVG, and returns
/// the files written.
pub fn plot_runs(runs: &[RunRecord], out: &Path) -> Result<Vec<PathBuf>, PlotError> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The embedded file is a valid font; a failure would show as missing text, not a crash.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    std::fs::create_dir_all(out)
        .map_err(|e| PlotError::at(out, format!("cannot create the folder: {e}")))?;
    let mut written = Vec::new();
    for figure in figures(runs) {
        let (w, h) = figure.size();
        let png = out.join(format!("{}.png", figure.name));
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        draw(
            BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area(),
            &figure,
        )
        .map_err(|what| PlotError::at(&png, what))?;
        let mut encoded = Vec::new();
        image::codecs::png::PngEncoder::new(&mut encoded)
            .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| PlotError::at(&png, e))?;
        save(&png, &encoded)?;
        written.push(png);

        let svg = out.join(format!("{}.svg", figure.name));
        let mut text = String::new();
        draw(
            SVGBackend::with_string(&mut text, (w, h)).into_drawing_area(),
            &figure,
        )
        .map_err(|what| PlotError::at(&svg, what))?;
        save(&svg, text.as_bytes())?;
        written.push(svg);
    }
    Ok(written)
}

fn save(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    write_atomically(path, bytes).map_err(|e| PlotError::at(path, e))
}

/// Legend labels: each run's name, or its directory where names repeat.
fn labels(runs: &[RunRecord]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            let repeated = runs.iter().filter(|o| o.name == r.name).count() > 1;
            match repeated {
                true => r.path.display().to_string(),
                false => r.name.clone(),
            }
        })
        .collect()
}

/// What the figures draw a line for: each run, or, where some runs differ only in their seed
/// ([`aggregate::groups`]), each group of runs (its mean, with a band of one standard
/// deviation).
fn lines(runs: &[RunRecord]) -> Vec<Group<'_>> {
    let groups = aggregate::groups(runs);
    match aggregate::repeated(&groups) {
        true => groups
            .into_iter()
            .map(|g| Group {
                label: format!("{} (n={})", g.label, g.runs.len()),
                runs: g.runs,
            })
            .collect(),
        false => runs
            .iter()
            .zip(labels(runs))
            .map(|(run, label)| Group {
                label,
                runs: vec![run],
            })
            .collect(),
    }
}

/// A series of `(epoch, summary)` points: the means, and the band where several runs make
/// them. A non-finite figure (a diverged epoch recorded by an earlier version, dfa's
/// undefined weight angle) is no point: the line breaks there instead of dropping to the
/// axis.
fn series(label: &str, color: RGBColor, curve: Vec<(usize, Summary)>) -> Series {
    let curve: Vec<(f64, Summary)> = curve
        .into_iter()
        .map(|(e, s)| (e as f64, s))
        .filter(|(_, s)| s.mean.is_finite())
        .collect();
    Series {
        label: label.to_string(),
        color,
        points: curve.iter().map(|(e, s)| (*e, s.mean)).collect(),
        band: match curve.iter().any(|(_, s)| s.n > 1) {
            true => curve
                .iter()
                .map(|(e, s)| {
                    let (low, high) = s.band();
                    (*e, low, high)
                })
                .collect(),
            false => Vec::new(),
        },
    }
}

/// The four figures of `runs`.
fn figures(runs: &[RunRecord]) -> Vec<Figure> {
    let lines = lines(runs);
    let per_run = |title: &str, y_desc: &str, value: &dyn Fn(&EpochMetrics) -> f64| Panel {
        title: title.to_string(),
        y_desc: y_desc.to_string(),
        series: lines
            .iter()
            .enumerate()
            .map(|(i, line)| series(&line.label, colour(i), line.curve(value)))
            .collect(),
    };
    let subject = match (runs, lines.as_slice()) {
        ([one], _) => one.name.clone(),
        (_, [group]) => group.label.clone(),
        _ if lines.len() < runs.len() => {
            format!("{} runs in {} groups, mean ± sd", runs.len(), lines.len())
        }
        _ => format!("{} runs", runs.len()),
    };
    let mut figures = vec![
        Figure {
            name: "loss",
            title: format!("Loss per epoch: {subject}"),
            panels: vec![
                per_run("train loss", "loss", &|m| m.train_loss),
                per_run("test loss", "loss", &|m| m.test_loss),
            ],
            cols: 2,
        },
        Figure {
            name: "error",
            title: format!("Top-1 error per epoch: {subject}"),
            panels: vec![
                per_run("train top-1 error", "error (%)", &|m| m.train_top1_error),
                per_run("test top-1 error", "error (%)", &|m| m.test_top1_error),
            ],
            cols: 2,
        },
    ];
    type Angle = fn(&crate::run_record::AlignmentRow) -> f64;
    let angles: [(&'static str, &str, Angle); 2] = [
        ("weight_angle", "Weight angle between B and W^T", |a| {
            a.weight_angle_deg
        }),
        ("delta_angle", "Delta angle with backprop", |a| {
            a.delta_angle_global_deg
        }),
    ];
    let layers = run_record::layers(runs);
    for (name, what, angle) in angles {
        let panels = match lines.as_slice() {
            [line] if layers.len() <= PALETTE.len() => vec![Panel {
                title: "all layers".into(),
                y_desc: "angle (degrees)".into(),
                series: layers
                    .iter()
                    .enumerate()
                    .map(|(i, layer)| series(layer, colour(i), line.angle_curve(layer, angle)))
                    .collect(),
            }],
            _ => layers
                .iter()
                .map(|layer| Panel {
                    title: layer.clone(),
                    y_desc: "angle (degrees)".into(),
                    series: lines
                        .iter()
                        .enumerate()
                        .map(|(i, line)| {
                            series(&line.label, colour(i), line.angle_curve(layer, angle))
                        })
                        .filter(|s| !s.points.is_empty())
                        .collect(),
                })
                .collect(),
        };
        let cols = panels.len().clamp(1, 3);
        figures.push(Figure {
            name,
            title: format!("{what} per layer: {subject}"),
            panels,
            cols,
        });
    }
    figures
}

/// `(low, high)` of the axis holding `values`, padded; `from_zero` starts it at 0.
fn axis(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut low, mut high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        low = low.min(0.0);
    }
    if high - low < 1e-9 {
        high = low + 1.0;
    }
    let pad = 0.05 * (high - low);
    (if from_zero { low } else { low - pad }, high + pad)
}

/// `points` (by epoch) cut where an epoch is missing, so a line does not bridge a gap.
fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points.chunk_by(|a, b| b.0 - a.0 <= 1.0 + 1e-9).collect()
}

/// Draws `figure` on `root`.
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Figure) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(&figure.title, ("sans-serif", 26).into_font())
        .map_err(err)?;
    let (width, _) = body.dim_in_pixel();
    let (grid, legend) = body.split_horizontally(width - Figure::LEGEND_WIDTH);
    let rows = figure.panels.len().div_ceil(figure.cols);
    let areas = grid.split_evenly((rows, figure.cols));
    for (panel, area) in figure.panels.iter().zip(areas) {
        let points = || panel.series.iter().flat_map(|s| s.points.iter());
        let (x_low, x_high) = points().fold((1.0f64, 1.0f64), |(l, h), p| (l.min(p.0), h.max(p.0)));
        let x_range = (x_low - 0.2)..(x_high + 0.2).max(x_low + 1.0);
        let from_zero = panel.y_desc != "loss";
        let band_edges = panel
            .series
            .iter()
            .flat_map(|s| s.band.iter().flat_map(|b| [b.1, b.2]));
        let (y_low, y_high) = axis(points().map(|p| p.1).chain(band_edges), from_zero);
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 20).into_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, y_low..y_high)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(&panel.y_desc)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .x_labels(((x_high - x_low) as usize + 1).min(12))
            .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-6 {
                true => format!("{x:.0}"),
                false => String::new(),
            })
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for series in &panel.series {
            let color = series.color;
            for band in series.band.chunk_by(|a, b| b.0 - a.0 <= 1.0 + 1e-9) {
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|b| (b.0, b.2))
                    .chain(band.iter().rev().map(|b| (b.0, b.1)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        outline,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(err)?;
            }
            for segment in segments(&series.points) {
                chart
                    .draw_series(LineSeries::new(
                        segment.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    series
                        .points
                        .iter()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )
                .map_err(err)?;
        }
    }
    for (i, (label, color)) in figure.legend().into_iter().enumerate() {
        let y = 70 + 24 * i as i32;
        legend
            .draw(&PathElement::new(
                vec![(12, y), (40, y)],
                color.stroke_width(3),
            ))
            .map_err(err)?;
        legend
            .draw(&Text::new(
                label.to_string(),
                (48, y - 8),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_record::AlignmentRow;
    use crate::train::EpochMetrics;

    fn run(name: &str, rule: &str) -> RunRecord {
        let metrics = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_top1_error: 30.0 / e as f64,
                test_loss: 1.1 / e as f64,
                test_top1_error: 32.0 / e as f64,
                test_top5_error: 5.0 / e as f64,
                seconds: 1.0,
                examples_per_second: 1.0,
                data_wait_seconds: 0.0,
            })
            .collect();
        let alignment = (1..=3)
            .flat_map(|e| {
                ["fc1", "fc2"].map(|layer| AlignmentRow {
                    epoch: e,
                    layer: layer.into(),
                    weight_angle_deg: 90.0 / e as f64,
                    delta_angle_global_deg: 80.0 / e as f64,
                    delta_angle_local_deg: 70.0 / e as f64,
                    norm_ratio: 1.0,
                })
            })
            .collect();
        RunRecord {
            path: name.into(),
            name: name.into(),
            rule: rule.into(),
            dataset: "mnist".into(),
            epochs: 3,
            metrics,
            alignment,
            settings: Default::default(),
        }
    }

    #[test]
    fn every_figure_is_written_as_png_and_svg_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let runs = [run("mnist-mlp-kp", "kp"), run("mnist-mlp-fa", "fa")];
        let written = plot_runs(&runs, dir.path()).unwrap();
        assert_eq!(written.len(), 8);
        for name in ["loss", "error", "weight_angle", "delta_angle"] {
            let png = image::open(dir.path().join(format!("{name}.png"))).unwrap();
            assert!(
                png.width() >= 1000,
                "{name}: {}x{}",
                png.width(),
                png.height()
            );
            // Not a blank canvas: lines of the palette's first colour are drawn.
            let rgb = png.to_rgb8();
            let blue = rgb.pixels().filter(|p| p.0 == [31, 119, 180]).count();
            assert!(blue > 50, "{name}: {blue} pixels of the first run's colour");
            let svg = std::fs::read_to_string(dir.path().join(format!("{name}.svg"))).unwrap();
            assert!(
                svg.contains("mnist-mlp-kp") && svg.contains("mnist-mlp-fa"),
                "{name}"
            );
        }
        let svg = std::fs::read_to_string(dir.path().join("weight_angle.svg")).unwrap();
        assert!(
            svg.contains("\nfc1\n") && svg.contains("\nfc2\n"),
            "a panel per layer"
        );
    }

    #[test]
    fn a_non_finite_figure_is_a_gap_in_its_line_not_a_point_on_the_axis() {
        let mut diverged = run("diverged", "bp");
        diverged.metrics[1].test_loss = f64::NAN;
        diverged.metrics[2].train_loss = f64::INFINITY;
        let figures = figures(&[diverged]);
        let loss = figures.iter().find(|f| f.name == "loss").unwrap();
        let test = &loss.panels[1].series[0].points;
        assert_eq!(test.iter().map(|p| p.0).collect::<Vec<_>>(), [1.0, 3.0]);
        assert_eq!(segments(test).len(), 2, "no line across the missing epoch");
        let train = &loss.panels[0].series[0].points;
        assert_eq!(segments(train), [&[(1.0, 1.0), (2.0, 0.5)][..]]);
        let dir = tempfile::tempdir().unwrap();
        let mut diverged = run("diverged", "bp");
        diverged.metrics[1].test_loss = f64::NAN;
        plot_runs(&[diverged], dir.path()).unwrap();
    }

    #[test]
    fn forty_series_get_forty_colours() {
        let mut all: Vec<(u8, u8, u8)> = (0..40)
            .map(|i| {
                let c = colour(i);
                (c.0, c.1, c.2)
            })
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40);
    }

    #[test]
    fn one_run_gets_a_line_per_layer() {
        let figures = figures(&[run("solo", "wm")]);
        let weight = figures.iter().find(|f| f.name == "weight_angle").unwrap();
        assert_eq!(weight.panels.len(), 1);
        let labels: Vec<&str> = weight.panels[0]
            .series
            .iter()
            .map(|s| s.label.as_str())
            .collect();
        assert_eq!(labels, ["fc1", "fc2"]);
        assert_eq!(weight.panels[0].series[1].points[2], (3.0, 30.0));
    }
}
