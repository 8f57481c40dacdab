//! `biofeedback report SWEEP`: one Markdown page of a sweep, with its figures beside it.
//!
//! ```text
//! <out>/report.md                     the sweep file and base config, where each point stands,
//!                                     the groups' mean ± sd (crate::compare), the figures
//! <out>/{loss,error,weight_angle,delta_angle}.{png,svg}    crate::plot, a band per group
//! ```
//!
//! The folder holds everything the page shows (figures by relative links), so it can be
//! copied into a paper's notes or `docs/` as it is.

use crate::atomic::write_atomically;
use crate::run_record::RunRecord;
use crate::sweep::{Manifest, SweepDirError};
use crate::{compare, plot};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a report cannot be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The sweep directory.
    #[error(transparent)]
    Sweep(#[from] SweepDirError),
    /// A run directory of the sweep.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
    /// A figure.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// Anything else, with the path.
    #[error("{path}: {what}")]
    Other {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
}

/// Writes the report of the sweep directory `dir` into `out`; returns the page's path.
pub fn write(dir: &Path, out: &Path) -> Result<PathBuf, ReportError> {
    let other = |path: &Path, what: String| ReportError::Other {
        path: path.to_path_buf(),
        what,
    };
    let manifest = Manifest::load(dir)?.ok_or_else(|| {
        other(
            dir,
            "not a sweep directory (no sweep.json; `biofeedback sweep FILE` makes one)".into(),
        )
    })?;
    let runs = manifest
        .run_dirs(dir)
        .iter()
        .map(|d| RunRecord::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    if runs.is_empty() {
        return Err(other(
            dir,
            "no point of the sweep has begun yet: nothing to report".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| other(out, format!("cannot create it: {e}")))?;
    plot::plot_runs(&runs, out)?;
    let page = out.join("report.md");
    let text = page_text(dir, &manifest, &runs);
    write_atomically(&page, text.as_bytes()).map_err(|e| other(&page, e.to_string()))?;
    Ok(page)
}

/// The Markdown of the page.
fn page_text(dir: &Path, manifest: &Manifest, runs: &[RunRecord]) -> String {
    let mut md = String::new();
    let done = runs.iter().filter(|r| r.metrics.len() >= r.epochs).count();
    let _ = writeln!(md, "# Sweep `{}`\n", manifest.name);
    let _ = writeln!(
        md,
        "{} points; {} begun, {done} done. Sweep directory `{}`; `biofeedback report` of \
         biofeedback {}.\n",
        manifest.points.len(),
        runs.len(),
        dir.display(),
        env!("CARGO_PKG_VERSION"),
    );
    md.push_str("## Results\n\n");
    md.push_str(&compare::markdown(runs));
    md.push_str("\n## Figures\n\n");
    for (name, what) in [
        ("error", "Top-1 error per epoch"),
        ("loss", "Loss per epoch"),
        ("weight_angle", "Weight angle between B and W^T, per layer"),
        ("delta_angle", "Delta angle with backprop, per layer"),
    ] {
        let _ = writeln!(md, "{what}:\n\n![{what}]({name}.png)\n");
    }
    md.push_str("## Points\n\n| point | settings | epochs | test top-1 err % (final) |\n");
    md.push_str("|---|---|---|---:|\n");
    for p in &manifest.points {
        let run = runs.iter().find(|r| r.path == dir.join(&p.name));
        let settings = p
            .settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (epochs, error) = match run {
            Some(r) => (
                format!("{}/{}", r.metrics.len(), r.epochs),
                r.last()
                    .map_or("-".into(), |m| format!("{:.2}", m.test_top1_error)),
            ),
            None => ("not begun".into(), "-".into()),
        };
        let _ = writeln!(md, "| {} | {settings} | {epochs} | {error} |", p.name);
    }
    for (file, what) in [
        ("sweep.toml", "The sweep file"),
        ("base.toml", "Its base experiment"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let _ = writeln!(
            md,
            "\n## {what} (`{file}`)\n\n```toml\n{}\n```",
            text.trim_end()
        );
    }
    md
}
