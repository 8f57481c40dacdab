//! Mirror mode (weight mirrors, Akrout et al. 2019, section 4 and appendix D.2).
//!
//! For one layer at a time the input cells fire zero-mean, unit-variance Gaussian noise `x`;
//! the forward path computes `y = phi(W x + b)`; the feedback cells copy the forward cells
//! (`delta = y`) and `B` learns by a Hebbian rule with decay:
//!
//! ```text
//! y  <- y - mean_batch(y)                              (zero-mean signal, appendix D.2)
//! dB  = eta_B mean_batch(x y^T) - lambda_WM B
//! ```
//!
//! For Gaussian `x`, Stein's lemma gives `E[x phi(W x + b)^T] = W^T diag(E[phi'(W x + b)])`,
//! so `B` converges to `W^T` times a positive diagonal: a positive multiple of `W^T` column by
//! column, at a weight angle that falls as the mirror batches accumulate.

use crate::activation::Activation;
use crate::conv::FeedbackConv2d;
use crate::feedback::Feedback;
use crate::init::{Rng, noise};
use crate::linear::FeedbackLinear;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Mirror-mode hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MirrorConfig {
    /// Hebbian learning rate `eta_B` (paper: 0.1).
    pub eta: f64,
    /// Decay `lambda_WM` (paper: 0.5).
    pub decay: f64,
    /// Noise samples per mirror step (paper: 2048).
    pub batch_size: usize,
    /// Noise vectors per mirror step of a ResNet's classifier (`fc`), `None`: `batch_size`.
    /// A conv's step averages each kernel tap over `batch_size` maps times their positions
    /// (64 on 8x8 maps), the classifier only over its noise vectors, so with the same batch
    /// its `B` is the noisier estimate (angle floor about `sqrt(fan_in / samples)` radians).
    pub head_batch_size: Option<usize>,
    /// Standard deviation of the input noise (1: unit variance, as in the paper).
    pub noise_std: f64,
    /// After each step, scale `B` to the Frobenius norm of `W` (`|B| = |W|`): the feedback
    /// then has the forward weights' scale whatever `eta / decay` and the nonlinearity make
    /// of it (`B` settles at `c W^T`; in a residual network a `c` far from 1 scales each
    /// branch against its identity shortcut). The direction, and so the weight angle, is what
    /// the mirror learns. Computed on the device.
    pub rescale: bool,
}

/// `b` scaled to the Frobenius norm of `w` when `rescale`, else `b`.
/// `B <- rescaled((1 - lambda_WM) B + hebbian)` for a mirrored `B` (any rank).
fn learn<const D: usize>(
    feedback: &mut Feedback<D>,
    weight: &Tensor<D>,
    hebbian: Tensor<D>,
    config: &MirrorConfig,
) {
    if let Some(b) = feedback.mirror_mut() {
        b.inplace(|b| {
            rescaled(
                b.mul_scalar(1.0 - config.decay) + hebbian,
                weight,
                config.rescale,
            )
        });
    }
}

fn rescaled<const D: usize>(b: Tensor<D>, w: &Tensor<D>, rescale: bool) -> Tensor<D> {
    if !rescale {
        return b;
    }
    let norm = |t: Tensor<D>| t.powi_scalar(2).sum().sqrt();
    let ratio = norm(w.clone()) / norm(b.clone()).clamp_min(1e-30);
    let ratio: Tensor<D> = ratio.reshape([1; D]);
    b * ratio
}

/// One mirror step for `layer`, whose output goes through `activation`, with noise drawn
/// from `rng`; returns nothing and
/// updates `layer.feedback` in place. Layers whose feedback is not a weight mirror are left
/// alone.
///
/// # Shapes
/// noise `x`: `[batch, d_in]`, `y`: `[batch, d_out]`, `B`: `[d_in, d_out]`.
pub fn mirror_step(
    layer: &mut FeedbackLinear,
    activation: Activation,
    config: &MirrorConfig,
    rng: &mut Rng,
) {
    if layer.feedback.mirror_mut().is_none() {
        return;
    }
    let device = layer.weight.device();
    let x = noise(
        [config.batch_size, layer.d_in()],
        config.noise_std,
        rng,
        &device,
    );
    let y = activation.forward(layer.forward(x.clone()));
    let y = y.clone() - y.mean_dim(0);
    // eta_B * mean_batch(x y^T): the scale goes on the small noise matrix, not on B's shape.
    let scaled = x.mul_scalar(config.eta / config.batch_size as f64);
    let hebbian = scaled.transpose().matmul(y);
    learn(&mut layer.feedback, &layer.weight, hebbian, config);
}

/// One mirror step for the conv layer `layer`, whose output goes through `activation`:
/// noise maps `x` of `side x side` pixels cross the conv, the output is centred per channel
/// over batch and positions, and `B` learns the covariance the conv's kernel gradient
/// computes (weight sharing), each kernel tap averaged over the input-output pairs it
/// connects:
///
/// ```text
/// y  = phi(conv(x, W)) - mean_{n,h,w} y
/// dB[o, i, a, b] = eta corr(x, y)[o, i, a, b] / (n count[a, b]) - lambda B[o, i, a, b]
/// ```
///
/// `count[a, b]` is the number of output positions whose tap `(a, b)` falls inside the
/// (zero-padded) noise map: on a small map a border tap sees fewer pairs than a centre tap,
/// and dividing all of them by `h' w'` would shrink the border taps of `B` against `W`, an
/// angle floor that no amount of mirroring removes (5 degrees for a 3x3 stride-1 conv on 8x8
/// maps, 10 for stride 2).
///
/// Layers without a stored `B` are left alone.
///
/// # Shapes
/// noise `x`: `[batch, c_in, side, side]`, `B`: `[c_out, c_in, k, k]`.
pub fn mirror_step_conv(
    layer: &mut FeedbackConv2d,
    activation: Activation,
    config: &MirrorConfig,
    side: usize,
    rng: &mut Rng,
) {
    if layer.feedback.mirror_mut().is_none() {
        return;
    }
    let device = layer.weight.device();
    let x = noise(
        [config.batch_size, layer.c_in(), side, side],
        config.noise_std,
        rng,
        &device,
    );
    let y = activation.forward(layer.forward(x.clone()));
    let [n, _, h, w] = y.dims();
    let y = y.clone() - y.mean_dim(0).mean_dim(2).mean_dim(3);
    let covariance = layer.weight_gradient(x, y);
    let k = layer.kernel();
    let inside = |a: usize, out: usize| {
        (0..out)
            .filter(|&i| {
                let pos = (i * layer.stride + a) as isize - layer.padding as isize;
                pos >= 0 && (pos as usize) < side
            })
            .count()
    };
    let scale: Vec<f32> = (0..k * k)
        .map(|t| {
            let pairs = inside(t / k, h) * inside(t % k, w) * n;
            (config.eta / pairs.max(1) as f64) as f32
        })
        .collect();
    let scale = Tensor::<4>::from_data(TensorData::new(scale, [1, 1, k, k]), &device);
    let hebbian = covariance * scale;
    learn(&mut layer.feedback, &layer.weight, hebbian, config);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alignment::{angle_degrees, norm};
    use crate::init::{Init, seeded_rng};
    use crate::rule::Rule;
    use burn::tensor::Device;

    /// A 20-10 layer with a large bias, mirrored `steps` times with identity output (`B` scaled
    /// to `|W|` after each step when `rescale`): its angle to `W^T` and `|B| / |W|`.
    fn mirrored_linear(steps: usize, rescale: bool) -> (f64, f64) {
        let device = Device::flex();
        let mut r = seeded_rng(12);
        let mut layer = FeedbackLinear::new(20, 10, Rule::Wm, Init::LecunNormal, &mut r, &device);
        layer.bias = layer.bias.clone().add_scalar(100.0);
        let config = MirrorConfig {
            eta: 0.025,
            decay: 0.05,
            batch_size: 1024,
            head_batch_size: None,
            noise_std: 1.0,
            rescale,
        };
        for _ in 0..steps {
            mirror_step(&mut layer, Activation::Identity, &config, &mut r);
        }
        let b = layer.feedback.stored().cloned().unwrap();
        (
            angle_degrees(b.clone(), layer.weight.clone()),
            norm(b) / norm(layer.weight.clone()),
        )
    }

    #[test]
    fn a_mirror_settles_at_eta_over_decay_times_w_transpose_whatever_the_bias() {
        // With unit noise and identity output, E[x^T y] / n = W^T, so B <- (1 - lambda) B +
        // eta W^T settles at (eta / lambda) W^T = 0.5 W^T. The output is centred over the batch,
        // so a bias of 100 adds nothing (uncentred, (sum x)^T b would swamp the signal).
        let (angle, ratio) = mirrored_linear(300, false);
        assert!(angle < 3.0, "{angle:.2} degrees");
        assert!(
            (ratio - 0.5).abs() < 0.02,
            "|B| / |W| = {ratio:.4}, expected 0.5"
        );
        // mirror.rescale: the same direction at W's scale.
        let (angle, ratio) = mirrored_linear(300, true);
        assert!(angle < 3.0, "rescaled: {angle:.2} degrees");
        assert!(
            (ratio - 1.0).abs() < 1e-4,
            "rescaled: |B| / |W| = {ratio:.6}"
        );
    }
}
