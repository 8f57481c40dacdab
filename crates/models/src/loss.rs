//! Output losses with their gradient with respect to the logits.

use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

/// The training loss on the last layer's output `z` (`[batch, classes]`) against one-hot
/// targets `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy, averaged over the batch:
    /// `L = -mean_n sum_k t_nk log softmax(z_n)_k`, `dL/dz = (softmax(z) - t) / N`.
    CrossEntropy,
    /// The authors' numpy code: sigmoid outputs with the binary cross-entropy summed over
    /// classes, averaged over the batch:
    /// `L = mean_n sum_k [softplus(z) - t z]_nk`, `dL/dz = (sigmoid(z) - t) / N`.
    SigmoidBce,
}

impl Loss {
    /// The mean loss (a one-element tensor) and `dL/dz`.
    ///
    /// # Shapes
    /// `logits`, `targets`: `[batch, classes]` → (`[1]`, `[batch, classes]`).
    pub fn loss_and_grad(self, logits: Tensor<2>, targets: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let n = logits.dims()[0] as f64;
        match self {
            Loss::CrossEntropy => {
                let log_p = activation::log_softmax(logits, 1);
                let loss = (log_p.clone() * targets.clone()).sum().neg().div_scalar(n);
                (loss, (log_p.exp() - targets).div_scalar(n))
            }
            Loss::SigmoidBce => {
                // softplus(z) - t z, written stably as max(z, 0) + log(1 + e^-|z|) - t z.
                let per = logits.clone().clamp_min(0.0) + logits.clone().abs().neg().exp().log1p()
                    - logits.clone() * targets.clone();
                let loss = per.sum().div_scalar(n);
                (loss, (activation::sigmoid(logits) - targets).div_scalar(n))
            }
        }
    }

    /// The per-example loss on the host, from one row of logits and the true class.
    pub fn example_loss(self, logits: &[f32], label: usize) -> f64 {
        match self {
            Loss::CrossEntropy => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = logits
                    .iter()
                    .map(|&z| (z as f64 - max).exp())
                    .sum::<f64>()
                    .ln()
                    + max;
                lse - logits[label] as f64
            }
            Loss::SigmoidBce => logits
                .iter()
                .enumerate()
                .map(|(k, &z)| {
                    let z = z as f64;
                    let t = if k == label { 1.0 } else { 0.0 };
                    z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
                })
                .sum(),
        }
    }
}
