//! Stochastic gradient descent with momentum (optionally Nesterov) and L2 weight decay, applied
//! to forward weights and, for Kolen-Pollack, to the feedback tensors.

use crate::batchnorm::{BatchNorm2d, BnBackward};
use crate::conv::FeedbackConv2d;
use crate::feedback::Feedback;
use crate::linear::{FeedbackLinear, LinearGrads};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`Sgd`] (PyTorch's `torch.optim.SGD` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum `mu` (0 for plain SGD).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay `lambda`, applied to weights and feedback tensors, not to biases.
    pub weight_decay: f64,
}

/// The velocity buffers of one [`FeedbackLinear`].
#[derive(Debug, Clone, Default)]
pub struct LinearMomentum {
    /// Velocity of `weight`.
    pub weight: Option<Tensor<2>>,
    /// Velocity of `bias`.
    pub bias: Option<Tensor<1>>,
    /// Velocity of Kolen-Pollack's `B`: its own state, as the paper requires.
    pub feedback: Option<Tensor<2>>,
}

/// SGD over a list of feedback layers.
///
/// For a parameter `p` with gradient `g` (PyTorch's update):
///
/// ```text
/// g' = g + lambda p                 (weights and B only)
/// v  = mu v + g'                    (v = g' on the first step)
/// p  = p - lr (g' + mu v)           (Nesterov)   or   p - lr v   (classical)
/// ```
///
/// **Kolen-Pollack.** `B` receives the transposed forward update: in this crate's storage
/// (`B` and `weight` both of `W^T`'s shape) its gradient is the weight gradient itself, and it
/// gets the same decay with its own velocity. Then `D = weight - B` obeys
/// `D' = D - lr (lambda D + mu V_D ...)`: with plain SGD `D' = (1 - lr lambda) D`, so `B`
/// converges to `W^T` exactly when `lambda > 0`.
#[derive(Debug, Clone)]
pub struct Sgd {
    /// The hyper-parameters.
    pub config: SgdConfig,
    /// One velocity set per layer.
    pub state: Vec<LinearMomentum>,
}

impl Sgd {
    /// An optimizer for `layers` layers.
    pub fn new(config: SgdConfig, layers: usize) -> Self {
        Self {
            config,
            state: vec![LinearMomentum::default(); layers],
        }
    }

    /// Applies one update with learning rate `lr` to layer `index`.
    pub fn step(&mut self, index: usize, layer: &mut FeedbackLinear, grads: LinearGrads, lr: f64) {
        let config = self.config;
        let state = &mut self.state[index];
        step_weight_and_feedback(
            (&mut layer.weight, &mut layer.feedback),
            grads.weight,
            (&mut state.weight, &mut state.feedback),
            config,
            lr,
        );
        layer
            .bias
            .inplace(|b| update(b, grads.bias, &mut state.bias, config, lr, false));
    }
}

/// One update of a weight with gradient `grad` and, for Kolen-Pollack, of its `B` with the
/// same gradient and decay and its own velocity (any rank; see [`Sgd`]).
fn step_weight_and_feedback<const D: usize>(
    (weight, feedback): (&mut Tensor<D>, &mut Feedback<D>),
    grad: Tensor<D>,
    (v_weight, v_feedback): (&mut Option<Tensor<D>>, &mut Option<Tensor<D>>),
    config: SgdConfig,
    lr: f64,
) {
    if let Some(b) = feedback.sgd_mut() {
        b.inplace(|b| update(b, grad.clone(), v_feedback, config, lr, true));
    }
    // `inplace` moves the weight out (a zero-element placeholder stays behind), so the update
    // holds its only handle and the backend may write the result into its buffer; a clone
    // left in the layer would force a copy of every parameter on every step.
    weight.inplace(|w| update(w, grad, v_weight, config, lr, true));
}

/// One SGD update of `param` (any rank); see [`Sgd`] for the equations.
pub fn update<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: &mut Option<Tensor<D>>,
    config: SgdConfig,
    lr: f64,
    decay: bool,
) -> Tensor<D> {
    // One pass on the CPU; Burn's ops elsewhere (wgpu), with the same result.
    match crate::cpu_fused::sgd_update(param, &grad, velocity, config, lr, decay) {
        Ok(updated) => updated,
        Err(param) => update_by_ops(param, grad, velocity, config, lr, decay),
    }
}

/// [`update`] as Burn's element-wise ops, on any backend.
pub(crate) fn update_by_ops<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: &mut Option<Tensor<D>>,
    config: SgdConfig,
    lr: f64,
    decay: bool,
) -> Tensor<D> {
    let grad = if decay && config.weight_decay != 0.0 {
        grad + param.clone().mul_scalar(config.weight_decay)
    } else {
        grad
    };
    let step = if config.momentum != 0.0 {
        let v = match velocity.take() {
            Some(v) => v.mul_scalar(config.momentum) + grad.clone(),
            None => grad.clone(),
        };
        *velocity = Some(v.clone());
        if config.nesterov {
            grad + v.mul_scalar(config.momentum)
        } else {
            v
        }
    } else {
        grad
    };
    param - step.mul_scalar(lr)
}

/// The velocity buffers of one [`FeedbackConv2d`].
#[derive(Debug, Clone, Default)]
pub struct ConvMomentum {
    /// Velocity of `weight`.
    pub weight: Option<Tensor<4>>,
    /// Velocity of Kolen-Pollack's `B`.
    pub feedback: Option<Tensor<4>>,
}

/// The velocity buffers of one [`BatchNorm2d`].
#[derive(Debug, Clone, Default)]
pub struct BnMomentum {
    /// Velocity of `gamma`.
    pub gamma: Option<Tensor<1>>,
    /// Velocity of `beta`.
    pub beta: Option<Tensor<1>>,
}

/// One update of a conv layer with kernel gradient `grad`; Kolen-Pollack's `B` gets the same
/// gradient, decay and its own velocity, as in [`Sgd`].
pub fn step_conv(
    config: SgdConfig,
    layer: &mut FeedbackConv2d,
    grad: Tensor<4>,
    state: &mut ConvMomentum,
    lr: f64,
) {
    step_weight_and_feedback(
        (&mut layer.weight, &mut layer.feedback),
        grad,
        (&mut state.weight, &mut state.feedback),
        config,
        lr,
    );
}

/// One update of a BatchNorm layer's `gamma` and `beta` (no weight decay on them, the usual
/// practice for normalization parameters).
pub fn step_bn(
    config: SgdConfig,
    bn: &mut BatchNorm2d,
    grads: &BnBackward,
    state: &mut BnMomentum,
    lr: f64,
) {
    bn.gamma
        .inplace(|g| update(g, grads.gamma.clone(), &mut state.gamma, config, lr, false));
    bn.beta
        .inplace(|b| update(b, grads.beta.clone(), &mut state.beta, config, lr, false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alignment::{angle_degrees, norm};
    use crate::init::{Init, gaussian, seeded_rng};
    use crate::rule::Rule;
    use crate::tensor_io::to_vec;
    use burn::tensor::Device;

    /// One 20-5 layer of `rule` trained by `steps` SGD steps (lr 0.1) on a fixed regression
    /// batch; `after_step` sees it after each.
    fn trained(
        rule: Rule,
        config: SgdConfig,
        steps: usize,
        mut after_step: impl FnMut(&FeedbackLinear),
    ) -> FeedbackLinear {
        let device = Device::flex();
        let mut rng = seeded_rng(3);
        let mut layer = FeedbackLinear::new(20, 5, rule, Init::HeUniform, &mut rng, &device);
        let x = gaussian([32, 20], 1.0, &mut rng, &device);
        let target = gaussian([32, 5], 1.0, &mut rng, &device);
        let mut sgd = Sgd::new(config, 1);
        for _ in 0..steps {
            let delta = (layer.forward(x.clone()) - target.clone()).div_scalar(32.0);
            let back = layer.backward(x.clone(), delta, false);
            sgd.step(0, &mut layer, back.grads, 0.1);
            after_step(&layer);
        }
        layer
    }

    fn config(momentum: f64, nesterov: bool, weight_decay: f64) -> SgdConfig {
        SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        }
    }

    /// `|W - B^T|` (in this storage `|weight - B|`).
    fn difference(layer: &FeedbackLinear) -> f64 {
        norm(layer.weight.clone() - layer.effective_feedback())
    }

    /// Only Kolen-Pollack's `B` is trained by SGD; every other stored tensor (fa's and dfa's
    /// `B`, the mirror's, the sign family's magnitudes) stays as drawn while `W` learns.
    #[test]
    fn sgd_changes_only_kolen_pollacks_b_and_every_weight() {
        for rule in Rule::ALL {
            let fresh = trained(rule, config(0.9, true, 1e-3), 0, |_| {});
            let layer = trained(rule, config(0.9, true, 1e-3), 20, |_| {});
            assert_ne!(
                to_vec(layer.weight.clone()),
                to_vec(fresh.weight.clone()),
                "{rule}"
            );
            if let (Some(b0), Some(b)) = (fresh.feedback.stored(), layer.feedback.stored()) {
                let same = to_vec(b0.clone()) == to_vec(b.clone());
                assert_eq!(same, rule != Rule::Kp, "{rule}: B changed by SGD");
            }
        }
    }

    /// Kolen-Pollack with plain SGD: `W - B^T` shrinks by exactly `1 - lr lambda` per step.
    #[test]
    fn kp_difference_shrinks_by_one_minus_lr_lambda_each_plain_sgd_step() {
        let mut prev = difference(&trained(Rule::Kp, config(0.0, false, 0.05), 0, |_| {}));
        trained(Rule::Kp, config(0.0, false, 0.05), 30, |layer| {
            let now = difference(layer);
            let ratio = now / prev;
            assert!(
                (ratio - 0.995).abs() < 1e-4,
                "ratio {ratio}, expected 0.995"
            );
            prev = now;
        });
    }

    /// Without decay the initial difference never shrinks (the authors' numpy code's defect).
    #[test]
    fn kp_difference_stays_without_decay() {
        let start = difference(&trained(Rule::Kp, config(0.9, false, 0.0), 0, |_| {}));
        let end = difference(&trained(Rule::Kp, config(0.9, false, 0.0), 50, |_| {}));
        assert!((end / start - 1.0).abs() < 1e-4, "{start} -> {end}");
    }

    /// With Nesterov momentum `B` gets its own velocity and the difference still decays
    /// geometrically, at `lr lambda / (1 - mu) = 0.05` per step asymptotically.
    #[test]
    fn kp_difference_decays_geometrically_under_nesterov_momentum() {
        let start = difference(&trained(Rule::Kp, config(0.9, true, 0.05), 0, |_| {}));
        let mut history = Vec::new();
        let layer = trained(Rule::Kp, config(0.9, true, 0.05), 200, |l| {
            history.push(difference(l))
        });
        let (half, end) = (history[99] / start, history[199] / start);
        assert!(end < 1e-3, "|W - B^T| only fell to {end} of its start");
        assert!(
            end < half * half * 10.0,
            "not geometric ({half} then {end})"
        );
        let angle = angle_degrees(layer.effective_feedback(), layer.weight.clone());
        assert!(angle < 1.0, "still {angle} degrees from W^T");
    }

    /// Three SGD updates of `[0.5, -1, 2, 0.25]` with fixed gradients, lr 0.1, momentum 0.9.
    fn three_updates(nesterov: bool, weight_decay: f64, decay: bool) -> Vec<f32> {
        let device = Device::flex();
        let tensor = |v: [f32; 4]| Tensor::<1>::from_floats(v, &device);
        let config = SgdConfig {
            momentum: 0.9,
            nesterov,
            weight_decay,
        };
        let mut p = tensor([0.5, -1.0, 2.0, 0.25]);
        let mut velocity = None;
        for g in [
            [0.3, -0.2, 0.1, 0.0],
            [-0.5, 0.4, 0.2, 1.0],
            [0.05, 0.05, -0.3, -0.7],
        ] {
            p = update(p, tensor(g), &mut velocity, config, 0.1, decay);
        }
        to_vec(p)
    }

    #[test]
    fn sgd_matches_pytorch_with_nesterov_momentum_and_weight_decay() {
        // torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=..., weight_decay=...), float64, the
        // same three gradients (computed with PyTorch 2.15).
        let cases: [(bool, f64, bool, [f64; 4]); 3] = [
            (
                true,
                0.01,
                true,
                [
                    0.5189406848005,
                    -1.041146323961,
                    1.952514913692,
                    0.11035222528525,
                ],
            ),
            (
                false,
                0.01,
                true,
                [0.5059613695, -1.021230779, 1.953747588, 0.12869869975],
            ),
            // A bias: no decay even when weight_decay is set.
            (true, 0.01, false, [0.52283, -1.04912, 1.96841, 0.112]),
        ];
        for (nesterov, wd, decay, expected) in cases {
            let got = three_updates(nesterov, wd, decay);
            for (g, e) in got.iter().zip(expected) {
                assert!(
                    (*g as f64 - e).abs() < 1e-6,
                    "nesterov {nesterov}, decay {decay}: {got:?} against PyTorch's {expected:?}"
                );
            }
        }
    }
}
