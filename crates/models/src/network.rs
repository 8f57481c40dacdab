//! What every network of feedback layers offers, and SPEC section 4's alignment figures
//! written once for all of them.

use crate::loss::Loss;
use crate::mlp::Path;
use biofeedback_core::init::Rng;
use biofeedback_core::{Activation, MirrorConfig, SgdConfig, Visitor, alignment};
use burn::tensor::Tensor;
use serde::Serialize;

/// Alignment of one layer's feedback with backprop (SPEC section 4), in degrees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerAlignment {
    /// Layer name (`fc1`, `fc2`, ... for an MLP; `conv1`, `layer1.0.conv1`, ..., `fc` for a
    /// ResNet).
    pub layer: String,
    /// Angle between `vec(B)` and `vec(W^T)`; NaN where `B` is not of `W^T`'s shape (`dfa`).
    pub weight_angle_deg: f64,
    /// Angle between the rule's `delta` at this layer's input and exact backprop's, on the
    /// same batch (whole batch as one vector).
    pub delta_angle_global_deg: f64,
    /// Angle between what the layer sends down through `B` and what the same upstream
    /// `delta` gives through `W^T`.
    pub delta_angle_local_deg: f64,
    /// `|B| / |W|`; NaN for `dfa`.
    pub norm_ratio: f64,
}

impl LayerAlignment {
    /// One layer's figures from its tensors: `B` and `W` (the weight angle and norm ratio
    /// are NaN where their shapes differ), the rule's and backprop's deltas at the layer's
    /// input, and the `local` pair (the layer's own signal through `B`, the same upstream
    /// delta through `W^T`).
    pub fn measure<const D: usize, const E: usize>(
        layer: String,
        feedback: Tensor<D>,
        weight: Tensor<D>,
        own: Tensor<E>,
        exact: Tensor<E>,
        local: (Tensor<E>, Tensor<E>),
    ) -> Self {
        let comparable = feedback.dims() == weight.dims();
        Self {
            layer,
            weight_angle_deg: match comparable {
                true => alignment::angle_degrees(feedback.clone(), weight.clone()),
                false => f64::NAN,
            },
            delta_angle_global_deg: alignment::angle_degrees(own, exact),
            delta_angle_local_deg: alignment::angle_degrees(local.0, local.1),
            norm_ratio: match comparable {
                true => alignment::norm_ratio(feedback, weight),
                false => f64::NAN,
            },
        }
    }
}

/// A network of feedback layers: the evaluation forward, the training forward with its
/// cache, the explicit backward through each layer's `B` ([`Path::Own`]) or `W^T`
/// ([`Path::Exact`]), a training step with its SGD state, mirror mode, brsf's redraw, a visit
/// of every named tensor, and the alignment of every conv and linear layer. A trainer written
/// against it trains any network (`biofeedback_trainer::network`).
pub trait FeedbackNetwork {
    /// The input: `[n, features]` for an MLP, `[n, c, h, w]` for a ResNet.
    type Input;
    /// What the backward pass needs from the forward pass.
    type Cache;
    /// Gradients and deltas of one backward pass.
    type Backward;
    /// SGD state: the velocities of every parameter (and of Kolen-Pollack's `B`).
    type Optim: Clone + std::fmt::Debug;

    /// Flattened examples `[n, c h w]` (channel-major) of image shape `[c, h, w]` in this
    /// network's input layout.
    fn input(x: Tensor<2>, shape: [usize; 3]) -> Self::Input;

    /// Fresh SGD state (no velocities yet).
    fn optim(&self, config: SgdConfig) -> Self::Optim;

    /// One training step from a training-mode forward pass: the rule's own backward from
    /// `dlogits`, BatchNorm's running statistics (where there is BatchNorm), and SGD with
    /// learning rate `lr` on every parameter (and Kolen-Pollack's `B`).
    fn train_step(
        &mut self,
        optim: &mut Self::Optim,
        cache: Self::Cache,
        dlogits: Tensor<2>,
        lr: f64,
    );

    /// One mirror step for every layer, input first (only weight mirrors' `B` learns): noise
    /// from `rng` through the layer and its nonlinearity, `output` for the output layer.
    fn mirror(&mut self, config: &MirrorConfig, output: Activation, rng: &mut Rng);

    /// Whether any layer's feedback draws after every step (brsf).
    fn redraws(&self) -> bool;

    /// Every layer's [`biofeedback_core::Feedback::redraw`], input first.
    fn redraw(&mut self, rng: &mut Rng);

    /// Every tensor of the network (`model.<layer>.*`) and of its SGD state
    /// (`optim.<layer>.*`), with the layer names of [`LayerAlignment`].
    fn visit(&mut self, optim: &mut Self::Optim, f: &mut Visitor<'_>);

    /// One line describing the architecture.
    fn describe(&self) -> String;

    /// Logits in evaluation mode, `[n, classes]`.
    fn forward(&self, x: Self::Input) -> Tensor<2>;

    /// Logits in training mode and the cache for [`FeedbackNetwork::backward`].
    fn forward_train(&self, x: Self::Input) -> (Tensor<2>, Self::Cache);

    /// The explicit backward pass from `dlogits` (`[n, classes]`); `input_delta` asks for the
    /// delta at the first layer's input too.
    fn backward(
        &self,
        cache: &Self::Cache,
        dlogits: Tensor<2>,
        path: Path,
        input_delta: bool,
    ) -> Self::Backward;

    /// Every conv and linear layer's figures, input first, from a training-mode forward
    /// pass's cache and the loss gradient at the logits.
    fn layer_alignment(&self, cache: &Self::Cache, dlogits: Tensor<2>) -> Vec<LayerAlignment>;

    /// The alignment figures on the batch `(x, t)` (SPEC section 4): one training-mode
    /// forward pass, the loss gradient, then [`FeedbackNetwork::layer_alignment`].
    fn alignment(&self, loss: Loss, x: Self::Input, t: Tensor<2>) -> Vec<LayerAlignment> {
        let (logits, cache) = self.forward_train(x);
        let (_, dlogits) = loss.loss_and_grad(logits, t);
        self.layer_alignment(&cache, dlogits)
    }
}
