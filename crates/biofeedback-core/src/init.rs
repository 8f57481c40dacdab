//! Weight initialisation, drawn on the host from a seeded generator so that a seed gives the
//! same network on every device.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal, Uniform};
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

/// A tensor of `N(0, std^2)` values drawn on the host from `rng`.
///
/// Noise drawn this way depends only on `rng`, not on a device's global generator that
/// other threads may draw from, so a run repeats exactly and gives the same noise on every
/// device.
pub fn gaussian<const D: usize>(
    shape: [usize; D],
    std: f64,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<D> {
    let d = Normal::new(0.0f32, std as f32).expect("std is finite and positive");
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| d.sample(rng)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
