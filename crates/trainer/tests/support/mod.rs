//! Helpers of the command-line tests: the binary with the test environment, the team's data,
//! and the assertions every CLI test makes of a run's ending.
// Each test binary uses its own share of the helpers.
#![allow(dead_code)]

pub mod faults;
pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder `name` of the team's data beside the checkout (`../shared/data`).
pub fn shared_data(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name);
    assert!(
        p.is_dir(),
        "{} missing: the repo expects ../shared beside it",
        p.display()
    );
    p
}

/// The data root of a run that names none: a folder that does not exist, whatever
/// `BIOFEEDBACK_DATA` and the cache directory of the machine running the tests hold (CI sets
/// `BIOFEEDBACK_DATA` to ../shared/data).
pub const NO_DATA_ROOT: &str = "/nonexistent-biofeedback-test-cache";

/// `biofeedback` with the test environment: warnings logged, no data root from outside.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_biofeedback"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("BIOFEEDBACK_DATA")
        .env("XDG_CACHE_HOME", NO_DATA_ROOT);
    command
}

/// `biofeedback args` with the test environment.
pub fn biofeedback(args: &[&str]) -> Output {
    command().args(args).output().expect("the binary runs")
}

/// `biofeedback` with `args`, expecting success; returns stdout.
pub fn succeeds(args: &[&str]) -> String {
    let o = biofeedback(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `biofeedback` with `args`, expecting exit code 1 without a panic; returns stderr.
pub fn exits_1(args: &[&str]) -> String {
    let o = biofeedback(args);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The checkpoint at `path`, which must load.
pub fn checkpoint(path: &Path) -> biofeedback_trainer::checkpoint::Checkpoint {
    biofeedback_trainer::checkpoint::Checkpoint::load(path).unwrap()
}

/// The shipped MNIST KP config on 2000 training and 500 test images of the real MNIST,
/// 784-32-10, plus `extra` overrides.
pub fn mnist_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/mnist-mlp-kp.toml"
        ),
        "--set",
        dir,
        "--set",
        "data.train_limit=2000",
        "--set",
        "data.test_limit=500",
        "--set",
        "model.hidden=[32]",
    ];
    a.extend_from_slice(extra);
    a
}

/// `data.dir=` the team's MNIST, for `--set`.
pub fn mnist_dir() -> String {
    format!("data.dir={:?}", shared_data("mnist").to_str().unwrap())
}

/// The one `error: ` line of a run that failed with status 1.
pub fn one_error_line(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {stderr}");
    errors[0].to_string()
}

/// Every tensor of a checkpoint, and the rows of `metrics.csv` without the clock columns.
pub fn final_state(out: &Path) -> (Vec<(String, Vec<f32>)>, Vec<String>) {
    let checkpoint = checkpoint(&out.join("checkpoints/last.safetensors"));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect();
    let tensors = checkpoint
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.data))
        .collect();
    (tensors, rows)
}
