//! ResNet-18 learns from real photos read as an image folder
//! (`../shared/data/cifar10-folder-sample`: JPEG, 200 training and 50 test photos per class),
//! with the shipped configs narrowed to width 8 and 4 epochs.

use biofeedback::trainer::config::Config;
use biofeedback::trainer::train::{TrainError, Trainer};
use burn::tensor::Device;
use std::path::Path;

fn final_error(rule: &str) -> f64 {
    let path = format!("configs/cifar10-folder-resnet18-{rule}.toml");
    let overrides = ["run.epochs=4".to_string(), "model.width=8".to_string()];
    let config = Config::load(Path::new(&path), &overrides).expect("shipped config loads");
    let mut trainer = Trainer::new(config, Device::flex()).expect("the image folder loads");
    assert_eq!(trainer.data.train.len(), 2000);
    assert_eq!(trainer.data.test.len(), 500);
    assert!(
        trainer.data.train.augment.is_some(),
        "random resized crops and flips"
    );
    let reports = trainer.run(|_| Ok::<_, TrainError>(())).expect("trains");
    reports.last().unwrap().metrics.test_top1_error
}

#[test]
fn resnet18_learns_from_an_image_folder_with_backprop_and_kolen_pollack() {
    for rule in ["bp", "kp"] {
        let error = final_error(rule);
        // Chance is 90%; after 3 epochs both are near 72%.
        assert!(
            error < 78.0,
            "{rule}: test error {error:.1}% after 4 epochs"
        );
    }
}
