//! What every network of feedback layers offers, and SPEC section 4's alignment figures
//! written once for all of them.

use crate::loss::Loss;
use crate::mlp::Path;
use biofeedback_core::alignment;
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
/// ([`Path::Exact`]), and the alignment of every conv and linear layer.
pub trait FeedbackNetwork {
    /// The input: `[n, features]` for an MLP, `[n, c, h, w]` for a ResNet.
    type Input;
    /// What the backward pass needs from the forward pass.
    type Cache;
    /// Gradients and deltas of one backward pass.
    type Backward;

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
