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
