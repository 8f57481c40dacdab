//! A finished (or running) run read back from its directory, for [`crate::plot`] and
//! [`crate::compare`].
//!
//! Reads `config.toml` (for `run.name`, `algorithm.rule`, `data.dataset`), `metrics.csv` and
//! `alignment.csv`; see [`crate::run_dir`] for their layout. Every failure names the file and,
//! for CSV rows, the line.

use crate::records::read_rows;
use crate::train::EpochMetrics;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::records::{AlignmentRow, RecordError};

/// A run directory's records.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The directory.
    pub path: PathBuf,
    /// `run.name`.
    pub name: String,
    /// `algorithm.rule`.
    pub rule: String,
    /// `data.dataset`.
    pub dataset: String,
    /// `run.epochs` (configured).
    pub epochs: usize,
    /// `metrics.csv`, one entry per epoch done.
    pub metrics: Vec<EpochMetrics>,
    /// `alignment.csv`, one entry per epoch and layer.
    pub alignment: Vec<AlignmentRow>,
    /// Every key of `config.toml` (`section.key`) with its value as TOML text, for telling
    /// apart runs that differ only in their seed ([`crate::aggregate`]).
    pub settings: BTreeMap<String, String>,
}

impl RunRecord {
    /// Reads the run directory `dir`.
    pub fn load(dir: &Path) -> Result<Self, RecordError> {
        if !dir.is_dir() {
            return Err(RecordError::Format {
                path: dir.to_path_buf(),
                what: "not a directory (expected a run directory written by `biofeedback train`)"
                    .into(),
            });
        }
        let config_path = dir.join("config.toml");
        let config: toml::Table = read(&config_path)?
            .parse()
            .map_err(|e| RecordError::Format {
                path: config_path.clone(),
                what: format!("not valid TOML: {e}"),
            })?;
        let field = |section: &str, key: &str| -> Result<&toml::Value, RecordError> {
            config
                .get(section)
                .and_then(|s| s.get(key))
                .ok_or_else(|| RecordError::Format {
                    path: config_path.clone(),
                    what: format!("no `{section}.{key}`"),
                })
        };
        let text = |section: &str, key: &str| -> Result<String, RecordError> {
            let value = field(section, key)?;
            value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| RecordError::Format {
                    path: config_path.clone(),
                    what: format!("`{section}.{key}` is {value}, expected a string"),
                })
        };
        let epochs = field("run", "epochs")?;
        let epochs = epochs
            .as_integer()
            .and_then(|e| usize::try_from(e).ok())
            .ok_or_else(|| RecordError::Format {
                path: config_path.clone(),
                what: format!("`run.epochs` is {epochs}, expected a count"),
            })?;
        let metrics = read_rows::<EpochMetrics>(&dir.join("metrics.csv"))?;
        let alignment = read_rows::<AlignmentRow>(&dir.join("alignment.csv"))?;
        let mut settings = BTreeMap::new();
        crate::config::flatten("", &config, &mut settings);
        Ok(Self {
            path: dir.to_path_buf(),
            name: text("run", "name")?,
            rule: text("algorithm", "rule")?,
            dataset: text("data", "dataset")?,
            epochs,
            metrics,
            alignment,
            settings,
        })
    }

    /// The layer names in network order (as `alignment.csv` lists them).
    pub fn layers(&self) -> Vec<String> {
        layers(std::slice::from_ref(self))
    }

    /// The last epoch's figures, if an epoch was recorded.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.metrics.last()
    }

    /// The epoch with the lowest test top-1 error (the earliest of equals).
    pub fn best_by_test_error(&self) -> Option<&EpochMetrics> {
        self.metrics
            .iter()
            .fold(None, |best: Option<&EpochMetrics>, m| match best {
                Some(b) if b.test_top1_error <= m.test_top1_error => Some(b),
                _ => Some(m),
            })
    }

    /// `layer`'s alignment rows, by epoch.
    pub fn layer_rows<'a>(&'a self, layer: &'a str) -> impl Iterator<Item = &'a AlignmentRow> {
        self.alignment.iter().filter(move |r| r.layer == layer)
    }

    /// The last recorded epoch's row of `layer`.
    pub fn last_alignment(&self, layer: &str) -> Option<&AlignmentRow> {
        self.alignment.iter().rfind(|r| r.layer == layer)
    }
}

/// Every layer name of `runs`, each once, in the order the runs list them.
pub fn layers(runs: &[RunRecord]) -> Vec<String> {
    let mut layers: Vec<String> = Vec::new();
    for row in runs.iter().flat_map(|r| &r.alignment) {
        if !layers.contains(&row.layer) {
            layers.push(row.layer.clone());
        }
    }
    layers
}

fn read(path: &Path) -> Result<String, RecordError> {
    crate::files::read_to_string(path, crate::files::CONFIG_BYTES).map_err(|source| {
        RecordError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ALIGNMENT_HEADER, METRICS_HEADER};

    fn write_run(dir: &Path, metrics: &str) {
        std::fs::write(
            dir.join("config.toml"),
            "[run]\nname = \"r\"\nepochs = 2\n[algorithm]\nrule = \"kp\"\n[data]\ndataset = \"mnist\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("metrics.csv"),
            format!("{METRICS_HEADER}\n{metrics}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("alignment.csv"),
            format!("{ALIGNMENT_HEADER}\n1,fc1,80.0,70.0,60.0,1.0\n1,fc2,50.0,40.0,30.0,1.0\n2,fc1,8.0,7.0,6.0,1.0\n2,fc2,5.0,4.0,3.0,1.0\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_run_directory_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        write_run(
            dir.path(),
            "1,0.5,10.0,0.4,9.0,1.0,2.0,100.0,0\n2,0.3,6.0,0.35,9.5,0.8,2.0,100.0,0\n",
        );
        let run = RunRecord::load(dir.path()).unwrap();
        assert_eq!((run.name.as_str(), run.rule.as_str()), ("r", "kp"));
        assert_eq!(run.layers(), ["fc1", "fc2"]);
        assert_eq!(run.last().unwrap().epoch, 2);
        assert_eq!(run.best_by_test_error().unwrap().epoch, 1);
        assert_eq!(run.last_alignment("fc2").unwrap().weight_angle_deg, 5.0);
    }

    #[test]
    fn impossible_figures_and_epochs_out_of_order_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = "1,0.5,10.0,0.4,9.0,1.0,2.0,100.0,0\n";
        for (row, named) in [
            (
                "2,0.3,6.0,0.35,150.0,0.8,2.0,100.0,0\n",
                "test_top1_error = 150",
            ),
            ("2,-0.3,6.0,0.35,9.0,0.8,2.0,100.0,0\n", "train_loss = -0.3"),
            ("2,0.3,6.0,0.35,9.0,0.8,-2.0,100.0,0\n", "seconds = -2"),
            (
                "2,0.3,NaN,0.35,9.0,0.8,2.0,100.0,0\n",
                "train_top1_error = NaN",
            ),
            (
                "1,0.3,6.0,0.35,9.0,0.8,2.0,100.0,0\n",
                "epoch 1 after epoch 1",
            ),
            ("0,0.3,6.0,0.35,9.0,0.8,2.0,100.0,0\n", "epoch = 0"),
        ] {
            write_run(dir.path(), &format!("{good}{row}"));
            let e = RunRecord::load(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("metrics.csv: line 3") && e.contains(named),
                "{row}: {e}"
            );
        }
        // A diverged epoch of an earlier version (NaN loss) still reads, for `plot` to skip.
        write_run(
            dir.path(),
            &format!("{good}2,0.3,6.0,NaN,9.0,0.8,2.0,100.0,0\n"),
        );
        assert!(
            RunRecord::load(dir.path()).unwrap().metrics[1]
                .test_loss
                .is_nan()
        );
        std::fs::write(
            dir.path().join("alignment.csv"),
            format!("{ALIGNMENT_HEADER}\n1,fc1,80.0,,60.0,1.0\n1,fc2,200.0,40.0,30.0,1.0\n"),
        )
        .unwrap();
        let e = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("alignment.csv: line 3") && e.contains("weight_angle_deg = 200"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_row_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), "1,0.5,10.0,0.4,9.0,1.0,2.0,100.0,0\n2,oops\n");
        let err = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("metrics.csv") && err.contains("line 3"),
            "{err}"
        );
    }
}
