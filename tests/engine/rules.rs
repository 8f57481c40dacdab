//! The defining property of each learning rule.

use crate::common::{gaussian, one_hot, rng};
use biofeedback::core::alignment::angle_degrees;
use biofeedback::core::mirror::{MirrorConfig, mirror_step};
use biofeedback::core::tensor_io::to_vec;
use biofeedback::core::{Activation, Rule, Sgd, SgdConfig};
use biofeedback::models::{Loss, Mlp, MlpConfig, Path};
use burn::tensor::{Device, Tensor};

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

#[test]
fn wm_mirror_steps_alone_align_b_with_w_transpose() {
    let device = Device::flex();
    let mut config = MlpConfig::new(784, vec![500], 10);
    config.rule = Rule::Wm;
    let mut net = config.init(&mut rng(5), &device);
    let mirror = MirrorConfig {
        head_batch_size: None,
        eta: 0.02,
        decay: 0.01,
        batch_size: 256,
        noise_std: 1.0,
        rescale: false,
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

on_each_device! {
fn ss_sends_deltas_through_the_signs_of_w_only(device) {
    let mut net = mlp(Rule::Ss, 6, &device);
    train(&mut net, &mut sgd(0.9, false, 1e-3), 20, |_| {});
    // The delta the output layer sends down is `d · (s sign(W^T))^T` with one scale s: the
    // magnitudes of W play no part (a rule sending `d · W` would fail here).
    let out = &net.layers[1];
    let mut r = rng(8);
    let d = gaussian(3, out.d_out(), &mut r, &device);
    let x = gaussian(3, out.d_in(), &mut r, &device);
    let sent = to_vec(out.backward(x, d.clone(), true).delta_in.unwrap());
    let w = to_vec(out.weight.clone());
    let dv = to_vec(d);
    let (d_in, d_out) = (out.d_in(), out.d_out());
    let scale = to_vec(out.effective_feedback())
        .iter()
        .map(|v| v.abs())
        .fold(0.0f32, f32::max);
    assert!(scale > 0.0);
    for row in 0..3 {
        for i in 0..d_in {
            let expected: f32 = (0..d_out)
                .map(|j| dv[row * d_out + j] * scale * w[i * d_out + j].signum())
                .sum();
            let got = sent[row * d_in + i];
            assert!(
                (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                "row {row}, input {i}: sent {got}, sign feedback gives {expected}"
            );
        }
    }
    let b = to_vec(out.effective_feedback());
    assert!(
        b.iter().all(|v| (v.abs() - scale).abs() < 1e-6),
        "one magnitude for every element of B"
    );
}
}
on_each_device! {
fn delta_angles_equal_a_direct_computation(device) {
    let mut r = rng(17);
    let mut config = MlpConfig::new(6, vec![5], 3);
    config.rule = Rule::Fa;
    let mlp = config.init(&mut r, &device);
    let x = gaussian(4, 6, &mut r, &device);
    let t = one_hot(4, 3, &device);
    let rows = biofeedback::models::FeedbackNetwork::alignment(
        &mlp,
        Loss::CrossEntropy,
        x.clone(),
        t.clone(),
    );

    // By hand, on the host: storage holds W^T ([d_in, d_out]); a delta goes down as
    // `d · M^T` for the stored matrix M (B or W^T), then through ReLU's mask.
    let host = |t: Tensor<2>| {
        let [r, c] = t.dims();
        let v = to_vec(t);
        (0..r)
            .map(|i| v[i * c..(i + 1) * c].iter().map(|&x| x as f64).collect())
            .collect::<Vec<Vec<f64>>>()
    };
    let matmul_t = |a: &Vec<Vec<f64>>, m: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        a.iter()
            .map(|row| {
                m.iter()
                    .map(|mrow| row.iter().zip(mrow).map(|(p, q)| p * q).sum())
                    .collect()
            })
            .collect()
    };
    let angle = |a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>| {
        let (a, b): (Vec<f64>, Vec<f64>) = (a.concat(), b.concat());
        let dot: f64 = a.iter().zip(&b).map(|(p, q)| p * q).sum();
        let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
        let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
        (dot / (na * nb)).clamp(-1.0, 1.0).acos().to_degrees()
    };
    let (l1, l2) = (&mlp.layers[0], &mlp.layers[1]);
    let h = host((x.matmul(l1.weight.clone()) + l1.bias.clone().unsqueeze::<2>()).clamp_min(0.0));
    let logits = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(
            h.concat().iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [4, 5],
        ),
        &device,
    )
    .matmul(l2.weight.clone())
        + l2.bias.clone().unsqueeze::<2>();
    let (_, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, t);
    let g = host(dlogits);
    let (w1, b1) = (
        host(l1.weight.clone()),
        host(l1.feedback.stored().cloned().unwrap()),
    );
    let (w2, b2) = (
        host(l2.weight.clone()),
        host(l2.feedback.stored().cloned().unwrap()),
    );
    let mask = |d: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        d.iter()
            .zip(&h)
            .map(|(dr, hr)| {
                dr.iter()
                    .zip(hr)
                    .map(|(v, hv)| if *hv > 0.0 { *v } else { 0.0 })
                    .collect()
            })
            .collect()
    };
    let own2 = mask(matmul_t(&g, &b2));
    let exact2 = mask(matmul_t(&g, &w2));
    let own1 = matmul_t(&own2, &b1);
    let exact1 = matmul_t(&exact2, &w1);
    let local1 = (matmul_t(&own2, &b1), matmul_t(&own2, &w1));
    let expected = [
        (angle(&own1, &exact1), angle(&local1.0, &local1.1)),
        (angle(&own2, &exact2), angle(&own2, &exact2)),
    ];
    for (row, (global, local)) in rows.iter().zip(expected) {
        assert!(
            (row.delta_angle_global_deg - global).abs() < 1e-2
                && (row.delta_angle_local_deg - local).abs() < 1e-2,
            "{}: global {} local {} against {global} {local}",
            row.layer,
            row.delta_angle_global_deg,
            row.delta_angle_local_deg
        );
        assert!(
            global > 1.0,
            "{}: fa's delta differs from backprop's",
            row.layer
        );
    }
}
}

on_each_device! {
/// Direct feedback alignment: every layer receives the output error `e` through its own
/// fixed `B_l` of shape `[width_l, classes]`, `delta_l = phi'(.) * (e · B_l^T)`, whatever the
/// layers above it do; the `B_l` never change while `W` learns.
fn dfa_sends_the_output_error_to_every_layer_through_its_own_fixed_b(device) {
    let mut config = MlpConfig::new(20, vec![16, 12], 5);
    config.rule = Rule::Dfa;
    let mut net = config.init(&mut rng(7), &device);
    let shapes: Vec<[usize; 2]> = net
        .layers
        .iter()
        .map(|l| l.feedback.stored().unwrap().dims())
        .collect();
    assert_eq!(shapes, [[20, 5], [16, 5], [12, 5]]);
    let before: Vec<Vec<f32>> = net
        .layers
        .iter()
        .map(|l| to_vec(l.effective_feedback()))
        .collect();
    let w0 = to_vec(net.layers[1].weight.clone());
    let mut three = sgd(0.9, false, 1e-3);
    three.state.push(Default::default());
    train(&mut net, &mut three, 10, |_| {});
    assert_ne!(to_vec(net.layers[1].weight.clone()), w0, "W learns");
    for (l, b) in net.layers.iter().zip(&before) {
        assert_eq!(&to_vec(l.effective_feedback()), b, "B_l is fixed");
    }

    let mut r = rng(8);
    let x = gaussian(4, 20, &mut r, &device);
    let (logits, cache) = net.forward_train(x);
    let (_, e) = Loss::CrossEntropy.loss_and_grad(logits, one_hot(4, 5, &device));
    let own = net.backward(&cache, e.clone(), Path::Own, true);
    let exact = net.backward(&cache, e.clone(), Path::Exact, true);
    for (k, layer) in net.layers.iter().enumerate() {
        let sent = e.clone().matmul(layer.effective_feedback().transpose());
        let expected = match k {
            0 => sent,
            _ => Activation::Relu.backward(cache.inputs[k].clone(), sent),
        };
        let got = own.deltas[k].clone().unwrap();
        assert!(
            crate::common::rel_err(got.clone(), expected) < 1e-6,
            "layer {k}: delta is phi' * (e B_l^T)"
        );
        let off = angle_degrees(got, exact.deltas[k].clone().unwrap());
        assert!(
            off > 1.0,
            "layer {k}: not backprop's delta ({off:.2} degrees)"
        );
    }
}
}
