//! The run directory: resolved config, command lines, per-epoch CSV records, final and best
//! figures, checkpoints.
//!
//! ```text
//! runs/<name>/config.toml     the resolved config, every key
//! runs/<name>/command.txt     one line per invocation: project version and command line
//! runs/<name>/train.log       the log (what stderr shows at the default level)
//! runs/<name>/results.json    final and best figures, rewritten after every epoch
//! runs/<name>/checkpoints/last.safetensors, best.safetensors
//! runs/<name>/metrics.csv     epoch,train_loss,train_top1_error,test_loss,test_top1_error,
//!                             test_top5_error,seconds,examples_per_second,data_wait_seconds
//! runs/<name>/alignment.csv   epoch,layer,weight_angle_deg,delta_angle_global_deg,
//!                             delta_angle_local_deg,norm_ratio
//! runs/<name>/run.lock        held (an OS file lock) by the one process training in it
//! ```
//!
//! A run directory is created atomically (a name already taken is never reused: the default
//! name gets the next free suffix, and `--out` of an existing run is refused unless
//! `--overwrite`); one process at a time trains in it (the lock is released by the OS when
//! the process dies, so a killed run can be resumed at once); every file but the two CSVs is
//! replaced atomically, and the CSVs are cut back to the checkpoint's epoch on resume.

use crate::atomic::{remove_orphaned_temporaries, write_atomically};
use crate::config::Config;
use crate::records::{AlignmentRow, RecordError, Results, RowWriter, cut_to_epoch};
use crate::train::{BestEpoch, EpochMetrics, EpochReport};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::records::{ALIGNMENT_HEADER, METRICS_HEADER, METRICS_HEADER_V1};

/// An open run directory.
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
    /// `run.lock`, locked while this value lives.
    _lock: File,
    metrics: RowWriter<EpochMetrics>,
    alignment: RowWriter<AlignmentRow>,
    history: Vec<EpochMetrics>,
}

/// A record error as the I/O error the run directory's callers report (it names the file).
fn io_error(e: RecordError) -> std::io::Error {
    match e {
        RecordError::Io { source, path } => {
            std::io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        e => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    }
}

impl RunDir {
    /// Creates the run directory `path` (and its parents), writes `config.toml` and the CSV
    /// headers. A `path` that exists and is not empty is refused unless `overwrite` (then its
    /// records and checkpoints are replaced).
    pub fn create(path: &Path, config: &Config, overwrite: bool) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !path.is_dir() {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{} exists and is not a directory", path.display()),
                    ));
                }
                if holds_a_run(path)? && !overwrite {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "{} is not empty (another run?): continue it with --resume {0}, \
                             or replace it with --overwrite",
                            path.display()
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
        let lock = lock(path)?;
        remove_orphaned_temporaries(path)?;
        remove_orphaned_temporaries(&path.join("checkpoints"))?;
        check_checkpoints_writable(path)?;
        for stale in [
            "results.json",
            "train.log",
            "command.txt",
            "checkpoints/last.safetensors",
            "checkpoints/best.safetensors",
        ] {
            match std::fs::remove_file(path.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        // The figures of the run replaced.
        match std::fs::remove_dir_all(path.join("plots")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        write_atomically(&path.join("config.toml"), config.to_toml().as_bytes())?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
            metrics: RowWriter::create(&path.join("metrics.csv")).map_err(io_error)?,
            alignment: RowWriter::create(&path.join("alignment.csv")).map_err(io_error)?,
            history: Vec::new(),
        })
    }

    /// Creates a fresh run directory under `root` named `name`, or `name-2`, `name-3`, ... if
    /// taken: the name is claimed atomically, so concurrent runs never share one.
    pub fn create_fresh(root: &Path, name: &str, config: &Config) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        for suffix in 1.. {
            let path = match suffix {
                1 => root.join(name),
                n => root.join(format!("{name}-{n}")),
            };
            match std::fs::create_dir(&path) {
                Ok(()) => return Self::create(&path, config, false),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("some suffix is free")
    }

    /// Reopens the run directory `path` of a run resumed after `epochs_done` epochs: rewrites
    /// `config.toml` with `config`, drops CSV rows of later epochs (written before the run
    /// stopped, but not covered by the checkpoint) and appends from there.
    pub fn resume(path: &Path, config: &Config, epochs_done: usize) -> std::io::Result<Self> {
        let lock = lock(path)?;
        remove_orphaned_temporaries(path)?;
        remove_orphaned_temporaries(&path.join("checkpoints"))?;
        write_atomically(&path.join("config.toml"), config.to_toml().as_bytes())?;
        check_checkpoints_writable(path)?;
        for name in ["metrics.csv", "alignment.csv"] {
            if !path.join(name).is_file() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "{}: No such file (a run directory holds config.toml, metrics.csv, \
                         alignment.csv and checkpoints/)",
                        path.join(name).display()
                    ),
                ));
            }
        }
        let history = cut_to_epoch::<EpochMetrics>(&path.join("metrics.csv"), epochs_done)
            .map_err(io_error)?;
        cut_to_epoch::<AlignmentRow>(&path.join("alignment.csv"), epochs_done).map_err(io_error)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
            metrics: RowWriter::append(&path.join("metrics.csv")).map_err(io_error)?,
            alignment: RowWriter::append(&path.join("alignment.csv")).map_err(io_error)?,
            history,
        })
    }

    /// Appends `line` (the version and the command line of this invocation) to
    /// `command.txt`.
    pub fn record_command(&self, line: &str) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("command.txt"))?;
        writeln!(file, "{line}")
    }

    /// The epochs recorded so far.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// Appends one epoch's rows and flushes them to disk.
    pub fn record(&mut self, report: &EpochReport) -> std::io::Result<()> {
        let m = &report.metrics;
        self.metrics
            .write(std::slice::from_ref(m))
            .map_err(io_error)?;
        let rows: Vec<AlignmentRow> = report
            .layers
            .iter()
            .map(|l| AlignmentRow::new(m.epoch, l))
            .collect();
        self.alignment.write(&rows).map_err(io_error)?;
        self.history.push(m.clone());
        Ok(())
    }

    /// Rewrites `results.json` (atomically) after `report`, the latest epoch.
    pub fn write_results(
        &self,
        config: &Config,
        report: &EpochReport,
        best: Option<BestEpoch>,
    ) -> std::io::Result<()> {
        let results = Results {
            name: &config.run.name,
            rule: config.algorithm.rule.name(),
            version: env!("CARGO_PKG_VERSION"),
            epochs_done: report.metrics.epoch,
            epochs: config.run.epochs,
            train_seconds: self.history.iter().map(|m| m.seconds).sum(),
            last: &report.metrics,
            last_alignment: &report.layers,
            best_metric: config.checkpoint.metric.name(),
            best,
            best_metrics: best.and_then(|b| self.history.iter().find(|m| m.epoch == b.epoch)),
        };
        let json = serde_json::to_string_pretty(&results).map_err(std::io::Error::other)?;
        write_atomically(&self.path.join("results.json"), json.as_bytes())
    }

    /// `checkpoints/last.safetensors`.
    pub fn last_checkpoint(&self) -> PathBuf {
        last_checkpoint(&self.path)
    }

    /// `checkpoints/best.safetensors`.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.path.join("checkpoints").join("best.safetensors")
    }
}

/// `<run_dir>/checkpoints/last.safetensors`.
pub fn last_checkpoint(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("last.safetensors")
}

/// Whether the existing directory `path` holds anything of a run: everything but what a run
/// leaves before its first record (`run.lock`, `checkpoints/` with nothing but temporaries
/// and the write probe, `*.tmp` files of an interrupted write), so a run killed while it set
/// its directory up, or one that found the disk full, can start there again.
fn holds_a_run(path: &Path) -> std::io::Result<bool> {
    let leftover = |p: &Path| {
        let name = p.file_name().unwrap_or_default();
        name == "run.lock" || name == ".write-probe" || p.extension().is_some_and(|e| e == "tmp")
    };
    for entry in std::fs::read_dir(path)? {
        let entry = entry?.path();
        if entry.file_name().is_some_and(|n| n == "checkpoints") && entry.is_dir() {
            for inner in std::fs::read_dir(&entry)? {
                if !leftover(&inner?.path()) {
                    return Ok(true);
                }
            }
        } else if !leftover(&entry) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Takes the lock `run.lock` of the run directory `path`, or says which process holds it.
fn lock(path: &Path) -> std::io::Result<File> {
    lock_file(&path.join("run.lock"), path)
}

/// Takes the OS lock of the file `file` (created if needed) and writes this process's id into
/// it; if another process holds it, the error says that `in_use` is in use and by which
/// process. The OS releases the lock when the process ends, however it ends.
pub(crate) fn lock_file(file: &Path, in_use: &Path) -> std::io::Result<File> {
    let path = in_use;
    let lock_path = file;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lock_path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(lock_path).unwrap_or_default();
            return Err(std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                format!(
                    "{} is in use by another biofeedback process{}",
                    path.display(),
                    match holder.trim() {
                        "" => String::new(),
                        pid => format!(" (pid {pid})"),
                    }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let mut file = file;
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(file)
}

/// Creates `checkpoints/` and proves it writable now, not after the first epoch.
fn check_checkpoints_writable(path: &Path) -> std::io::Result<()> {
    let dir = path.join("checkpoints");
    let probe = dir.join(".write-probe");
    std::fs::create_dir_all(&dir)
        .and_then(|()| write_atomically(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{} is not a writable folder: {e}", dir.display()),
            )
        })
}

/// One line for the log: the epoch's figures and each layer's angles.
pub fn summary_line(report: &EpochReport, epochs: usize) -> String {
    let m = &report.metrics;
    let mut line = format!(
        "epoch {}/{}  train_loss {:.4}  test_loss {:.4}  test_err {:.2}%  {:.1}s ({:.0} ex/s, \
         {:.1}s waiting for data)",
        m.epoch,
        epochs,
        m.train_loss,
        m.test_loss,
        m.test_top1_error,
        m.seconds,
        m.examples_per_second,
        m.data_wait_seconds
    );
    for l in &report.layers {
        line.push_str(&format!(
            "  | {} W {} d {}/{}",
            l.layer,
            degrees(l.weight_angle_deg),
            degrees(l.delta_angle_global_deg),
            degrees(l.delta_angle_local_deg)
        ));
    }
    line
}

/// An angle for the log, `12.3°`, or `-` where it is undefined (NaN: `dfa`'s weight angle).
pub fn degrees(angle: f64) -> String {
    let text = crate::records::figure_text(angle, 1);
    match angle.is_nan() {
        true => text,
        false => text + "°",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_runs_get_their_own_directories_and_one_process_holds_a_run() {
        let root = tempfile::tempdir().unwrap();
        let config = Config::default();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, config) = (root.path().to_path_buf(), config.clone());
                std::thread::spawn(move || RunDir::create_fresh(&root, "r", &config).unwrap().path)
            })
            .collect();
        let mut paths: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 4, "{paths:?}");
        let held = RunDir::create(&root.path().join("held"), &config, false).unwrap();
        let e = RunDir::resume(&held.path, &config, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("in use by another biofeedback process"), "{e}");
        let again = RunDir::create(&held.path, &config, true)
            .err()
            .unwrap()
            .to_string();
        assert!(again.contains("in use"), "{again}");
        drop(held);
        let e = RunDir::create(&root.path().join("held"), &config, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--resume") && e.contains("--overwrite"), "{e}");
    }
}
