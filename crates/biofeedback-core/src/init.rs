//! Weight initialisation, drawn on the host from a seeded generator so that a seed gives the
//! same network on every device.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng as _, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal, Uniform};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The random generator used for initialisation and shuffling.
pub type Rng = StdRng;

/// A generator seeded with `seed`.
pub fn seeded_rng(seed: u64) -> Rng {
    StdRng::seed_from_u64(seed)
}

/// How a weight tensor is drawn, from its fan-in `n` and fan-out `m`.
///
/// Feedback alignment draws its `B` from the same distribution, independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// `U(-1/sqrt(n), 1/sqrt(n))`: PyTorch's default for `nn.Linear`.
    Uniform,
    /// `N(0, 1/n)`: LeCun; the authors' numpy code (`randn / sqrt(n)`).
    LecunNormal,
    /// `U(-sqrt(6/n), sqrt(6/n))`: He et al. 2015, for ReLU.
    HeUniform,
    /// `N(0, 2/n)`: He et al. 2015, for ReLU.
    HeNormal,
    /// `U(-sqrt(6/(n+m)), sqrt(6/(n+m)))`: Glorot and Bengio 2010.
    XavierUniform,
}

impl Init {
    /// The standard deviation of one drawn element (sign symmetry's scale).
    pub fn std(self, fan_in: usize, fan_out: usize) -> f64 {
        let n = fan_in as f64;
        let m = fan_out as f64;
        match self {
            Init::Uniform => 1.0 / (3.0 * n).sqrt(),
            Init::LecunNormal => 1.0 / n.sqrt(),
            Init::HeUniform | Init::HeNormal => (2.0 / n).sqrt(),
            Init::XavierUniform => (2.0 / (n + m)).sqrt(),
        }
    }

    /// Draws `numel` values on the host.
    pub fn sample(self, numel: usize, fan_in: usize, fan_out: usize, rng: &mut Rng) -> Vec<f32> {
        let std = self.std(fan_in, fan_out);
        match self {
            Init::LecunNormal | Init::HeNormal => {
                let d = Normal::new(0.0, std).expect("std is finite and positive");
                (0..numel).map(|_| d.sample(rng) as f32).collect()
            }
            Init::Uniform | Init::HeUniform | Init::XavierUniform => {
                let a = std * 3f64.sqrt();
                let d = Uniform::new(-a, a).expect("bound is finite and positive");
                (0..numel).map(|_| d.sample(rng) as f32).collect()
            }
        }
    }

    /// A tensor of shape `shape` (fan-in first: `[d_in, d_out]` for a linear layer).
    pub fn tensor<const D: usize>(
        self,
        shape: [usize; D],
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Tensor<D> {
        let numel = shape.iter().product();
        let values = self.sample(numel, fan_in, fan_out, rng);
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

/// Values per independently seeded block of [`gaussian`]'s noise.
pub const NOISE_BLOCK: usize = 1 << 14;

/// A tensor of `N(0, std^2)` values drawn on the host from `rng`.
///
/// Noise drawn this way depends only on `rng`, not on a device's global generator that
/// other threads may draw from, so a run repeats exactly and gives the same noise on every
/// device. `rng` gives one `u64`, the seed of the draw; block `i` of [`NOISE_BLOCK`] values
/// comes from its own generator seeded with `seed + i`, so the blocks are drawn in parallel
/// (a mirror step of the MNIST recipe needs 200,000 values) and the values do not depend on
/// the number of threads.
pub fn gaussian<const D: usize>(
    shape: [usize; D],
    std: f64,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<D> {
    let d = Normal::new(0.0f32, std as f32).expect("std is finite and positive");
    let seed = rng.next_u64();
    let mut values = vec![0.0f32; shape.iter().product()];
    values
        .par_chunks_mut(NOISE_BLOCK)
        .enumerate()
        .for_each(|(i, block)| {
            let mut block_rng = seeded_rng(seed.wrapping_add(i as u64));
            block.iter_mut().for_each(|v| *v = d.sample(&mut block_rng));
        });
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_io::to_vec;

    /// `gaussian` with this seed, on a rayon pool of `threads` threads.
    fn noise(threads: usize, n: usize) -> Vec<f32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| to_vec(gaussian([n], 2.0, &mut seeded_rng(9), &Device::flex())))
    }

    #[test]
    fn gaussian_noise_is_the_same_on_any_number_of_threads_and_has_its_moments() {
        let n = 5 * NOISE_BLOCK + 123;
        let one = noise(1, n);
        assert_eq!(
            one,
            noise(3, n),
            "the blocks' values do not depend on the threads"
        );
        // Every block is its own stream: no block repeats another.
        let blocks: Vec<&[f32]> = one.chunks(NOISE_BLOCK).collect();
        assert!(blocks.windows(2).all(|w| w[0][..100] != w[1][..100]));
        let mean = one.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = one.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 2 / sqrt(n) = 0.0069 for the mean, about 0.025 for the variance 4.
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 4.0).abs() < 0.1, "variance {var}");
    }
}
