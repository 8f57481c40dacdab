//! The defining property of each rule on conv layers: Kolen-Pollack aligns `B` under
//! Nesterov momentum and decay, mirror steps alone align it, feedback alignment never moves it.

use biofeedback::core::alignment::{angle_degrees, norm};
use biofeedback::core::mirror::{MirrorConfig, mirror_step_conv};
use biofeedback::core::optim::{ConvMomentum, SgdConfig, step_conv};
use biofeedback::core::tensor_io::to_vec;
use biofeedback::core::{Activation, FeedbackConv2d, Init, Rule};
use burn::tensor::{Device, Distribution, Tensor};

fn conv(rule: Rule, seed: u64, device: &Device) -> FeedbackConv2d {
    let mut rng = biofeedback::core::init::seeded_rng(seed);
    FeedbackConv2d::new(8, 16, 3, 1, 1, rule, Init::HeUniform, &mut rng, device)
}

/// `steps` SGD steps of `layer` regressing onto a fixed random teacher conv (mean squared
/// error over batch and positions); `after` sees the layer after each step.
fn train(
    layer: &mut FeedbackConv2d,
    config: SgdConfig,
    lr: f64,
    steps: usize,
    mut after: impl FnMut(&FeedbackConv2d),
) {
    let device = layer.weight.device();
    let teacher = conv(Rule::Bp, 99, &device);
    let mut state = ConvMomentum::default();
    for _ in 0..steps {
        let x = Tensor::<4>::random([8, 8, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let y = layer.forward(x.clone());
        let count = y.dims().iter().product::<usize>() as f64;
        let delta = (y - teacher.forward(x.clone())).div_scalar(count);
        let grad = layer.backward(x, delta, false).weight;
        step_conv(config, layer, grad, &mut state, lr);
        after(layer);
    }
}

#[test]
fn kp_aligns_conv_feedback_under_nesterov_momentum_and_decay() {
    let device = Device::flex();
    let mut layer = conv(Rule::Kp, 1, &device);
    let b = |l: &FeedbackConv2d| l.feedback.stored().cloned().unwrap();
    let start = angle_degrees(b(&layer), layer.weight.clone());
    let d0 = norm(layer.weight.clone() - b(&layer));
    assert!(
        start > 80.0,
        "independent draws start near 90 degrees: {start}"
    );
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.05,
    };
    let mut distances = Vec::new();
    train(&mut layer, config, 0.05, 300, |l| {
        distances.push(norm(l.weight.clone() - b(l)));
    });
    let end = angle_degrees(b(&layer), layer.weight.clone());
    assert!(
        end < 5.0,
        "kp conv weight angle {start:.1} -> {end:.1} degrees"
    );
    assert!(
        distances[299] < 0.05 * d0,
        "|W - B|: {d0} -> {}",
        distances[299]
    );
    assert!(distances[299] < distances[149] && distances[149] < distances[49]);
}

#[test]
fn kp_without_decay_keeps_the_conv_difference() {
    let device = Device::flex();
    let mut layer = conv(Rule::Kp, 2, &device);
    let d0 = to_vec(layer.weight.clone() - layer.feedback.stored().cloned().unwrap());
    let config = SgdConfig {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    train(&mut layer, config, 0.05, 20, |_| {});
    let d = to_vec(layer.weight.clone() - layer.feedback.stored().cloned().unwrap());
    let moved = d0
        .iter()
        .zip(&d)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved < 1e-4,
        "W - B must not change without decay: moved {moved}"
    );
}

#[test]
fn wm_mirror_steps_alone_align_conv_feedback() {
    let device = Device::flex();
    let mut layer = conv(Rule::Wm, 3, &device);
    let start = angle_degrees(
        layer.feedback.stored().cloned().unwrap(),
        layer.weight.clone(),
    );
    let config = MirrorConfig {
        head_batch_size: None,
        eta: 0.1,
        decay: 0.1,
        batch_size: 32,
        noise_std: 1.0,
        rescale: false,
    };
    let weight = to_vec(layer.weight.clone());
    let mut rng = biofeedback::core::init::seeded_rng(30);
    for _ in 0..100 {
        mirror_step_conv(&mut layer, Activation::Relu, &config, 8, &mut rng);
    }
    let end = angle_degrees(
        layer.feedback.stored().cloned().unwrap(),
        layer.weight.clone(),
    );
    assert!(
        start > 80.0 && end < 15.0,
        "wm conv angle {start:.1} -> {end:.1}"
    );
    assert_eq!(
        weight,
        to_vec(layer.weight.clone()),
        "mirror mode leaves W alone"
    );
}

#[test]
fn fa_conv_feedback_never_changes_while_w_learns() {
    let device = Device::flex();
    let mut layer = conv(Rule::Fa, 4, &device);
    let b0 = to_vec(layer.feedback.stored().cloned().unwrap());
    let w0 = to_vec(layer.weight.clone());
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-3,
    };
    train(&mut layer, config, 0.05, 20, |l| {
        assert_eq!(to_vec(l.feedback.stored().cloned().unwrap()), b0);
    });
    assert_ne!(to_vec(layer.weight.clone()), w0, "W learned");
}

/// The weight angle of a 3x3 conv (`stride`, padding 1, 8 to 16 channels) after `steps`
/// mirror steps alone on 8x8 noise maps.
fn mirrored_angle(stride: usize, steps: usize) -> f64 {
    let device = Device::flex();
    let mut rng = biofeedback::core::init::seeded_rng(41);
    let mut layer = FeedbackConv2d::new(
        8,
        16,
        3,
        stride,
        1,
        Rule::Wm,
        Init::HeUniform,
        &mut rng,
        &device,
    );
    let config = MirrorConfig {
        head_batch_size: None,
        eta: 0.05,
        decay: 0.02,
        batch_size: 64,
        noise_std: 1.0,
        rescale: false,
    };
    for _ in 0..steps {
        mirror_step_conv(&mut layer, Activation::Relu, &config, 8, &mut rng);
    }
    angle_degrees(
        layer.feedback.stored().cloned().unwrap(),
        layer.weight.clone(),
    )
}

#[test]
fn a_rescaled_conv_mirror_keeps_the_kernel_scale() {
    let device = Device::flex();
    let mut rng = biofeedback::core::init::seeded_rng(43);
    let mut layer =
        FeedbackConv2d::new(8, 16, 3, 2, 1, Rule::Wm, Init::HeUniform, &mut rng, &device);
    let config = MirrorConfig {
        head_batch_size: None,
        eta: 0.05,
        decay: 0.02,
        batch_size: 64,
        noise_std: 1.0,
        rescale: true,
    };
    for _ in 0..50 {
        mirror_step_conv(&mut layer, Activation::Relu, &config, 8, &mut rng);
        let ratio = norm(layer.feedback.stored().cloned().unwrap()) / norm(layer.weight.clone());
        assert!((ratio - 1.0).abs() < 1e-4, "|B| / |W| = {ratio}");
    }
}

#[test]
fn conv_mirrors_have_no_angle_floor_at_stride_1_or_2() {
    // Each tap is averaged over the pairs it connects: border taps of a small zero-padded
    // map are not shrunk (dividing every tap by the output size left 5 and 10 degrees).
    for stride in [1, 2] {
        let angle = mirrored_angle(stride, 400);
        assert!(
            angle < 2.0,
            "stride {stride}: {angle:.2} degrees after 400 mirror steps"
        );
    }
}
