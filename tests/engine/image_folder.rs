//! ResNet-18 learns from real photos read as an image folder
//! (`../shared/data/cifar10-folder-sample`: JPEG, 200 training and 50 test photos per class),
//! with the shipped configs narrowed to width 8 and 4 epochs; the loader's batches do not
//! depend on its number of workers; the alignment batch holds every class.

use biofeedback::core::tensor_io::to_vec;
use biofeedback::trainer::config::Config;
use biofeedback::trainer::data::loader::{Batches, LoaderConfig};
use biofeedback::trainer::data::{self, Splits};
use biofeedback::trainer::train::{TrainError, Trainer};
use burn::tensor::Device;

fn folder_config(rule: &str, overrides: &[&str]) -> Config {
    let path = format!("configs/cifar10-folder-resnet18-{rule}.toml");
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    crate::common::shipped_config(&path, &overrides)
}

#[test]
fn the_same_seed_gives_the_same_augmented_batches_with_1_and_3_workers() {
    let config = folder_config("bp", &[]);
    let sources = data::open(&config.data, Splits::Both).expect("the folder opens");
    let trainer = Trainer::with_data(config, Device::flex(), sources.clone()).unwrap();
    let plan: Vec<Vec<usize>> = trainer.epoch_plan(3).into_iter().take(6).collect();
    let batches = |workers, start| {
        let config = LoaderConfig {
            workers,
            prefetch: 2,
        };
        Batches::new(sources.train.clone(), plan.clone(), start, Some(7), config)
            .map(|b| b.unwrap())
            .collect::<Vec<_>>()
    };
    let one = batches(1, 0);
    assert_eq!(one.len(), 6);
    assert_eq!(one, batches(3, 0));
    assert_eq!(one[4..], batches(3, 4)[..]);
    // Augmented: another seed gives other pixels for the same images.
    let other: Vec<_> = Batches::new(
        sources.train.clone(),
        plan.clone(),
        0,
        Some(8),
        LoaderConfig {
            workers: 2,
            prefetch: 2,
        },
    )
    .map(|b| b.unwrap())
    .collect();
    assert_eq!(other[0].labels, one[0].labels);
    assert_ne!(other[0].x, one[0].x);
}

#[test]
fn the_alignment_batch_holds_every_class_of_a_class_sorted_folder() {
    let config = folder_config("bp", &["metrics.eval_batch=20", "model.width=4"]);
    let trainer = Trainer::new(config, Device::flex()).unwrap();
    let (_, t) = trainer.alignment_batch();
    let t = to_vec(t.clone().argmax(1).float());
    let mut classes: Vec<i64> = t.iter().map(|&c| c as i64).collect();
    classes.sort();
    assert_eq!(classes, (0..10).flat_map(|c| [c, c]).collect::<Vec<_>>());
}

fn final_error(rule: &str) -> f64 {
    let config = folder_config(rule, &["run.epochs=4", "model.width=8"]);
    assert!(
        config.data.image_folder.augment,
        "random resized crops and flips"
    );
    let mut trainer = Trainer::new(config, Device::flex()).expect("the image folder loads");
    assert_eq!(trainer.data.train.len(), 2000);
    assert_eq!(trainer.data.test.len(), 500);
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
