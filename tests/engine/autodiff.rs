//! Backprop mode of the explicit backward pass equals Burn's autodiff gradients.

use crate::common::{gaussian, one_hot, rel_err, rng};
use biofeedback::core::{Activation, Rule};
use biofeedback::models::{Loss, Mlp, MlpConfig, Path};
use burn::tensor::{Device, Tensor};

fn to_device<const D: usize>(t: &Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), device).require_grad()
}

fn check(activation: Activation, loss: Loss) {
    let device = Device::flex();
    let mut r = rng(11);
    let mut config = MlpConfig::new(13, vec![11, 9], 5);
    config.activation = activation;
    let mlp = config.init(&mut r, &device);
    let x = gaussian(8, 13, &mut r, &device);
    let t = one_hot(8, 5, &device);

    let (logits, cache) = mlp.forward_train(x.clone());
    let (_, dlogits) = loss.loss_and_grad(logits, t.clone());
    let explicit = mlp.backward(&cache, dlogits, Path::Own, true);

    let ad = device.clone().autodiff();
    let mut mlp_ad: Mlp = mlp.clone();
    for layer in &mut mlp_ad.layers {
        layer.weight = to_device(&layer.weight, &ad);
        layer.bias = to_device(&layer.bias, &ad);
    }
    let x_ad = to_device(&x, &ad);
    let (logits, _) = mlp_ad.forward_train(x_ad.clone());
    let (loss_value, _) = loss.loss_and_grad(logits, Tensor::from_data(t.to_data(), &ad));
    let grads = loss_value.backward();

    for (k, (layer, g)) in mlp_ad.layers.iter().zip(&explicit.grads).enumerate() {
        let w = layer.weight.grad(&grads).expect("weight is tracked");
        let b = layer.bias.grad(&grads).expect("bias is tracked");
        let ew = rel_err(g.weight.clone(), w);
        let eb = rel_err(g.bias.clone(), b);
        assert!(
            ew < 1e-4,
            "{activation:?} {loss:?} layer {k} weight grad rel err {ew}"
        );
        assert!(
            eb < 1e-4,
            "{activation:?} {loss:?} layer {k} bias grad rel err {eb}"
        );
    }
    let dx = x_ad.grad(&grads).expect("input is tracked");
    let ex = rel_err(explicit.deltas[0].clone().unwrap(), dx);
    assert!(ex < 1e-4, "{activation:?} {loss:?} input grad rel err {ex}");
}

#[test]
fn bp_matches_autodiff_for_every_activation_and_loss() {
    for activation in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for loss in [Loss::CrossEntropy, Loss::SigmoidBce] {
            check(activation, loss);
        }
    }
}

#[test]
fn fa_with_b_set_to_w_transpose_equals_bp() {
    let device = Device::flex();
    let mut r = rng(12);
    let mut config = MlpConfig::new(10, vec![8], 4);
    config.rule = Rule::Fa;
    let mut fa = config.init(&mut r, &device);
    let x = gaussian(6, 10, &mut r, &device);
    let t = one_hot(6, 4, &device);
    let (logits, cache) = fa.forward_train(x.clone());
    let (_, d) = Loss::CrossEntropy.loss_and_grad(logits, t.clone());
    let before = fa.backward(&cache, d.clone(), Path::Own, true);
    let exact = fa.backward(&cache, d.clone(), Path::Exact, true);
    assert!(
        rel_err(
            before.deltas[0].clone().unwrap(),
            exact.deltas[0].clone().unwrap()
        ) > 1e-2
    );
    for layer in &mut fa.layers {
        *layer.feedback.stored_mut().unwrap() = layer.weight.clone();
    }
    let after = fa.backward(&cache, d, Path::Own, true);
    for k in 0..2 {
        assert_eq!(
            after.deltas[k].clone().unwrap().to_data(),
            exact.deltas[k].clone().unwrap().to_data()
        );
        assert_eq!(
            after.grads[k].weight.to_data(),
            exact.grads[k].weight.to_data()
        );
    }
}
