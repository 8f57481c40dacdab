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
use std::path::{Path, PathBuf};
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
    /// The discrete GPUs (wgpu's indices) the workers own, one each, where given: worker `w`
    /// runs its points with `CUBECL_WGPU_DEFAULT_DEVICE=DiscreteGpu(gpus[w])`, which is the
    /// adapter `--device wgpu` then opens.
    pub gpus: Vec<usize>,
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
        for worker in 0..launch.jobs.clamp(1, jobs.len().max(1)) {
            let (next, outcomes) = (&next, &outcomes);
            scope.spawn(move || {
                let env = launch.env(worker);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let result = faults::point("sweep.point")
                        .map_err(|e| e.to_string())
                        .and_then(|()| run_one(job, launch, &env));
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

impl Launch {
    /// The environment of the children of worker `worker`.
    pub fn env(&self, worker: usize) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(threads) = self.threads {
            env.push(("RAYON_NUM_THREADS", threads.to_string()));
        }
        if let Some(gpu) = self.gpus.get(worker) {
            env.push(("CUBECL_WGPU_DEFAULT_DEVICE", format!("DiscreteGpu({gpu})")));
        }
        env
    }
}

/// Runs one point's process to its end, relaying its output.
fn run_one(job: &Job, launch: &Launch, env: &[(&str, String)]) -> Result<(), String> {
    let mut command = own_binary(&launch.exe);
    command
        .args(&launch.global_args)
        .args(&job.args)
        .args(&launch.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.envs(env.iter().map(|(k, v)| (k, v)));
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

/// This program's path, without the " (deleted)" Linux adds when the file was replaced since
/// the process started.
pub fn own_path() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(&text),
    ))
}

/// A command running `exe`. On Linux, when `exe` is this process's own binary, it runs
/// through `/proc/self/exe` (named `exe` in its `argv[0]`): the very binary the sweep started
/// with, even if the file was replaced since (a rebuild while the sweep runs), so every point
/// is trained by the same program.
fn own_binary(exe: &std::path::Path) -> Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let own = Path::new("/proc/self/exe");
        let same = own_path().is_ok_and(|current| current == exe);
        if same && own.exists() {
            let mut command = Command::new(own);
            command.arg0(exe);
            return command;
        }
    }
    Command::new(exe)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn points_run_the_binary_the_sweep_started_with() {
        let exe = std::env::current_exe().unwrap();
        let command = own_binary(&exe);
        assert_eq!(command.get_program(), "/proc/self/exe");
        assert_eq!(
            own_binary(Path::new("/bin/true")).get_program(),
            "/bin/true"
        );
    }

    #[test]
    fn workers_divide_the_cores_and_own_one_gpu_each() {
        let launch = Launch {
            exe: "biofeedback".into(),
            global_args: Vec::new(),
            extra_args: Vec::new(),
            jobs: 2,
            threads: Some(8),
            gpus: vec![3, 5],
        };
        assert_eq!(
            launch.env(1),
            [
                ("RAYON_NUM_THREADS", "8".to_string()),
                ("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(5)".to_string())
            ]
        );
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            assert_eq!(Launch::threads_for(2, 16), Some(8));
            assert_eq!(Launch::threads_for(4, 2), Some(1));
            assert_eq!(Launch::threads_for(1, 16), None);
        }
    }
}
