//! The run directory: resolved config and per-epoch CSV records.
//!
//! ```text
//! runs/<name>/config.toml     the resolved config, every key
//! runs/<name>/metrics.csv     epoch,train_loss,train_top1_error,test_loss,test_top1_error,
//!                             test_top5_error,seconds,examples_per_second
//! runs/<name>/alignment.csv   epoch,layer,weight_angle_deg,delta_angle_global_deg,
//!                             delta_angle_local_deg,norm_ratio
//! ```

use crate::config::Config;
use crate::train::EpochReport;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Header of `metrics.csv`.
pub const METRICS_HEADER: &str = "epoch,train_loss,train_top1_error,test_loss,test_top1_error,\
                                  test_top5_error,seconds,examples_per_second";
/// Header of `alignment.csv`.
pub const ALIGNMENT_HEADER: &str = "epoch,layer,weight_angle_deg,delta_angle_global_deg,\
                                    delta_angle_local_deg,norm_ratio";

/// An open run directory.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    metrics: BufWriter<File>,
    alignment: BufWriter<File>,
}

impl RunDir {
    /// Creates `path` (and its parents), writes `config.toml` and the CSV headers.
    pub fn create(path: &Path, config: &Config) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        std::fs::write(path.join("config.toml"), config.to_toml())?;
        let mut metrics = BufWriter::new(File::create(path.join("metrics.csv"))?);
        writeln!(metrics, "{METRICS_HEADER}")?;
        let mut alignment = BufWriter::new(File::create(path.join("alignment.csv"))?);
        writeln!(alignment, "{ALIGNMENT_HEADER}")?;
        Ok(Self {
            path: path.to_path_buf(),
            metrics,
            alignment,
        })
    }

    /// Appends one epoch's rows and flushes them to disk.
    pub fn record(&mut self, report: &EpochReport) -> std::io::Result<()> {
        let m = &report.metrics;
        writeln!(
            self.metrics,
            "{},{:.6},{:.4},{:.6},{:.4},{:.4},{:.3},{:.1}",
            m.epoch,
            m.train_loss,
            m.train_top1_error,
            m.test_loss,
            m.test_top1_error,
            m.test_top5_error,
            m.seconds,
            m.examples_per_second
        )?;
        for l in &report.layers {
            writeln!(
                self.alignment,
                "{},{},{:.4},{:.4},{:.4},{:.6}",
                m.epoch,
                l.layer,
                l.weight_angle_deg,
                l.delta_angle_global_deg,
                l.delta_angle_local_deg,
                l.norm_ratio
            )?;
        }
        self.metrics.flush()?;
        self.alignment.flush()
    }
}

/// `runs/<name>`, or `runs/<name>-2`, `-3`, ... if it exists already.
pub fn fresh_run_dir(root: &Path, name: &str) -> PathBuf {
    let first = root.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|i| root.join(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// One line for the log: the epoch's figures and each layer's angles.
pub fn summary_line(report: &EpochReport, epochs: usize) -> String {
    let m = &report.metrics;
    let mut line = format!(
        "epoch {}/{}  train_loss {:.4}  test_loss {:.4}  test_err {:.2}%  {:.1}s ({:.0} ex/s)",
        m.epoch,
        epochs,
        m.train_loss,
        m.test_loss,
        m.test_top1_error,
        m.seconds,
        m.examples_per_second
    );
    for l in &report.layers {
        line.push_str(&format!(
            "  | {} W {:.1}° d {:.1}°/{:.1}°",
            l.layer, l.weight_angle_deg, l.delta_angle_global_deg, l.delta_angle_local_deg
        ));
    }
    line
}
