//! One single-threaded `gemm` call per conv GEMM shape of a ResNet-18 step (CIFAR stem, width
//! 64), with each operand stored row-major (`R`) or column-major (`C`): destination, left,
//! right, e.g. `RRC` is `conv_cpu`'s former kernel gradient `delta · col^T` (`col` read as
//! its transpose) into a row-major `dW`. `gemm` makes its destination column-major
//! (transposing the whole product when it is not) and is fast when its left operand is then
//! column-major too: how `conv_cpu::weight_gradient` picks its layout.
//!
//! `cargo bench -p biofeedback-core --bench gemm_layouts`

use gemm::Parallelism;

fn main() {
    divan::main();
}

/// `(name, m, k, n)`: the product `[m, k] x [k, n]`.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("forward layer1 64x576x1024", 64, 576, 1024),
    ("kernel grad layer1 64x1024x576", 64, 1024, 576),
    ("kernel grad layer2 128x256x1152", 128, 256, 1152),
    ("kernel grad layer4 512x112x4608", 512, 112, 4608),
];

const LAYOUTS: [&str; 4] = ["RRR", "RRC", "CRC", "CCC"];

/// `(column stride, row stride)` of a `[rows, cols]` matrix stored as `layout` says.
fn strides(layout: u8, rows: usize, cols: usize) -> (isize, isize) {
    if layout == b'C' {
        (rows as isize, 1)
    } else {
        (1, cols as isize)
    }
}

fn args() -> impl Iterator<Item = String> {
    SHAPES
        .iter()
        .flat_map(|(name, ..)| LAYOUTS.iter().map(move |l| format!("{name} {l}")))
}

#[divan::bench(args = args(), sample_count = 20, sample_size = 5)]
fn gemm_call(bencher: divan::Bencher, arg: &str) {
    let (name, layout) = arg.rsplit_once(' ').unwrap();
    let &(_, m, k, n) = SHAPES.iter().find(|s| s.0 == name).unwrap();
    let l = layout.as_bytes();
    let lhs: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let rhs: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
    let mut dst = vec![0.0f32; m * n];
    let (dcs, drs) = strides(l[0], m, n);
    let (lcs, lrs) = strides(l[1], m, k);
    let (rcs, rrs) = strides(l[2], k, n);
    bencher.bench_local(|| {
        // SAFETY: each buffer holds exactly its matrix, and the strides above address only
        // its elements; `dst` is a unique borrow.
        #[allow(unsafe_code)]
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                dcs,
                drs,
                false,
                lhs.as_ptr(),
                lcs,
                lrs,
                rhs.as_ptr(),
                rcs,
                rrs,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
}
