//! Weight initialisation, drawn on the host from a seeded generator so that a seed gives the
//! same network on every device.

use burn::backend::DispatchDevice;
use burn::tensor::{Device, Distribution as TensorDistribution, Tensor, TensorData};
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

/// Whether `device` runs kernels on a GPU (a cubecl runtime: wgpu, Vulkan), where values
/// drawn on the host would be uploaded, rather than on a CPU backend (flex, ndarray).
pub fn is_gpu(device: &Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Cube(_))
}

/// Noise `N(0, std^2)` of `shape` on `device` from one `u64` of `rng` (the weight mirror's
/// input, drawn at every mirror step).
///
/// On a CPU backend this is [`gaussian`]: drawn on the host, so a seeded run repeats exactly
/// on any number of threads. On a GPU ([`is_gpu`]) the device's own generator draws it,
/// seeded with that `u64`, so nothing is uploaded per step (a width-64 ResNet-18 mirror step
/// with 64 maps per conv draws about 16 million values, 63 MB) and a seeded run repeats on the
/// same device; the values are not the CPU's. Either way `rng` advances by one `u64`.
pub fn noise<const D: usize>(
    shape: [usize; D],
    std: f64,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<D> {
    if !is_gpu(device) {
        return gaussian(shape, std, rng, device);
    }
    device.seed(rng.next_u64());
    Tensor::random(shape, TensorDistribution::Normal(0.0, std), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_io::to_vec;

    /// `gaussian` with this seed, on a rayon pool of `threads` threads.
    fn host_noise(threads: usize, n: usize) -> Vec<f32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| to_vec(gaussian([n], 2.0, &mut seeded_rng(9), &Device::flex())))
    }

    #[test]
    fn gaussian_noise_is_the_same_on_any_number_of_threads_and_has_its_moments() {
        let n = 5 * NOISE_BLOCK + 123;
        let one = host_noise(1, n);
        assert_eq!(
            one,
            host_noise(3, n),
            "the blocks' values do not depend on the threads"
        );
        // Every block is its own stream: no block repeats another.
        let blocks: Vec<&[f32]> = one.chunks(NOISE_BLOCK).collect();
        assert!(blocks.windows(2).all(|w| w[0][..100] != w[1][..100]));
        let (mean, var) = moments(&one);
        // Standard errors: 2 / sqrt(n) = 0.0069 for the mean, about 0.025 for the variance 4.
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 4.0).abs() < 0.1, "variance {var}");
    }

    /// Mean and variance of `values`.
    fn moments(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var)
    }

    /// Mirror noise: the host's draw on the CPU; on wgpu (Mesa's software renderer in CI) the
    /// device's generator, which repeats for the same `rng` state, moves on with it, has the
    /// moments, and is not the host's draw (so it was not uploaded from the host).
    #[test]
    fn mirror_noise_is_drawn_on_the_gpu_and_repeats_from_the_seed() {
        let shape = [4, 3, 64, 64];
        let cpu = Device::flex();
        assert!(!is_gpu(&cpu));
        let host = to_vec(gaussian(shape, 2.0, &mut seeded_rng(5), &cpu));
        assert_eq!(to_vec(noise(shape, 2.0, &mut seeded_rng(5), &cpu)), host);

        let gpu = Device::wgpu_options()
            .init()
            .or_else(|_| {
                Device::wgpu_options()
                    .graphics_api(burn::tensor::wgpu::WgpuBackend::Gl)
                    .init()
            })
            .expect("a wgpu adapter (install mesa-vulkan-drivers)");
        assert!(is_gpu(&gpu));
        let mut rng = seeded_rng(5);
        let first = to_vec(noise(shape, 2.0, &mut rng, &gpu));
        let second = to_vec(noise(shape, 2.0, &mut rng, &gpu));
        assert_eq!(to_vec(noise(shape, 2.0, &mut seeded_rng(5), &gpu)), first);
        assert_ne!(first, second, "the next draw moves on");
        assert_ne!(first, host, "drawn on the device, not uploaded");
        // 49,152 values: standard errors 0.009 for the mean, about 0.026 for the variance 4.
        let (mean, var) = moments(&first);
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 4.0).abs() < 0.15, "variance {var}");
    }
}
