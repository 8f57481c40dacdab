//! An MLP trained by each rule with the library alone (no trainer, no data files): a
//! 100-256-10 network learns a random teacher network's labels, and after training the
//! global delta angle of the hidden layer says how close each rule's teaching signal came to
//! backprop's.
//!
//! `cargo run --release --example 03_mlp_rules`

use biofeedback::core::alignment::angle_degrees;
use biofeedback::core::init::seeded_rng;
use biofeedback::core::{Rule, Sgd, SgdConfig};
use biofeedback::models::{Loss, MlpConfig, Path};
use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    let device = Device::flex();
    let teacher = MlpConfig::new(100, vec![64], 10).init(&mut seeded_rng(99), &device);
    // Labels of a fixed set of inputs: the teacher's argmax, one-hot.
    let batch = |seed: u64| {
        device.seed(seed);
        let x = Tensor::<2>::random([256, 100], Distribution::Normal(0.0, 1.0), &device);
        let labels = teacher.forward(x.clone()).argmax(1);
        let t = labels.one_hot::<3>(10).squeeze_dim::<2>(1).float();
        (x, t)
    };
    let (x_test, t_test) = batch(1000);
    for rule in [Rule::Bp, Rule::Fa, Rule::Ss, Rule::Kp, Rule::Dfa] {
        let mut config = MlpConfig::new(100, vec![256], 10);
        config.rule = rule;
        let mut net = config.init(&mut seeded_rng(1), &device);
        let sgd = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-2,
        };
        let mut sgd = Sgd::new(sgd, net.layers.len());
        for step in 0..500 {
            let (x, t) = batch(step);
            let (logits, cache) = net.forward_train(x);
            let (_, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, t);
            let back = net.backward(&cache, dlogits, Path::Own, false);
            for (k, grads) in back.grads.into_iter().enumerate() {
                sgd.step(k, &mut net.layers[k], grads, 0.1);
            }
        }
        // Test accuracy, and the hidden layer's delta against backprop's on the test batch.
        let (logits, cache) = net.forward_train(x_test.clone());
        let correct = logits
            .clone()
            .argmax(1)
            .equal(t_test.clone().argmax(1))
            .int()
            .sum()
            .into_scalar::<i64>();
        let (_, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, t_test.clone());
        let own = net.backward(&cache, dlogits.clone(), Path::Own, false);
        let exact = net.backward(&cache, dlogits, Path::Exact, false);
        let angle = angle_degrees(
            own.deltas[1].clone().unwrap(),
            exact.deltas[1].clone().unwrap(),
        );
        println!(
            "{:>4}: test accuracy {:5.1}%, hidden delta {angle:5.1} degrees from backprop's",
            rule.name(),
            100.0 * correct as f64 / 256.0
        );
    }
}
