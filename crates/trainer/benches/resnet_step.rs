//! One ResNet-18 training step (32x32 stem, width 64 as in torchvision, batch 32, real
//! CIFAR-10 images) per learning rule on the CPU device: forward with train-mode BatchNorm,
//! explicit backward through every `B`, SGD with Nesterov momentum (KP's `B` too), and for
//! `wm` the mirror step of every layer that follows each minibatch in the shipped config.
//! The image-folder loader has its own bench, `loader`.
//!
//! `cargo bench -p biofeedback-trainer --bench resnet_step`
//! The PyTorch peer of the same step is `benches/peers/resnet18_step.py`.

use biofeedback_models::Loss;
use biofeedback_trainer::config::Config;
use biofeedback_trainer::data::{self, Split};
use biofeedback_trainer::network::Network;
use burn::tensor::{Device, Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn main() {
    divan::main();
}

const BATCH: usize = 32;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(rule: &str) -> Config {
    let path = root().join(format!("configs/cifar10-resnet18-{rule}.toml"));
    let mut config = Config::load(&path, &["model.width=64".into()]).expect("shipped config");
    config.data.dir = Some(root().join("../shared/data/cifar10"));
    config
}

fn cifar() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| data::load(&config("bp").data).expect("CIFAR-10 at ../shared/data"))
}

#[divan::bench(args = ["bp", "fa", "ss", "wm", "kp"], sample_count = 5, sample_size = 2)]
fn step(bencher: divan::Bencher, rule: &str) {
    let config = config(rule);
    let device = Device::flex();
    let mut rng = biofeedback_core::init::seeded_rng(1);
    let mut net = Network::build(&config, [3, 32, 32], 10, &mut rng, &device).expect("builds");
    let (x, t) = cifar().train.gather(&(0..BATCH).collect::<Vec<_>>());
    let x = Tensor::<2>::from_data(TensorData::new(x, [BATCH, 3 * 32 * 32]), &device);
    let t = Tensor::<2>::from_data(TensorData::new(t, [BATCH, 10]), &device);
    let mirror = config.mirror();
    let mirror_steps = match rule {
        "wm" => config.mirror.steps_per_batch,
        _ => 0,
    };
    let mut step = || {
        let (logits, cache) = net.forward_train(x.clone());
        let (loss, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, t.clone());
        net.step(cache, dlogits, 0.01);
        for _ in 0..mirror_steps {
            net.mirror(&mirror, Loss::CrossEntropy, &mut rng);
        }
        // Wait for the result so lazy work is timed too.
        loss.into_data()
    };
    step();
    bencher.bench_local(step);
}
