//! Pooling with exact local backward passes: the ImageNet stem's max-pool and the global
//! average pool before a ResNet's classifier.

use burn::tensor::module::{max_pool2d_with_indices, max_pool2d_with_indices_backward};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Int, Tensor};

/// Max pooling with a square window; the backward pass routes each delta to the input that
/// won the forward max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (padded positions never win).
    pub padding: usize,
}

/// What [`MaxPool2d::backward`] needs: the input and the winners.
#[derive(Debug, Clone)]
pub struct MaxPoolCache {
    /// The forward input, `[n, c, h, w]`.
    pub x: Tensor<4>,
    /// Flat index (within `h w`) of each output's winner, `[n, c, h', w']`.
    pub indices: Tensor<4, Int>,
}

impl MaxPool2d {
    /// The ResNet ImageNet stem's pool: 3x3, stride 2, padding 1.
    pub const STEM: Self = Self {
        kernel: 3,
        stride: 2,
        padding: 1,
    };

    fn options(&self) -> MaxPoolOptions<2> {
        MaxPoolOptions::new([self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_padding([self.padding; 2])
    }

    /// `[n, c, h, w]` → `[n, c, h', w']` and the cache.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, MaxPoolCache) {
        let (y, indices) = max_pool2d_with_indices(x.clone(), self.options());
        (y, MaxPoolCache { x, indices })
    }

    /// `dL/dx` from `delta = dL/dy`.
    pub fn backward(&self, cache: &MaxPoolCache, delta: Tensor<4>) -> Tensor<4> {
        max_pool2d_with_indices_backward(
            cache.x.clone(),
            [self.kernel; 2],
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            false,
            delta,
            cache.indices.clone(),
        )
    }
}

/// Global average pool: `[n, c, h, w]` → `[n, c]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(2).mean_dim(3).reshape([n, c])
}

/// The backward pass of [`global_avg_pool`]: every position gets `delta / (h w)`.
///
/// # Shapes
/// `delta`: `[n, c]`, `[h, w]` the input's size → `[n, c, h, w]`.
pub fn global_avg_pool_backward(delta: Tensor<2>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [n, c] = delta.dims();
    delta
        .div_scalar((h * w) as f64)
        .reshape([n, c, 1, 1])
        .expand([n, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_io::to_vec;
    use burn::tensor::{Device, Distribution};

    fn close(a: Vec<f32>, b: Vec<f32>) -> bool {
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn pooling_backward_equals_autodiff() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        for size in [8, 7] {
            let x =
                Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
            let (y, cache) = MaxPool2d::STEM.forward(x.clone());
            let g = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
            let dx = MaxPool2d::STEM.backward(&cache, g.clone());
            let gap_g = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device);
            let gap_dx = global_avg_pool_backward(gap_g.clone(), [size, size]);

            let x_ad = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let (y_ad, _) = MaxPool2d::STEM.forward(x_ad.clone());
            let loss = (y_ad * Tensor::<4>::from_data(g.to_data(), &ad)).sum()
                + (global_avg_pool(x_ad.clone()) * Tensor::<2>::from_data(gap_g.to_data(), &ad))
                    .sum();
            let grads = loss.backward();
            let expected = to_vec(x_ad.grad(&grads).unwrap());
            assert!(close(to_vec(dx + gap_dx), expected), "input {size}");
        }
    }
}
