//! ResNets: backprop mode of the explicit backward pass equals Burn's autodiff of the same
//! network with BatchNorm in train mode, and training never reads the running statistics.

use crate::common::{one_hot, rel_err};
use biofeedback::core::{BnFeedback, Init, Rule};
use biofeedback::models::{BnPosition, Depth, Loss, Path, ResNet, ResNetConfig, Stem};
use burn::tensor::{Device, Distribution, Tensor};

fn config(depth: Depth, stem: Stem, width: usize, position: BnPosition) -> ResNetConfig {
    ResNetConfig {
        depth,
        stem,
        width,
        in_channels: 3,
        classes: 5,
        rule: Rule::Bp,
        init: Init::HeUniform,
        bn_feedback: BnFeedback::Exact,
        bn_position: position,
    }
}

fn tracked<const D: usize>(t: &Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), device).require_grad()
}

/// The same network on `device` with every parameter tracked.
fn on_autodiff(net: &ResNet, device: &Device) -> ResNet {
    let mut copy = net.clone();
    for unit in copy.units_mut() {
        unit.conv.weight = tracked(&unit.conv.weight, device);
        unit.bn.gamma = tracked(&unit.bn.gamma, device);
        unit.bn.beta = tracked(&unit.bn.beta, device);
        unit.bn.running_mean = Tensor::from_data(unit.bn.running_mean.to_data(), device);
        unit.bn.running_var = Tensor::from_data(unit.bn.running_var.to_data(), device);
    }
    copy.fc.weight = tracked(&copy.fc.weight, device);
    copy.fc.bias = tracked(&copy.fc.bias, device);
    copy
}

fn check(config: ResNetConfig, side: usize) {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let mut rng = biofeedback::core::init::seeded_rng(5);
    let mut net = config.init(&mut rng, &device).unwrap();
    // Non-trivial BatchNorm parameters, so their gradients and the sigma scaling matter.
    for (i, unit) in net.units_mut().into_iter().enumerate() {
        let c = unit.bn.channels();
        unit.bn.gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), &device)
            .mul_scalar(if i % 2 == 0 { 1.0 } else { -1.0 });
        unit.bn.beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.2), &device);
    }
    let x = Tensor::<4>::random([4, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
    let t = one_hot(4, 5, &device);

    let (logits, cache) = net.forward_train(x.clone());
    let (_, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, t.clone());
    let explicit = net.backward(&cache, dlogits, Path::Own, true);

    let net_ad = on_autodiff(&net, &ad);
    let x_ad = tracked(&x, &ad);
    let (logits, _) = net_ad.forward_train(x_ad.clone());
    let (loss, _) = Loss::CrossEntropy.loss_and_grad(logits, Tensor::from_data(t.to_data(), &ad));
    let grads = loss.backward();

    let what = format!(
        "{:?} {:?} {:?}",
        config.depth, config.stem, config.bn_position
    );
    for ((unit, g), (name, _)) in net_ad
        .units()
        .into_iter()
        .zip(&explicit.units)
        .zip(net.units().into_iter().map(|u| (u.name.clone(), ())))
    {
        let e = rel_err(g.conv.clone(), unit.conv.weight.grad(&grads).unwrap());
        assert!(e < 1e-3, "{what}: {name} kernel gradient rel err {e}");
        let e = rel_err(g.bn.gamma.clone(), unit.bn.gamma.grad(&grads).unwrap());
        assert!(e < 1e-3, "{what}: {name} gamma gradient rel err {e}");
        let e = rel_err(g.bn.beta.clone(), unit.bn.beta.grad(&grads).unwrap());
        assert!(e < 1e-3, "{what}: {name} beta gradient rel err {e}");
    }
    let e = rel_err(
        explicit.fc.weight.clone(),
        net_ad.fc.weight.grad(&grads).unwrap(),
    );
    assert!(e < 1e-3, "{what}: fc weight gradient rel err {e}");
    let e = rel_err(
        explicit.fc.bias.clone(),
        net_ad.fc.bias.grad(&grads).unwrap(),
    );
    assert!(e < 1e-3, "{what}: fc bias gradient rel err {e}");
    let e = rel_err(
        explicit.deltas[0].clone().unwrap(),
        x_ad.grad(&grads).unwrap(),
    );
    assert!(e < 1e-3, "{what}: input gradient rel err {e}");
}

#[test]
fn resnet18_backprop_equals_autodiff_with_train_mode_batchnorm() {
    check(
        config(Depth::ResNet18, Stem::Cifar, 4, BnPosition::BeforeRelu),
        16,
    );
    // 64 pixels leave layer4 at 2x2: at 1x1 a BatchNorm shift feeding a conv and another
    // BatchNorm has an exactly zero gradient, and relative errors of zeros mean nothing.
    check(
        config(Depth::ResNet18, Stem::Imagenet, 4, BnPosition::AfterRelu),
        64,
    );
}

#[test]
fn resnet50_backprop_equals_autodiff_with_train_mode_batchnorm() {
    check(
        config(Depth::ResNet50, Stem::Cifar, 2, BnPosition::BeforeRelu),
        16,
    );
}

#[test]
fn a_cifar_resnet_backprop_equals_autodiff_with_train_mode_batchnorm() {
    // ResNet-14 (2 blocks per stage) at width 4.
    check(
        config(Depth::Cifar(2), Stem::Cifar, 4, BnPosition::BeforeRelu),
        16,
    );
}

#[test]
fn parameter_counts_match_the_built_networks_and_resnet20_has_the_papers_size() {
    let device = Device::flex();
    for (depth, width) in [
        (Depth::ResNet18, 4),
        (Depth::ResNet50, 2),
        (Depth::Cifar(3), 16),
    ] {
        let c = config(depth, Stem::Cifar, width, BnPosition::BeforeRelu);
        let net = c
            .init(&mut biofeedback::core::init::seeded_rng(1), &device)
            .unwrap();
        let mut built: u128 = net
            .units()
            .iter()
            .map(|u| (u.conv.weight.dims().iter().product::<usize>() + 2 * u.bn.channels()) as u128)
            .sum();
        built += (net.fc.weight.dims().iter().product::<usize>() + net.fc.bias.dims()[0]) as u128;
        assert_eq!(c.parameter_count(), built, "{depth:?}");
    }
    // He et al.: ResNet-20 has 0.27M parameters (their option-A shortcuts have none; the
    // two projections here add about 2.7k), with 10 classes.
    let mut c = config(Depth::Cifar(3), Stem::Cifar, 16, BnPosition::BeforeRelu);
    c.classes = 10;
    let n = c.parameter_count();
    assert!((268_000..276_000).contains(&n), "{n}");
    let net = c
        .init(&mut biofeedback::core::init::seeded_rng(1), &device)
        .unwrap();
    assert_eq!(
        net.units().len(),
        1 + 18 + 2,
        "stem, 9 blocks of 2 convs, 2 projections"
    );
}

#[test]
fn training_ignores_the_running_statistics() {
    let device = Device::flex();
    let mut rng = biofeedback::core::init::seeded_rng(6);
    let net = config(Depth::ResNet18, Stem::Cifar, 4, BnPosition::BeforeRelu)
        .init(&mut rng, &device)
        .unwrap();
    let mut garbage = net.clone();
    for unit in garbage.units_mut() {
        let c = unit.bn.channels();
        unit.bn.running_mean = Tensor::full([c], 37.0, &device);
        unit.bn.running_var = Tensor::full([c], 1e-4, &device);
    }
    let x = Tensor::<4>::random([4, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let (a, _) = net.forward_train(x.clone());
    let (b, _) = garbage.forward_train(x.clone());
    let e = rel_err(b, a);
    assert!(
        e < 1e-6,
        "training logits moved with the running statistics: {e}"
    );
    // Evaluation does read them.
    let e = rel_err(garbage.forward(x.clone()), net.forward(x));
    assert!(e > 0.1, "evaluation must use the running statistics: {e}");
}

#[test]
fn every_layer_has_its_torchvision_name() {
    let device = Device::flex();
    let mut rng = biofeedback::core::init::seeded_rng(7);
    let net = config(Depth::ResNet18, Stem::Cifar, 2, BnPosition::BeforeRelu)
        .init(&mut rng, &device)
        .unwrap();
    let names: Vec<String> = net.units().iter().map(|u| u.name.clone()).collect();
    assert_eq!(
        names.len(),
        20,
        "17 convs of the main path + 3 projection shortcuts"
    );
    assert_eq!(names[0], "conv1");
    assert!(names.contains(&"layer3.1.conv2".to_string()));
    assert!(names.contains(&"layer2.0.downsample".to_string()));
    assert!(!names.contains(&"layer1.0.downsample".to_string()));
}

/// Global delta angles of every layer of a small ResNet-18 trained with backprop through
/// BatchNorm feedback `mode`.
fn bp_delta_angles(mode: BnFeedback) -> Vec<f64> {
    let device = Device::flex();
    let mut c = config(Depth::ResNet18, Stem::Cifar, 4, BnPosition::BeforeRelu);
    c.bn_feedback = mode;
    let mut rng = biofeedback::core::init::seeded_rng(5);
    let net = c.init(&mut rng, &device).unwrap();
    let x = Tensor::<4>::random([8, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let t = one_hot(8, 5, &device);
    biofeedback::models::FeedbackNetwork::alignment(&net, Loss::CrossEntropy, x, t)
        .into_iter()
        .map(|l| l.delta_angle_global_deg)
        .collect()
}

#[test]
fn the_delta_angle_reference_is_exact_batchnorm_even_when_training_on_sigma() {
    let exact = bp_delta_angles(BnFeedback::Exact);
    assert!(
        exact.iter().all(|&a| a < 0.5),
        "bp with exact BatchNorm: {exact:?}"
    );
    let sigma = bp_delta_angles(BnFeedback::Sigma);
    // The deepest layers' deltas still agree; below the first BatchNorm the approximation
    // shows against the true gradient.
    let worst = sigma.iter().cloned().fold(0.0, f64::max);
    assert!(worst > 5.0, "bp with sigma BatchNorm: {sigma:?}");
}
