//! One feedback layer: the forward pass is the ordinary one, the backward pass sends the
//! teaching signal through the layer's own `B` instead of `W^T`. For each rule, the delta a
//! layer sends down is compared with backprop's (the *local delta angle* of SPEC section 4).
//!
//! `cargo run --release --example 01_feedback_layer`

use biofeedback::core::alignment::angle_degrees;
use biofeedback::core::init::seeded_rng;
use biofeedback::core::{FeedbackLinear, Init, Rule};
use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    let device = Device::flex();
    // A minibatch of 32 inputs of width 100, and the gradient of some loss at the 10 outputs.
    let x = Tensor::<2>::random([32, 100], Distribution::Normal(0.0, 1.0), &device);
    let delta = Tensor::<2>::random([32, 10], Distribution::Normal(0.0, 1.0), &device);
    for rule in Rule::ALL {
        let mut rng = seeded_rng(1);
        let layer = FeedbackLinear::new(100, 10, rule, Init::HeUniform, &mut rng, &device);
        let y = layer.forward(x.clone()); // [32, 10]
        assert_eq!(y.dims(), [32, 10]);
        // The rule's backward: weight and bias gradients by the local rule (x^T delta), and
        // delta_in = delta · B^T at the input.
        let own = layer.backward(x.clone(), delta.clone(), true);
        // Backprop's: the same delta through W^T.
        let exact =
            FeedbackLinear::backward_through(x.clone(), delta.clone(), Some(layer.weight.clone()));
        let angle = angle_degrees(own.delta_in.unwrap(), exact.delta_in.unwrap());
        println!(
            "{:>4}: B is {:?}, the delta sent down is {angle:5.1} degrees from backprop's",
            rule.name(),
            layer.effective_feedback().dims()
        );
    }
}
