//! Training learns on the real MNIST (`../shared/data/mnist`) with the shipped configs.

use biofeedback::trainer::train::{EpochReport, TrainError, Trainer};
use burn::tensor::Device;

fn run(rule: &str) -> Vec<EpochReport> {
    let path = format!("configs/mnist-mlp-{rule}.toml");
    let config = crate::common::shipped_config(&path, &[]);
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
