//! The `wgpu` device gives the CPU's result for one training step of the MLP, under every
//! rule.
//!
//! Runs on a real GPU or on Mesa's software drivers (`.ci/run` installs them). Without any
//! wgpu adapter the test fails and says so.

use crate::common::{gaussian, one_hot, rel_err, rng};
use biofeedback::core::{Rule, Sgd, SgdConfig};
use biofeedback::models::{Loss, MlpConfig, Path};
use biofeedback::trainer::device::DeviceChoice;
use burn::tensor::{Device, Tensor};
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
