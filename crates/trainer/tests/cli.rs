//! The `biofeedback` command end to end: a real run writes its run directory, and every kind
//! of bad input ends in a one-line error that says what was expected, never a panic.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::http::{Fault, Server};
use support::{
    biofeedback, checkpoint, command, exits_1, final_state, mnist_args, mnist_dir, one_error_line,
    shared_data, succeeds,
};

/// Runs `train` with `config` text written into `dir`, expecting failure; returns stderr.
fn fails(dir: &Path, config: &str, extra: &[&str]) -> String {
    let cfg = dir.join("exp.toml");
    std::fs::write(&cfg, config).unwrap();
    let out_dir = dir.join("run");
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = biofeedback(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {stderr}");
    errors[0].to_string()
}

fn idx(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, rank];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// A valid miniature MNIST folder: 4 training and 2 test images of 2x2 pixels.
fn tiny_mnist(dir: &Path) -> PathBuf {
    let m = dir.join("mnist");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("train-images-idx3-ubyte"),
        idx(3, &[4, 2, 2], &[7; 16]),
    )
    .unwrap();
    std::fs::write(
        m.join("train-labels-idx1-ubyte"),
        idx(1, &[4], &[0, 1, 2, 3]),
    )
    .unwrap();
    std::fs::write(
        m.join("t10k-images-idx3-ubyte"),
        idx(3, &[2, 2, 2], &[9; 8]),
    )
    .unwrap();
    std::fs::write(m.join("t10k-labels-idx1-ubyte"), idx(1, &[2], &[4, 5])).unwrap();
    m
}

fn mnist_config(dir: &Path) -> String {
    format!(
        "[data]\ndataset = \"mnist\"\ndir = {:?}\n[run]\nepochs = 1\n",
        dir.to_str().unwrap()
    )
}

fn cifar_config(dir: &Path) -> String {
    format!(
        "[data]\ndataset = \"cifar10\"\ndir = {:?}\n[run]\nepochs = 1\n",
        dir.to_str().unwrap()
    )
}

#[test]
fn a_real_run_writes_its_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mnist = shared_data("mnist");
    let dir_override = format!("data.dir={:?}", mnist.to_str().unwrap());
    let o = biofeedback(&[
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/mnist-mlp-kp.toml"
        ),
        "--set",
        &dir_override,
        "--set",
        "run.epochs=2",
        "--set",
        "data.train_limit=3000",
        "--set",
        "data.test_limit=1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("rule = \"kp\"") && config.contains("epochs = 2"),
        "{config}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines.len(), 3, "{metrics}");
    assert!(lines[0].starts_with("epoch,train_loss,train_top1_error,test_loss,test_top1_error"));
    let err: f64 = lines[2].split(',').nth(4).unwrap().parse().unwrap();
    assert!(
        err < 20.0,
        "test error after 2 epochs on 3000 examples: {err}%"
    );
    let alignment = std::fs::read_to_string(out.join("alignment.csv")).unwrap();
    let rows: Vec<&str> = alignment.lines().collect();
    assert_eq!(rows.len(), 1 + 2 * 2, "{alignment}");
    assert!(rows[0].starts_with(
        "epoch,layer,weight_angle_deg,delta_angle_global_deg,delta_angle_local_deg,norm_ratio"
    ));
    assert!(rows[4].starts_with("2,fc2,"), "{alignment}");
}

#[test]
fn truncated_idx_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_mnist(tmp.path());
    std::fs::write(
        m.join("train-images-idx3-ubyte"),
        idx(3, &[4, 2, 2], &[7; 10]),
    )
    .unwrap();
    let e = fails(tmp.path(), &mnist_config(&m), &[]);
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    assert!(e.contains("16 bytes, found 10"), "{e}");
}

#[test]
fn non_idx_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_mnist(tmp.path());
    std::fs::write(m.join("t10k-labels-idx1-ubyte"), b"<html>not found</html>").unwrap();
    let e = fails(tmp.path(), &mnist_config(&m), &[]);
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("not an IDX file"),
        "{e}"
    );
}

#[test]
fn corrupt_gzip_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_mnist(tmp.path());
    std::fs::remove_file(m.join("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(
        m.join("train-labels-idx1-ubyte.gz"),
        [0x1f, 0x8b, 8, 0, 1, 2],
    )
    .unwrap();
    let e = fails(tmp.path(), &mnist_config(&m), &[]);
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
}

#[test]
fn mnist_label_out_of_range_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_mnist(tmp.path());
    std::fs::write(
        m.join("train-labels-idx1-ubyte"),
        idx(1, &[4], &[0, 1, 12, 3]),
    )
    .unwrap();
    let e = fails(tmp.path(), &mnist_config(&m), &[]);
    assert!(
        e.contains("label 12 of record 2") && e.contains("0..=9"),
        "{e}"
    );
}

#[test]
fn cifar_file_of_wrong_size_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("cifar");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("data_batch_1.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    std::fs::write(c.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    let e = fails(tmp.path(), &cifar_config(&c), &[]);
    assert!(
        e.contains("data_batch_1.bin") && e.contains("multiple of the 3073-byte"),
        "{e}"
    );
}

#[test]
fn cifar_label_out_of_range_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("cifar");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("data_batch_1.bin"), vec![0u8; 3073 * 2]).unwrap();
    let mut test = vec![0u8; 3073];
    test[0] = 10;
    std::fs::write(c.join("test_batch.bin"), test).unwrap();
    let e = fails(tmp.path(), &cifar_config(&c), &[]);
    assert!(
        e.contains("test_batch.bin") && e.contains("label 10"),
        "{e}"
    );
}

#[test]
fn missing_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails(tmp.path(), &mnist_config(&tmp.path().join("nowhere")), &[]);
    assert!(
        e.contains("nowhere") && e.contains("not in") && e.contains("data download mnist"),
        "{e}"
    );
}

#[test]
fn unknown_config_key_names_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails(tmp.path(), "[optim]\nlr = 0.1\nmomentun = 0.9\n", &[]);
    assert!(
        e.contains("exp.toml") && e.contains("momentun") && e.contains("line 3"),
        "{e}"
    );
    let e = fails(tmp.path(), "", &["--set", "optim.momentun=0.9"]);
    assert!(e.contains("--set optim.momentun=0.9"), "{e}");
}

#[test]
fn value_of_wrong_type_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails(tmp.path(), "[run]\nepochs = \"ten\"\n", &[]);
    assert!(e.contains("exp.toml") && e.contains("line 2"), "{e}");
}

#[test]
fn nan_loss_stops_with_epoch_and_step() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[optim]\nlr = 1e30\nbatch_size = 100\n",
        mnist_config(&shared_data("mnist")).replace("[run]", "train_limit = 1000\n[run]")
    );
    let e = fails(tmp.path(), &config, &[]);
    assert!(
        e.contains("loss became") && e.contains("epoch 1, within steps"),
        "{e}"
    );
}

#[test]
fn a_run_resumes_evaluates_and_shows_its_config() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    let mnist = shared_data("mnist");
    let dir_override = format!("data.dir={:?}", mnist.to_str().unwrap());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-wm.toml"
    );
    let limits = [
        "--set",
        &dir_override,
        "--set",
        "data.train_limit=2000",
        "--set",
        "data.test_limit=500",
        "--set",
        "mirror.steps_before=20",
    ];
    let mut first = vec!["train", "--config", config, "--out", out_s];
    first.extend_from_slice(&limits);
    first.extend_from_slice(&["--set", "run.epochs=1"]);
    succeeds(&first);
    assert!(out.join("checkpoints/last.safetensors").is_file());
    assert!(out.join("checkpoints/best.safetensors").is_file());

    succeeds(&["train", "--resume", out_s, "--set", "run.epochs=2"]);
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2"], "{metrics}");
    let commands = std::fs::read_to_string(out.join("command.txt")).unwrap();
    assert_eq!(commands.lines().count(), 2, "{commands}");
    assert!(
        commands.lines().nth(1).unwrap().contains("--resume"),
        "{commands}"
    );
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(log.contains("resuming after epoch 1 of 2"), "{log}");
    assert!(log.contains("epoch 2/2"), "{log}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["epochs_done"], 2);
    assert_eq!(results["rule"], "wm");
    assert_eq!(results["best_metric"], "test_top1_error");
    let best_epoch = results["best"]["epoch"].as_u64().unwrap();
    assert_eq!(results["best_metrics"]["epoch"].as_u64(), Some(best_epoch));
    let resumed = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(resumed.contains("epochs = 2"), "{resumed}");

    // The run is complete: resuming again says so, and how to continue it, and succeeds.
    let again = biofeedback(&["train", "--resume", out_s]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("--set run.epochs=N"), "{stdout}");

    let best = out.join("checkpoints/best.safetensors");
    let report = succeeds(&["eval", "--checkpoint", best.to_str().unwrap()]);
    assert!(report.contains("test_top1_error"), "{report}");
    assert!(report.contains("on 500 test examples"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("fc2 ")), "{report}");

    let shown = succeeds(&["config", "show", config, "--set", "optim.lr=0.3"]);
    assert!(shown.contains("[checkpoint]"), "{shown}");
    assert!(shown.contains("metric = \"test_top1_error\""), "{shown}");
    assert!(shown.contains("lr = 0.3"), "{shown}");

    let table = succeeds(&["compare", out_s]);
    assert!(
        table.contains("| mnist-mlp-wm | wm | mnist | 2/2 |"),
        "{table}"
    );
    assert!(table.contains("fc2 W"), "{table}");
    let plots = tmp.path().join("plots");
    let listed = succeeds(&["plot", out_s, out_s, "--out", plots.to_str().unwrap()]);
    for name in ["loss", "error", "weight_angle", "delta_angle"] {
        for ext in ["png", "svg"] {
            let file = plots.join(format!("{name}.{ext}"));
            assert!(
                file.is_file() && listed.contains(&*file.to_string_lossy()),
                "{listed}"
            );
        }
    }
    let missing = biofeedback(&["compare", tmp.path().join("nope").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("nope") && stderr.contains("not a directory"),
        "{stderr}"
    );
}

#[test]
fn a_truncated_checkpoint_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("last.safetensors");
    std::fs::write(&ckpt, [16u8, 0, 0, 0, 0, 0, 0, 0, b'{', b'"']).unwrap();
    let stderr = exits_1(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(ckpt.to_str().unwrap())
            && stderr.contains("not a valid biofeedback checkpoint"),
        "{stderr}"
    );
}

/// Starts `train` with `args`, waits until its `last` checkpoint exists (written inside the
/// first epoch by `checkpoint.every_steps`) plus `delay`, and kills it with SIGKILL.
fn kill_after_first_checkpoint(args: &[&str], out: &Path, delay: std::time::Duration) {
    let mut child = command()
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let last = out.join("checkpoints/last.safetensors");
    let start = std::time::Instant::now();
    while !last.is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(start.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(delay);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before it could be killed; make it longer"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// A run killed with SIGKILL inside an epoch and resumed ends bit-identical to the
/// uninterrupted run: `args` (with `--out` appended) must write mid-epoch checkpoints.
fn killed_mid_epoch_resumes_exactly(args: &[&str], delays_ms: &[u64]) {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let mut a = args.to_vec();
    a.extend_from_slice(&["--out", whole.to_str().unwrap()]);
    succeeds(&a);
    let expected = final_state(&whole);
    for &delay in delays_ms {
        let out = tmp.path().join(format!("killed-{delay}"));
        let mut a = args.to_vec();
        a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        kill_after_first_checkpoint(&a, &out, std::time::Duration::from_millis(delay));
        let checkpoint = checkpoint(&out.join("checkpoints/last.safetensors"));
        assert!(
            checkpoint.progress.step > 0 || checkpoint.epoch > 0,
            "killed after a checkpoint"
        );
        succeeds(&["train", "--resume", out.to_str().unwrap()]);
        let log = std::fs::read_to_string(out.join("train.log")).unwrap();
        assert!(
            log.contains("resuming after epoch") || log.contains("resuming inside epoch"),
            "{log}"
        );
        let got = final_state(&out);
        assert_eq!(got.1, expected.1, "metrics after a kill {delay} ms in");
        assert!(
            got.0 == expected.0,
            "parameters differ after a kill {delay} ms in"
        );
    }
}

#[test]
fn an_mlp_killed_inside_an_epoch_resumes_bit_for_bit() {
    let mnist = shared_data("mnist");
    let dir = format!("data.dir={:?}", mnist.to_str().unwrap());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-wm.toml"
    );
    killed_mid_epoch_resumes_exactly(
        &[
            "train",
            "--config",
            config,
            "--set",
            &dir,
            "--set",
            "run.epochs=2",
            "--set",
            "data.train_limit=20000",
            "--set",
            "data.test_limit=500",
            "--set",
            "mirror.steps_before=20",
            "--set",
            "checkpoint.every_steps=7",
            "--set",
            "data.workers=3",
        ],
        &[0, 700],
    );
}

#[test]
fn a_resnet_on_an_augmented_image_folder_killed_inside_an_epoch_resumes_bit_for_bit() {
    let folder = shared_data("cifar10-folder-sample");
    let dir = format!("data.dir={:?}", folder.to_str().unwrap());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/cifar10-folder-resnet18-kp.toml"
    );
    let args = [
        "train",
        "--config",
        config,
        "--set",
        &dir,
        "--set",
        "run.epochs=2",
        "--set",
        "model.width=4",
        "--set",
        "data.image_folder.per_class_limit=24",
        "--set",
        "optim.batch_size=16",
        "--set",
        "checkpoint.every_steps=4",
        "--set",
        "metrics.eval_batch=20",
    ];
    killed_mid_epoch_resumes_exactly(&args, &[0]);

    // The held-out split alone is enough to evaluate the checkpoint.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut a = args.to_vec();
    a.extend_from_slice(&["--set", "run.epochs=1", "--out", out.to_str().unwrap()]);
    succeeds(&a);
    let only_test = tmp.path().join("only-test");
    std::fs::create_dir_all(&only_test).unwrap();
    std::os::unix::fs::symlink(folder.join("test"), only_test.join("test")).unwrap();
    let report = succeeds(&[
        "eval",
        "--checkpoint",
        out.join("checkpoints/last.safetensors").to_str().unwrap(),
        "--data",
        only_test.to_str().unwrap(),
    ]);
    assert!(report.contains("on 240 test examples"), "{report}");
}

#[test]
fn a_bad_photo_met_by_a_loader_worker_is_one_error_line_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    for split in ["train", "val"] {
        for class in ["cat", "dog"] {
            let dir = folder.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..6 {
                let source = shared_data("cifar10-folder-sample").join(format!("train/{class}"));
                let first = std::fs::read_dir(&source)
                    .unwrap()
                    .nth(i)
                    .unwrap()
                    .unwrap()
                    .path();
                std::fs::copy(first, dir.join(format!("{i}.jpg"))).unwrap();
            }
        }
    }
    std::fs::write(
        folder.join("train/dog/3.jpg"),
        b"\xff\xd8\xff\xe0 truncated",
    )
    .unwrap();
    let config = format!(
        "[data]\ndataset = \"image_folder\"\ndir = {:?}\nworkers = 3\n\
         [data.image_folder]\nimage_size = 16\nresize = 16\n\
         [model]\nkind = \"resnet18\"\nstem = \"cifar\"\nwidth = 2\n\
         [optim]\nbatch_size = 4\n[run]\nepochs = 1\n[metrics]\neval_batch = 4\n",
        folder.to_str().unwrap()
    );
    let e = fails(tmp.path(), &config, &[]);
    assert!(
        e.contains("train/dog/3.jpg") && e.contains("on_bad_image"),
        "{e}"
    );
    // Skipped: one of 12 training images is over the default bound of 5%.
    let skip = config.replace("resize = 16\n", "resize = 16\non_bad_image = \"skip\"\n");
    let e = fails(tmp.path(), &skip, &["--overwrite"]);
    assert!(
        e.contains("1 of the 12 training examples could not be read")
            && e.contains("data.image_folder.max_skipped = 0.05")
            && e.contains("3.jpg"),
        "{e}"
    );
    let cfg = tmp.path().join("skip.toml");
    std::fs::write(
        &cfg,
        skip.replace("resize = 16\n", "resize = 16\nmax_skipped = 0.1\n"),
    )
    .unwrap();
    let out = tmp.path().join("skipped");
    let o = biofeedback(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping") && stderr.contains("3.jpg"),
        "{stderr}"
    );
}

#[test]
fn bench_prints_a_table_or_json_and_refuses_an_unknown_rule() {
    let table = succeeds(&[
        "bench",
        "--model",
        "resnet18",
        "--stem",
        "cifar",
        "--image-size",
        "8",
        "--width",
        "2",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--rounds",
        "2",
        "--classes",
        "3",
        "--rules",
        "bp,kp",
    ]);
    assert!(table.contains("| rule | s/step | img/s |"), "{table}");
    assert!(
        table.contains("| kp |") && table.contains("cpu (flex)"),
        "{table}"
    );
    let json = succeeds(&[
        "bench",
        "--model",
        "mlp",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--rules",
        "wm",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["rows"][0]["rule"], "wm");
    assert!(report["rows"][0]["images_per_second"].as_f64().unwrap() > 0.0);
    let stderr = exits_1(&["bench", "--rules", "bp,backprop"]);
    assert!(stderr.contains("`backprop` is not a rule"), "{stderr}");
}

// ---- Issue 11: nothing lost, nothing silently wrong, never a panic ----

#[test]
fn cifar_reads_only_the_official_batch_names() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("cifar");
    std::fs::create_dir_all(&c).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(label * 20, 3072));
        r
    };
    let batch = |n: usize| {
        (0..n)
            .flat_map(|i| record((i % 10) as u8))
            .collect::<Vec<u8>>()
    };
    std::fs::write(c.join("data_batch_1.bin"), batch(20)).unwrap();
    std::fs::write(c.join("data_batch_1 (copy).bin"), batch(20)).unwrap();
    std::fs::write(c.join("data_batch_test_backup.bin"), batch(10)).unwrap();
    std::fs::write(c.join("test_batch.bin"), batch(10)).unwrap();
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("{}[optim]\nbatch_size = 10\n", cifar_config(&c))
            .replace("epochs = 1", "epochs = 1\nname = \"c\""),
    )
    .unwrap();
    succeeds(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(
        log.contains("read data_batch_1.bin for training (20 images)"),
        "{log}"
    );
}

#[test]
fn resume_refuses_a_changed_rule_and_a_checkpoint_from_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let dir = mnist_dir();
    for (out, rule) in [(&a, "algorithm.rule=kp"), (&b, "algorithm.rule=fa")] {
        succeeds(&mnist_args(
            &dir,
            &[
                "--set",
                "run.epochs=1",
                "--set",
                rule,
                "--out",
                out.to_str().unwrap(),
            ],
        ));
    }
    let a_s = a.to_str().unwrap();
    let stderr = exits_1(&[
        "train",
        "--resume",
        a_s,
        "--set",
        "run.epochs=2",
        "--set",
        "algorithm.rule=fa",
    ]);
    assert!(
        stderr.contains("algorithm.rule") && stderr.contains("--allow-changes"),
        "{stderr}"
    );
    // A checkpoint copied in from run b.
    std::fs::copy(
        b.join("checkpoints/last.safetensors"),
        a.join("checkpoints/last.safetensors"),
    )
    .unwrap();
    let stderr = exits_1(&["train", "--resume", a_s, "--set", "run.epochs=2"]);
    assert!(
        stderr.contains("does not belong to the run directory"),
        "{stderr}"
    );
    // Asked for explicitly, a change goes through.
    let b_s = b.to_str().unwrap();
    succeeds(&[
        "train",
        "--resume",
        b_s,
        "--set",
        "run.epochs=2",
        "--set",
        "algorithm.rule=kp",
        "--allow-changes",
    ]);
}

#[test]
fn a_changed_byte_or_an_edited_header_of_a_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let dir = mnist_dir();
    succeeds(&mnist_args(
        &dir,
        &["--set", "run.epochs=1", "--out", out.to_str().unwrap()],
    ));
    let path = out.join("checkpoints/last.safetensors");
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 7;
    flipped[last] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let o = biofeedback(&["eval", "--checkpoint", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    let at = good
        .windows(11)
        .position(|w| w == b"\"epoch\":\"1\"")
        .expect("the header holds \"epoch\":\"1\"");
    let mut edited = good.clone();
    edited[at + 9] = b'7';
    std::fs::write(&path, &edited).unwrap();
    let o = biofeedback(&["eval", "--checkpoint", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
}

#[test]
fn an_existing_run_is_not_overwritten_and_checkpoints_are_checked_at_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    let dir = mnist_dir();
    succeeds(&mnist_args(
        &dir,
        &["--set", "run.epochs=1", "--out", out_s],
    ));
    let before = std::fs::read(out.join("checkpoints/last.safetensors")).unwrap();
    let stderr = exits_1(&mnist_args(
        &dir,
        &[
            "--set",
            "run.epochs=1",
            "--set",
            "run.seed=9",
            "--out",
            out_s,
        ],
    ));
    assert!(
        stderr.contains("--resume") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out.join("checkpoints/last.safetensors")).unwrap(),
        before
    );
    // --overwrite replaces it; checkpoints/ that is a file is found before training.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("checkpoints"), b"not a folder").unwrap();
    let stderr = exits_1(&mnist_args(
        &dir,
        &[
            "--set",
            "run.epochs=1",
            "--out",
            other.to_str().unwrap(),
            "--overwrite",
        ],
    ));
    assert!(
        stderr.contains("checkpoints") && !stderr.contains("epoch 1/1"),
        "{stderr}"
    );
    succeeds(&mnist_args(
        &dir,
        &[
            "--set",
            "run.epochs=1",
            "--set",
            "run.seed=9",
            "--out",
            out_s,
            "--overwrite",
        ],
    ));
    assert_ne!(
        std::fs::read(out.join("checkpoints/last.safetensors")).unwrap(),
        before
    );
}

#[test]
fn a_complete_run_repairs_an_older_best_checkpoint_and_says_how_to_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    let dir = mnist_dir();
    succeeds(&mnist_args(
        &dir,
        &[
            "--set",
            "run.epochs=1",
            "--set",
            "checkpoint.metric=train_loss",
            "--out",
            out_s,
        ],
    ));
    let epoch1 = std::fs::read(out.join("checkpoints/last.safetensors")).unwrap();
    succeeds(&["train", "--resume", out_s, "--set", "run.epochs=2"]);
    let last = checkpoint(&out.join("checkpoints/last.safetensors"));
    assert_eq!(
        last.best.unwrap().epoch,
        2,
        "the training loss fell in epoch 2"
    );
    // As a kill between the final `last` and `best` writes of the old order left it.
    std::fs::write(out.join("checkpoints/best.safetensors"), &epoch1).unwrap();
    // A complete run is not a failure: the command says so and exits 0.
    let o = biofeedback(&["train", "--resume", out_s]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("has done 2 epochs and run.epochs is 2")
            && stdout.contains("nothing to do")
            && stdout.contains("(continue it with --set run.epochs=N, N > 2)")
            && stderr.contains("rewrote it from last.safetensors"),
        "{stdout}{stderr}"
    );
    let best = checkpoint(&out.join("checkpoints/best.safetensors"));
    assert_eq!(best.epoch, 2);
}

#[test]
fn non_utf8_paths_and_io_errors_are_one_clean_line() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let weird = tmp
        .path()
        .join(std::ffi::OsStr::from_bytes(b"run-\xff\xfe"));
    let dir = mnist_dir();
    let mut args: Vec<std::ffi::OsString> = mnist_args(&dir, &["--set", "run.epochs=1"])
        .into_iter()
        .map(Into::into)
        .collect();
    args.push("--out".into());
    args.push(weird.clone().into_os_string());
    let o = command().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    let command = std::fs::read_to_string(weird.join("command.txt")).unwrap();
    assert!(command.contains("run-\u{fffd}\u{fffd}"), "{command}");
    // A directory where the config file is expected: the cause once.
    let e = fails(tmp.path(), "", &[]);
    assert!(e.len() < 300, "{e}");
    let o = biofeedback(&["train", "--config", tmp.path().to_str().unwrap()]);
    let e = one_error_line(&o);
    assert_eq!(e.matches("a directory").count(), 1, "{e}");
}

#[test]
fn idx_files_of_different_image_sizes_and_huge_networks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_mnist(tmp.path());
    std::fs::write(
        m.join("t10k-images-idx3-ubyte"),
        idx(3, &[2, 3, 3], &[7; 18]),
    )
    .unwrap();
    let e = fails(tmp.path(), &mnist_config(&m), &[]);
    assert!(
        e.contains("t10k-images") && e.contains("3x3") && e.contains("2x2"),
        "{e}"
    );
    let m = tiny_mnist(&tmp.path().join("ok"));
    let e = fails(
        tmp.path(),
        &mnist_config(&m),
        &["--set", "model.hidden=[100000000]"],
    );
    assert!(e.contains("GiB") && e.contains("model.hidden"), "{e}");
}

#[test]
fn a_data_dir_that_is_a_file_and_a_run_without_metrics_say_what_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mnist.tar");
    std::fs::write(&file, b"not a folder").unwrap();
    let e = fails(tmp.path(), &mnist_config(&file), &[]);
    assert!(e.contains("mnist.tar") && e.contains("is a file"), "{e}");
    let out = tmp.path().join("run");
    let dir = mnist_dir();
    succeeds(&mnist_args(
        &dir,
        &["--set", "run.epochs=1", "--out", out.to_str().unwrap()],
    ));
    std::fs::remove_file(out.join("metrics.csv")).unwrap();
    let stderr = exits_1(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--set",
        "run.epochs=2",
    ]);
    assert!(
        stderr.contains("metrics.csv") && stderr.contains("No such file"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn cifar_training_with_random_crops_and_flips_repeats_from_its_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = format!("data.dir={:?}", shared_data("cifar10").to_str().unwrap());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/cifar10-mlp-bp.toml"
    );
    let run = |name: &str, augment: bool| {
        let out = tmp.path().join(name);
        let mut args = vec![
            "train",
            "--config",
            config,
            "--set",
            &dir,
            "--set",
            "run.epochs=1",
            "--set",
            "data.train_limit=1000",
            "--set",
            "data.test_limit=200",
            "--set",
            "model.hidden=[32]",
        ];
        if augment {
            args.extend_from_slice(&[
                "--set",
                "data.random_crop_pad=4",
                "--set",
                "data.random_flip=true",
            ]);
        }
        let out_s = out.to_str().unwrap().to_string();
        args.extend_from_slice(&["--out", &out_s]);
        succeeds(&args);
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .take(6)
            .collect::<Vec<_>>()
            .join(",")
    };
    let (a, b, plain) = (run("a", true), run("b", true), run("plain", false));
    assert_eq!(a, b, "same seed, same crops");
    assert_ne!(a, plain, "the crops and flips change the training");
    let e = fails(
        tmp.path(),
        "[data]\ndataset = \"image_folder\"\nrandom_flip = true\n",
        &[],
    );
    assert!(e.contains("data.image_folder.augment"), "{e}");
}

/// `biofeedback args` run in `cwd` with the environment variables `env` set (`None`: unset).
fn biofeedback_with(cwd: &Path, env: &[(&str, Option<&str>)], args: &[&str]) -> Output {
    let mut command = command();
    command.args(args).current_dir(cwd);
    for (key, value) in env {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command.output().expect("the binary runs")
}

/// The files under `dir`, recursively, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            match e.file_type().unwrap().is_dir() {
                true => stack.push(e.path()),
                false => out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                ),
            }
        }
    }
    out.sort();
    out
}

/// `biofeedback data download mnist` from `server` into the data root `root`.
fn download_mnist(server: &Server, root: &str) -> Output {
    biofeedback(&[
        "data",
        "download",
        "mnist",
        "--mirror",
        &server.url,
        "--data-root",
        root,
    ])
}

const MNIST_FILES: [&str; 4] = [
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
];

#[test]
fn data_download_from_a_mirror_fills_an_empty_root_and_a_run_trains_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_arg = root.to_str().unwrap();
    let server = Server::start(shared_data("mnist"), vec![]);
    let o = download_mnist(&server, root_arg);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("mnist: verified (4 files)"), "{stdout}");
    assert_eq!(files_under(&root), MNIST_FILES, "no work files left");
    assert_eq!(server.requests().len(), 4, "{:?}", server.requests());
    // A second download finds every file verified and fetches nothing.
    let again = download_mnist(&server, root_arg);
    assert!(again.status.success());
    assert_eq!(server.requests().len(), 4, "nothing fetched again");
    // `data list` by the environment variable.
    let list = biofeedback_with(
        tmp.path(),
        &[("BIOFEEDBACK_DATA", Some(root_arg))],
        &["data", "list"],
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("(from BIOFEEDBACK_DATA)")
            && listed.contains("verified (4 files)")
            && listed.contains("missing (fetch it: biofeedback data download cifar10)"),
        "{listed}"
    );
    // The shipped config names no folder: the run reads <root>/mnist and records it.
    let out = tmp.path().join("run");
    succeeds(&[
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/mnist-mlp-kp.toml"
        ),
        "--data-root",
        root_arg,
        "--set",
        "run.epochs=1",
        "--set",
        "data.train_limit=3000",
        "--set",
        "data.test_limit=500",
        "--out",
        out.to_str().unwrap(),
    ]);
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    let test_error: f64 = metrics
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        test_error < 30.0,
        "one epoch on 3000 real digits learns: {metrics}"
    );
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let recorded = root.canonicalize().unwrap().join("mnist");
    assert!(
        config.contains(&format!("dir = {:?}", recorded.to_str().unwrap())),
        "{config}"
    );
    // `train --download` fetches a missing set itself, into another empty root.
    let second = tmp.path().join("second root");
    let served = server.requests().len();
    succeeds(&[
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/mnist-mlp-kp.toml"
        ),
        "--data-root",
        second.to_str().unwrap(),
        "--download",
        "--mirror",
        &server.url,
        "--set",
        "run.epochs=1",
        "--set",
        "data.train_limit=500",
        "--set",
        "data.test_limit=100",
        "--out",
        tmp.path().join("run2").to_str().unwrap(),
    ]);
    assert_eq!(server.requests().len(), served + 4);
    assert_eq!(files_under(&second), MNIST_FILES);
}

#[test]
fn a_corrupted_or_truncated_download_is_refused_and_nothing_is_left_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_arg = root.to_str().unwrap();
    let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut other, b"a well-formed gzip of other bytes").unwrap();
    let other = other.finish().unwrap();
    for (file, fault, says) in [
        (
            "train-labels-idx1-ubyte.gz",
            Fault::Replace(other),
            "is not the published",
        ),
        ("train-labels-idx1-ubyte.gz", Fault::Corrupt, "damaged"),
        ("t10k-images-idx3-ubyte.gz", Fault::Truncate, "truncated"),
    ] {
        let server = Server::start(shared_data("mnist"), vec![(file, fault)]);
        let e = one_error_line(&download_mnist(&server, root_arg));
        assert!(
            e.contains(file) && e.contains(says) && e.contains("discarded"),
            "{e}"
        );
        let left = files_under(&root);
        assert!(
            !left
                .iter()
                .any(|f| f.ends_with(file) || f.ends_with(".part")),
            "{file}: {left:?}"
        );
        assert!(
            left.iter().all(|f| MNIST_FILES.contains(&f.as_str())),
            "{left:?}"
        );
    }
    // Verified files fetched before the bad one stay; the next download completes the set.
    let server = Server::start(shared_data("mnist"), vec![]);
    let o = download_mnist(&server, root_arg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files_under(&root), MNIST_FILES);
    assert!(
        server.requests().len() < 4,
        "the verified files were kept: {:?}",
        server.requests()
    );
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_arg = root.to_str().unwrap();
    let file = "train-images-idx3-ubyte.gz";
    let server = Server::start(
        shared_data("mnist"),
        vec![(file, Fault::CutOnce(3_000_000))],
    );
    let e = one_error_line(&download_mnist(&server, root_arg));
    assert!(
        e.contains(file) && e.contains("run the same command again"),
        "{e}"
    );
    let part = root.join(".mnist.download").join(format!("{file}.part"));
    let have = std::fs::metadata(&part).expect("the part is kept").len();
    assert!(have > 0 && have <= 3_000_000, "{have}");
    assert!(!root.join("mnist").join(file).exists());
    let o = download_mnist(&server, root_arg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let requests = server.requests();
    assert_eq!(
        requests[1],
        format!("GET /{file} Range: bytes={have}-"),
        "{requests:?}"
    );
    assert_eq!(files_under(&root), MNIST_FILES);
}

#[test]
fn without_the_data_a_run_and_a_download_say_what_to_do_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("empty root");
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-kp.toml"
    );
    // The default root is the cache directory.
    let cache = tmp.path().join("cache");
    let env = [
        ("BIOFEEDBACK_DATA", None),
        ("XDG_CACHE_HOME", Some(cache.to_str().unwrap())),
    ];
    let e = one_error_line(&biofeedback_with(
        tmp.path(),
        &env,
        &["train", "--config", config, "--out", "run"],
    ));
    assert!(
        e.contains(&format!(
            "{}",
            cache.join("biofeedback").join("mnist").display()
        )) && e.contains("`biofeedback data download mnist`")
            && e.contains("--download"),
        "{e}"
    );
    let e = one_error_line(&biofeedback(&[
        "train",
        "--config",
        config,
        "--data-root",
        root.to_str().unwrap(),
    ]));
    assert!(e.contains("data download mnist --data-root"), "{e}");
    // Offline (nothing listens on the port): the URL, and what to do.
    let e = one_error_line(&biofeedback(&[
        "data",
        "download",
        "mnist",
        "--mirror",
        "http://127.0.0.1:9/",
        "--data-root",
        root.to_str().unwrap(),
    ]));
    assert!(
        e.contains("http://127.0.0.1:9/train-images-idx3-ubyte.gz")
            && e.contains("--mirror")
            && e.contains("copy the official files"),
        "{e}"
    );
    let e = one_error_line(&biofeedback(&["data", "download", "imagenet"]));
    assert!(e.contains("mnist, fashion-mnist, cifar10"), "{e}");
}

#[test]
fn config_show_says_where_a_standard_set_is_read_from() {
    let tmp = tempfile::tempdir().unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-kp.toml"
    );
    let o = biofeedback(&[
        "config",
        "show",
        config,
        "--data-root",
        tmp.path().to_str().unwrap(),
    ]);
    let shown = String::from_utf8_lossy(&o.stdout);
    let folder = tmp.path().canonicalize().unwrap().join("mnist");
    assert!(
        shown.starts_with(&format!(
            "# data.dir is not set: a run reads {}",
            folder.display()
        )) && shown.contains("(from --data-root)"),
        "{shown}"
    );
    // The comment is TOML: the text loads as an experiment file.
    let copy = tmp.path().join("shown.toml");
    std::fs::write(&copy, shown.as_bytes()).unwrap();
    let again = biofeedback(&["config", "show", copy.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly() {
    // `biofeedback config show ... | head -1`: the reader is gone before the first write.
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/mnist-mlp-kp.toml"
    );
    let mut child = command()
        .args(["config", "show", config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn eval_and_plot_work_from_any_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tmp.path().join("run");
    // A relative data.dir, from the repository root.
    let o = biofeedback_with(
        &repo,
        &[],
        &mnist_args(
            "data.dir=\"../shared/data/mnist\"",
            &["--set", "run.epochs=1", "--out", out.to_str().unwrap()],
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let best = out.join("checkpoints/best.safetensors");
    let o = biofeedback_with(
        &elsewhere,
        &[],
        &["eval", "--checkpoint", best.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("on 500 test examples"));
    let o = biofeedback_with(&elsewhere, &[], &["plot", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("plots").is_dir());
}
