//! The defining property of each learning rule.

use crate::common::{gaussian, one_hot, rng};
use biofeedback::core::alignment::{angle_degrees, norm};
use biofeedback::core::mirror::{MirrorConfig, mirror_step};
use biofeedback::core::tensor_io::to_vec;
use biofeedback::core::{Activation, Rule, Sgd, SgdConfig};
use biofeedback::models::{Loss, Mlp, MlpConfig, Path};
use burn::tensor::Device;

fn mlp(rule: Rule, seed: u64, device: &Device) -> Mlp {
    let mut config = MlpConfig::new(20, vec![16], 5);
    config.rule = rule;
    config.init(&mut rng(seed), device)
}

/// `steps` SGD steps on a fixed random batch; `after_step` sees the network after each.
fn train(mlp: &mut Mlp, sgd: &mut Sgd, steps: usize, mut after_step: impl FnMut(&Mlp)) {
    let device = mlp.layers[0].weight.device();
    let mut r = rng(99);
    let x = gaussian(32, 20, &mut r, &device);
    let t = one_hot(32, 5, &device);
    for _ in 0..steps {
        let (logits, cache) = mlp.forward_train(x.clone());
        let (_, d) = Loss::CrossEntropy.loss_and_grad(logits, t.clone());
        let back = mlp.backward(&cache, d, Path::Own, false);
        for (k, g) in back.grads.into_iter().enumerate() {
            sgd.step(k, &mut mlp.layers[k], g, 0.1);
        }
        after_step(mlp);
    }
}

fn sgd(momentum: f64, nesterov: bool, weight_decay: f64) -> Sgd {
    Sgd::new(
        SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        },
        2,
    )
}

fn w_minus_b(mlp: &Mlp) -> Vec<f64> {
    mlp.layers
        .iter()
        .map(|l| norm(l.weight.clone() - l.effective_feedback()))
        .collect()
}

#[test]
fn fa_never_changes_b_while_w_learns() {
    let device = Device::flex();
    let mut net = mlp(Rule::Fa, 1, &device);
    let b0: Vec<_> = net
        .layers
        .iter()
        .map(|l| to_vec(l.effective_feedback()))
        .collect();
    let w0: Vec<_> = net
        .layers
        .iter()
        .map(|l| to_vec(l.weight.clone()))
        .collect();
    train(&mut net, &mut sgd(0.9, true, 1e-3), 20, |_| {});
    for (k, l) in net.layers.iter().enumerate() {
        assert_eq!(
            to_vec(l.effective_feedback()),
            b0[k],
            "layer {k}: B changed"
        );
        assert_ne!(
            to_vec(l.weight.clone()),
            w0[k],
            "layer {k}: W did not learn"
        );
    }
}

#[test]
fn kp_difference_shrinks_by_one_minus_lr_lambda_each_plain_sgd_step() {
    let device = Device::flex();
    let mut net = mlp(Rule::Kp, 2, &device);
    let mut prev = w_minus_b(&net);
    train(&mut net, &mut sgd(0.0, false, 0.05), 30, |m| {
        let now = w_minus_b(m);
        for k in 0..2 {
            let ratio = now[k] / prev[k];
            assert!(
                (ratio - 0.995).abs() < 1e-4,
                "layer {k}: ratio {ratio}, expected 0.995"
            );
        }
        prev = now;
    });
}

#[test]
fn kp_difference_stays_without_decay() {
    let device = Device::flex();
    let mut net = mlp(Rule::Kp, 3, &device);
    let start = w_minus_b(&net);
    train(&mut net, &mut sgd(0.9, false, 0.0), 50, |_| {});
    for (k, (now, start)) in w_minus_b(&net).iter().zip(&start).enumerate() {
        assert!(
            (now / start - 1.0).abs() < 1e-4,
            "layer {k}: {start} -> {now}"
        );
    }
}

#[test]
fn kp_difference_decays_geometrically_under_nesterov_momentum() {
    let device = Device::flex();
    let mut net = mlp(Rule::Kp, 4, &device);
    let start = w_minus_b(&net);
    let mut history = Vec::new();
    train(&mut net, &mut sgd(0.9, true, 0.05), 200, |m| {
        history.push(w_minus_b(m))
    });
    for k in 0..2 {
        // lr * lambda / (1 - mu) = 0.05 per step asymptotically: e^-10 after 200 steps.
        let end = history.last().unwrap()[k] / start[k];
        assert!(
            end < 1e-3,
            "layer {k}: |W - B^T| only fell to {end} of its start"
        );
        let half = history[99][k] / start[k];
        assert!(
            end < half * half * 10.0,
            "layer {k}: not geometric ({half} then {end})"
        );
    }
    let angle = angle_degrees(
        net.layers[1].effective_feedback(),
        net.layers[1].weight.clone(),
    );
    assert!(angle < 1.0, "output layer still {angle} degrees from W^T");
}

#[test]
fn wm_mirror_steps_alone_align_b_with_w_transpose() {
    let device = Device::flex();
    let mut config = MlpConfig::new(784, vec![500], 10);
    config.rule = Rule::Wm;
    let mut net = config.init(&mut rng(5), &device);
    let mirror = MirrorConfig {
        eta: 0.02,
        decay: 0.01,
        batch_size: 256,
        noise_std: 1.0,
    };
    let angles = |m: &Mlp| -> Vec<f64> {
        m.layers
            .iter()
            .map(|l| angle_degrees(l.effective_feedback(), l.weight.clone()))
            .collect()
    };
    for (k, a) in angles(&net).iter().enumerate() {
        assert!((80.0..100.0).contains(a), "layer {k} starts at {a} degrees");
    }
    let activations = [Activation::Relu, Activation::Identity];
    let mut noise = rng(6);
    for _ in 0..800 {
        for (layer, act) in net.layers.iter_mut().zip(activations) {
            mirror_step(layer, act, &mirror, &mut noise);
        }
    }
    for (k, a) in angles(&net).iter().enumerate() {
        assert!(*a < 10.0, "layer {k} ends at {a} degrees after mirroring");
    }
}

#[test]
fn ss_feedback_keeps_the_signs_of_w_transpose_while_training() {
    let device = Device::flex();
    let mut net = mlp(Rule::Ss, 6, &device);
    train(&mut net, &mut sgd(0.9, false, 1e-3), 20, |m| {
        for l in &m.layers {
            let w = to_vec(l.weight.clone());
            let b = to_vec(l.effective_feedback());
            assert!(
                w.iter()
                    .zip(&b)
                    .all(|(w, b)| w.signum() == b.signum() || *w == 0.0)
            );
        }
    });
}
