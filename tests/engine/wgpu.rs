//! The `wgpu` device gives the CPU's result for one training step of the MLP and of a ResNet
//! with BatchNorm, under every rule, and the CPU's conv deltas and forward convs through
//! Burn's dedicated input-gradient kernel (stride 1 directly, strided convs by phases). The
//! default build runs wgpu with Burn's kernel fusion (feature `fusion`);
//! `cargo test --no-default-features` checks the unfused build the same way.
//!
//! Runs on a real GPU or on Mesa's software drivers (`.ci/run` installs them). Without any
//! wgpu adapter the test fails and says so.

use crate::common::{gaussian, one_hot, rel_err, rng};
use biofeedback::core::conv::{conv2d_by_phases, conv2d_by_x_backward};
use biofeedback::core::init::{Init, seeded_rng};
use biofeedback::core::tensor_io::to_vec;
use biofeedback::core::visit::Slot;
use biofeedback::core::{BnFeedback, FeedbackConv2d, Rule, Sgd, SgdConfig};
use biofeedback::models::{
    BnPosition, Depth, FeedbackNetwork, Loss, MlpConfig, Path, ResNetConfig, Stem,
};
use biofeedback::trainer::device::DeviceChoice;
use burn::tensor::{Device, Distribution, Tensor};
use std::sync::OnceLock;

/// The wgpu device, created once per test process (a second creation of the runtime fails
/// while the first lives, and tests run in parallel).
pub fn wgpu_device() -> Device {
    static GPU: OnceLock<Device> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut errors = Vec::new();
        for choice in [DeviceChoice::Wgpu, DeviceChoice::WgpuGl] {
            match choice.create() {
                Ok(d) => return d,
                Err(e) => errors.push(e.to_string()),
            }
        }
        panic!("no wgpu adapter (install mesa-vulkan-drivers): {errors:?}");
    })
    .clone()
}

/// One step of `rule` (for kp W, b and B all update) on `device`; returns every parameter
/// and stored feedback tensor on the host.
fn one_step(rule: Rule, device: &Device) -> Vec<Tensor<2>> {
    let mut config = MlpConfig::new(784, vec![500], 10);
    config.rule = rule;
    let mut r = rng(21);
    let mut mlp = config.init(&mut r, device);
    let x = gaussian(128, 784, &mut r, device);
    let t = one_hot(128, 10, device);
    let mut sgd = Sgd::new(
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
        },
        2,
    );
    let (logits, cache) = mlp.forward_train(x);
    let (_, d) = Loss::CrossEntropy.loss_and_grad(logits, t);
    let back = mlp.backward(&cache, d, Path::Own, false);
    for (k, g) in back.grads.into_iter().enumerate() {
        sgd.step(k, &mut mlp.layers[k], g, 0.05);
    }
    let cpu = Device::flex();
    mlp.layers
        .iter()
        .flat_map(|l| {
            [l.weight.clone(), l.bias.clone().unsqueeze::<2>()]
                .into_iter()
                .chain(l.feedback.stored().cloned())
        })
        .map(|t| Tensor::from_data(t.into_data(), &cpu))
        .collect()
}

#[test]
fn one_training_step_on_wgpu_matches_the_cpu_under_every_rule() {
    let gpu = wgpu_device();
    for rule in Rule::ALL {
        let on_gpu = one_step(rule, &gpu);
        let on_cpu = one_step(rule, &Device::flex());
        assert_eq!(on_gpu.len(), on_cpu.len());
        for (i, (g, c)) in on_gpu.into_iter().zip(on_cpu).enumerate() {
            let e = rel_err(g, c);
            assert!(e < 1e-4, "{rule}, tensor {i}: wgpu differs from cpu by {e}");
        }
    }
}

/// A conv's delta sent down through `B` on wgpu (Burn's `conv2d_x_backward` kernel, unless
/// `BIOFEEDBACK_GPU_CONV_X=transpose`) equals the CPU's `conv_transpose2d`, for every ResNet
/// geometry: 3x3 at stride 1 and 2, the 1x1/2 shortcut, the 7x7/2 stem, odd input sizes.
#[test]
fn conv_deltas_on_wgpu_match_the_cpu() {
    let gpu = wgpu_device();
    let cpu = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    // (c_in, c_out, k, stride, pad, side)
    for (ci, co, k, s, p, side) in [
        (4, 6, 3, 1, 1, 8),
        (4, 6, 3, 2, 1, 9),
        (4, 8, 1, 2, 0, 8),
        (3, 4, 7, 2, 3, 15),
    ] {
        let conv = FeedbackConv2d::new(
            ci,
            co,
            k,
            s,
            p,
            Rule::Fa,
            Init::HeNormal,
            &mut seeded_rng(3),
            &cpu,
        );
        let x = Tensor::<4>::random([2, ci, side, side], normal, &cpu);
        let delta = Tensor::<4>::random(conv.forward(x.clone()).dims(), normal, &cpu);
        let b = conv.effective_feedback();
        let on_cpu = conv.delta_through(delta.clone(), b.clone(), &x);
        let to_gpu = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &gpu);
        let on_gpu = conv.delta_through(to_gpu(&delta), to_gpu(&b), &to_gpu(&x));
        assert_eq!(on_gpu.dims(), [2, ci, side, side]);
        let e = rel_err(Tensor::from_data(on_gpu.into_data(), &cpu), on_cpu);
        assert!(
            e < 1e-5,
            "k {k} s {s} p {p} side {side}: wgpu differs from cpu by {e}"
        );
    }
}

/// The forward convs through Burn's input-gradient kernel on wgpu (what a GPU runs unless
/// `BIOFEEDBACK_GPU_CONV` says otherwise) equal the CPU's conv: at stride 1 directly (3x3 same
/// and valid, 1x1, the 7x7 kernel), at stride 2 as the sum of the polyphase components (the
/// 7x7 stem, 3x3 on even and odd sides).
#[test]
fn forward_convs_through_the_input_gradient_kernel_on_wgpu_match_the_cpu() {
    let gpu = wgpu_device();
    let cpu = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    // (c_in, c_out, k, stride, pad, side)
    for (ci, co, k, s, p, side) in [
        (4, 6, 3, 1, 1, 8),
        (4, 6, 3, 1, 0, 9),
        (8, 4, 1, 1, 0, 6),
        (3, 4, 7, 1, 3, 15),
        (3, 4, 7, 2, 3, 16),
        (4, 6, 3, 2, 1, 8),
        (4, 6, 3, 2, 1, 9),
    ] {
        let x = Tensor::<4>::random([2, ci, side, side], normal, &cpu);
        let w = Tensor::<4>::random([co, ci, k, k], normal, &cpu);
        let on_cpu = burn::tensor::module::conv2d(
            x.clone(),
            w.clone(),
            None,
            burn::tensor::ops::ConvOptions::new([s, s], [p, p], [1, 1], 1),
        );
        let (x, w) = (
            Tensor::<4>::from_data(x.to_data(), &gpu),
            Tensor::<4>::from_data(w.to_data(), &gpu),
        );
        let on_gpu = if s == 1 {
            conv2d_by_x_backward(&x, &w, s, p)
        } else {
            conv2d_by_phases(&x, &w, s, p)
        }
        .expect("a conv these routes take");
        assert_eq!(on_gpu.dims(), on_cpu.dims());
        let e = rel_err(Tensor::from_data(on_gpu.into_data(), &cpu), on_cpu);
        assert!(
            e < 1e-5,
            "k {k} s {s} p {p} side {side}: wgpu differs from cpu by {e}"
        );
    }
}

/// One training step (Nesterov momentum, L2) of a ResNet-20 of width 4 with BatchNorm on
/// 16x16 inputs, on `device`: every parameter, BatchNorm statistic, stored feedback and
/// velocity on the host, by name. `None` where the rule has no ResNet (dfa).
///
/// One step, not two: the second step's forward pass reads weights that differ between the
/// devices by rounding, and a pre-activation that close to zero flips a ReLU mask, which
/// changed some layers' updates by 1-20% in one rule or another (fa, wm and kp with fusion,
/// ss and usf without); after one step every rule agrees to 6e-6.
fn resnet_steps(rule: Rule, device: &Device) -> Option<Vec<(String, Vec<f32>)>> {
    let config = ResNetConfig {
        depth: Depth::Cifar(3),
        stem: Stem::Cifar,
        width: 4,
        in_channels: 3,
        classes: 5,
        rule,
        init: biofeedback::core::Init::HeNormal,
        bn_feedback: BnFeedback::Exact,
        bn_position: BnPosition::BeforeRelu,
    };
    let mut r = rng(8);
    let mut net = config.init(&mut r, device).ok()?;
    let mut optim = net.optim(SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
    });
    let x = gaussian(8, 3 * 16 * 16, &mut r, device).reshape([8, 3, 16, 16]);
    let (logits, cache) = net.forward_train(x);
    let (_, d) = Loss::CrossEntropy.loss_and_grad(logits, one_hot(8, 5, device));
    net.train_step(&mut optim, cache, d, 0.1);
    let mut tensors = Vec::new();
    net.visit(&mut optim, &mut |name, slot| {
        let values = match slot {
            Slot::R1(t) => to_vec(t.clone()),
            Slot::R2(t) => to_vec(t.clone()),
            Slot::R4(t) => to_vec(t.clone()),
            Slot::State1(t, _) => t.clone().map(to_vec).unwrap_or_default(),
            Slot::State2(t, _) => t.clone().map(to_vec).unwrap_or_default(),
            Slot::State4(t, _) => t.clone().map(to_vec).unwrap_or_default(),
        };
        tensors.push((name.to_string(), values));
    });
    Some(tensors)
}

#[test]
fn one_resnet_training_step_on_wgpu_matches_the_cpu_under_every_rule() {
    let gpu = wgpu_device();
    for rule in Rule::ALL {
        let Some(on_cpu) = resnet_steps(rule, &Device::flex()) else {
            continue;
        };
        let on_gpu = resnet_steps(rule, &gpu).expect("the CPU built it");
        assert_eq!(on_gpu.len(), on_cpu.len());
        for ((name, g), (_, c)) in on_gpu.iter().zip(&on_cpu) {
            assert_eq!(g.len(), c.len(), "{rule} {name}: size");
            let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            let diff = g
                .iter()
                .zip(c)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let e = diff / scale;
            assert!(e < 1e-4, "{rule}, {name}: wgpu differs from cpu by {e}");
        }
    }
}
