//! The records of a run, each defined by one serde type and written and read through the `csv`
//! crate (`serde_json` for `results.json`):
//!
//! | file | one row / the file | type |
//! |---|---|---|
//! | `metrics.csv` | an epoch | [`EpochMetrics`] |
//! | `alignment.csv` | an epoch and a layer | [`AlignmentRow`] |
//! | `results.json` | the run's final and best figures | [`Results`] |
//!
//! Floats are written rounded (losses and ratios to 6 decimals, errors and angles to 4,
//! seconds to 3, examples per second to 1), as the shortest text that reads back as the
//! rounded value. Every read failure names the file and the line.

use crate::atomic::write_atomically;
use crate::config::BestMetric;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Header of `metrics.csv` (the field names of [`EpochMetrics`]).
pub const METRICS_HEADER: &str = "epoch,train_loss,train_top1_error,test_loss,test_top1_error,\
                                  test_top5_error,seconds,examples_per_second,data_wait_seconds";
/// Header of `metrics.csv` before `data_wait_seconds` (0.1): read (the wait as 0), and
/// rewritten with the current header on resume.
pub const METRICS_HEADER_V1: &str = "epoch,train_loss,train_top1_error,test_loss,\
                                     test_top1_error,test_top5_error,seconds,examples_per_second";
/// Header of `alignment.csv` (the field names of [`AlignmentRow`]).
pub const ALIGNMENT_HEADER: &str = "epoch,layer,weight_angle_deg,delta_angle_global_deg,\
                                    delta_angle_local_deg,norm_ratio";

/// `x` rounded to `D` decimals.
fn rounded<const D: i32, S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    let scale = 10f64.powi(D);
    s.serialize_f64((x * scale).round() / scale)
}

/// An alignment figure rounded to `D` decimals; NaN (undefined, such as `dfa`'s weight angle
/// or the angle of a zero delta) as an empty field.
fn figure<const D: i32, S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    match x.is_nan() {
        true => s.serialize_none(),
        false => rounded::<D, S>(x, s),
    }
}

/// An alignment figure for a table or a log line, with `decimals` decimals, or `-` where it is
/// undefined (NaN: dfa's weight angle and norm ratio).
pub fn figure_text(x: f64, decimals: usize) -> String {
    match x.is_nan() {
        true => "-".to_string(),
        false => format!("{x:.decimals$}"),
    }
}

/// An alignment figure that may be an empty field (read as NaN, see [`figure`]; a `NaN`
/// written by earlier versions reads too).
fn or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Figures of one epoch (errors in percent): a row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub train_loss: f64,
    /// Top-1 error on the training minibatches as they were seen, in percent.
    #[serde(serialize_with = "rounded::<4, _>")]
    pub train_top1_error: f64,
    /// Mean test loss.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub test_loss: f64,
    /// Test top-1 error, percent.
    #[serde(serialize_with = "rounded::<4, _>")]
    pub test_top1_error: f64,
    /// Test top-5 error, percent.
    #[serde(serialize_with = "rounded::<4, _>")]
    pub test_top5_error: f64,
    /// Wall time of the epoch's training (mirror steps included), seconds.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub seconds: f64,
    /// Training examples per second.
    #[serde(serialize_with = "rounded::<1, _>")]
    pub examples_per_second: f64,
    /// Seconds the training step waited for the data loader (included in `seconds`; 0 in
    /// files of version 0.1, which did not record it).
    #[serde(default, serialize_with = "rounded::<3, _>")]
    pub data_wait_seconds: f64,
}

impl EpochMetrics {
    /// The value of `metric` in this epoch (lower is better).
    pub fn value(&self, metric: BestMetric) -> f64 {
        match metric {
            BestMetric::TestTop1Error => self.test_top1_error,
            BestMetric::TestTop5Error => self.test_top5_error,
            BestMetric::TestLoss => self.test_loss,
            BestMetric::TrainLoss => self.train_loss,
        }
    }
}

/// The best epoch so far by the config's `checkpoint.metric`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BestEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// The metric's value then.
    pub value: f64,
}

/// Alignment of one layer's feedback with backprop (SPEC section 4), computed by the models
/// crate for any network ([`biofeedback_models::FeedbackNetwork::alignment`]).
pub use biofeedback_models::LayerAlignment;

/// One layer's alignment in one epoch: a row of `alignment.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignmentRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Layer name.
    pub layer: String,
    /// Angle between `B` and `W^T`, degrees (empty where undefined: `dfa`).
    #[serde(serialize_with = "figure::<4, _>", deserialize_with = "or_nan")]
    pub weight_angle_deg: f64,
    /// Angle between the rule's delta and backprop's (whole network), degrees.
    #[serde(serialize_with = "figure::<4, _>", deserialize_with = "or_nan")]
    pub delta_angle_global_deg: f64,
    /// Angle between one layer's delta through `B` and through `W^T`, degrees.
    #[serde(serialize_with = "figure::<4, _>", deserialize_with = "or_nan")]
    pub delta_angle_local_deg: f64,
    /// `|B| / |W|` (empty where undefined: `dfa`).
    #[serde(serialize_with = "figure::<6, _>", deserialize_with = "or_nan")]
    pub norm_ratio: f64,
}

impl AlignmentRow {
    /// The row of `layer` in `epoch`.
    pub fn new(epoch: usize, layer: &LayerAlignment) -> Self {
        Self {
            epoch,
            layer: layer.layer.clone(),
            weight_angle_deg: layer.weight_angle_deg,
            delta_angle_global_deg: layer.delta_angle_global_deg,
            delta_angle_local_deg: layer.delta_angle_local_deg,
            norm_ratio: layer.norm_ratio,
        }
    }
}

/// `results.json`: the run's final and best figures.
#[derive(Debug, Clone, Serialize)]
pub struct Results<'a> {
    /// `run.name`.
    pub name: &'a str,
    /// The learning rule.
    pub rule: &'a str,
    /// The project version that wrote the file.
    pub version: &'a str,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Epochs configured.
    pub epochs: usize,
    /// Training seconds summed over the epochs.
    pub train_seconds: f64,
    /// The last epoch's figures.
    pub last: &'a EpochMetrics,
    /// The last epoch's alignment, per layer.
    pub last_alignment: &'a [LayerAlignment],
    /// The metric that ranks epochs (`checkpoint.metric`).
    pub best_metric: &'static str,
    /// The best epoch by it.
    pub best: Option<BestEpoch>,
    /// The best epoch's figures.
    pub best_metrics: Option<&'a EpochMetrics>,
}

/// A record file that cannot be read or written.
#[derive(Debug, Error)]
pub enum RecordError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file does not hold what a run directory's file holds.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what was expected.
        what: String,
    },
}

/// Wraps an I/O error on `path`.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A row type of a CSV record file.
pub trait Row: Serialize + DeserializeOwned {
    /// The header it is written with.
    const HEADER: &'static str;
    /// Older headers still read.
    const OLD_HEADERS: &'static [&'static str];
    /// The epoch the row belongs to.
    fn epoch(&self) -> usize;
    /// Whether a file holds one row per epoch (else several: one per layer).
    const ONE_PER_EPOCH: bool;
    /// The first field whose value no run can produce, as `name = value (expected ...)`.
    fn impossible(&self) -> Option<String>;
}

/// `name = value (expected ...)` where `ok` fails.
fn expect(ok: bool, name: &str, value: f64, expected: &str) -> Option<String> {
    (!ok).then(|| format!("{name} = {value} (expected {expected})"))
}

/// A loss: never negative; NaN or infinite where an earlier version recorded a diverged epoch.
fn loss_ok(v: f64) -> bool {
    v.is_nan() || v >= 0.0
}

/// A percentage.
fn percent_ok(v: f64) -> bool {
    (0.0..=100.0).contains(&v)
}

/// An angle in degrees, or NaN where it is undefined.
fn angle_ok(v: f64) -> bool {
    v.is_nan() || (0.0..=180.0).contains(&v)
}

impl Row for EpochMetrics {
    const HEADER: &'static str = METRICS_HEADER;
    const OLD_HEADERS: &'static [&'static str] = &[METRICS_HEADER_V1];
    const ONE_PER_EPOCH: bool = true;
    fn epoch(&self) -> usize {
        self.epoch
    }
    fn impossible(&self) -> Option<String> {
        let time = |v: f64| v.is_finite() && v >= 0.0;
        expect(self.epoch >= 1, "epoch", self.epoch as f64, "1 or more")
            .or_else(|| {
                expect(
                    loss_ok(self.train_loss),
                    "train_loss",
                    self.train_loss,
                    "a loss >= 0",
                )
            })
            .or_else(|| {
                expect(
                    loss_ok(self.test_loss),
                    "test_loss",
                    self.test_loss,
                    "a loss >= 0",
                )
            })
            .or_else(|| {
                [
                    ("train_top1_error", self.train_top1_error),
                    ("test_top1_error", self.test_top1_error),
                    ("test_top5_error", self.test_top5_error),
                ]
                .into_iter()
                .find_map(|(name, v)| expect(percent_ok(v), name, v, "a percentage in [0, 100]"))
            })
            .or_else(|| {
                [
                    ("seconds", self.seconds),
                    ("examples_per_second", self.examples_per_second),
                    ("data_wait_seconds", self.data_wait_seconds),
                ]
                .into_iter()
                .find_map(|(name, v)| expect(time(v), name, v, "a finite number >= 0"))
            })
    }
}

impl Row for AlignmentRow {
    const HEADER: &'static str = ALIGNMENT_HEADER;
    const OLD_HEADERS: &'static [&'static str] = &[];
    const ONE_PER_EPOCH: bool = false;
    fn epoch(&self) -> usize {
        self.epoch
    }
    fn impossible(&self) -> Option<String> {
        expect(self.epoch >= 1, "epoch", self.epoch as f64, "1 or more")
            .or_else(|| (self.layer.is_empty()).then(|| "an empty layer name".to_string()))
            .or_else(|| {
                [
                    ("weight_angle_deg", self.weight_angle_deg),
                    ("delta_angle_global_deg", self.delta_angle_global_deg),
                    ("delta_angle_local_deg", self.delta_angle_local_deg),
                ]
                .into_iter()
                .find_map(|(name, v)| {
                    expect(
                        angle_ok(v),
                        name,
                        v,
                        "an angle in [0, 180] degrees, or empty",
                    )
                })
            })
            .or_else(|| {
                let r = self.norm_ratio;
                expect(
                    r.is_nan() || r >= 0.0,
                    "norm_ratio",
                    r,
                    "a ratio >= 0, or empty",
                )
            })
    }
}

/// The rows of the CSV file `path`, whose header must be `T`'s (or one of its old ones).
pub fn read_rows<T: Row>(path: &Path) -> Result<Vec<T>, RecordError> {
    let format = |what: String| RecordError::Format {
        path: path.to_path_buf(),
        what,
    };
    let file = crate::files::open(path, crate::files::LIST_BYTES).map_err(io_error(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| format(format!("line 1: {e}")))?
        .clone();
    let header = headers.iter().collect::<Vec<_>>().join(",");
    if header != T::HEADER && !T::OLD_HEADERS.contains(&header.as_str()) {
        return Err(format(format!(
            "expected the header `{}` on line 1, found `{header}`",
            T::HEADER
        )));
    }
    let mut rows: Vec<T> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        let read = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map_or(line, |p| p.line());
            format(format!("line {line}: not a row of `{}` ({e})", T::HEADER))
        })?;
        if !read {
            break;
        }
        let line = record.position().map_or(line, |p| p.line());
        let row: T = record.deserialize(Some(&headers)).map_err(|e| {
            let what = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
                _ => e.to_string(),
            };
            format(format!(
                "line {line}: not a row of `{}` ({what})",
                T::HEADER
            ))
        })?;
        if let Some(what) = row.impossible() {
            return Err(format(format!("line {line}: {what}: no run writes this")));
        }
        if let Some(previous) = rows.last().map(Row::epoch) {
            let order_ok = match T::ONE_PER_EPOCH {
                true => row.epoch() > previous,
                false => row.epoch() >= previous,
            };
            if !order_ok {
                return Err(format(format!(
                    "line {line}: epoch {} after epoch {previous} (a run records its epochs once, \
                     in order)",
                    row.epoch()
                )));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A CSV record file open for appending rows of `T`.
pub struct RowWriter<T: Row> {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    _row: std::marker::PhantomData<T>,
}

impl<T: Row> RowWriter<T> {
    /// Creates (or empties) `path` and writes `T`'s header.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        write_atomically(path, format!("{}\n", T::HEADER).as_bytes()).map_err(io_error(path))?;
        Self::append(path)
    }

    /// Opens `path`, which holds `T`'s header and rows, to append more.
    pub fn append(path: &Path) -> Result<Self, RecordError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(BufWriter::new(file)),
            _row: std::marker::PhantomData,
        })
    }

    /// Appends `rows` and flushes them to the file.
    pub fn write(&mut self, rows: &[T]) -> Result<(), RecordError> {
        let io = io_error(&self.path);
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        crate::faults::point(&format!("write.{name}")).map_err(&io)?;
        for row in rows {
            self.writer.serialize(row).map_err(|e| io(e.into()))?;
        }
        self.writer.flush().map_err(io)
    }
}

/// Cuts the CSV file `path` back to the rows of epochs `<= epochs`, rewritten atomically with
/// `T`'s current header (a file with an old header is upgraded); returns the rows kept.
pub fn cut_to_epoch<T: Row>(path: &Path, epochs: usize) -> Result<Vec<T>, RecordError> {
    let rows: Vec<T> = read_rows::<T>(path)?
        .into_iter()
        .filter(|r| r.epoch() <= epochs)
        .collect();
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for row in &rows {
        writer
            .serialize(row)
            .map_err(|e| io_error(path)(e.into()))?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| io_error(path)(e.into_error()))?;
    let mut text = format!("{}\n", T::HEADER).into_bytes();
    text.extend_from_slice(&body);
    write_atomically(path, &text).map_err(io_error(path))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header a `csv` writer derives from `T`'s fields.
    fn derived_header<T: Row>(row: &T) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines().next().unwrap().to_string()
    }

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.123456789,
            train_top1_error: 10.0 / 3.0,
            test_loss: 0.5,
            test_top1_error: 1.13,
            test_top5_error: 0.0,
            seconds: 1.23456,
            examples_per_second: 45678.91,
            data_wait_seconds: 0.0004,
        }
    }

    #[test]
    fn headers_are_the_types_fields_and_rows_round_trip_rounded() {
        let row = AlignmentRow {
            epoch: 1,
            layer: "layer1.0.conv1".into(),
            weight_angle_deg: 12.345678,
            delta_angle_global_deg: 90.0,
            delta_angle_local_deg: f64::NAN,
            norm_ratio: 1.0,
        };
        assert_eq!(derived_header(&metrics(1)), METRICS_HEADER);
        assert_eq!(derived_header(&row), ALIGNMENT_HEADER);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let mut w = RowWriter::<EpochMetrics>::create(&path).unwrap();
        w.write(&[metrics(1), metrics(2)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1,0.123457,3.3333,0.5,1.13,0.0,1.235,45678.9,0.0"
        );
        let back = read_rows::<EpochMetrics>(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].train_loss, 0.123457);
        let apath = dir.path().join("alignment.csv");
        RowWriter::<AlignmentRow>::create(&apath)
            .unwrap()
            .write(std::slice::from_ref(&row))
            .unwrap();
        let text = std::fs::read_to_string(&apath).unwrap();
        // An undefined figure is an empty field.
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1,layer1.0.conv1,12.3457,90.0,,1.0"
        );
        let a = read_rows::<AlignmentRow>(&apath).unwrap();
        assert_eq!(a[0].weight_angle_deg, 12.3457);
        assert!(a[0].delta_angle_local_deg.is_nan());
    }

    #[test]
    fn a_file_of_version_0_1_reads_and_is_upgraded_when_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(
            &path,
            format!("{METRICS_HEADER_V1}\n1,0.5,10,0.4,9,1,2,100\n2,0.3,6,0.35,9.5,0.8,2,100\n"),
        )
        .unwrap();
        let rows = read_rows::<EpochMetrics>(&path).unwrap();
        assert_eq!(rows[1].data_wait_seconds, 0.0);
        let kept = cut_to_epoch::<EpochMetrics>(&path, 1).unwrap();
        assert_eq!(kept.len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{METRICS_HEADER}\n1,0.5,10.0,0.4,9.0,1.0,2.0,100.0,0.0\n")
        );
    }

    #[test]
    fn a_bad_row_or_header_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(
            &path,
            format!("{METRICS_HEADER}\n1,0.5,10,0.4,9,1,2,100,0\n2,oops\n"),
        )
        .unwrap();
        let e = read_rows::<EpochMetrics>(&path).unwrap_err().to_string();
        assert!(e.contains("metrics.csv") && e.contains("line 3"), "{e}");
        std::fs::write(&path, "epoch,loss\n1,2\n").unwrap();
        let e = read_rows::<EpochMetrics>(&path).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("expected the header"),
            "{e}"
        );
    }
}
