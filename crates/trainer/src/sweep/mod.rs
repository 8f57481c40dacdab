//! Sweeps: the points of a sweep file ([`plan`]) trained as ordinary run directories under one
//! sweep directory, any number of times until every point is done ([`runner`]).
//!
//! ```text
//! runs/<sweep>/sweep.toml     the sweep file as last run
//! runs/<sweep>/base.toml      its base experiment file as last run
//! runs/<sweep>/sweep.json     the manifest: name, swept keys, every point's name and values
//! runs/<sweep>/sweep.lock     held (an OS file lock) by the one `biofeedback sweep` running it
//! runs/<sweep>/<point>/       one run directory per point (see crate::run_dir)
//! ```
//!
//! Running a sweep again skips the points that are done, resumes the interrupted ones from
//! their last checkpoint (`train --resume`, exactly as a single run resumes) and starts the
//! others, so a sweep killed at any moment and started again ends with the records an
//! uninterrupted one writes. Points added to the file (another seed) are run; a point whose
//! run directory was trained with other values than the file now gives is an error naming the
//! key (a longer `run.epochs` is the exception: those points are continued to it).

pub mod plan;
pub mod runner;

pub use plan::{Point, Setting, Sweep, SweepError};

use crate::atomic::write_atomically;
use crate::config::Config;
use crate::run_record::RunRecord;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The manifest's file name in a sweep directory.
pub const MANIFEST: &str = "sweep.json";

/// A sweep directory that cannot be used.
#[derive(Debug, Error)]
pub enum SweepDirError {
    /// The sweep file.
    #[error(transparent)]
    File(#[from] SweepError),
    /// The directory, its manifest, or a point's run directory.
    #[error("sweep directory {dir}: {message}")]
    Dir {
        /// The sweep directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn dir_error(dir: &Path, message: impl ToString) -> SweepDirError {
    SweepDirError::Dir {
        dir: dir.to_path_buf(),
        message: message.to_string(),
    }
}

/// `sweep.json`: what a sweep directory holds, for `compare`, `plot` and `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The sweep's name.
    pub name: String,
    /// The sweep file, as given on the command line.
    pub file: String,
    /// The base experiment file, as the sweep file resolves it.
    pub base: String,
    /// The swept keys, in dimension order.
    pub keys: Vec<String>,
    /// Every point of the file as last run, in grid order.
    pub points: Vec<ManifestPoint>,
}

/// A point in [`Manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPoint {
    /// Its name: its run directory inside the sweep directory.
    pub name: String,
    /// `[key, value]` of each swept key, the value as TOML.
    pub settings: Vec<(String, String)>,
}

impl Manifest {
    /// The manifest of `sweep`.
    pub fn of(sweep: &Sweep) -> Self {
        Self {
            name: sweep.name.clone(),
            file: sweep.path.display().to_string(),
            base: sweep.base.display().to_string(),
            keys: sweep.keys().into_iter().map(String::from).collect(),
            points: sweep
                .points
                .iter()
                .map(|p| ManifestPoint {
                    name: p.name.clone(),
                    settings: p
                        .settings
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Reads `<dir>/sweep.json`, or `None` when `dir` is not a sweep directory.
    pub fn load(dir: &Path) -> Result<Option<Self>, SweepDirError> {
        let path = dir.join(MANIFEST);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let text = crate::files::read_to_string(&path, crate::files::CONFIG_BYTES)
            .map_err(|e| dir_error(dir, format!("cannot read {MANIFEST}: {e}")))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| dir_error(dir, format!("{MANIFEST} is not a sweep manifest: {e}")))
    }

    /// The run directories of the points that have begun (hold a `config.toml`), in grid
    /// order.
    pub fn run_dirs(&self, dir: &Path) -> Vec<PathBuf> {
        self.points
            .iter()
            .map(|p| dir.join(&p.name))
            .filter(|d| d.join("config.toml").is_file())
            .collect()
    }
}

/// Where a point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not begun (no run directory, or one without its `config.toml`).
    New,
    /// Begun: `done` of its epochs recorded.
    Partial {
        /// Epochs recorded.
        done: usize,
    },
    /// Being trained now by another process (its `run.lock` is held): `done` of its epochs
    /// recorded.
    Running {
        /// Epochs recorded.
        done: usize,
    },
    /// Every epoch recorded and the last checkpoint written.
    Done,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::New => write!(f, "to start"),
            State::Partial { done } => write!(f, "to resume after epoch {done}"),
            State::Running { done } => write!(f, "running (epoch {done} recorded)"),
            State::Done => write!(f, "done"),
        }
    }
}

/// A point of a sweep in its directory.
#[derive(Debug, Clone)]
pub struct PointStatus {
    /// The point's run directory.
    pub dir: PathBuf,
    /// Where it stands.
    pub state: State,
    /// The `run.epochs` its run directory was made with, where the sweep now asks another.
    pub epochs_were: Option<usize>,
}

/// Where `point` stands in the sweep directory `dir`; an error if its run directory was
/// trained with values other than the point's (other than `data.dir`, which the trainer
/// resolves, and `run.epochs`, which a resume may change).
pub fn status(dir: &Path, point: &Point) -> Result<PointStatus, SweepDirError> {
    let run = dir.join(&point.name);
    let config_path = run.join("config.toml");
    if std::fs::symlink_metadata(&config_path).is_err() {
        return Ok(PointStatus {
            dir: run,
            state: State::New,
            epochs_were: None,
        });
    }
    let had = Config::load_resolved(&config_path, &[])
        .map_err(|e| dir_error(dir, format!("point {}: {e}", point.name)))?;
    let changed: Vec<_> = had
        .differences(&point.config)
        .into_iter()
        .filter(|(k, _, _)| k != "data.dir" && k != "run.epochs")
        .collect();
    if let Some((key, was, now)) = changed.first() {
        return Err(dir_error(
            dir,
            format!(
                "point {}: its run directory was trained with {key} = {was}, the sweep file \
                 now gives {now}{}; restore the file, or give the sweep another --out",
                point.name,
                match changed.len() {
                    1 => String::new(),
                    n => format!(" ({} more keys differ)", n - 1),
                }
            ),
        ));
    }
    let epochs = point.config.run.epochs;
    let epochs_were = (had.run.epochs != epochs).then_some(had.run.epochs);
    // The records can be ahead of the last checkpoint (a kill between the two): `train
    // --resume` cuts them back, so only a checkpoint at the last epoch is done.
    let done = RunRecord::load(&run).map_or(0, |r| r.metrics.len());
    let last = crate::checkpoint::Checkpoint::load(&crate::run_dir::last_checkpoint(&run))
        .ok()
        .map(|c| (c.epoch, c.progress.step));
    let state = match last {
        Some((epoch, 0)) if epoch >= epochs && done >= epochs => State::Done,
        Some((epoch, _)) => State::Partial {
            done: epoch.min(done),
        },
        None => State::Partial { done: 0 },
    };
    let state = match (state, in_use(&run.join("run.lock"))) {
        (State::Partial { done }, true) => State::Running { done },
        (state, _) => state,
    };
    Ok(PointStatus {
        dir: run,
        state,
        epochs_were,
    })
}

/// Whether another process holds the OS lock of `file`.
fn in_use(file: &Path) -> bool {
    File::open(file).is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// A sweep directory opened by the one process that runs it.
#[derive(Debug)]
pub struct SweepDir {
    /// Its path.
    pub path: PathBuf,
    _lock: File,
}

impl SweepDir {
    /// Creates or reopens the sweep directory `path` for `sweep`: takes its lock, refuses a
    /// base config that changed since the sweep began, and writes `sweep.toml`, `base.toml`
    /// and `sweep.json` (atomically).
    pub fn open(path: &Path, sweep: &Sweep) -> Result<Self, SweepDirError> {
        std::fs::create_dir_all(path)
            .map_err(|e| dir_error(path, format!("cannot create it: {e}")))?;
        let lock = crate::run_dir::lock_file(&path.join("sweep.lock"), path)
            .map_err(|e| dir_error(path, e))?;
        let base_text = crate::files::read_to_string(&sweep.base, crate::files::CONFIG_BYTES)
            .map_err(|e| dir_error(path, format!("{}: {e}", sweep.base.display())))?;
        let stored = path.join("base.toml");
        if std::fs::symlink_metadata(&stored).is_ok() {
            let was = Config::load_resolved(&stored, &[]).map_err(|e| dir_error(path, e))?;
            let now =
                Config::from_toml(&base_text, &sweep.base, &[]).map_err(|e| dir_error(path, e))?;
            if let Some((key, a, b)) = was.differences(&now).first() {
                return Err(dir_error(
                    path,
                    format!(
                        "the sweep began from a base config with {key} = {a}; {} now gives {b}: \
                         restore it, or give the sweep another --out",
                        sweep.base.display()
                    ),
                ));
            }
        }
        let sweep_text = crate::files::read_to_string(&sweep.path, crate::files::CONFIG_BYTES)
            .map_err(|e| dir_error(path, format!("{}: {e}", sweep.path.display())))?;
        let manifest =
            serde_json::to_string_pretty(&Manifest::of(sweep)).map_err(|e| dir_error(path, e))?;
        for (name, bytes) in [
            ("sweep.toml", sweep_text.as_bytes()),
            ("base.toml", base_text.as_bytes()),
            (MANIFEST, manifest.as_bytes()),
        ] {
            write_atomically(&path.join(name), bytes)
                .map_err(|e| dir_error(path, format!("cannot write {name}: {e}")))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

/// The `train` arguments that run `point` from where it stands (`None` when it is done).
pub fn train_args(sweep: &Sweep, point: &Point, status: &PointStatus) -> Option<Vec<String>> {
    let dir = status.dir.display().to_string();
    match (status.state, status.epochs_were) {
        (State::Done, _) => None,
        (State::New, _) => {
            let mut args = vec![
                "train".to_string(),
                "--config".into(),
                sweep.base.display().to_string(),
            ];
            for o in &point.overrides {
                args.push("--set".into());
                args.push(o.clone());
            }
            args.extend(["--out".into(), dir]);
            Some(args)
        }
        (_, epochs_were) => {
            let mut args = vec!["train".to_string(), "--resume".into(), dir];
            if epochs_were.is_some() {
                args.push("--set".into());
                args.push(format!("run.epochs={}", point.config.run.epochs));
            }
            Some(args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep of two seeds over a tiny base config, written into `dir`.
    fn tiny(dir: &Path) -> Sweep {
        std::fs::write(dir.join("base.toml"), "[run]\nepochs = 2\n").unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, "base = \"base.toml\"\n[axes]\nrun.seed = [1, 2]\n").unwrap();
        Sweep::load(&path, &[]).unwrap()
    }

    #[test]
    fn one_sweep_process_at_a_time_and_the_manifest_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let sweep = tiny(tmp.path());
        let out = tmp.path().join("out");
        let open = SweepDir::open(&out, &sweep).unwrap();
        let e = SweepDir::open(&out, &sweep).unwrap_err().to_string();
        assert!(
            e.contains("is in use by another biofeedback process"),
            "{e}"
        );
        drop(open);
        SweepDir::open(&out, &sweep).unwrap();
        let manifest = Manifest::load(&out).unwrap().unwrap();
        assert_eq!(manifest, Manifest::of(&sweep));
        assert_eq!(
            manifest.points[1].settings,
            [("run.seed".into(), "2".into())]
        );
        assert!(Manifest::load(tmp.path()).unwrap().is_none());
        // Nothing begun: no run directories to read.
        assert!(manifest.run_dirs(&out).is_empty());
        let s = status(&out, &sweep.points[0]).unwrap();
        assert_eq!(s.state, State::New);
        let args = train_args(&sweep, &sweep.points[0], &s).unwrap();
        assert_eq!(args[..2], ["train", "--config"]);
        assert!(args.ends_with(&["--out".into(), out.join("seed-1").display().to_string()]));
    }

    #[test]
    fn a_changed_base_is_refused_naming_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let sweep = tiny(tmp.path());
        let out = tmp.path().join("out");
        drop(SweepDir::open(&out, &sweep).unwrap());
        std::fs::write(
            tmp.path().join("base.toml"),
            "[run]\nepochs = 2\n[optim]\nlr = 0.5\n",
        )
        .unwrap();
        let sweep = Sweep::load(&sweep.path, &[]).unwrap();
        let e = SweepDir::open(&out, &sweep).unwrap_err().to_string();
        assert!(e.contains("optim.lr = 0.05") && e.contains("0.5"), "{e}");
    }
}
