//! Named moments where tests inject faults into the binary (through the `fail` crate's fail
//! points): a kill at an exact point of a write, a full disk, a failing device.
//!
//! ```text
//! BIOFEEDBACK_FAILPOINTS='write.last.safetensors.tmp=return(kill)' biofeedback train ...
//! BIOFEEDBACK_FAILPOINTS='write.metrics.csv=return(enospc);train.step=3*off->return(kill)' ...
//! ```
//!
//! The variable holds `name=actions` pairs separated by `;`, with the `fail` crate's action
//! syntax (`[p%][count*]task[(arg)]`, chained with `->`): `off`, `sleep(ms)`, `panic`, `pause`,
//! and `return(x)`, which this module reads as
//! - `kill`: the process ends at once by `kill -9` (nothing is flushed or removed);
//! - `enospc`: the operation fails as on a full disk ("No space left on device");
//! - `eio`: it fails with an I/O error.
//!
//! The moments (see [`point`]'s callers):
//! - `write.<file name>`: before an atomic write of that file (`config.toml`,
//!   `results.json`, `last.safetensors`, `best.safetensors`) or an append to a CSV record
//!   (`metrics.csv`, `alignment.csv`);
//! - `write.<file name>.tmp`: after its temporary was written and synced, before the rename;
//! - `train.step`: before each training step;
//! - `loader.spawn`: before a data-loader thread is started;
//! - `epoch.recorded`: after an epoch's rows and `results.json` were written, before its
//!   checkpoints;
//! - `sweep.point`: in `biofeedback sweep`, before it starts a point's process (an error
//!   there fails that point; `kill` ends the sweep between points).
//!
//! Without the variable nothing is configured and every point is a map lookup that finds
//! nothing.

use std::io::{Error, ErrorKind};

/// The environment variable that configures the points.
pub const ENV: &str = "BIOFEEDBACK_FAILPOINTS";

/// Configures the points named in [`ENV`]; returns the pairs set (none without it).
pub fn setup_from_env() -> Result<Vec<String>, String> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(Vec::new());
    };
    let mut set = Vec::new();
    for pair in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, actions) = pair
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: `{pair}` is not `name=actions`"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(|e| format!("{ENV}: `{pair}`: {e}"))?;
        set.push(pair.to_string());
    }
    Ok(set)
}

/// The fault configured at the moment `name`, if any: returns the injected error, ends the
/// process (`kill`), or runs the `fail` crate's own action (sleep, panic, pause).
pub fn point(name: &str) -> std::io::Result<()> {
    match fail::eval(name, |arg| arg) {
        None | Some(None) => Ok(()),
        Some(Some(action)) => inject(name, &action),
    }
}

/// Carries out `return(action)` at `name`.
fn inject(name: &str, action: &str) -> std::io::Result<()> {
    match action {
        // SIGKILL from outside, as a user or a scheduler sends it (no unwinding, flushing or
        // destructors); SIGABRT, which leaves the disk the same, where `kill` cannot run.
        "kill" => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::process::abort()
        }
        "enospc" => Err(Error::new(
            ErrorKind::StorageFull,
            format!("No space left on device (injected at {name})"),
        )),
        "eio" => Err(Error::other(format!(
            "Input/output error (injected at {name})"
        ))),
        other => Err(Error::other(format!(
            "{ENV}: unknown action return({other}) at {name} (expected kill, enospc or eio)"
        ))),
    }
}
