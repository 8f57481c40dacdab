//! Nothing silently wrong: the command under faults a real user and a real machine produce
//! (unreadable splits, a network diverging on an epoch's last step, kills and full disks at
//! named moments, special and huge files, changed data), each ending in one clear line or in a
//! run that resumes to where the uninterrupted one ends. The helpers are in
//! `support/faults.rs`; README "What a run directory guarantees" states what is checked here.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::faults::{fifo, full_disk_at, killed_at, sparse, with_failpoints, within};
use support::{
    biofeedback, checkpoint, exits_1, final_state, mnist_args, mnist_dir, one_error_line,
    shared_data, succeeds,
};

/// `root/{train,val}/{cat,dog}/` with `train` and `val` CIFAR-10 photos per class (JPEG).
fn photo_folder(root: &Path, train: usize, val: usize) -> PathBuf {
    for (split, n) in [("train", train), ("val", val)] {
        for class in ["cat", "dog"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            let source = shared_data("cifar10-folder-sample")
                .join("train")
                .join(class);
            for i in 0..n {
                let k = if split == "train" { i } else { 100 + i };
                std::fs::copy(
                    source.join(format!("{k:04}.jpg")),
                    dir.join(format!("{i}.jpg")),
                )
                .unwrap();
            }
        }
    }
    root.to_path_buf()
}

/// An MLP on `folder` at 16x16, bad images skipped; writes the config beside the folder.
fn folder_config(folder: &Path) -> PathBuf {
    let config = format!(
        "[data]\ndataset = \"image_folder\"\ndir = {:?}\nworkers = 2\n\
         [data.image_folder]\nimage_size = 16\nresize = 16\non_bad_image = \"skip\"\n\
         [model]\nkind = \"mlp\"\nhidden = [16]\n\
         [optim]\nbatch_size = 4\n[run]\nepochs = 1\n[metrics]\neval_batch = 4\n",
        folder.to_str().unwrap()
    );
    let path = folder.with_extension("toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `train --config config --out out` with `extra` arguments.
fn train_args<'a>(config: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    a
}

/// Empties every file of `dir/*/`.
fn empty_every_file(dir: &Path) {
    for class in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(class.unwrap().path()).unwrap() {
            std::fs::write(file.unwrap().path(), b"").unwrap();
        }
    }
}

/// The lines of `metrics.csv` of the run `out`.
fn metric_rows(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

#[test]
fn a_held_out_split_that_cannot_be_read_is_an_error_not_a_perfect_score() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = photo_folder(&tmp.path().join("photos"), 4, 2);
    let config = folder_config(&folder);
    let out = tmp.path().join("run");
    succeeds(&train_args(&config, &out, &[]));
    let best = out.join("checkpoints/best.safetensors");
    let results = std::fs::read_to_string(out.join("results.json")).unwrap();
    empty_every_file(&folder.join("val"));
    let e = exits_1(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--set",
        "run.epochs=2",
    ]);
    assert!(
        e.contains("4 of the 4 held-out examples could not be read (none could")
            && e.contains("val/cat/0.jpg"),
        "{e}"
    );
    assert_eq!(metric_rows(&out), 1, "epoch 2 is not recorded");
    assert_eq!(
        std::fs::read_to_string(out.join("results.json")).unwrap(),
        results
    );
    assert_eq!(
        checkpoint(&best).epoch,
        1,
        "an unreadable split is never `best`"
    );
    let o = biofeedback(&["eval", "--checkpoint", best.to_str().unwrap()]);
    let e = one_error_line(&o);
    assert!(e.contains("none could") && o.stdout.is_empty(), "{e}");
}

#[test]
fn a_training_split_that_cannot_be_read_or_mostly_not_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = photo_folder(&tmp.path().join("photos"), 6, 2);
    let config = folder_config(&folder);
    // Two of 12 images (17%): over the default bound, under a raised one.
    std::fs::write(folder.join("train/cat/4.jpg"), b"").unwrap();
    std::fs::write(folder.join("train/dog/5.jpg"), b"").unwrap();
    let out = tmp.path().join("run");
    let e = one_error_line(&biofeedback(&train_args(&config, &out, &[])));
    assert!(
        e.contains("2 of the 12 training examples could not be read")
            && e.contains("max_skipped = 0.05")
            && (e.contains("train/cat/4.jpg") || e.contains("train/dog/5.jpg")),
        "{e}"
    );
    assert_eq!(metric_rows(&out), 0);
    let raised = ["--overwrite", "--set", "data.image_folder.max_skipped=0.2"];
    succeeds(&train_args(&config, &out, &raised));
    assert_eq!(metric_rows(&out), 1);
    // Nothing readable: refused before the run directory is made.
    empty_every_file(&folder.join("train"));
    let out = tmp.path().join("nothing");
    let e = one_error_line(&biofeedback(&train_args(&config, &out, &[])));
    assert!(e.contains("none could"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_network_that_diverges_inside_or_on_the_last_step_of_an_epoch_is_not_recorded_or_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    // The learning rate multiplied by 1e30 for epoch 2. With 16 steps per epoch the training
    // loss becomes NaN (or passes run.max_train_loss) and its read stops the run; with one
    // step per epoch (batch 2000) that
    // step blows the weights up after the loss was read, and the check after the epoch stops
    // it.
    for (batch, message) in [
        ("optim.batch_size=128", "training diverged (lower optim.lr"),
        (
            "optim.batch_size=2000",
            "diverged in the epoch's last steps",
        ),
    ] {
        let out = tmp.path().join(batch);
        let extra = [
            "--set",
            "run.epochs=2",
            "--set",
            "optim.schedule=step",
            "--set",
            "optim.milestones=[1]",
            "--set",
            "optim.gamma=1e30",
            "--set",
            batch,
            "--out",
            out.to_str().unwrap(),
        ];
        let e = one_error_line(&biofeedback(&mnist_args(&dir, &extra)));
        assert!(e.contains("epoch 2") && e.contains(message), "{batch}: {e}");
        assert_eq!(metric_rows(&out), 1, "{batch}");
        let results = std::fs::read_to_string(out.join("results.json")).unwrap();
        assert!(results.contains("\"epochs_done\": 1"), "{results}");
        for name in ["last", "best"] {
            let path = out.join(format!("checkpoints/{name}.safetensors"));
            assert_eq!(checkpoint(&path).epoch, 1, "{batch}: {name}");
        }
        // The checkpoint of epoch 1 is whole: a resume repeats epoch 2 and stops the same way.
        let e = one_error_line(&biofeedback(&["train", "--resume", out.to_str().unwrap()]));
        assert!(e.contains(message), "{batch}: {e}");
    }
}

#[test]
fn a_kill_during_the_first_checkpoint_write_resumes_from_the_start_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    let whole = tmp.path().join("whole");
    let w = whole.to_str().unwrap();
    succeeds(&mnist_args(&dir, &["--set", "run.epochs=2", "--out", w]));
    let killed = tmp.path().join("killed");
    let k = killed.to_str().unwrap();
    let args = mnist_args(&dir, &["--set", "run.epochs=2", "--out", k]);
    killed_at("write.last.safetensors.tmp", 0, &args);
    let leftovers = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    };
    assert_eq!(leftovers(&killed).len(), 1, "the kill left a temporary");
    assert!(!killed.join("checkpoints/last.safetensors").exists());
    // The directory holds a run without a checkpoint: `--out` refuses it and says --resume,
    // which starts it again.
    let e = one_error_line(&biofeedback(&args));
    assert!(e.contains("--resume"), "{e}");
    succeeds(&["train", "--resume", k]);
    assert!(leftovers(&killed).is_empty(), "{:?}", leftovers(&killed));
    assert_eq!(final_state(&killed), final_state(&whole));
    // --overwrite of such a directory removes the temporary too.
    let mut again = args.clone();
    again.push("--overwrite");
    killed_at("write.last.safetensors.tmp", 0, &again);
    assert_eq!(leftovers(&killed).len(), 1);
    succeeds(&again);
    assert!(leftovers(&killed).is_empty());
    let commands = std::fs::read_to_string(killed.join("command.txt")).unwrap();
    assert_eq!(
        commands.lines().count(),
        1,
        "--overwrite starts command.txt anew"
    );
}

#[test]
fn a_full_disk_stops_the_run_in_one_line_and_the_resume_ends_where_the_whole_run_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    let whole = tmp.path().join("whole");
    succeeds(&mnist_args(
        &dir,
        &["--set", "run.epochs=2", "--out", whole.to_str().unwrap()],
    ));
    for (point, count) in [
        ("write.metrics.csv", 1),          // epoch 1's row
        ("write.results.json", 1),         // after epoch 2's rows
        ("write.best.safetensors", 0),     // epoch 1's checkpoints
        ("write.last.safetensors.tmp", 1), // epoch 2's last
    ] {
        let out = tmp.path().join(point);
        let o = full_disk_at(
            point,
            count,
            &mnist_args(
                &dir,
                &["--set", "run.epochs=2", "--out", out.to_str().unwrap()],
            ),
        );
        let e = one_error_line(&o);
        assert!(e.contains("No space left on device"), "{point}: {e}");
        succeeds(&["train", "--resume", out.to_str().unwrap()]);
        assert_eq!(final_state(&out), final_state(&whole), "{point}");
        let tmps: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "tmp")
            })
            .collect();
        assert!(tmps.is_empty(), "{point}");
    }
}

#[test]
fn special_and_huge_files_are_refused_by_name_and_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = photo_folder(&tmp.path().join("photos"), 3, 2);
    let text = std::fs::read_to_string(folder_config(&folder))
        .unwrap()
        .replace("on_bad_image = \"skip\"", "on_bad_image = \"fail\"");
    let config = tmp.path().join("fail.toml");
    std::fs::write(&config, text).unwrap();
    let bad = folder.join("train/dog/2.jpg");
    let limit = Duration::from_secs(120);
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make); 3] = [
        ("a FIFO", &fifo),
        ("a character device", &|p: &Path| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
        ("over the limit of 268435456 bytes", &|p: &Path| {
            sparse(p, 1 << 30)
        }),
    ];
    for (what, make) in cases {
        std::fs::remove_file(&bad).unwrap();
        make(&bad);
        let out = tmp.path().join("run");
        let mut c = support::command();
        c.args(train_args(&config, &out, &["--overwrite"]));
        let e = one_error_line(&within(limit, c));
        assert!(
            e.contains("train/dog/2.jpg") && e.contains(what),
            "{what}: {e}"
        );
    }
    // A checkpoint and a config that are not files.
    let zero = tmp.path().join("zero.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let mut c = support::command();
    c.args(["eval", "--checkpoint", zero.to_str().unwrap()]);
    let e = one_error_line(&within(limit, c));
    assert!(
        e.contains("zero.safetensors") && e.contains("a character device"),
        "{e}"
    );
    let pipe = tmp.path().join("pipe.toml");
    fifo(&pipe);
    let mut c = support::command();
    c.args(["config", "show", pipe.to_str().unwrap()]);
    let e = one_error_line(&within(limit, c));
    assert!(e.contains("pipe.toml") && e.contains("a FIFO"), "{e}");
}

#[test]
fn loader_threads_that_cannot_start_are_one_error_before_the_run_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    let out = tmp.path().join("run");
    let o = biofeedback(&mnist_args(
        &dir,
        &[
            "--set",
            "data.workers=100000",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let e = one_error_line(&o);
    assert!(
        e.contains("data.workers = 100000") && e.contains("at most 256"),
        "{e}"
    );
    // The system refuses the 4th thread (as a process limit does).
    let args = mnist_args(
        &dir,
        &["--set", "data.workers=8", "--out", out.to_str().unwrap()],
    );
    let o = within(
        Duration::from_secs(120),
        with_failpoints("loader.spawn=3*off->return(eio)", &args),
    );
    let e = one_error_line(&o);
    assert!(
        e.contains("data.workers = 8: the system could not start loader thread 4"),
        "{e}"
    );
    assert!(!out.exists(), "no half-made run directory");
}

#[test]
fn a_directory_with_nothing_of_a_run_is_reused_and_one_without_a_config_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    let out = tmp.path().join("run");
    std::fs::create_dir_all(out.join("checkpoints")).unwrap();
    std::fs::write(out.join("run.lock"), b"").unwrap();
    std::fs::write(out.join("checkpoints/last.safetensors.77.tmp"), b"half").unwrap();
    let e = one_error_line(&biofeedback(&["train", "--resume", out.to_str().unwrap()]));
    assert!(
        e.contains("nothing to resume") && e.contains("--config FILE --out"),
        "{e}"
    );
    succeeds(&mnist_args(
        &dir,
        &["--set", "run.epochs=1", "--out", out.to_str().unwrap()],
    ));
    assert!(!out.join("checkpoints/last.safetensors.77.tmp").exists());
}

#[test]
fn a_resumed_run_refuses_a_training_folder_that_changed_and_eval_other_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = photo_folder(&tmp.path().join("photos"), 6, 2);
    let config = folder_config(&folder);
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    succeeds(&train_args(&config, &out, &[]));
    std::fs::remove_file(folder.join("train/cat/5.jpg")).unwrap();
    std::fs::remove_file(folder.join("train/dog/5.jpg")).unwrap();
    let e = one_error_line(&biofeedback(&[
        "train",
        "--resume",
        o,
        "--set",
        "run.epochs=2",
    ]));
    assert!(
        e.contains("the training split holds 10 examples now and held 12")
            && e.contains("--allow-changes"),
        "{e}"
    );
    succeeds(&[
        "train",
        "--resume",
        o,
        "--set",
        "run.epochs=2",
        "--allow-changes",
    ]);
    // A held-out folder whose second class is another one.
    let other = photo_folder(&tmp.path().join("other"), 1, 2);
    std::fs::rename(other.join("val/dog"), other.join("val/fox")).unwrap();
    std::fs::rename(other.join("train/dog"), other.join("train/fox")).unwrap();
    let best = out.join("checkpoints/best.safetensors");
    let o = biofeedback(&[
        "eval",
        "--checkpoint",
        best.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
    ]);
    let e = one_error_line(&o);
    assert!(
        e.contains("class 1 is `fox` in the data and `dog` in the checkpoint's run"),
        "{e}"
    );
}

#[test]
fn overwrite_leaves_nothing_of_the_old_run_and_a_mid_epoch_checkpoint_names_its_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mnist_dir();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    // Killed before step 6, with checkpoints every 2 steps: the last one is after step 4.
    let args = mnist_args(
        &dir,
        &[
            "--set",
            "checkpoint.every_steps=2",
            "--set",
            "run.epochs=1",
            "--out",
            o,
        ],
    );
    killed_at("train.step", 5, &args);
    let last = out.join("checkpoints/last.safetensors");
    let report = succeeds(&["eval", "--checkpoint", last.to_str().unwrap()]);
    assert!(
        report.contains("(inside epoch 1, after step 4, rule kp)")
            && report.contains("on 500 test examples"),
        "{report}"
    );
    std::fs::create_dir_all(out.join("plots")).unwrap();
    std::fs::write(out.join("plots/loss.png"), b"the old run's").unwrap();
    let mut again = args.clone();
    again.push("--overwrite");
    succeeds(&again);
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert_eq!(
        log.matches("rule kp on").count(),
        1,
        "one run in train.log: {log}"
    );
    assert!(
        !out.join("plots").exists(),
        "the old run's figures are gone"
    );
}

#[test]
fn a_schedule_that_overflows_and_milestones_out_of_order_are_refused() {
    let dir = mnist_dir();
    for (set, named) in [
        ("optim.gamma=1e300", "optim.gamma = 1e300"),
        ("optim.milestones=[3,1]", "optim.milestones = [3, 1]"),
        ("optim.milestones=[0]", "optim.milestones = [0]"),
    ] {
        let args = mnist_args(
            &dir,
            &[
                "--set",
                "optim.schedule=step",
                "--set",
                "optim.milestones=[1]",
                "--set",
                set,
            ],
        );
        let e = one_error_line(&biofeedback(&args));
        assert!(e.contains(named), "{set}: {e}");
    }
}
