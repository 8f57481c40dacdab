//! Helpers shared by the engine tests.

/// A test written once for every device: `on_each_device! { fn name(device) { ... } }` makes
/// the module `name` with the tests `cpu` (Burn's `flex` backend) and `wgpu` (a real GPU, or
/// Mesa's software drivers as in CI), the body seeing `device: Device`.
macro_rules! on_each_device {
    ($(#[doc = $doc:expr])* fn $name:ident($device:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($device: burn::tensor::Device) $body

            #[test]
            fn cpu() {
                run(burn::tensor::Device::flex())
            }

            #[test]
            fn wgpu() {
                run(crate::wgpu::wgpu_device())
            }
        }
    };
}

use biofeedback::core::init::{Rng, seeded_rng};
use biofeedback::core::tensor_io::to_vec;
use biofeedback::trainer::checkpoint::Checkpoint;
use biofeedback::trainer::config::Config;
use biofeedback::trainer::data::{
    self,
    root::{DataRoot, RootOrigin},
};
use biofeedback::trainer::train::Trainer;
use burn::tensor::{Device, Tensor, TensorData};
use rand_distr::{Distribution, Normal};
use std::path::Path;

/// A `[rows, cols]` tensor of N(0, 1) values drawn from `rng`.
pub fn gaussian(rows: usize, cols: usize, rng: &mut Rng, device: &Device) -> Tensor<2> {
    let d = Normal::new(0.0f32, 1.0).unwrap();
    let v: Vec<f32> = (0..rows * cols).map(|_| d.sample(rng)).collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// One-hot targets `[rows, classes]` with class `i % classes` for row `i`.
pub fn one_hot(rows: usize, classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; rows * classes];
    for r in 0..rows {
        v[r * classes + (r * 7 + 3) % classes] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [rows, classes]), device)
}

/// `max |a - b| / max |b|`.
pub fn rel_err<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let a = to_vec(a);
    let b = to_vec(b);
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) as f64;
    diff / scale.max(1e-30)
}

/// A fresh generator.
pub fn rng(seed: u64) -> Rng {
    seeded_rng(seed)
}

/// Every tensor of the checkpoint of `trainer`, by name, on the host.
pub fn state(trainer: &Trainer) -> Vec<(String, Vec<f32>)> {
    Checkpoint::capture(trainer, Path::new("unused"))
        .tensors
        .into_iter()
        .map(|(name, t)| (name, t.data))
        .collect()
}

/// The shipped config at `path` (relative to the repository root) with `overrides`, reading
/// its data from `../shared/data` as the data root (where the team and CI keep the sets).
pub fn shipped_config(path: &str, overrides: &[String]) -> Config {
    let mut config = Config::load(Path::new(path), overrides).expect("shipped config loads");
    let root = DataRoot {
        path: std::path::absolute("../shared/data").unwrap(),
        origin: RootOrigin::Flag,
    };
    assert!(
        root.path.is_dir(),
        "{} missing: the repo expects ../shared beside it",
        root.path.display()
    );
    data::resolve_dir(&mut config.data, &root).expect("the data folder resolves");
    config
}
