//! The forward convolution and the kernel gradient of the CPU (`flex`) path as im2col and
//! one GEMM per chunk of whole images, the chunks in parallel.
//!
//! Burn's `flex` backend computes the kernel gradient as a convolution of the input by the
//! output gradient (`[c_in, n, h, w]` by `[c_out, n, h', w']`), whose products have `k * k`
//! = 9 columns: the narrow `x1x6` AVX-512 kernel that issue 14's profile found under 45% of
//! the ResNet step. Its forward pass convolves image by image, 512 output positions at a time,
//! each tile's GEMM on one thread. Here, with `K = c_in k k`:
//!
//! ```text
//! im2col      col[(ci, a, b), (i, p)] = x[i, ci, p_y s + a - pad, p_x s + b - pad]   (0 outside)
//! forward     y[i, :, p]  = W · col[:, (i, p)]          [c_out, K] x [K, chunk h'w']
//! kernel grad dW          = sum_chunks delta · col^T    [c_out, chunk h'w'] x [chunk h'w', K]
//! ```
//!
//! so the kernel gradient's long dimension is the chunk's positions, its output the whole
//! `[c_out, K]` kernel. Each rayon worker takes whole chunks with a single-threaded GEMM (the
//! `gemm` crate, as flex uses, AVX-512 picked at run time) and keeps its im2col buffer
//! between calls; a chunk holds at most [`CHUNK_FLOATS`] im2col entries, so the buffers stay
//! bounded at ImageNet sizes (a ResNet-18 `layer1` conv at 224x224 has 1.8 M entries per
//! image).
//!
//! At stride 1 the input gradient (the transposed convolution through `B`) is the forward
//! convolution of `delta` by the flipped kernel ([`input_gradient`]); at other strides it
//! stays Burn's `conv_transpose2d` (a col2im version, the GEMM `B^T · delta` then scattering
//! `K` rows back, measured 2-5 times slower there: `docs/performance.md`).
//!
//! The forward convolution and the input gradient of the 3x3 stride-1 convs with at least 64
//! channels on both sides (every such conv of ResNet-18 and -50, and of the mirror's noise
//! passes) go through Winograd's F(2x2, 3x3) instead of im2col ([`winograd`]): 2.25 times
//! fewer multiplies; on ResNet-18's shapes the forward takes 0.7-0.8 of im2col's time, the input
//! gradient 0.55-0.7.
//! The thin ones (fewer than 64 channels on a side, or 64 on 8x8 maps: the CIFAR ResNets')
//! go through [`direct`] instead, forward, input gradient and kernel gradient: AVX-512
//! register blocks that read the input in place, where im2col's copy cost as much as its thin
//! GEMM.
//! `BIOFEEDBACK_CPU_CONV=im2col` turns both off (im2col everywhere).
//!
//! Every function here returns `None` when its tensors are not plain `f32` tensors of the
//! `flex` backend (a `wgpu` tensor, an autodiff-tracked tensor), and the caller then uses
//! Burn's own op. `BIOFEEDBACK_CPU_CONV=burn` in the environment turns this path off (Burn's
//! ops everywhere), which is how `docs/performance.md` measures the two side by side.

use crate::flex_f32::{elements, view};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

mod direct;
mod winograd;

/// The largest im2col buffer of one chunk of images, in floats (2 MiB: a worker's chunk stays
/// in its core's caches), unless one image alone needs more.
pub const CHUNK_FLOATS: usize = 1 << 19;

/// The largest kernel gradient, in floats (1 MiB), that [`weight_gradient`] accumulates
/// column-major (see there).
const COLUMN_MAJOR_MAX: usize = 1 << 18;

/// Whether this path is on: unless `BIOFEEDBACK_CPU_CONV=burn` is set.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BIOFEEDBACK_CPU_CONV").map_or(true, |v| v != "burn"))
}

/// Whether the direct and Winograd paths are on: unless `BIOFEEDBACK_CPU_CONV=im2col` (or
/// `burn`) is set, which is how `docs/performance.md` measures them against im2col in the
/// same binary.
fn fast_paths() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BIOFEEDBACK_CPU_CONV").map_or(true, |v| v != "im2col"))
}

/// How a convolution of this path is computed ([`Geometry::path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// [`direct`]: forward, input gradient and kernel gradient.
    Direct,
    /// [`winograd`]: forward and input gradient (the kernel gradient stays im2col).
    Winograd,
    /// im2col and one GEMM per chunk of images.
    Im2col,
}

/// A convolution's sizes: input `[n, c_in, h, w]`, kernel `[c_out, c_in, k, k]`, stride `s`,
/// zero padding `pad` on every side, output `[n, c_out, oh, ow]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// `None` when the kernel does not fit in the padded input, or a size is zero (left to
    /// Burn's ops).
    fn new(
        [n, c_in, h, w]: [usize; 4],
        [c_out, c_in_w, k, k2]: [usize; 4],
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        let out = |side: usize| (side + 2 * pad).checked_sub(k).map(|r| r / stride + 1);
        let nonzero = [n, c_in, h, w, c_out, k, stride].iter().all(|&d| d > 0);
        (nonzero && c_in == c_in_w && k == k2).then_some(())?;
        Some(Self {
            n,
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pad,
            oh: out(h)?,
            ow: out(w)?,
        })
    }

    /// The path of this convolution: direct where it applies (the thin convs and the 64-channel
    /// ones on 8x8 maps, measured faster there than both others), else Winograd where it
    /// applies, else im2col; im2col everywhere with the fast paths off ([`fast_paths`]).
    fn path(&self) -> Path {
        if !fast_paths() {
            Path::Im2col
        } else if direct::applies(self) {
            Path::Direct
        } else if winograd::applies(self) {
            Path::Winograd
        } else {
            Path::Im2col
        }
    }

    /// Output positions per image, `h' w'`.
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of the im2col matrix, `K = c_in k k`.
    fn rows(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Images per chunk: at most [`CHUNK_FLOATS`] im2col entries (at least one image), and
    /// at least as many chunks as rayon has threads, which take the chunks in parallel (each
    /// with a single-threaded GEMM). Of those sizes, the largest whose chunks share out most
    /// evenly ([`Geometry::busiest`]): 32 images in chunks of 7 leave one of 2 threads 18
    /// images to the other's 14, in chunks of 4 both get 16.
    fn per_chunk(&self) -> usize {
        self.per_chunk_of(self.rows() * self.ohw(), CHUNK_FLOATS)
    }

    /// [`Geometry::per_chunk`] for buffers of `per_image` floats per image, at most `limit`
    /// per chunk (unless one image needs more).
    fn per_chunk_of(&self, per_image: usize, limit: usize) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let fit = limit / per_image.max(1);
        let fit = fit.clamp(1, self.n.div_ceil(threads).max(1));
        (1..=fit)
            .rev()
            .min_by_key(|&per| self.busiest(per, threads))
            .unwrap_or(1)
    }

    /// The most images one of `threads` threads gets when chunks of `per` images are dealt
    /// in order, each to the least loaded thread.
    fn busiest(&self, per: usize, threads: usize) -> usize {
        let mut loads = vec![0usize; threads];
        for chunk in 0..self.n.div_ceil(per) {
            if let Some(least) = loads.iter_mut().min() {
                *least += self.chunk(chunk, per).len();
            }
        }
        loads.into_iter().max().unwrap_or(0)
    }

    /// The images of chunk number `chunk` when chunks hold `per` images.
    fn chunk(&self, chunk: usize, per: usize) -> Range<usize> {
        chunk * per..(chunk * per + per).min(self.n)
    }

    /// The output positions `o < out` whose input index `o s + tap - pad` lies in
    /// `[0, size)`: one side's valid span for kernel tap `tap`.
    fn span(&self, tap: usize, size: usize, out: usize) -> Range<usize> {
        let s = self.stride;
        let hi = if size + self.pad > tap {
            ((size + self.pad - tap - 1) / s + 1).min(out)
        } else {
            0
        };
        let lo = if tap >= self.pad {
            0
        } else {
            (self.pad - tap).div_ceil(s)
        };
        lo.min(hi)..hi
    }
}

/// The `f32` storage of a plain flex tensor (made contiguous), or `None` (also when this path
/// is off).
fn flex_f32(tensor: &Tensor<4>) -> Option<FlexTensor> {
    if !enabled() {
        return None;
    }
    view(tensor)
}

/// A strided view of a matrix: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same data.
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element the view names lies in `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// How [`matmul`] stores its `[m, n]` product.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `dst[r * n + c]`.
    RowMajor,
    /// `dst[c * m + r]`: the transpose, row-major.
    ColMajor,
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` when `accumulate`), `dst` `[lhs.rows, rhs.cols]`
/// laid out as `layout` says, through the `gemm` crate (the GEMM flex uses, AVX-512 kernels
/// picked at run time), on the calling thread (the chunks are what runs in parallel).
///
/// The layouts matter: `gemm` makes its destination column-major (transposing the whole
/// product when it is not) and then runs at full speed only when the left operand is
/// column-major too. The kernel gradient `delta · col^T` with a row-major destination became
/// `col · delta^T` with a row-major `col`: 32 GFLOP/s on one core for `layer1`'s shape, against
/// 91 with a column-major destination (`docs/performance.md`).
fn matmul(dst: &mut [f32], layout: Layout, accumulate: bool, lhs: Mat<'_>, rhs: Mat<'_>) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner sizes differ");
    assert_eq!(dst.len(), m * n, "matmul: destination size");
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "matmul: view out of bounds"
    );
    let stride = |s: usize| s as isize;
    let (dst_cs, dst_rs) = match layout {
        Layout::RowMajor => (1, n),
        Layout::ColMajor => (m, 1),
    };
    // SAFETY: `dst` holds `m * n` elements, written with the strides of `layout` (the largest
    // index is `(m - 1) dst_rs + (n - 1) dst_cs = m n - 1`); every element that `lhs` and `rhs` name lies in their slices (`in_bounds`, all
    // strides non-negative); `dst` is a unique borrow, so it aliases neither operand.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            stride(dst_cs),
            stride(dst_rs),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.cs),
            stride(lhs.rs),
            rhs.data.as_ptr(),
            stride(rhs.cs),
            stride(rhs.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// im2col of the images `images` of `x` (`[n, c_in, h, w]`) into `col`, `[K, |images| h'w']`
/// row-major; every entry is written (zeros where the kernel reads padding).
fn im2col(x: &[f32], g: &Geometry, images: Range<usize>, col: &mut [f32]) {
    let (ohw, k, s) = (g.ohw(), g.k, g.stride);
    let cols = images.len() * ohw;
    col.chunks_mut(cols).enumerate().for_each(|(r, row)| {
        let (ci, a, b) = (r / (k * k), (r / k) % k, r % k);
        let xs = g.span(b, g.w, g.ow);
        for (i, image) in images.clone().enumerate() {
            let plane = &x[(image * g.c_in + ci) * g.h * g.w..][..g.h * g.w];
            let out = &mut row[i * ohw..][..ohw];
            for (oy, dst) in out.chunks_exact_mut(g.ow).enumerate() {
                let iy = (oy * s + a) as isize - g.pad as isize;
                if iy < 0 || iy >= g.h as isize || xs.is_empty() {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * g.w..][..g.w];
                dst[..xs.start].fill(0.0);
                dst[xs.end..].fill(0.0);
                let first = xs.start * s + b - g.pad;
                if s == 1 {
                    dst[xs.clone()].copy_from_slice(&src[first..first + xs.len()]);
                } else {
                    for (d, x) in dst[xs.clone()]
                        .iter_mut()
                        .zip(src[first..].iter().step_by(s))
                    {
                        *d = *x;
                    }
                }
            }
        }
    });
}

/// The transpose of the row-major `[rows, cols]` matrix `src`, row-major `[cols, rows]`, in
/// tiles of 32 x 32 (a column-by-column gather misses the cache on every read for wide
/// matrices: 9 ms for a `512 x 4608` kernel).
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut dst = vec![0.0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    dst
}

/// `[|images|, c, p]` (image-major, as tensors are stored) to `[c, |images| p]`
/// (channel-major, as the GEMMs read it).
fn channel_major(src: &[f32], images: usize, c: usize, p: usize, dst: &mut [f32]) {
    dst.chunks_mut(p).enumerate().for_each(|(q, out)| {
        let (ch, i) = (q / images, q % images);
        out.copy_from_slice(&src[(i * c + ch) * p..][..p]);
    });
}

/// `[c, |images| p]` back to `[|images|, c, p]`.
fn image_major(src: &[f32], images: usize, c: usize, p: usize, dst: &mut [f32]) {
    dst.chunks_mut(p).enumerate().for_each(|(q, out)| {
        let (i, ch) = (q / c, q % c);
        out.copy_from_slice(&src[(ch * images + i) * p..][..p]);
    });
}

thread_local! {
    /// Each worker's im2col and gather buffers, kept between calls: allocating them per call
    /// cost a fifth of the time in page faults and TLB shootdowns.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's two scratch buffers (`f` must not call back into this module
/// on the same thread).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let (a, b) = &mut *buffers;
        f(a, b)
    })
}

/// A flex tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: [usize; 4], like: &Tensor<4>) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), &like.device())
}

/// `conv(x, W)`: `x` `[n, c_in, h, w]`, `weight` `[c_out, c_in, k, k]` → `[n, c_out, h', w']`,
/// `h' = (h + 2 pad - k) / stride + 1`.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, stride: usize, pad: usize) -> Option<Tensor<4>> {
    let g = Geometry::new(x.dims(), weight.dims(), stride, pad)?;
    let (xf, wf) = (flex_f32(x)?, flex_f32(weight)?);
    let (xs, ws) = (elements(&xf), elements(&wf));
    let y = match g.path() {
        Path::Direct => direct::forward(xs, ws, &g),
        Path::Winograd => {
            let u = winograd::transform_kernel(ws, g.c_out, g.c_in, winograd::Kernel::AsIs);
            winograd::forward(xs, &u, &g)
        }
        Path::Im2col => forward(xs, ws, &g),
    };
    Some(tensor(y, [g.n, g.c_out, g.oh, g.ow], x))
}

/// The input gradient of a stride-1 convolution, `conv_transpose(delta, kernel)`, as the
/// forward convolution of `delta` by the flipped kernel with its channel axes swapped:
///
/// ```text
/// dx[i, ci, y, x] = sum_{co, a, b} delta[i, co, y + pad - a, x + pad - b] B[co, ci, a, b]
///                 = conv(delta, B'; padding k - 1 - pad),   B'[ci, co, a, b] = B[co, ci, k-1-a, k-1-b]
/// ```
///
/// `delta` `[n, c_out, h', w']`, `kernel` `[c_out, c_in, k, k]` → `[n, c_in, h, w]` with
/// `h = h' + k - 1 - 2 pad`. `None` for other strides (or a padding over `k - 1`): there the
/// transposed convolution skips the positions between strides, which this form would
/// multiply as zeros.
pub fn input_gradient(
    delta: &Tensor<4>,
    kernel: &Tensor<4>,
    stride: usize,
    pad: usize,
) -> Option<Tensor<4>> {
    let [c_out, c_in, k, k2] = kernel.dims();
    if stride != 1 || k != k2 || pad + 1 > k {
        return None;
    }
    let g = Geometry::new(delta.dims(), [c_in, c_out, k, k], 1, k - 1 - pad)?;
    let (df, bf) = (flex_f32(delta)?, flex_f32(kernel)?);
    let b = elements(&bf);
    let path = g.path();
    if path == Path::Winograd {
        let u = winograd::transform_kernel(b, c_out, c_in, winograd::Kernel::TransposedFlipped);
        let dx = winograd::forward(elements(&df), &u, &g);
        return Some(tensor(dx, [g.n, c_in, g.oh, g.ow], delta));
    }
    let taps = k * k;
    let mut flipped = vec![0.0f32; b.len()];
    flipped.chunks_mut(taps).enumerate().for_each(|(q, out)| {
        let (ci, co) = (q / c_out, q % c_out);
        let src = &b[(co * c_in + ci) * taps..][..taps];
        out.iter_mut()
            .zip(src.iter().rev())
            .for_each(|(o, v)| *o = *v);
    });
    let dx = if path == Path::Direct {
        direct::forward(elements(&df), &flipped, &g)
    } else {
        forward(elements(&df), &flipped, &g)
    };
    Some(tensor(dx, [g.n, c_in, g.oh, g.ow], delta))
}

/// The forward convolution of `x` (`[n, c_in, h, w]`) by `w` (`[c_out, c_in, k, k]`), laid
/// out as `g` says: `[n, c_out, h', w']`.
fn forward(xs: &[f32], ws: &[f32], g: &Geometry) -> Vec<f32> {
    let (ohw, rows, per) = (g.ohw(), g.rows(), g.per_chunk());
    let mut y = vec![0.0f32; g.n * g.c_out * ohw];
    y.par_chunks_mut(per * g.c_out * ohw)
        .enumerate()
        .for_each(|(chunk, out)| {
            with_scratch(|col, product| {
                let images = g.chunk(chunk, per);
                let cols = images.len() * ohw;
                col.resize(rows * cols, 0.0);
                im2col(xs, g, images.clone(), col);
                let lhs = Mat::row_major(ws, g.c_out, rows);
                let rhs = Mat::row_major(col, rows, cols);
                if images.len() == 1 {
                    matmul(out, Layout::RowMajor, false, lhs, rhs);
                } else {
                    product.resize(g.c_out * cols, 0.0);
                    matmul(product, Layout::RowMajor, false, lhs, rhs);
                    image_major(product, images.len(), g.c_out, ohw, out);
                }
            })
        });
    y
}

/// The output gradient of the images `images` as `[c_out, |images| h'w']`: borrowed when it
/// is one image, else gathered into `buffer`.
fn delta_columns<'a>(
    delta: &'a [f32],
    g: &Geometry,
    images: &Range<usize>,
    buffer: &'a mut Vec<f32>,
) -> Mat<'a> {
    let (ohw, c) = (g.ohw(), g.c_out);
    let chunk = &delta[images.start * c * ohw..images.end * c * ohw];
    let cols = images.len() * ohw;
    if images.len() == 1 {
        return Mat::row_major(chunk, c, cols);
    }
    buffer.resize(c * cols, 0.0);
    channel_major(chunk, images.len(), c, ohw, buffer);
    Mat::row_major(buffer, c, cols)
}

/// The kernel gradient `corr(x, delta)` of a convolution with kernel shape `kernel`
/// (`[c_out, c_in, k, k]`): `x` `[n, c_in, h, w]`, `delta` `[n, c_out, h', w']` →
/// `[c_out, c_in, k, k]`, summed over the batch and the positions.
pub fn weight_gradient(
    x: &Tensor<4>,
    delta: &Tensor<4>,
    kernel: [usize; 4],
    stride: usize,
    pad: usize,
) -> Option<Tensor<4>> {
    let g = Geometry::new(x.dims(), kernel, stride, pad)?;
    if delta.dims() != [g.n, g.c_out, g.oh, g.ow] {
        return None;
    }
    let (xf, df) = (flex_f32(x)?, flex_f32(delta)?);
    let (xs, ds) = (elements(&xf), elements(&df));
    if g.path() == Path::Direct {
        return Some(tensor(direct::weight_gradient(xs, ds, &g), kernel, delta));
    }
    let (ohw, rows, per) = (g.ohw(), g.rows(), g.per_chunk());
    let chunks = g.n.div_ceil(per);

    // dW = sum over chunks of delta · col^T: the chunks are split into one contiguous group
    // per thread, each group accumulates into its own `[c_out, K]`, and the groups' sums are
    // added in group order (so a given thread count always adds in the same order).
    // `gemm` packs the operand that becomes its left one: with a column-major product that is
    // `delta` (`c_out` rows), with a row-major one `col` (`K` rows, transposed as it is
    // packed, which is slow). Pack the smaller, while the kernel fits in a core's L2 cache:
    // for larger kernels (ResNet-18's `layer3`/`layer4`, chunks of few positions) the
    // column-major accumulation measured 20-70% slower. The column-major sum is transposed
    // once.
    let layout = if g.c_out < rows && g.c_out * rows <= COLUMN_MAJOR_MAX {
        Layout::ColMajor
    } else {
        Layout::RowMajor
    };
    let groups = rayon::current_num_threads().clamp(1, chunks);
    let partial: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|group| {
            let mut acc = vec![0.0f32; g.c_out * rows];
            let mine = group * chunks / groups..(group + 1) * chunks / groups;
            with_scratch(|col, gathered| {
                for (i, chunk) in mine.enumerate() {
                    let images = g.chunk(chunk, per);
                    let cols = images.len() * ohw;
                    col.resize(rows * cols, 0.0);
                    im2col(xs, &g, images.clone(), col);
                    let delta_t = delta_columns(ds, &g, &images, gathered);
                    let col_t = Mat::row_major(col, rows, cols).t();
                    matmul(&mut acc, layout, i > 0, delta_t, col_t);
                }
            });
            acc
        })
        .collect();
    let sum = partial.into_iter().reduce(|mut a, b| {
        a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
        a
    });
    let sum = sum.unwrap_or_else(|| vec![0.0; g.c_out * rows]);
    let dw = match layout {
        Layout::RowMajor => sum,
        Layout::ColMajor => transpose(&sum, rows, g.c_out),
    };
    Some(tensor(dw, kernel, delta))
}

/// Inputs and comparisons the tests of this module and its submodules share.
#[cfg(test)]
mod check {
    /// `n` values spread over `[-1, 1)`, different for each `seed`.
    pub(super) fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 12.9898 + seed * 78.233).sin() * 43758.547).fract())
            .collect()
    }

    /// `|a - b| / |b|` under 1e-6.
    pub(super) fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: size");
        let (diff, norm) = a.iter().zip(b).fold((0.0f64, 0.0f64), |(d, n), (a, b)| {
            (d + ((a - b) as f64).powi(2), n + (*b as f64).powi(2))
        });
        let rel = (diff / norm).sqrt();
        assert!(rel < 1e-6, "{what}: relative error {rel:e}");
    }

    /// The kernel `w`, `[ci, co, 3, 3]`, as the input gradient's forward convolution reads
    /// it: `[co, ci, 3, 3]`, each 3x3 kernel flipped, `w'[o, i, a, b] = w[i, o, 2 - a, 2 - b]`.
    pub(super) fn flipped(w: &[f32], ci: usize, co: usize) -> Vec<f32> {
        (0..co * ci)
            .flat_map(|q| {
                let (o, i) = (q / ci, q % ci);
                w[(i * co + o) * 9..][..9].iter().rev().copied()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_io::relative_error;
    use burn::tensor::module::{conv_transpose2d, conv2d as burn_conv2d, conv2d_weight_backward};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Device, Distribution};

    fn assert_close(ours: Tensor<4>, burn: Tensor<4>, what: &str) {
        assert_eq!(ours.dims(), burn.dims(), "{what}: shape");
        let rel = relative_error(ours, burn);
        // f32 sums of up to 3,000 products in another order than Burn's: a few 1e-7.
        assert!(rel < 2e-6, "{what}: relative error {rel:e}");
    }

    /// Both products equal Burn's ops (its conv and its kernel gradient) for every shape a
    /// ResNet uses, odd sizes, a padding wider than the kernel's reach, and
    /// batches split into several chunks.
    #[test]
    fn the_gemm_convolutions_equal_burns() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        // (n, c_in, c_out, k, stride, pad, side)
        for (n, ci, co, k, s, p, side) in [
            (2, 3, 4, 3, 1, 1, 8),
            (3, 5, 6, 3, 2, 1, 7),
            (2, 4, 8, 1, 2, 0, 8),
            (2, 4, 3, 1, 1, 0, 5),
            (2, 3, 4, 7, 2, 3, 15),
            (2, 2, 3, 3, 1, 2, 4),
            (1, 3, 2, 3, 3, 0, 10),
            // several images per chunk, several chunks
            (9, 64, 16, 3, 1, 1, 32),
            // channel counts that are no power of two (20 in, 5 out)
            (2, 20, 5, 3, 1, 1, 6),
            // a kernel over COLUMN_MAJOR_MAX with c_out < K: the row-major kernel gradient
            (3, 128, 512, 3, 2, 1, 4),
            // Winograd (3x3, stride 1, 64 channels or more): odd sides (a last tile half
            // outside), paddings 0 and 2, a 1-pixel map, several images per chunk
            (3, 64, 64, 3, 1, 1, 7),
            (2, 64, 96, 3, 1, 0, 6),
            (2, 64, 64, 3, 1, 2, 5),
            (4, 64, 64, 3, 1, 1, 1),
            (5, 128, 64, 3, 1, 1, 4),
            // the direct path (3x3, stride 1, padding 1, fewer than 64 channels on a side,
            // output channels a multiple of 8): the CIFAR ResNets' thin convs, a stem, an odd
            // side
            (3, 16, 16, 3, 1, 1, 32),
            (2, 3, 16, 3, 1, 1, 32),
            (2, 32, 32, 3, 1, 1, 16),
            (2, 24, 8, 3, 1, 1, 11),
        ] {
            let case = format!("n {n} c {ci}->{co} k {k} s {s} p {p} side {side}");
            let x = Tensor::<4>::random([n, ci, side, side], normal, &device);
            let w = Tensor::<4>::random([co, ci, k, k], normal, &device);
            let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
            let y = conv2d(&x, &w, s, p).expect("flex f32");
            assert_close(
                y.clone(),
                burn_conv2d(x.clone(), w.clone(), None, options.clone()),
                &case,
            );

            let delta = Tensor::<4>::random(y.dims(), normal, &device);
            let dw = weight_gradient(&x, &delta, w.dims(), s, p).unwrap();
            let burn_dw = conv2d_weight_backward(x.clone(), w.clone(), delta.clone(), options);
            assert_close(dw, burn_dw, &format!("{case}: kernel gradient"));
            match input_gradient(&delta, &w, s, p) {
                Some(dx) => {
                    let options = ConvTransposeOptions::new([1, 1], [p, p], [0, 0], [1, 1], 1);
                    let burn_dx = conv_transpose2d(delta.clone(), w.clone(), None, options);
                    assert_close(dx, burn_dx, &format!("{case}: input gradient"));
                }
                None => assert!(s != 1 || p >= k, "{case}: stride 1 left to Burn"),
            }
        }
    }

    /// im2col writes every entry of its definition (the module docs' formula, evaluated
    /// entry by entry here) into a buffer full of NaN, at strides 1 and 2, for odd kernels,
    /// paddings narrower and wider than the kernel's reach, rectangular and 1-pixel maps, and
    /// images after the first of a chunk.
    #[test]
    fn im2col_is_its_definition_entry_by_entry() {
        // (n, c_in, h, w, k, stride, pad), images from 1 to n - 1
        for (n, ci, h, w, k, s, p) in [
            (3, 2, 4, 4, 3, 1, 1),
            (3, 2, 5, 7, 3, 1, 1),
            (2, 1, 1, 1, 3, 1, 1),
            (2, 2, 2, 3, 3, 1, 1),
            (2, 2, 6, 5, 5, 1, 2),
            (2, 1, 3, 2, 5, 1, 2),
            (2, 3, 4, 6, 1, 1, 0),
            (2, 2, 4, 4, 3, 1, 2),
            (2, 2, 4, 4, 3, 1, 0),
            (2, 2, 7, 6, 3, 2, 1),
            (2, 2, 6, 6, 1, 2, 0),
        ] {
            let x: Vec<f32> = (0..n * ci * h * w).map(|v| v as f32 + 1.0).collect();
            let g = Geometry::new([n, ci, h, w], [1, ci, k, k], s, p).expect("geometry");
            let images = 1..n;
            let cols = images.len() * g.ohw();
            let mut col = vec![f32::NAN; g.rows() * cols];
            im2col(&x, &g, images.clone(), &mut col);
            for (r, (ci_, a, b)) in (0..ci)
                .flat_map(|c| (0..k).flat_map(move |a| (0..k).map(move |b| (c, a, b))))
                .enumerate()
            {
                for (i, image) in images.clone().enumerate() {
                    for (oy, ox) in (0..g.oh).flat_map(|y| (0..g.ow).map(move |x| (y, x))) {
                        let iy = (oy * s + a) as isize - p as isize;
                        let ix = (ox * s + b) as isize - p as isize;
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let want = if inside {
                            x[((image * ci + ci_) * h + iy as usize) * w + ix as usize]
                        } else {
                            0.0
                        };
                        let got = col[r * cols + i * g.ohw() + oy * g.ow + ox];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "n {n} c {ci} {h}x{w} k {k} s {s} p {p}: row {r}, image {image}, ({oy}, {ox})"
                        );
                    }
                }
            }
        }
    }

    /// Autodiff-tracked tensors and empty batches are left to Burn's ops (`None`).
    #[test]
    fn what_this_path_does_not_take_is_left_to_burn() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([1, 2, 4, 4], Distribution::Default, &device).require_grad();
        let w = Tensor::<4>::random([3, 2, 3, 3], Distribution::Default, &device);
        assert!(conv2d(&x, &w, 1, 1).is_none());
        let device = Device::flex();
        let empty = Tensor::<4>::zeros([0, 2, 4, 4], &device);
        let w = Tensor::<4>::random([3, 2, 3, 3], Distribution::Default, &device);
        let delta = Tensor::<4>::zeros([0, 3, 4, 4], &device);
        assert!(conv2d(&empty, &w, 1, 1).is_none());
        assert!(weight_gradient(&empty, &delta, w.dims(), 1, 1).is_none());
    }
}
