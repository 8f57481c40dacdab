//! One MNIST epoch of the 784-500-10 MLP (batch 128) per learning rule on the CPU device,
//! with the shipped configs (`configs/mnist-mlp-<rule>.toml`): forward, explicit backward
//! through `B`, SGD, and for `wm` the mirror steps after every minibatch.
//!
//! `cargo bench -p biofeedback-trainer --bench mnist_epoch`
//! The PyTorch peer of the same epoch is `benches/peers/mnist_epoch.py`.

use biofeedback_trainer::config::Config;
use biofeedback_trainer::data::{self, Split};
use biofeedback_trainer::train::Trainer;
use burn::tensor::Device;
use std::path::Path;
use std::sync::OnceLock;

fn main() {
    divan::main();
}

fn config(rule: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(format!("mnist-mlp-{rule}.toml"));
    let mut config = Config::load(&path, &[]).expect("shipped config loads");
    config.data.dir =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist"));
    config.mirror.steps_before = 0;
    config
}

fn mnist() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| data::load(&config("bp").data).expect("MNIST at ../shared/data/mnist"))
}

#[divan::bench(args = ["bp", "fa", "ss", "wm", "kp"], sample_count = 5, sample_size = 1)]
fn epoch(bencher: divan::Bencher, rule: &str) {
    let mut trainer =
        Trainer::with_data(config(rule), Device::flex(), mnist().clone()).expect("trainer builds");
    // One warm-up epoch so that allocations and caches settle.
    trainer.train_epoch(1).expect("epoch runs");
    bencher.bench_local(|| trainer.train_epoch(2).expect("epoch runs"));
}

/// One mirror step of the 784-500 hidden layer with the shipped `wm` settings (batch 32).
#[divan::bench(sample_count = 20, sample_size = 20)]
fn mirror_step_784x500(bencher: divan::Bencher) {
    use biofeedback_core::mirror::mirror_step;
    use biofeedback_core::{Activation, FeedbackLinear, Init, Rule, init::seeded_rng};
    let device = Device::flex();
    let mut layer = FeedbackLinear::new(
        784,
        500,
        Rule::Wm,
        Init::HeUniform,
        &mut seeded_rng(1),
        &device,
    );
    let mirror = config("wm").mirror();
    let mut rng = seeded_rng(2);
    bencher.bench_local(|| {
        mirror_step(&mut layer, Activation::Relu, &mirror, &mut rng);
        // Wait for the result so lazy backends are timed too.
        layer
            .feedback
            .stored()
            .map(|b| b.clone().slice([0..1, 0..1]).into_data())
    });
}

/// The parts of a mirror step, to see where its time goes.
#[divan::bench(args = ["noise", "forward", "hebbian"], sample_count = 20, sample_size = 20)]
fn mirror_parts(bencher: divan::Bencher, part: &str) {
    use burn::tensor::{Distribution, Tensor};
    let device = Device::flex();
    let w = Tensor::<2>::random([784, 500], Distribution::Normal(0.0, 0.05), &device);
    let x = Tensor::<2>::random([32, 784], Distribution::Normal(0.0, 1.0), &device);
    let y = x.clone().matmul(w.clone());
    bencher.bench_local(|| {
        let out = match part {
            "noise" => Tensor::<2>::random([32, 784], Distribution::Normal(0.0, 1.0), &device),
            "forward" => x.clone().matmul(w.clone()),
            _ => x.clone().transpose().matmul(y.clone()),
        };
        out.slice([0..1, 0..1]).into_data()
    });
}

/// The weight gradient `x^T · delta` of the 784-500 layer at batch 128, three ways.
#[divan::bench(args = ["transpose_lhs", "transpose_out", "swap_dims_lhs"], sample_count = 20, sample_size = 20)]
fn weight_grad(bencher: divan::Bencher, how: &str) {
    use burn::tensor::{Distribution, Tensor};
    let device = Device::flex();
    let x = Tensor::<2>::random([128, 784], Distribution::Normal(0.0, 1.0), &device);
    let d = Tensor::<2>::random([128, 500], Distribution::Normal(0.0, 1.0), &device);
    bencher.bench_local(|| {
        let out = match how {
            "transpose_lhs" => x.clone().transpose().matmul(d.clone()),
            "transpose_out" => d.clone().transpose().matmul(x.clone()).transpose(),
            _ => x.clone().swap_dims(0, 1).matmul(d.clone()),
        };
        (out + 1.0).slice([0..1, 0..1]).into_data()
    });
}
