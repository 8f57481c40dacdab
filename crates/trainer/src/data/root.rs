//! The data root: the folder that holds the standard data sets, each in a folder named after
//! it (`<root>/mnist`, `<root>/cifar10`...). Chosen, first match wins, by `--data-root DIR`,
//! the environment variable `BIOFEEDBACK_DATA`, or the platform's cache directory
//! (`$XDG_CACHE_HOME/biofeedback`, else `~/.cache/biofeedback` on Linux).

use super::DataError;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable that sets the data root.
pub const ENV: &str = "BIOFEEDBACK_DATA";

/// Where the data root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOrigin {
    /// `--data-root`.
    Flag,
    /// `BIOFEEDBACK_DATA`.
    Env,
    /// The platform cache directory.
    Cache,
}

/// A resolved data root, absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot {
    /// The folder.
    pub path: PathBuf,
    /// What chose it.
    pub origin: RootOrigin,
}

impl DataRoot {
    /// The root: `flag` if given, else `BIOFEEDBACK_DATA` if set and not empty, else the
    /// platform cache directory; made absolute against the working directory.
    pub fn resolve(flag: Option<&Path>) -> Result<Self, DataError> {
        let env = std::env::var_os(ENV).filter(|v| !v.is_empty());
        let (path, origin) = match (flag, env) {
            (Some(p), _) => (p.to_path_buf(), RootOrigin::Flag),
            (None, Some(v)) => (PathBuf::from(v), RootOrigin::Env),
            (None, None) => match dirs::cache_dir() {
                Some(cache) => (cache.join("biofeedback"), RootOrigin::Cache),
                None => return Err(DataError::NoRoot),
            },
        };
        Ok(Self {
            path: absolute(&path)?,
            origin,
        })
    }

    /// The folder of the standard data set `name` under this root.
    pub fn folder(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// `path` made absolute: resolved through links and `..` where it exists, else joined to the
/// working directory.
pub fn absolute(path: &Path) -> Result<PathBuf, DataError> {
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(_) => std::path::absolute(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl fmt::Display for DataRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.origin {
            RootOrigin::Flag => "--data-root",
            RootOrigin::Env => ENV,
            RootOrigin::Cache => {
                "the cache directory; set --data-root or BIOFEEDBACK_DATA to change it"
            }
        };
        write!(f, "{} (from {origin})", self.path.display())
    }
}
