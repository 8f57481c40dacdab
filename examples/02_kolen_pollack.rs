//! Kolen-Pollack on one feedback layer, with the library alone: `B` starts random, both `W`
//! and `B` take the same transposed update plus decay, and the angle between `B` and `W^T`
//! falls to zero.
//!
//! `cargo run --release --example 02_kolen_pollack`

use biofeedback::core::alignment::angle_degrees;
use biofeedback::core::init::seeded_rng;
use biofeedback::core::{FeedbackLinear, Init, Rule, Sgd, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    let device = Device::flex();
    let mut rng = seeded_rng(1);
    // 64 inputs -> 10 outputs; weight and B drawn independently.
    let mut layer = FeedbackLinear::new(64, 10, Rule::Kp, Init::HeUniform, &mut rng, &device);
    let mut sgd = Sgd::new(
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.05,
        },
        1,
    );
    // A linear regression target: learn y = x A.
    let target = Tensor::<2>::random([64, 10], Distribution::Normal(0.0, 0.1), &device);
    for step in 0..=300 {
        let x = Tensor::<2>::random([32, 64], Distribution::Normal(0.0, 1.0), &device);
        let y = layer.forward(x.clone());
        let delta = (y - x.clone().matmul(target.clone())).div_scalar(32.0); // dL/dy of 0.5|e|^2
        let back = layer.backward(x, delta, false);
        sgd.step(0, &mut layer, back.grads, 0.05);
        if step % 50 == 0 {
            let angle = angle_degrees(layer.effective_feedback(), layer.weight.clone());
            println!("step {step:3}: angle(B, W^T) = {angle:6.2} degrees");
        }
    }
}
