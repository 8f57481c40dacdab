//! Logging: `tracing` to stderr (filtered by `RUST_LOG`) and, once a run directory exists, to
//! its `train.log` as well.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter when `RUST_LOG` is not set, and always the file's. cubecl logs every kernel
/// that an adapter cannot compile, with its whole source at ERROR level and again as a launch
/// failure at WARN, although autotune then uses another candidate (on a software renderer:
/// every subgroup kernel); the trainer says once that a software renderer is in use instead.
/// A kernel that fails for good still fails the read of its result. `RUST_LOG=warn` shows them.
pub const DEFAULT_FILTER: &str = "warn,biofeedback=info,biofeedback_trainer=info,\
                                  cubecl_wgpu::backend=off,cubecl_runtime::logging=off";

/// Bytes of log kept before the file is opened (the lines of loading the data); more are
/// dropped.
const PENDING_LIMIT: usize = 1 << 20;

/// Where file log lines go: the file once open, else a bounded buffer.
#[derive(Debug, Default)]
struct Sink {
    file: Option<File>,
    pending: Vec<u8>,
}

/// A log file that can be opened after logging has started; what was logged before (up to
/// 1 MiB) is written to it when it opens.
#[derive(Debug, Clone, Default)]
pub struct LogFile(Arc<Mutex<Sink>>);

impl LogFile {
    /// Appends the lines logged so far and every later one to `path` (created if missing).
    pub fn open(&self, path: &Path) -> std::io::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut sink = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&std::mem::take(&mut sink.pending))?;
        sink.file = Some(file);
        Ok(())
    }
}

impl LogFile {
    /// Appends `line` to the file only (e.g. the final error, which stderr shows on its own).
    pub fn line(&self, line: &str) {
        let mut w = self.clone();
        // A log line that cannot be written must not hide the error being reported.
        let _ = writeln!(w, "{line}");
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut sink = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match sink.file.as_mut() {
            Some(file) => file.write(buf),
            None => {
                if sink.pending.len() + buf.len() <= PENDING_LIMIT {
                    sink.pending.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .file
            .as_mut()
        {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global subscriber: stderr with `RUST_LOG` (default [`DEFAULT_FILTER`]; in
/// colour where it is a terminal) and the returned [`LogFile`] with [`DEFAULT_FILTER`],
/// without colours.
pub fn init() -> LogFile {
    let file = LogFile::default();
    let stderr_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: not into a file, a pipe (`biofeedback sweep` relays its
    // points' lines) or a CI log.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(stderr_filter);
    let to_file = tracing_subscriber::fmt::layer()
        .with_writer(file.clone())
        .with_ansi(false)
        .with_target(false)
        .with_filter(EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::registry()
        .with(stderr)
        .with(to_file)
        .init();
    file
}
