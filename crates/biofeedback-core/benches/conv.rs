//! The convolutions of a ResNet-18 step (CIFAR stem, width 64, batch 32) on the CPU, each
//! through Burn's `flex` op and through `biofeedback_core::conv_cpu` (im2col and one GEMM per
//! chunk of images): the forward conv and the kernel gradient, per layer shape. The PyTorch
//! peer is `benches/peers/conv_ops.py`.
//!
//! `cargo bench -p biofeedback-core --bench conv`

use biofeedback_core::conv_cpu;
use burn::tensor::module::{conv2d, conv2d_weight_backward};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    divan::main();
}

const BATCH: usize = 32;

/// The conv shapes of ResNet-18 at 32x32 (and the CIFAR ResNets' 16 and 32 channels), named
/// `c_in-c_out kk/stride side`: `(c_in, c_out, k, stride, input side)`.
type Shape = (usize, usize, usize, usize, usize);

const SHAPES: [(&str, Shape); 12] = [
    ("3-64 3x3/1 32", (3, 64, 3, 1, 32)),
    ("16-16 3x3/1 32", (16, 16, 3, 1, 32)),
    ("32-32 3x3/1 16", (32, 32, 3, 1, 16)),
    ("64-64 3x3/1 8", (64, 64, 3, 1, 8)),
    ("64-64 3x3/1 32", (64, 64, 3, 1, 32)),
    ("64-128 3x3/2 32", (64, 128, 3, 2, 32)),
    ("128-128 3x3/1 16", (128, 128, 3, 1, 16)),
    ("128-256 3x3/2 16", (128, 256, 3, 2, 16)),
    ("256-256 3x3/1 8", (256, 256, 3, 1, 8)),
    ("256-512 3x3/2 8", (256, 512, 3, 2, 8)),
    ("512-512 3x3/1 4", (512, 512, 3, 1, 4)),
    ("64-128 1x1/2 32", (64, 128, 1, 2, 32)),
];

struct Case {
    x: Tensor<4>,
    w: Tensor<4>,
    delta: Tensor<4>,
    stride: usize,
    pad: usize,
}

fn case(name: &str) -> Case {
    let (_, (ci, co, k, s, side)) = *SHAPES.iter().find(|(n, _)| *n == name).unwrap();
    let device = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    let pad = k / 2;
    let out = (side + 2 * pad - k) / s + 1;
    Case {
        x: Tensor::random([BATCH, ci, side, side], normal, &device),
        w: Tensor::random([co, ci, k, k], normal, &device),
        delta: Tensor::random([BATCH, co, out, out], normal, &device),
        stride: s,
        pad,
    }
}

fn options(c: &Case) -> ConvOptions<2> {
    ConvOptions::new([c.stride; 2], [c.pad; 2], [1, 1], 1)
}

fn args() -> impl Iterator<Item = &'static str> {
    SHAPES.iter().map(|(name, _)| *name)
}

#[divan::bench_group(sample_count = 10, sample_size = 2)]
mod forward {
    use super::*;

    #[divan::bench(args = args())]
    fn burn(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        bencher.bench_local(|| conv2d(c.x.clone(), c.w.clone(), None, options(&c)).into_data());
    }

    #[divan::bench(args = args())]
    fn gemm(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        bencher.bench_local(|| {
            conv_cpu::conv2d(&c.x, &c.w, c.stride, c.pad)
                .unwrap()
                .into_data()
        });
    }
}

#[divan::bench_group(sample_count = 10, sample_size = 2)]
mod kernel_gradient {
    use super::*;

    #[divan::bench(args = args())]
    fn burn(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        bencher.bench_local(|| {
            conv2d_weight_backward(c.x.clone(), c.w.clone(), c.delta.clone(), options(&c))
                .into_data()
        });
    }

    #[divan::bench(args = args())]
    fn gemm(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        let kernel = c.w.dims();
        bencher.bench_local(|| {
            conv_cpu::weight_gradient(&c.x, &c.delta, kernel, c.stride, c.pad)
                .unwrap()
                .into_data()
        });
    }
}

/// The stride-1 shapes: the ones `conv_cpu::input_gradient` takes.
fn stride_one() -> impl Iterator<Item = &'static str> {
    SHAPES
        .iter()
        .filter(|(_, (_, _, _, s, _))| *s == 1)
        .map(|(name, _)| *name)
}

#[divan::bench_group(sample_count = 10, sample_size = 2)]
mod input_gradient {
    use super::*;
    use burn::tensor::module::conv_transpose2d;
    use burn::tensor::ops::ConvTransposeOptions;

    /// Burn's transposed convolution, as `FeedbackConv2d::delta_through` called it.
    #[divan::bench(args = stride_one())]
    fn burn(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        let options = ConvTransposeOptions::new([1, 1], [c.pad; 2], [0, 0], [1, 1], 1);
        bencher.bench_local(|| {
            conv_transpose2d(c.delta.clone(), c.w.clone(), None, options.clone()).into_data()
        });
    }

    #[divan::bench(args = stride_one())]
    fn gemm(bencher: divan::Bencher, i: &str) {
        let c = case(i);
        bencher.bench_local(|| {
            conv_cpu::input_gradient(&c.delta, &c.w, c.stride, c.pad)
                .unwrap()
                .into_data()
        });
    }
}
