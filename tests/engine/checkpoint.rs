//! Checkpoints: a resumed run repeats the uninterrupted one bit for bit, an interrupted write
//! leaves the previous checkpoint loadable, a truncated file is named, and checkpoints move
//! between the CPU and wgpu. Also what the trainer does between steps: brsf's redraws and the
//! warm-up's mirror steps.

use crate::common::state;
use crate::wgpu::wgpu_device;
use biofeedback::core::tensor_io::to_vec;
use biofeedback::trainer::atomic::temporary_path;
use biofeedback::trainer::checkpoint::Checkpoint;
use biofeedback::trainer::config::Config;
use biofeedback::trainer::data::{self, Split};
use biofeedback::trainer::network::{Network, Trained};
use biofeedback::trainer::train::{EpochMetrics, EpochReport, TrainError, Trainer};
use burn::tensor::Device;
use std::sync::OnceLock;

/// 3000 MNIST training and 500 test images, loaded once.
fn mnist() -> Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        let config = config("kp", 4);
        let mut split = data::load(&config.data).expect("MNIST in ../shared/data/mnist");
        split.train.truncate(3000);
        split.test.truncate(500);
        split
    })
    .clone()
}

/// The shipped MNIST config of `rule`, narrowed to a 784-64-10 network and `epochs` epochs.
fn config(rule: &str, epochs: usize) -> Config {
    let path = format!("configs/mnist-mlp-{rule}.toml");
    let overrides = [
        format!("run.epochs={epochs}"),
        "model.hidden=[64]".to_string(),
    ]
    .into_iter()
    // Mirror keys apply to weight mirrors only.
    .chain((rule == "wm").then(|| "mirror.steps_before=50".to_string()))
    .collect::<Vec<_>>();
    crate::common::shipped_config(&path, &overrides)
}

fn trainer(config: Config, device: Device) -> Trainer {
    Trainer::with_data(config, device, mnist()).expect("the trainer builds")
}

/// The metrics without the wall-clock figures.
fn figures(m: &EpochMetrics) -> [f64; 6] {
    [
        m.epoch as f64,
        m.train_loss,
        m.train_top1_error,
        m.test_loss,
        m.test_top1_error,
        m.test_top5_error,
    ]
}

fn resume_is_exact(rule: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");

    let mut whole = trainer(config(rule, 4), Device::flex());
    let uninterrupted = whole.run(|_| Ok::<_, TrainError>(())).unwrap();

    // The same 4-epoch run, killed after epoch 2 right after its checkpoint was written.
    let mut first = trainer(config(rule, 4), Device::flex());
    let stopped = first.run_with(|t, r: &EpochReport| {
        if r.metrics.epoch == 2 {
            Checkpoint::capture(t, &path).save().unwrap();
            return Err(TrainError::Shape("killed".into()));
        }
        Ok(())
    });
    assert!(stopped.is_err());
    drop(first);

    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.epoch, 2);
    let mut resumed = trainer(checkpoint.config(&[]).unwrap(), Device::flex());
    checkpoint.restore(&mut resumed).unwrap();
    let rest = resumed.run(|_| Ok::<_, TrainError>(())).unwrap();

    assert_eq!(rest.len(), 2);
    for (a, b) in uninterrupted[2..].iter().zip(&rest) {
        assert_eq!(figures(&a.metrics), figures(&b.metrics), "{rule}");
        assert_eq!(a.layers, b.layers, "{rule}: alignment");
    }
    let (a, b) = (state(&whole), state(&resumed));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{rule}: {name} differs after resuming");
    }
    assert_eq!(whole.best, resumed.best);
}

#[test]
fn resuming_weight_mirror_repeats_the_uninterrupted_run_bit_for_bit() {
    resume_is_exact("wm");
}

#[test]
fn resuming_kolen_pollack_repeats_the_uninterrupted_run_bit_for_bit() {
    resume_is_exact("kp");
}

/// brsf's `|R|` is drawn anew after every step from the epoch's seed and the step, so a
/// resumed run draws the same ones.
#[test]
fn resuming_batchwise_random_sign_feedback_repeats_the_uninterrupted_run_bit_for_bit() {
    resume_is_exact("brsf");
}

/// The magnitudes a sign-concordant rule keeps: brsf's change at every step of a run (the
/// trainer redraws them), frsf's never; both keep `W`'s signs.
#[test]
fn brsf_draws_new_magnitudes_during_a_run_and_frsf_keeps_its_own() {
    let magnitudes = |t: &Trainer| match &t.net {
        Network::Mlp(Trained { model, .. }) => {
            to_vec(model.layers[1].feedback.stored().unwrap().clone())
        }
        Network::ResNet(_) => unreachable!("an MLP config"),
    };
    for (rule, changes) in [("brsf", true), ("frsf", false)] {
        let mut t = trainer(config(rule, 1), Device::flex());
        let start = magnitudes(&t);
        t.run(|_| Ok::<_, TrainError>(())).unwrap();
        assert_eq!(magnitudes(&t) != start, changes, "{rule}");
        let Network::Mlp(Trained { model, .. }) = &t.net else {
            unreachable!("an MLP config")
        };
        let layer = &model.layers[1];
        let (w, b) = (
            to_vec(layer.weight.clone()),
            to_vec(layer.effective_feedback()),
        );
        assert!(
            w.iter().zip(&b).all(|(w, b)| w.signum() == b.signum()),
            "{rule}: B has W's signs"
        );
    }
}

/// `mirror.warmup_steps_per_batch` mirror steps follow each minibatch of the learning rate's
/// warm-up, `steps_per_batch` the later ones: through a one-epoch warm-up `B` equals that of a
/// run mirroring that often throughout (and differs from the default's), and in the epoch
/// after it differs from that run's.
#[test]
fn the_warm_up_mirrors_as_often_as_its_own_key_says() {
    let feedback = |t: &Trainer| match &t.net {
        Network::Mlp(Trained { model, .. }) => to_vec(model.layers[1].effective_feedback()),
        Network::ResNet(_) => unreachable!("an MLP config"),
    };
    let run = |steps_per_batch: usize, warmup_steps_per_batch: Option<usize>| {
        let mut c = config("wm", 2);
        c.optim.warmup_epochs = 1.0;
        c.mirror.steps_per_batch = steps_per_batch;
        c.mirror.warmup_steps_per_batch = warmup_steps_per_batch;
        c.validate().expect("a valid config");
        let mut t = trainer(c, Device::flex());
        t.mirror_phase();
        (1..=2)
            .map(|epoch| {
                t.train_epoch(epoch).unwrap();
                feedback(&t)
            })
            .collect::<Vec<_>>()
    };
    let warm_three = run(1, Some(3));
    let always_three = run(3, None);
    let always_one = run(1, None);
    assert_eq!(
        warm_three[0], always_three[0],
        "the warm-up epoch mirrors 3 times"
    );
    assert_ne!(warm_three[0], always_one[0], "the default mirrors once");
    assert_ne!(warm_three[1], always_three[1], "after the warm-up: once");
}

#[test]
fn an_interrupted_write_leaves_the_previous_checkpoint_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let mut t = trainer(config("kp", 2), Device::flex());
    t.run_with(|t, r: &EpochReport| -> Result<(), TrainError> {
        if r.metrics.epoch == 1 {
            Checkpoint::capture(t, &path).save().unwrap();
        }
        Ok(())
    })
    .unwrap();
    // A kill during the next write leaves a partial temporary file beside the checkpoint.
    let newer = std::fs::read(&path).unwrap();
    std::fs::write(temporary_path(&path), &newer[..newer.len() / 3]).unwrap();
    let loaded = Checkpoint::load(&path).expect("the previous checkpoint still loads");
    assert_eq!(loaded.epoch, 1);
    // The next save replaces the stale temporary file.
    Checkpoint::capture(&t, &path).save().unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap().epoch, 2);
    assert!(!temporary_path(&path).exists());
}

#[test]
fn a_truncated_checkpoint_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let mut t = trainer(config("fa", 1), Device::flex());
    t.run(|_| Ok::<_, TrainError>(())).unwrap();
    Checkpoint::capture(&t, &path).save().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 4] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            e.contains(path.to_str().unwrap()) && e.contains("not a valid biofeedback checkpoint"),
            "{keep} bytes: {e}"
        );
    }
}

#[test]
fn a_checkpoint_of_another_network_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let t = trainer(config("kp", 1), Device::flex());
    Checkpoint::capture(&t, &path).save().unwrap();
    let checkpoint = Checkpoint::load(&path).unwrap();
    let mut wider = trainer(
        checkpoint.config(&["model.hidden=[65]".into()]).unwrap(),
        Device::flex(),
    );
    let e = checkpoint.restore(&mut wider).unwrap_err().to_string();
    assert!(
        e.contains("model.fc1.weight") && e.contains("[784, 64]"),
        "{e}"
    );
    let mut bp = trainer(
        checkpoint
            .config(&["algorithm.rule=\"bp\"".into()])
            .unwrap(),
        Device::flex(),
    );
    let e = checkpoint.restore(&mut bp).unwrap_err().to_string();
    assert!(
        e.contains("model.fc1.feedback") && e.contains("rule `bp` keeps none"),
        "{e}"
    );
}

/// A checkpoint written before the redesign of issue 12 (format 1, MLP layers named `0`,
/// `1`; made by that version's `biofeedback train --config configs/mnist-mlp-kp.toml --set
/// model.hidden=[8] --set run.epochs=1`) loads under today's names and restores every
/// tensor into today's network.
#[test]
fn a_checkpoint_of_format_1_loads_under_todays_names() {
    let path = std::path::Path::new("tests/engine/fixtures/mnist-kp-784-8-10-format1.safetensors");
    let checkpoint = Checkpoint::load(path).unwrap();
    assert_eq!(checkpoint.epoch, 1);
    let names: Vec<&str> = checkpoint.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "model.fc1.bias",
            "model.fc1.feedback",
            "model.fc1.weight",
            "model.fc2.bias",
            "model.fc2.feedback",
            "model.fc2.weight",
            "optim.fc1.bias",
            "optim.fc1.feedback",
            "optim.fc1.weight",
            "optim.fc2.bias",
            "optim.fc2.feedback",
            "optim.fc2.weight",
        ]
    );
    let mut t = trainer(checkpoint.config(&[]).unwrap(), Device::flex());
    checkpoint.restore(&mut t).unwrap();
    for (name, data) in state(&t) {
        assert!(checkpoint.tensors[&name].data == data, "{name} restored");
    }
    assert_eq!(t.epochs_done, 1);
}

#[test]
fn a_checkpoint_moves_between_the_cpu_and_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    let (from_cpu, from_gpu) = (
        dir.path().join("cpu.safetensors"),
        dir.path().join("gpu.safetensors"),
    );
    let mut cpu = trainer(config("kp", 1), Device::flex());
    cpu.run(|_| Ok::<_, TrainError>(())).unwrap();
    Checkpoint::capture(&cpu, &from_cpu).save().unwrap();

    let checkpoint = Checkpoint::load(&from_cpu).unwrap();
    let mut gpu = trainer(checkpoint.config(&[]).unwrap(), wgpu_device());
    checkpoint.restore(&mut gpu).unwrap();
    let cpu_test = cpu.evaluate(&cpu.data.test).unwrap();
    let gpu_test = gpu.evaluate(&gpu.data.test).unwrap();
    let (l_cpu, e_cpu) = (cpu_test.loss, cpu_test.top1_error);
    let (l_gpu, e_gpu) = (gpu_test.loss, gpu_test.top1_error);
    assert!(
        (l_cpu - l_gpu).abs() < 1e-4 * l_cpu.abs().max(1.0),
        "{l_cpu} vs {l_gpu}"
    );
    assert!(
        (e_cpu - e_gpu).abs() <= 0.2,
        "test error {e_cpu}% on cpu, {e_gpu}% on wgpu"
    );

    // And back: the wgpu trainer's checkpoint restores the same tensors on the CPU.
    Checkpoint::capture(&gpu, &from_gpu).save().unwrap();
    let mut back = trainer(config("kp", 1), Device::flex());
    Checkpoint::load(&from_gpu)
        .unwrap()
        .restore(&mut back)
        .unwrap();
    assert_eq!(state(&back), state(&cpu));
    assert_eq!(back.epochs_done, 1);
    let Network::Mlp(Trained { model, .. }) = &back.net else {
        panic!("an MLP config builds an MLP");
    };
    let w = to_vec(model.layers[0].weight.clone());
    assert!(w.iter().all(|v| v.is_finite()));
}

#[test]
fn identical_states_give_identical_files_and_a_diverged_network_is_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(config("kp", 1), Device::flex());
    t.run(|_| Ok::<_, TrainError>(())).unwrap();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    Checkpoint::capture(&t, &a).save().unwrap();
    Checkpoint::capture(&t, &b).save().unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let mut bad = Checkpoint::capture(&t, &b);
    bad.tensors.get_mut("model.fc1.weight").unwrap().data[3] = f32::NAN;
    let e = bad.save().unwrap_err().to_string();
    assert!(e.contains("model.fc1.weight") && e.contains("NaN"), "{e}");
}

#[test]
fn an_output_tied_with_the_true_class_counts_as_an_error() {
    let mut t = trainer(config("bp", 1), Device::flex());
    if let Network::Mlp(Trained { model, .. }) = &mut t.net {
        for layer in &mut model.layers {
            layer.weight = layer.weight.clone().zeros_like();
            layer.bias = layer.bias.clone().zeros_like();
        }
    }
    let test = t.evaluate(&t.data.test).unwrap();
    let (top1, top5) = (test.top1_error, test.top5_error);
    // Every output is 0: no class is above another, and none may count as right.
    assert_eq!(top1, 100.0);
    assert_eq!(top5, 100.0);
}
