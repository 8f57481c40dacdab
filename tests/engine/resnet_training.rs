//! ResNet-18 learns from the real CIFAR-10 batches (`../shared/data/cifar10`) with the shipped
//! configs (narrowed for CI), and a ResNet run resumes exactly, BatchNorm statistics included.

use crate::common::state;
use biofeedback::core::tensor_io::to_vec;
use biofeedback::trainer::checkpoint::Checkpoint;
use biofeedback::trainer::config::Config;
use biofeedback::trainer::data::{self, Split};
use biofeedback::trainer::network::{Network, Trained};
use biofeedback::trainer::train::{EpochReport, TrainError, Trainer};
use burn::tensor::Device;
use std::sync::OnceLock;

/// The shipped CIFAR-10 ResNet-18 config of `rule`, at width 8 and `epochs` epochs.
fn config(rule: &str, epochs: usize) -> Config {
    let path = format!("configs/cifar10-resnet18-{rule}.toml");
    let overrides = [format!("run.epochs={epochs}"), "model.width=8".to_string()]
        .into_iter()
        // Mirror keys apply to weight mirrors only.
        .chain((rule == "wm").then(|| "mirror.steps_before=10".to_string()))
        .collect::<Vec<_>>();
    crate::common::shipped_config(&path, &overrides)
}

/// 3000 training and 1000 test images of the real CIFAR-10 batches, loaded once.
fn cifar() -> Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        let config = config("bp", 1);
        let mut split = data::load(&config.data).expect("CIFAR-10 in ../shared/data/cifar10");
        split.train.truncate(3000);
        split.test.truncate(1000);
        split
    })
    .clone()
}

fn run(config: Config) -> (Trainer, Vec<EpochReport>) {
    let mut trainer = Trainer::with_data(config, Device::flex(), cifar()).expect("builds");
    let reports = trainer.run(|_| Ok::<_, TrainError>(())).expect("trains");
    (trainer, reports)
}

fn learns(rule: &str) -> Vec<EpochReport> {
    let (_, reports) = run(config(rule, 3));
    let last = &reports.last().unwrap().metrics;
    for r in &reports {
        eprintln!(
            "{rule}: {}",
            biofeedback::trainer::run_dir::summary_line(r, 3)
        );
    }
    // Chance is 90% error; 3 epochs on 3000 images at width 8 give about 63% (bp) and 67%
    // (kp, whose B starts random).
    assert!(
        last.test_top1_error < 75.0,
        "{rule}: test error {:.1}% after 3 epochs",
        last.test_top1_error
    );
    assert!(reports[2].metrics.train_loss < reports[0].metrics.train_loss);
    reports
}

#[test]
fn resnet18_learns_cifar10_with_backprop() {
    let reports = learns("bp");
    let layers = &reports.last().unwrap().layers;
    assert_eq!(layers.len(), 21, "20 convs and fc");
    // Backprop's own teaching signal is the reference's: its deltas agree at every layer
    // (this fails if the training backward and the reference differ, e.g. in BatchNorm).
    for l in layers {
        assert!(
            l.weight_angle_deg < 1e-3 && l.delta_angle_global_deg < 0.05,
            "bp at {}: weight {:.4}, delta {:.4} degrees",
            l.layer,
            l.weight_angle_deg,
            l.delta_angle_global_deg
        );
    }
}

#[test]
fn resnet18_learns_cifar10_with_kolen_pollack_and_aligns_every_layer() {
    let reports = learns("kp");
    let first = &reports[0].layers;
    let last = &reports.last().unwrap().layers;
    for (a, b) in first.iter().zip(last) {
        assert!(
            b.weight_angle_deg < a.weight_angle_deg,
            "{}: {:.1} -> {:.1} degrees",
            b.layer,
            a.weight_angle_deg,
            b.weight_angle_deg
        );
    }
}

#[test]
fn a_resnet_run_resumes_bit_for_bit_with_batchnorm_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let small = |epochs| {
        let mut c = config("wm", epochs);
        c.model.width = 4;
        c.data.train_limit = Some(512);
        c
    };
    let mut data = cifar();
    data.train.truncate(512);
    data.test.truncate(200);
    let mut whole = Trainer::with_data(small(2), Device::flex(), data.clone()).unwrap();
    let all = whole.run(|_| Ok::<_, TrainError>(())).unwrap();

    let mut first = Trainer::with_data(small(2), Device::flex(), data.clone()).unwrap();
    let _ = first.run_with(|t, r: &EpochReport| {
        Checkpoint::capture(t, &path).save().unwrap();
        match r.metrics.epoch {
            1 => Err(TrainError::Shape("killed".into())),
            _ => Ok(()),
        }
    });
    let checkpoint = Checkpoint::load(&path).unwrap();
    assert!(
        checkpoint
            .tensors
            .contains_key("model.layer2.0.downsample.bn.running_var")
    );
    assert!(
        checkpoint
            .tensors
            .contains_key("optim.layer4.1.conv2.bn.gamma")
    );
    let mut resumed =
        Trainer::with_data(checkpoint.config(&[]).unwrap(), Device::flex(), data).unwrap();
    checkpoint.restore(&mut resumed).unwrap();
    let rest = resumed.run(|_| Ok::<_, TrainError>(())).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].metrics.test_loss, all[1].metrics.test_loss);
    assert_eq!(rest[0].layers, all[1].layers);
    assert!(
        state(&resumed) == state(&whole),
        "every tensor equal after resuming"
    );
    let Network::ResNet(Trained { model, .. }) = &resumed.net else {
        panic!("a ResNet config builds a ResNet");
    };
    let running = to_vec(model.stem.bn.running_var.clone());
    assert!(
        running.iter().any(|v| (v - 1.0).abs() > 1e-3),
        "running statistics moved"
    );
}

#[test]
fn mirror_steps_alone_align_every_layer_of_a_resnet() {
    use biofeedback::core::alignment::angle_degrees;
    use biofeedback::models::Loss;
    let mut config = config("wm", 1);
    config.model.width = 4;
    let mut rng = biofeedback::core::init::seeded_rng(9);
    let mut net = Network::build(&config, [3, 32, 32], 10, &mut rng, &Device::flex()).unwrap();
    let angles = |net: &Network| -> Vec<(String, f64)> {
        let Network::ResNet(Trained { model, .. }) = net else {
            panic!("a ResNet config builds a ResNet");
        };
        let mut a: Vec<(String, f64)> = model
            .units()
            .iter()
            .map(|u| {
                let b = u.conv.feedback.stored().cloned().unwrap();
                (u.name.clone(), angle_degrees(b, u.conv.weight.clone()))
            })
            .collect();
        a.push((
            "fc".into(),
            angle_degrees(
                model.fc.feedback.stored().cloned().unwrap(),
                model.fc.weight.clone(),
            ),
        ));
        a
    };
    let before = angles(&net);
    assert!(before.iter().all(|(_, a)| *a > 75.0), "{before:?}");
    // The shipped rate: the initial random `B` decays as (1 - decay)^steps; 5 / decay steps
    // leave under 1% of it (250 steps at the shipped decay of 0.02).
    let steps = (5.0 / config.mirror.decay).ceil() as usize;
    for _ in 0..steps {
        net.mirror(&config.mirror(), Loss::CrossEntropy, &mut rng);
    }
    for (name, angle) in angles(&net) {
        assert!(
            angle < 15.0,
            "{name}: {angle:.1} degrees after {steps} mirror steps"
        );
    }
}

/// `mirror.head_batch_size`: the classifier's mirror steps draw that many noise vectors
/// (a conv's draw `batch_size` maps of 64 positions each), so its `B` settles much closer to
/// `W^T` than with the conv layers' `batch_size` vectors.
#[test]
fn the_classifier_mirrors_on_head_batch_size_noise_vectors() {
    use biofeedback::core::alignment::angle_degrees;
    use biofeedback::models::Loss;
    let fc_angle = |head: Option<usize>| -> f64 {
        let mut config = config("wm", 1);
        config.model.width = 4;
        config.mirror.batch_size = 8;
        config.mirror.eta = 0.1;
        config.mirror.decay = 0.1;
        config.mirror.head_batch_size = head;
        let mut rng = biofeedback::core::init::seeded_rng(9);
        let mut net = Network::build(&config, [3, 32, 32], 10, &mut rng, &Device::flex()).unwrap();
        for _ in 0..40 {
            net.mirror(&config.mirror(), Loss::CrossEntropy, &mut rng);
        }
        let Network::ResNet(Trained { model, .. }) = &net else {
            panic!("a ResNet config builds a ResNet");
        };
        let b = model.fc.feedback.stored().cloned().unwrap();
        angle_degrees(b, model.fc.weight.clone())
    };
    let (small, large) = (fc_angle(None), fc_angle(Some(2048)));
    assert!(
        large < 0.4 * small,
        "fc angle {large:.2} degrees with 2048 noise vectors against {small:.2} with 8"
    );
}
