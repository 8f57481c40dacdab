//! Element-wise activations with derivatives written in terms of their output.

use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

/// A hidden-layer nonlinearity `phi`.
///
/// The backward pass needs `phi'(z)`; each activation here expresses it through its output
/// `y = phi(z)`, so a layer caches only `y`:
/// - sigmoid: `phi' = y (1 - y)`
/// - tanh: `phi' = 1 - y^2`
/// - relu: `phi' = [y > 0]`
/// - identity: `phi' = 1`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The logistic function `1 / (1 + e^-z)` (the authors' numpy code uses it everywhere).
    Sigmoid,
    /// The hyperbolic tangent.
    Tanh,
    /// `max(z, 0)`.
    Relu,
    /// No nonlinearity (used for output layers).
    Identity,
}

impl Activation {
    /// `y = phi(z)`, any shape.
    pub fn forward<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Sigmoid => activation::sigmoid(z),
            Activation::Tanh => z.tanh(),
            Activation::Relu => activation::relu(z),
            Activation::Identity => z,
        }
    }

    /// `g * phi'(z)` given the output `y = phi(z)` and an upstream gradient `g` of the same
    /// shape.
    pub fn backward<const D: usize>(self, y: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Sigmoid => g * (y.clone() * (y.neg() + 1.0)),
            Activation::Tanh => g * (y.square().neg() + 1.0),
            // One pass on the CPU; Burn's ops elsewhere (wgpu), with the same result.
            Activation::Relu => match crate::cpu_fused::relu_backward(&y, g) {
                Ok(masked) => masked,
                Err(g) => g.mask_fill(y.lower_equal_elem(0.0), 0.0),
            },
            Activation::Identity => g,
        }
    }
}
