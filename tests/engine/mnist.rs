//! Training learns on the real MNIST (`../shared/data/mnist`) with the shipped configs, and
//! the same recipes hold on a harder data set of MNIST's format.

use biofeedback::trainer::train::{EpochReport, TrainError, Trainer};
use burn::tensor::Device;
use std::path::Path;

fn run(rule: &str) -> Vec<EpochReport> {
    run_with(rule, &[])
}

/// The shipped MNIST config of `rule` with `overrides`, trained to the end.
fn run_with(rule: &str, overrides: &[String]) -> Vec<EpochReport> {
    let path = format!("configs/mnist-mlp-{rule}.toml");
    let config = crate::common::shipped_config(&path, overrides);
    let mut trainer = Trainer::new(config, Device::flex()).expect("MNIST loads");
    trainer
        .run(|_| Ok::<_, TrainError>(()))
        .expect("training runs")
}

fn final_accuracy(reports: &[EpochReport]) -> f64 {
    100.0 - reports.last().unwrap().metrics.test_top1_error
}

fn last_layer_angle(reports: &[EpochReport]) -> f64 {
    reports
        .last()
        .unwrap()
        .layers
        .last()
        .unwrap()
        .weight_angle_deg
}

/// Test accuracy of the last epoch must be at least `min` (issue 13's targets: the shipped
/// recipe, 20 epochs).
fn assert_accuracy(rule: &str, reports: &[EpochReport], min: f64) {
    assert_eq!(
        reports.len(),
        20,
        "{rule}: the shipped recipe runs 20 epochs"
    );
    let acc = final_accuracy(reports);
    assert!(acc >= min, "{rule} accuracy {acc:.2}% < {min}%");
}

#[test]
fn kp_reaches_98_5_percent_with_aligned_feedback() {
    let r = run("kp");
    assert_accuracy("kp", &r, 98.5);
    assert!(
        last_layer_angle(&r) <= 5.0,
        "kp last-layer angle {}",
        last_layer_angle(&r)
    );
}

#[test]
fn bp_reaches_98_5_percent() {
    let r = run("bp");
    assert_accuracy("bp", &r, 98.5);
    assert_eq!(last_layer_angle(&r), 0.0);
}

/// Weight mirrors keep up with the forward weights from the first epoch: the last layer's
/// angle stays under 10 degrees every epoch, and the training loss never climbs (by more than
/// 1% of the epoch before: the random shifts make it a little noisy at the end of the cosine
/// schedule), where the slower mirror of the earlier recipe let it grow on harder data.
#[test]
fn wm_reaches_98_5_percent_and_its_mirror_keeps_up_from_epoch_1() {
    let r = run("wm");
    assert_accuracy("wm", &r, 98.5);
    for e in &r {
        let angle = e.layers.last().unwrap().weight_angle_deg;
        assert!(
            angle < 10.0,
            "wm last-layer angle {angle:.1} at epoch {}",
            e.metrics.epoch
        );
    }
    for pair in r.windows(2) {
        let (a, b) = (pair[0].metrics.train_loss, pair[1].metrics.train_loss);
        assert!(
            b <= a * 1.01,
            "wm training loss rose from {a} to {b} at epoch {}",
            pair[1].metrics.epoch
        );
    }
}

#[test]
fn fa_reaches_98_percent_with_unaligned_feedback() {
    let r = run("fa");
    assert_accuracy("fa", &r, 98.0);
    assert!(
        last_layer_angle(&r) > 30.0,
        "fa angle {}",
        last_layer_angle(&r)
    );
}

#[test]
fn ss_learns() {
    let r = run("ss");
    assert_accuracy("ss", &r, 98.0);
}

/// The rules beyond the paper on the shipped recipe cut to 10 epochs (issue 12's targets; the
/// peers: BioTorch reports 1.61% error for DFA and 0.91 to 0.97% for the sign-concordant
/// rules on MNIST with LeNet, 100 epochs).
fn assert_ten_epochs(rule: &str, min: f64) -> Vec<EpochReport> {
    let r = run_with(rule, &["run.epochs=10".to_string()]);
    assert_eq!(r.len(), 10);
    let acc = final_accuracy(&r);
    assert!(
        acc >= min,
        "{rule} accuracy {acc:.2}% < {min}% after 10 epochs"
    );
    r
}

#[test]
fn dfa_reaches_97_5_percent_in_10_epochs_with_no_weight_angle() {
    let r = assert_ten_epochs("dfa", 97.5);
    let layers = &r.last().unwrap().layers;
    assert!(
        layers[0].weight_angle_deg.is_nan(),
        "B_1 is [784, 10]: no angle with W"
    );
    assert!(layers.iter().all(|l| l.delta_angle_global_deg.is_finite()));
}

#[test]
fn usf_reaches_97_8_percent_in_10_epochs() {
    assert_ten_epochs("usf", 97.8);
}

#[test]
fn frsf_reaches_97_8_percent_in_10_epochs() {
    assert_ten_epochs("frsf", 97.8);
}

#[test]
fn brsf_reaches_97_8_percent_in_10_epochs() {
    assert_ten_epochs("brsf", 97.8);
}

/// CIFAR-10's `data_batch_1.bin` and `test_batch.bin` (`../shared/data/cifar10`) as MNIST's
/// files in `dir`: grey (ITU-R 601 luma), resized to 28x28 (bilinear), raw IDX. A data set of
/// MNIST's format and size that an MLP finds much harder.
fn grey_cifar_as_idx(dir: &Path) {
    let idx = |dims: &[u32], data: &[u8]| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    };
    for (batch, prefix) in [("data_batch_1.bin", "train"), ("test_batch.bin", "t10k")] {
        let bytes = std::fs::read(Path::new("../shared/data/cifar10").join(batch)).unwrap();
        let (mut labels, mut pixels) = (Vec::new(), Vec::new());
        for record in bytes.chunks_exact(3073) {
            labels.push(record[0]);
            let luma: Vec<u8> = (0..1024)
                .map(|i| {
                    let [r, g, b] = [record[1 + i], record[1025 + i], record[2049 + i]];
                    (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32).round() as u8
                })
                .collect();
            let grey = image::GrayImage::from_raw(32, 32, luma).unwrap();
            let small = image::imageops::resize(&grey, 28, 28, image::imageops::Triangle);
            pixels.extend_from_slice(small.as_raw());
        }
        let n = labels.len() as u32;
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[n, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[n], &labels),
        )
        .unwrap();
    }
}

/// Issue 13: weight mirrors were fragile off MNIST (on a held-out set of MNIST's format the
/// earlier recipe's training loss rose to 1.3 million). On grey 28x28 CIFAR-10 that recipe's
/// loss reaches the hundreds to thousands and the run ends at chance; the shipped one must
/// train like backprop: the loss never above 10, the final accuracy within 5 points of bp's
/// (measured: 30.9% against 33.1%; the earlier recipe ends at 10 to 23%) and the last layer's
/// angle under 10 degrees at the end.
#[test]
fn the_wm_recipe_holds_on_a_harder_data_set_of_mnists_format() {
    let tmp = tempfile::tempdir().unwrap();
    grey_cifar_as_idx(tmp.path());
    let dir = [format!("data.dir={:?}", tmp.path().to_str().unwrap())];
    let bp = run_with("bp", &dir);
    let wm = run_with("wm", &dir);
    let worst = wm
        .iter()
        .map(|e| e.metrics.train_loss)
        .fold(0.0f64, f64::max);
    assert!(worst < 10.0, "wm training loss reached {worst}");
    let (a_bp, a_wm) = (final_accuracy(&bp), final_accuracy(&wm));
    assert!(a_bp > 25.0, "bp learns the grey CIFAR-10: {a_bp:.2}%");
    assert!(a_wm >= a_bp - 5.0, "wm {a_wm:.2}% against bp {a_bp:.2}%");
    assert!(
        last_layer_angle(&wm) < 10.0,
        "wm last-layer angle {}",
        last_layer_angle(&wm)
    );
}
