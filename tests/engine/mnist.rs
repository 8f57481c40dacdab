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

#[test]
fn kp_reaches_98_percent_with_aligned_feedback() {
    let r = run("kp");
    assert_eq!(r.len(), 10);
    assert!(
        final_accuracy(&r) >= 98.0,
        "kp accuracy {}",
        final_accuracy(&r)
    );
    assert!(
        last_layer_angle(&r) <= 5.0,
        "kp last-layer angle {}",
        last_layer_angle(&r)
    );
}

#[test]
fn bp_reaches_98_percent() {
    let r = run("bp");
    assert!(
        final_accuracy(&r) >= 98.0,
        "bp accuracy {}",
        final_accuracy(&r)
    );
    assert_eq!(last_layer_angle(&r), 0.0);
}

#[test]
fn wm_reaches_98_percent() {
    let r = run("wm");
    assert!(
        final_accuracy(&r) >= 98.0,
        "wm accuracy {}",
        final_accuracy(&r)
    );
    assert!(
        last_layer_angle(&r) < 20.0,
        "wm last-layer angle {}",
        last_layer_angle(&r)
    );
}

#[test]
fn fa_reaches_97_percent_with_unaligned_feedback() {
    let r = run("fa");
    assert!(
        final_accuracy(&r) >= 97.0,
        "fa accuracy {}",
        final_accuracy(&r)
    );
    assert!(
        last_layer_angle(&r) > 30.0,
        "fa angle {}",
        last_layer_angle(&r)
    );
}

#[test]
fn ss_learns() {
    let r = run("ss");
    assert!(
        final_accuracy(&r) >= 97.0,
        "ss accuracy {}",
        final_accuracy(&r)
    );
}
