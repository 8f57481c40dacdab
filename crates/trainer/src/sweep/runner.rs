//! Runs a sweep's points as `biofeedback train` processes, `jobs` at a time.
//!
//! Each point is a child process of the sweep (the same binary), so a point trains, records
//! and resumes exactly as a single run does. Their output reaches the sweep's standard error
//! line by line, each line prefixed with `[<point>]`. On Linux a child is killed with the
//! sweep (`PR_SET_PDEATHSIG`): a sweep killed by SIGKILL leaves no orphan training on, so the
//! next `biofeedback sweep` can resume its points at once.

use crate::faults;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A point to run: its name and the arguments of the binary.
#[derive(Debug, Clone)]
pub struct Job {
    /// The point's name.
    pub name: String,
    /// `train ...`.
    pub args: Vec<String>,
}

/// How the children are started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `biofeedback` binary.
    pub exe: PathBuf,
    /// Arguments before `train` (`--data-root DIR`).
    pub global_args: Vec<OsString>,
    /// Arguments after the job's own (`--device cpu`).
    pub extra_args: Vec<OsString>,
    /// Points run at once.
    pub jobs: usize,
    /// `RAYON_NUM_THREADS` of each child (the CPU backend's threads), where set.
    pub threads: Option<usize>,
}

impl Launch {
    /// The threads each of `jobs` points at once gets on this machine's `cores`: the cores
    /// divided among them (at least one), unless the user set `RAYON_NUM_THREADS`.
    pub fn threads_for(jobs: usize, cores: usize) -> Option<usize> {
        match (jobs, std::env::var_os("RAYON_NUM_THREADS")) {
            (0 | 1, _) | (_, Some(_)) => None,
            (jobs, None) => Some((cores / jobs).max(1)),
        }
    }
}

/// How a point's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The point.
    pub name: String,
    /// `Ok`, or the reason: the child's `error:` line, or how it ended.
    pub result: Result<(), String>,
}

/// Runs `jobs` in order, `launch.jobs` at a time, and returns how each ended (in the order of
/// `jobs`). A point that fails does not stop the others. The fault point `sweep.point` is
/// evaluated before each point starts.
pub fn run(jobs: &[Job], launch: &Launch) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..launch.jobs.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let result = faults::point("sweep.point")
                        .map_err(|e| e.to_string())
                        .and_then(|()| run_one(job, launch));
                    outcomes.lock().expect("no panics while held")[i] = Some(Outcome {
                        name: job.name.clone(),
                        result,
                    });
                }
            });
        }
    });
    outcomes
        .into_inner()
        .expect("no panics while held")
        .into_iter()
        .flatten()
        .collect()
}

/// Runs one point's process to its end, relaying its output.
fn run_one(job: &Job, launch: &Launch) -> Result<(), String> {
    let mut command = Command::new(&launch.exe);
    command
        .args(&launch.global_args)
        .args(&job.args)
        .args(&launch.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(threads) = launch.threads {
        command.env("RAYON_NUM_THREADS", threads.to_string());
    }
    die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", launch.exe.display()))?;
    let last_error = Mutex::new(None::<String>);
    let prefix = format!("[{}] ", job.name);
    std::thread::scope(|scope| {
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for stream in streams {
            let (prefix, last_error) = (&prefix, &last_error);
            scope.spawn(move || {
                for line in BufReader::new(stream).split(b'\n') {
                    let Ok(line) = line else { break };
                    let line = String::from_utf8_lossy(&line);
                    if let Some(e) = line.strip_prefix("error: ") {
                        *last_error.lock().expect("no panics while held") = Some(e.to_string());
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{prefix}{line}");
                }
            });
        }
    });
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for its process: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let error = last_error.into_inner().expect("no panics while held");
    Err(match (error, status.code()) {
        (Some(e), _) => e,
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => ended_by(&status),
    })
}

/// How a process that returned no exit code ended.
#[cfg(unix)]
fn ended_by(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => "ended abnormally".into(),
    }
}

#[cfg(not(unix))]
fn ended_by(_status: &std::process::ExitStatus) -> String {
    "ended abnormally".into()
}

/// Has the child killed when the thread that started it ends (Linux's `PR_SET_PDEATHSIG`;
/// the thread waits for the child, so that is when the sweep process dies); a child whose
/// parent died before the setting took hold exits at once.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: `prctl` and `getppid` are system calls that
    // allocate nothing and take no lock, and the error is built from the errno value alone.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}
