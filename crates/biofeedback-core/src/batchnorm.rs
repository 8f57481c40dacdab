//! BatchNorm over the channels of `[n, c, h, w]` maps, with the two feedback modes of
//! SPEC section 2.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// How the teaching signal crosses a BatchNorm layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnFeedback {
    /// The full BatchNorm backward with the forward batch statistics (what every peer
    /// library computes):
    /// `dx = gamma / sigma * (delta - mean(delta) - x_hat * mean(delta * x_hat))`.
    #[default]
    Exact,
    /// The paper's feedback neurons receive only the forward `sigma`:
    /// `dx = delta * gamma / sigma`.
    Sigma,
}

/// Train-mode BatchNorm2d: normalizes with the statistics of the batch it is given, and keeps
/// running statistics (PyTorch's convention: `momentum` 0.1, unbiased running variance) for
/// evaluation only.
///
/// ```text
/// mu, var = mean and biased variance of x over (n, h, w), per channel
/// sigma   = sqrt(var + eps),   x_hat = (x - mu) / sigma,   y = gamma x_hat + beta
/// ```
///
/// Training uses [`BatchNorm2d::forward_train`], evaluation [`BatchNorm2d::forward_eval`]; no
/// method mixes them, so running statistics cannot leak into training.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    /// Scale, `[c]`.
    pub gamma: Tensor<1>,
    /// Shift, `[c]`.
    pub beta: Tensor<1>,
    /// Running mean, `[c]` (evaluation only).
    pub running_mean: Tensor<1>,
    /// Running variance, `[c]` (evaluation only).
    pub running_var: Tensor<1>,
    /// Weight of the newest batch in the running statistics.
    pub momentum: f64,
    /// `eps` added to the variance.
    pub eps: f64,
}

/// What the backward pass of [`BatchNorm2d`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct BnCache {
    /// `x_hat`, `[n, c, h, w]`.
    pub x_hat: Tensor<4>,
    /// `sigma = sqrt(var + eps)`, `[1, c, 1, 1]`.
    pub sigma: Tensor<4>,
    /// Batch mean, `[c]`.
    pub mean: Tensor<1>,
    /// Biased batch variance, `[c]`.
    pub var: Tensor<1>,
    /// Values per channel in the batch, `n h w`.
    pub count: usize,
}

/// The result of [`BatchNorm2d::backward`].
#[derive(Debug, Clone)]
pub struct BnBackward {
    /// `sum(delta * x_hat)`, `[c]`.
    pub gamma: Tensor<1>,
    /// `sum(delta)`, `[c]`.
    pub beta: Tensor<1>,
    /// The teaching signal at the input, `[n, c, h, w]`.
    pub delta_in: Tensor<4>,
}

/// `t` of shape `[c]` as `[1, c, 1, 1]`.
fn channels(t: Tensor<1>) -> Tensor<4> {
    let c = t.dims()[0];
    t.reshape([1, c, 1, 1])
}

/// Per-channel mean of `t` over `(n, h, w)`, `[1, c, 1, 1]`.
fn channel_mean(t: Tensor<4>) -> Tensor<4> {
    t.mean_dim(0).mean_dim(2).mean_dim(3)
}

impl BatchNorm2d {
    /// `gamma = 1`, `beta = 0`, running mean 0 and variance 1, momentum 0.1, eps 1e-5.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            gamma: Tensor::ones([channels], device),
            beta: Tensor::zeros([channels], device),
            running_mean: Tensor::zeros([channels], device),
            running_var: Tensor::ones([channels], device),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Channels `c`.
    pub fn channels(&self) -> usize {
        self.gamma.dims()[0]
    }

    /// Normalizes `x` with its own batch statistics.
    ///
    /// # Shapes
    /// `x`: `[n, c, h, w]` → `[n, c, h, w]`.
    pub fn forward_train(&self, x: Tensor<4>) -> (Tensor<4>, BnCache) {
        let [n, c, h, w] = x.dims();
        let mean = channel_mean(x.clone());
        let centered = x - mean.clone();
        let var = channel_mean(centered.clone().square());
        let sigma = var.clone().add_scalar(self.eps).sqrt();
        let x_hat = centered / sigma.clone();
        let y = x_hat.clone() * channels(self.gamma.clone()) + channels(self.beta.clone());
        let cache = BnCache {
            x_hat,
            sigma,
            mean: mean.reshape([c]),
            var: var.reshape([c]),
            count: n * h * w,
        };
        (y, cache)
    }

    /// Normalizes `x` with the running statistics (evaluation).
    pub fn forward_eval(&self, x: Tensor<4>) -> Tensor<4> {
        let sigma = channels(self.running_var.clone().add_scalar(self.eps).sqrt());
        (x - channels(self.running_mean.clone())) / sigma * channels(self.gamma.clone())
            + channels(self.beta.clone())
    }

    /// Folds a training batch's statistics into the running ones:
    /// `r = (1 - momentum) r + momentum b`, with the unbiased variance `var n/(n - 1)`.
    pub fn track(&mut self, cache: &BnCache) {
        let m = self.momentum;
        let unbias = cache.count as f64 / (cache.count.max(2) - 1) as f64;
        self.running_mean =
            self.running_mean.clone().mul_scalar(1.0 - m) + cache.mean.clone().mul_scalar(m);
        self.running_var =
            self.running_var.clone().mul_scalar(1.0 - m) + cache.var.clone().mul_scalar(m * unbias);
    }

    /// The backward pass from `delta = dL/dy`, in `mode`.
    ///
    /// # Shapes
    /// `delta`: `[n, c, h, w]`; gradients `[c]`.
    pub fn backward(&self, cache: &BnCache, delta: Tensor<4>, mode: BnFeedback) -> BnBackward {
        let c = self.channels();
        let sum = |t: Tensor<4>| t.sum_dim(0).sum_dim(2).sum_dim(3).reshape([c]);
        let gamma = sum(delta.clone() * cache.x_hat.clone());
        let beta = sum(delta.clone());
        let scale = channels(self.gamma.clone()) / cache.sigma.clone();
        let delta_in = match mode {
            BnFeedback::Sigma => delta * scale,
            BnFeedback::Exact => {
                let n = cache.count as f64;
                let mean_delta = channels(beta.clone()).div_scalar(n);
                let mean_dx = channels(gamma.clone()).div_scalar(n);
                (delta - mean_delta - cache.x_hat.clone() * mean_dx) * scale
            }
        };
        BnBackward {
            gamma,
            beta,
            delta_in,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_io::to_vec;
    use burn::tensor::Distribution;

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    fn batch(device: &Device) -> Tensor<4> {
        Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(2.0, 3.0), device)
    }

    fn layer(device: &Device) -> BatchNorm2d {
        let mut bn = BatchNorm2d::new(3, device);
        bn.gamma = Tensor::from_floats([0.5, 2.0, -1.5], device);
        bn.beta = Tensor::from_floats([0.1, -0.2, 0.3], device);
        bn
    }

    #[test]
    fn exact_backward_equals_autodiff() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let bn = layer(&device);
        let x = batch(&device);
        let (y, cache) = bn.forward_train(x.clone());
        let g = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let back = bn.backward(&cache, g.clone(), BnFeedback::Exact);

        let mut bn_ad = bn.clone();
        bn_ad.gamma = Tensor::from_data(bn.gamma.to_data(), &ad).require_grad();
        bn_ad.beta = Tensor::from_data(bn.beta.to_data(), &ad).require_grad();
        let x_ad = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let (y_ad, _) = bn_ad.forward_train(x_ad.clone());
        let grads = (y_ad * Tensor::<4>::from_data(g.to_data(), &ad))
            .sum()
            .backward();
        let dx = to_vec(x_ad.grad(&grads).unwrap());
        assert!(close(to_vec(back.delta_in), dx, 1e-4));
        assert!(close(
            to_vec(back.gamma),
            to_vec(bn_ad.gamma.grad(&grads).unwrap()),
            1e-4
        ));
        assert!(close(
            to_vec(back.beta),
            to_vec(bn_ad.beta.grad(&grads).unwrap()),
            1e-4
        ));
    }

    #[test]
    fn exact_backward_equals_burns_own_batch_norm() {
        // Burn's batch_norm_train on an autodiff device: an independent implementation.
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let bn = layer(&device);
        let x = batch(&device);
        let (y, cache) = bn.forward_train(x.clone());
        let g = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let back = bn.backward(&cache, g.clone(), BnFeedback::Exact);
        let x_ad = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let out = burn::tensor::module::batch_norm_train(
            x_ad.clone(),
            Tensor::from_data(bn.gamma.to_data(), &ad),
            Tensor::from_data(bn.beta.to_data(), &ad),
            bn.eps,
        );
        assert!(close(to_vec(y), to_vec(out.output.clone()), 1e-4));
        let grads = (out.output * Tensor::<4>::from_data(g.to_data(), &ad))
            .sum()
            .backward();
        assert!(close(
            to_vec(back.delta_in),
            to_vec(x_ad.grad(&grads).unwrap()),
            1e-4
        ));
    }

    #[test]
    fn sigma_mode_scales_by_gamma_over_sigma_only() {
        let device = Device::flex();
        let bn = layer(&device);
        let x = batch(&device);
        let (_, cache) = bn.forward_train(x);
        let g = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let back = bn.backward(&cache, g.clone(), BnFeedback::Sigma);
        let var = to_vec(cache.var.clone());
        let gamma = to_vec(bn.gamma.clone());
        let expected: Vec<f32> = to_vec(g)
            .chunks(25)
            .enumerate()
            .flat_map(|(i, block)| {
                let c = i % 3;
                let s = gamma[c] / (var[c] + 1e-5).sqrt();
                block.iter().map(move |v| v * s).collect::<Vec<_>>()
            })
            .collect();
        assert!(close(to_vec(back.delta_in), expected, 1e-5));
    }

    #[test]
    fn training_uses_batch_statistics_never_running_ones() {
        let device = Device::flex();
        let mut bn = BatchNorm2d::new(3, &device);
        bn.running_mean = Tensor::from_floats([100.0, -50.0, 7.0], &device);
        bn.running_var = Tensor::from_floats([1e4, 1e-3, 42.0], &device);
        let x = batch(&device);
        let (y, cache) = bn.forward_train(x.clone());
        // gamma 1, beta 0: every channel of the output has mean 0 and variance 1.
        let mean = to_vec(channel_mean(y.clone()).reshape([3]));
        let var = to_vec(channel_mean(y.square()).reshape([3]));
        assert!(mean.iter().all(|m| m.abs() < 1e-4), "{mean:?}");
        assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-3), "{var:?}");
        // Evaluation does use the running statistics, and tracking moves them.
        let eval = to_vec(bn.forward_eval(x));
        assert!(
            eval.iter().step_by(75).all(|v| *v < -0.5),
            "{:?}",
            &eval[..3]
        );
        bn.track(&cache);
        let r = to_vec(bn.running_mean.clone());
        assert!((r[0] - (0.9 * 100.0 + 0.1 * to_vec(cache.mean)[0])).abs() < 1e-3);
    }
}
