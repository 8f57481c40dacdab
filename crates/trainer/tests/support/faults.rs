//! Faults for the command-line tests: a kill or a full disk at a named moment of the binary
//! (the fail points of `biofeedback_trainer::faults`, set through `BIOFEEDBACK_FAILPOINTS`),
//! special files where data is expected, and a time limit that turns a hang into a failure.
//! A faulty download server is `super::http`.
//!
//! A new case: pick the moment (or add a `faults::point("name")` call in the trainer and list
//! it in `crates/trainer/src/faults.rs`), run the command with [`killed_at`] or [`full_disk_at`]
//! or [`with_failpoints`], then check what the run directory holds and that `--resume` ends
//! where the uninterrupted run ends.

use super::command;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `biofeedback args` with the fail points `spec` (`name=actions;...`).
pub fn with_failpoints(spec: &str, args: &[&str]) -> Command {
    let mut c = command();
    c.env(biofeedback_trainer::faults::ENV, spec).args(args);
    c
}

/// Runs `biofeedback args`, ending the process as `kill -9` would at the `count + 1`-th time
/// it reaches `point`; asserts that it did end there (not earlier with an error, not later).
pub fn killed_at(point: &str, count: usize, args: &[&str]) -> Output {
    let spec = format!("{point}={count}*off->return(kill)");
    let o = within(Duration::from_secs(300), with_failpoints(&spec, args));
    assert_eq!(
        o.status.signal(),
        Some(9),
        "expected the process killed at {point}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs `biofeedback args` with the disk full from the `count + 1`-th time the process reaches
/// `point` on (every write there fails with "No space left on device").
pub fn full_disk_at(point: &str, count: usize, args: &[&str]) -> Output {
    let spec = format!("{point}={count}*off->return(enospc)");
    within(Duration::from_secs(300), with_failpoints(&spec, args))
}

/// Runs `command` to its end, or kills it after `limit` and fails the test: a hang is a bug.
pub fn within(limit: Duration, mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let start = Instant::now();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    loop {
        match waited.recv_timeout(Duration::from_millis(50)) {
            Ok(output) => return output.expect("the binary runs"),
            Err(_) if start.elapsed() > limit => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("the command did not end within {limit:?}: it hangs");
            }
            Err(_) => {}
        }
    }
}

/// A FIFO at `path` (nothing ever writes to it).
pub fn fifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// A sparse file of `len` bytes at `path` (no disk space used).
pub fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}
