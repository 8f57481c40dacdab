//! `biofeedback sweep`, `compare` and `report` on sweeps, end to end on the real MNIST: a sweep
//! killed with SIGKILL in the middle of a point and run again ends with the records of an
//! uninterrupted one; points run two at a time; seeds are summarised as mean ± sd; a bad sweep
//! file or a changed one is one clear error.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::faults::within;
use support::{biofeedback, command, exits_1, final_state, shared_data, succeeds};

/// A sweep file in `dir` over the shipped MNIST config at 784-32-10 on 4000 training and 500
/// test images, `epochs` epochs: the rules bp and kp, seeds 1 and 2; `extra` is added to its
/// `[set]`.
fn sweep_file(dir: &Path, epochs: usize, extra: &str) -> PathBuf {
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-bp.toml"
    );
    let text = format!(
        "name = \"tiny\"\nbase = {base:?}\n\
         [set]\ndata.dir = {:?}\ndata.train_limit = 4000\ndata.test_limit = 500\n\
         model.hidden = [32]\nrun.epochs = {epochs}\n{extra}\
         [axes]\nalgorithm.rule = [\"bp\", \"kp\"]\nrun.seed = [1, 2]\n",
        shared_data("mnist").to_str().unwrap()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const POINTS: [&str; 4] = [
    "rule-bp_seed-1",
    "rule-bp_seed-2",
    "rule-kp_seed-1",
    "rule-kp_seed-2",
];

/// `sweep file --out out` plus `extra`, to its end (within 5 minutes).
fn sweep(file: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = command();
    c.args([
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(extra);
    within(Duration::from_secs(300), c)
}

/// Each line of `path` (a CSV) without its clock columns.
fn rows(path: &Path, keep: usize) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(keep).collect::<Vec<_>>().join(","))
        .collect()
}

/// Waits until `pred` holds (at most `limit`).
fn wait_for(limit: Duration, what: &str, pred: impl Fn() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_sweep_killed_mid_point_and_run_again_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), 4, "");
    let whole = tmp.path().join("whole");
    let o = sweep(&file, &whole, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("all 4 points done"), "{stdout}");

    // The same sweep, killed with SIGKILL once the second point has recorded an epoch.
    let cut = tmp.path().join("cut");
    let mut child = command()
        .args([
            "sweep",
            file.to_str().unwrap(),
            "--out",
            cut.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let second = cut.join(POINTS[1]);
    wait_for(
        Duration::from_secs(120),
        "the second point's epoch 1",
        || {
            std::fs::read_to_string(second.join("metrics.csv"))
                .is_ok_and(|m| m.lines().count() >= 2)
        },
    );
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    // The point's training process died with the sweep: its run directory is free at once.
    wait_for(
        Duration::from_secs(10),
        "the point's process to end",
        || std::fs::File::open(second.join("run.lock")).is_ok_and(|f| f.try_lock().is_ok()),
    );
    let listing = succeeds(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        cut.to_str().unwrap(),
        "--dry-run",
    ]);
    let state = |point: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(point))
            .unwrap_or_else(|| panic!("{point} not listed: {listing}"))
            .to_string()
    };
    assert!(state(POINTS[0]).contains("done"), "{listing}");
    assert!(state(POINTS[3]).contains("to start"), "{listing}");

    let o = sweep(&file, &cut, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for point in POINTS {
        let (a, b) = (whole.join(point), cut.join(point));
        assert_eq!(final_state(&a), final_state(&b), "{point}");
        assert_eq!(
            rows(&a.join("alignment.csv"), 6),
            rows(&b.join("alignment.csv"), 6),
            "{point}"
        );
    }
    // Done: a third run starts no point (each `train` adds a line to its command.txt).
    let commands = || {
        POINTS
            .map(|p| std::fs::read_to_string(cut.join(p).join("command.txt")).unwrap())
            .map(|t| t.lines().count())
    };
    let before = commands();
    let o = sweep(&file, &cut, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(commands(), before);
}

#[test]
fn points_run_two_at_a_time_and_seeds_are_summarised_as_mean_and_sd() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), 2, "");
    let out = tmp.path().join("runs");
    let o = sweep(&file, &out, &["--jobs", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(manifest["points"].as_array().unwrap().len(), 4);
    for point in POINTS {
        assert_eq!(rows(&out.join(point).join("metrics.csv"), 1).len(), 3);
    }

    // compare: a group per rule, its final error the mean of its two seeds' by hand.
    let table = succeeds(&["compare", out.to_str().unwrap()]);
    let final_error = |point: &str| -> f64 {
        let rows = rows(&out.join(point).join("metrics.csv"), 5);
        rows.last()
            .unwrap()
            .split(',')
            .nth(4)
            .unwrap()
            .parse()
            .unwrap()
    };
    let (a, b) = (final_error(POINTS[0]), final_error(POINTS[1]));
    let (mean, sd) = ((a + b) / 2.0, (a - b).abs() / 2f64.sqrt());
    let bp_row = table
        .lines()
        .find(|l| l.starts_with("| rule=bp | bp | mnist | 2 | 2/2 |"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        bp_row.contains(&format!("| {mean:.2} ± {sd:.2} |")),
        "{bp_row} (by hand: {mean:.2} ± {sd:.2})"
    );
    assert!(table.contains("| rule=kp | kp | mnist | 2 |"), "{table}");
    // kp against bp seed by seed, by hand.
    let d: Vec<f64> = (0..2)
        .map(|i| final_error(POINTS[2 + i]) - final_error(POINTS[i]))
        .collect();
    let (mean, sd) = ((d[0] + d[1]) / 2.0, (d[0] - d[1]).abs() / 2f64.sqrt());
    assert!(
        table.contains(&format!("| rule=kp | kp | 2 | {mean:+.2} ± {sd:.2} |")),
        "{table} (by hand: {mean:+.2} ± {sd:.2})"
    );
    assert!(table.contains("Each run:"), "{table}");

    // report: the page and its figures in one folder.
    let page = succeeds(&["report", out.to_str().unwrap()]);
    let page = PathBuf::from(page.trim());
    assert_eq!(page, out.join("report").join("report.md"));
    let md = std::fs::read_to_string(&page).unwrap();
    assert!(md.contains("# Sweep `tiny`") && md.contains("± "), "{md}");
    assert!(md.contains("![Top-1 error per epoch](error.png)"), "{md}");
    for figure in [
        "error.png",
        "loss.svg",
        "weight_angle.png",
        "delta_angle.svg",
    ] {
        assert!(out.join("report").join(figure).is_file(), "{figure}");
    }
    let svg = std::fs::read_to_string(out.join("report/error.svg")).unwrap();
    assert!(svg.contains("rule=bp (n=2)"), "a line per group");

    // A sweep file changed under its directory is refused, naming the key.
    let changed = sweep_file(tmp.path(), 2, "optim.lr = 0.05\n");
    let e = exits_1(&[
        "sweep",
        changed.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        e.contains("was trained with optim.lr = 0.1") && e.contains("0.05"),
        "{e}"
    );
    // A longer run.epochs continues the points.
    let longer = sweep_file(tmp.path(), 3, "");
    let o = sweep(&longer, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for point in POINTS {
        assert_eq!(rows(&out.join(point).join("metrics.csv"), 1).len(), 4);
    }
}

#[test]
fn a_failed_point_does_not_stop_the_others_and_a_second_run_retries_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), 1, "");
    let out = tmp.path().join("runs");
    // The second point cannot start (an I/O error injected where the sweep starts it).
    let c = support::faults::with_failpoints(
        "sweep.point=1*off->1*return(eio)",
        &[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let o = within(Duration::from_secs(300), c);
    let line = support::one_error_line(&o);
    assert!(
        line.contains("1 of the 4 points run failed")
            && line.contains(POINTS[1])
            && line.contains("Input/output error"),
        "{line}"
    );
    for (i, point) in POINTS.iter().enumerate() {
        assert_eq!(
            out.join(point).join("metrics.csv").is_file(),
            i != 1,
            "{point}"
        );
    }
    let o = sweep(&file, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join(POINTS[1]).join("metrics.csv").is_file());

    let e = exits_1(&[
        "sweep",
        file.to_str().unwrap(),
        "--gpus",
        "0,1",
        "--dry-run",
    ]);
    assert!(e.contains("--gpus: give --device wgpu"), "{e}");
}

#[test]
fn a_bad_sweep_file_is_one_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-bp.toml"
    );
    for (body, named) in [
        ("[axes]\nrun.seed = []\n", "axes.run.seed is empty"),
        ("[axes]\noptim.lr = [\"fast\"]\n", "optim.lr"),
        ("[axes]\noptim.learning_rate = [0.1]\n", "learning_rate"),
        ("[axes]\nrun.seed = [1]\nrun.epoch = 3\n", "run.epoch"),
        ("[sweep]\nname = \"x\"\n", "unknown field `sweep`"),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, format!("base = {base:?}\n{body}")).unwrap();
        let o = biofeedback(&["sweep", file.to_str().unwrap(), "--dry-run"]);
        let line = support::one_error_line(&o);
        assert!(
            line.contains("bad.toml") && line.contains(named),
            "{body}: {line}"
        );
    }
    assert!(!tmp.path().join("runs").exists());
}
