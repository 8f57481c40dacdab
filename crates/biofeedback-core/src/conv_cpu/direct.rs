//! The thin 3x3 stride-1 "same" convolutions (fewer than 64 channels on a side: the CIFAR
//! ResNets' first two stages, the 3-channel stems; and 64 channels on 8x8 maps, their last
//! stage) computed in place, without im2col: each output row lives in AVX-512 registers while
//! the kernel's 9 taps of every input channel are added into it. The forward pass, the input
//! gradient (the forward pass of the flipped kernel) and the kernel gradient.
//!
//! ```text
//! y[i, co, oy, ox] = sum_{ci, a, b} W[co, ci, a, b] x[i, ci, oy + a - 1, ox + b - 1]   (0 outside)
//! ```
//!
//! A register block holds 8 output channels by 1 or 2 output rows of up to 32 positions, or
//! by 2 vectors of `16 / w` rows each for maps 8, 4, 2 or 1 columns wide (16 accumulators of
//! 16 lanes). For each input channel and tap it loads the input row
//! shifted by the tap, once, as 1 or 2 masked vectors (the masks zero the padding columns and
//! rows, and read nothing outside the image), and adds it times each of the 8 channels'
//! weight (a broadcast) into their accumulators: 16 FMAs per 10 loads, no copy of the input.
//! For these shapes im2col's matrix is 9 times the input and its GEMM has an inner size of
//! only `9 c_in` (144 at 16 channels): copying it cost as much as the products
//! (`docs/performance.md`, "Direct thin convolutions"). The kernel gradient keeps 24
//! accumulators (8 output channels by the 3 column taps of one kernel row) over the images'
//! positions and sums each across its lanes once per batch of images.
//!
//! Only on x86-64 CPUs with AVX-512F (checked at run time); elsewhere, and for other shapes,
//! `conv_cpu` keeps im2col. `BIOFEEDBACK_CPU_CONV=im2col` turns this path off with Winograd.

use super::Geometry;
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;

/// Output channels per register block.
const CO_BLOCK: usize = 8;

/// The widest output row a register block holds (2 vectors).
const MAX_WIDTH: usize = 32;

/// The floats of input and output gradient planes that one set of the kernel gradient's
/// accumulators sums over (32 KiB, a core's L1 data cache).
const L1_FLOATS: usize = 1 << 13;

/// Whether this CPU runs the direct kernel (AVX-512F).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether `g` is a convolution this path computes: 3x3, stride 1, padding 1 (the output the
/// size of the input), output rows of at most 32 positions, output channels a multiple of 8,
/// on a CPU with AVX-512F, and either fewer than 64 channels on one
/// side or at most 64 on both on maps of at most 8 columns (ResNet-20's `layer3`). Winograd
/// takes the other 3x3 stride-1 convs: measured per shape (`docs/performance.md`), the direct
/// forward pass ran 0.56-0.64 of im2col's time at 16 and 32 channels and 0.86-0.95 of
/// Winograd's for 64 channels on 8x8 maps, but 1.5 times Winograd's for 128 channels on 16x16.
pub(super) fn applies(g: &Geometry) -> bool {
    g.k == 3
        && g.stride == 1
        && g.pad == 1
        && g.ow <= MAX_WIDTH
        && g.c_out.is_multiple_of(CO_BLOCK)
        && (g.c_in < 64 || g.c_out < 64 || (g.ow <= 8 && g.c_in <= 64 && g.c_out <= 64))
        && available()
}

/// How output positions map to vector lanes. A *unit* is `rows` consecutive output rows held
/// in `vectors` vectors, lane `l` of vector `v` at position `p = 16 v + l`: row `p / w`,
/// column `p % w` of the unit (lanes with `p >= rows w` unused). Maps of 1, 2, 4, 8 or 16
/// columns pack `16 / w` rows into one vector; wider rows (up to 32) take 2 vectors, other
/// widths under 16 one vector per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Units {
    rows: usize,
    vectors: usize,
}

/// `f32` lanes of an AVX-512 vector.
const LANES: usize = 16;

impl Units {
    fn of(g: &Geometry) -> Self {
        if g.ow <= LANES && LANES.is_multiple_of(g.ow) {
            Self {
                rows: LANES / g.ow,
                vectors: 1,
            }
        } else {
            Self {
                rows: 1,
                vectors: g.ow.div_ceil(LANES),
            }
        }
    }

    /// Units per register block of the forward pass: 2 single-vector units (16
    /// accumulators with 8 channels), or 1 of 2 vectors.
    fn per_block(&self) -> usize {
        if self.vectors == 1 { 2 } else { 1 }
    }

    /// The lanes of vector `v` of the unit starting at output row `oy` that read a position
    /// inside the `[h, w]` input when shifted by `(dy, dx)` (rows, columns), and whose own
    /// output position exists (`row < h'`), as a bit mask.
    fn lanes(&self, g: &Geometry, v: usize, oy: usize, dy: isize, dx: isize) -> u16 {
        (0..LANES).fold(0, |mask, l| {
            let p = v * LANES + l;
            let (r, c) = (p / g.ow, (p % g.ow) as isize + dx);
            let iy = (oy + r) as isize + dy;
            let inside = r < self.rows
                && oy + r < g.oh
                && (0..g.h as isize).contains(&iy)
                && (0..g.w as isize).contains(&c);
            if inside { mask | (1 << l) } else { mask }
        })
    }

    /// The lane masks of every register block of `units` units, computed once per
    /// convolution (they cost divisions per lane, as much as a thin conv's products when
    /// computed per block): for block `k` (first output row `k units rows`), the input
    /// masks of tap `(a, b)`, unit `r`, vector `v` at `((a 3 + b) units + r) vectors + v`,
    /// then the output masks at `9 units vectors + r vectors + v`.
    fn masks(&self, g: &Geometry, units: usize) -> Vec<u16> {
        let step = self.rows * units;
        (0..g.oh.div_ceil(step))
            .flat_map(|k| {
                let first = move |r: usize| k * step + r * self.rows;
                let taps = (0..9).flat_map(move |tap| {
                    let (dy, dx) = ((tap / 3) as isize - 1, (tap % 3) as isize - 1);
                    (0..units).flat_map(move |r| {
                        (0..self.vectors).map(move |v| self.lanes(g, v, first(r), dy, dx))
                    })
                });
                let outputs = (0..units).flat_map(move |r| {
                    (0..self.vectors).map(move |v| self.lanes(g, v, first(r), 0, 0))
                });
                taps.chain(outputs).collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The convolution of `x` (`[n, c_in, h, w]`) by `w` (`[c_out, c_in, 3, 3]`) for a `g` that
/// [`applies`]: `[n, c_out, h, w]`. The blocks of 8 output channels of each image run in
/// parallel.
pub(super) fn forward(xs: &[f32], ws: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(
        applies(g),
        "direct::forward: a convolution it does not take"
    );
    assert_eq!(
        xs.len(),
        g.n * g.c_in * g.h * g.w,
        "direct::forward: input size"
    );
    assert_eq!(
        ws.len(),
        g.c_out * g.c_in * 9,
        "direct::forward: kernel size"
    );
    let packed = pack(ws, g.c_in);
    let mut y = vec![0.0f32; g.n * g.c_out * g.oh * g.ow];
    #[cfg(target_arch = "x86_64")]
    {
        let units = Units::of(g);
        let masks = units.masks(g, units.per_block());
        let blocks = g.c_out / CO_BLOCK;
        let plane = g.oh * g.ow;
        y.par_chunks_mut(CO_BLOCK * plane)
            .enumerate()
            .for_each(|(q, out)| {
                let (image, block) = (q / blocks, q % blocks);
                let x = &xs[image * g.c_in * g.h * g.w..][..g.c_in * g.h * g.w];
                let w = &packed[block * g.c_in * 9 * CO_BLOCK..][..g.c_in * 9 * CO_BLOCK];
                // SAFETY: `applies` checked that the CPU has AVX-512F; `x`, `w`, `masks` and
                // `out` have the sizes `channel_block` reads and writes (asserted there).
                #[allow(unsafe_code)]
                unsafe {
                    avx512::channel_block(x, w, g, units, &masks, out)
                };
            });
    }
    y
}

/// The kernel gradient of a convolution `g` that [`applies`], from its input `x`
/// (`[n, c_in, h, w]`) and output gradient `delta` (`[n, c_out, h, w]`):
///
/// ```text
/// dW[co, ci, a, b] = sum_{i, oy, ox} delta[i, co, oy, ox] x[i, ci, oy + a - 1, ox + b - 1]
/// ```
///
/// `[c_out, c_in, 3, 3]`. The images are split into one contiguous group per thread, each
/// group sums into its own kernel, and the groups' sums are added in group order (so a given
/// thread count always adds in the same order).
pub(super) fn weight_gradient(xs: &[f32], ds: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(
        applies(g),
        "direct::weight_gradient: a convolution it does not take"
    );
    let (x_image, d_image) = (g.c_in * g.h * g.w, g.c_out * g.oh * g.ow);
    assert_eq!(
        xs.len(),
        g.n * x_image,
        "direct::weight_gradient: input size"
    );
    assert_eq!(
        ds.len(),
        g.n * d_image,
        "direct::weight_gradient: gradient size"
    );
    let size = g.c_out * g.c_in * 9;
    #[cfg(target_arch = "x86_64")]
    {
        let units = Units::of(g);
        let masks = units.masks(g, 1);
        let groups = rayon::current_num_threads().clamp(1, g.n.max(1));
        // Images per call: as many as keep what one set of accumulators reads (one input
        // plane and 8 gradient planes per image) in a core's L1 cache, so each accumulator
        // runs over all of them before its sum across lanes (on 8x8 maps: 14 images).
        let batch = (L1_FLOATS / ((1 + CO_BLOCK) * g.h * g.w).max(1)).max(1);
        let partial: Vec<Vec<f32>> = (0..groups)
            .into_par_iter()
            .map(|group| {
                let mut dw = vec![0.0f32; size];
                let mine = group * g.n / groups..(group + 1) * g.n / groups;
                for first in mine.clone().step_by(batch) {
                    let count = batch.min(mine.end - first);
                    let x = &xs[first * x_image..][..count * x_image];
                    let d = &ds[first * d_image..][..count * d_image];
                    // SAFETY: `applies` checked that the CPU has AVX-512F; the slices have
                    // the sizes `kernel_gradient` reads and writes (asserted there).
                    #[allow(unsafe_code)]
                    unsafe {
                        avx512::kernel_gradient(x, d, count, g, units, &masks, &mut dw)
                    };
                }
                dw
            })
            .collect();
        if let Some(sum) = partial.into_iter().reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
            a
        }) {
            return sum;
        }
    }
    vec![0.0f32; size]
}

/// `w` (`[c_out, c_in, 3, 3]`) as `[c_out / 8][c_in][9][8]`: the 8 weights a register block
/// broadcasts for one input channel and tap lie side by side.
fn pack(ws: &[f32], c_in: usize) -> Vec<f32> {
    let mut packed = vec![0.0f32; ws.len()];
    for (q, out) in packed.chunks_exact_mut(CO_BLOCK).enumerate() {
        let (block, ci, tap) = (q / (c_in * 9), (q / 9) % c_in, q % 9);
        for (c, value) in out.iter_mut().enumerate() {
            *value = ws[((block * CO_BLOCK + c) * c_in + ci) * 9 + tap];
        }
    }
    packed
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::{CO_BLOCK, Geometry, LANES, Units};
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };

    /// 8 output channels of one image: `x` the image (`[c_in, h, w]`), `w` the block's packed
    /// weights (`[c_in][9][8]`), `masks` the lane masks of `units` (`Units::masks` with
    /// `Units::per_block` units per block), `out` the 8 output planes (`[8, h', w']`).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn channel_block(
        x: &[f32],
        w: &[f32],
        g: &Geometry,
        units: Units,
        masks: &[u16],
        out: &mut [f32],
    ) {
        // SAFETY (both calls): AVX-512F as this function requires.
        unsafe {
            match units.vectors {
                1 => block::<1, 2>(x, w, g, units, masks, out),
                _ => block::<2, 1>(x, w, g, units, masks, out),
            }
        }
    }

    /// [`channel_block`] in register blocks of `R` units of `NV` vectors: for each input
    /// channel and tap, the units' input shifted by the tap is loaded once (masked: zeros for
    /// the padding, nothing read outside the image) and added times each channel's weight
    /// (a broadcast) into the 8 channels' accumulators.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    // The register block's loops index several arrays (masks, rows, vectors) by the same
    // counters.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const NV: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        g: &Geometry,
        units: Units,
        masks: &[u16],
        out: &mut [f32],
    ) {
        let (h, wd, ow) = (g.h, g.w, g.ow);
        let step = units.rows * R;
        let stride = 10 * R * NV;
        assert!(
            units.vectors == NV && g.oh == h && ow == wd,
            "direct: geometry"
        );
        assert_eq!(x.len(), g.c_in * h * wd, "direct: image size");
        assert_eq!(w.len(), g.c_in * 9 * CO_BLOCK, "direct: packed kernel size");
        assert_eq!(masks.len(), g.oh.div_ceil(step) * stride, "direct: masks");
        assert_eq!(out.len(), CO_BLOCK * g.oh * ow, "direct: output size");
        let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        for (k, m) in masks.chunks_exact(stride).enumerate() {
            let first = |r: usize| k * step + r * units.rows;
            let load: [[[[u16; NV]; R]; 3]; 3] = std::array::from_fn(|a| {
                std::array::from_fn(|b| {
                    std::array::from_fn(|r| {
                        std::array::from_fn(|v| m[((a * 3 + b) * R + r) * NV + v])
                    })
                })
            });
            let store: [[u16; NV]; R] =
                std::array::from_fn(|r| std::array::from_fn(|v| m[9 * R * NV + r * NV + v]));
            let mut acc = [[[_mm512_setzero_ps(); NV]; R]; CO_BLOCK];
            for ci in 0..g.c_in {
                let plane = xp.wrapping_add(ci * h * wd);
                for a in 0..3 {
                    for b in 0..3 {
                        let mut xv = [[_mm512_setzero_ps(); NV]; R];
                        for r in 0..R {
                            // Output position `p` of unit `r` reads input position
                            // `(first(r) + a - 1) w + b - 1 + p` of the plane.
                            let at = plane
                                .wrapping_add((first(r) + a) * wd + b)
                                .wrapping_sub(wd + 1);
                            for v in 0..NV {
                                // SAFETY: the unmasked lanes read positions inside the
                                // plane (`Units::lanes`); masked lanes are not read (AVX-512
                                // masked loads do not fault on them).
                                xv[r][v] = unsafe {
                                    _mm512_maskz_loadu_ps(
                                        load[a][b][r][v],
                                        at.wrapping_add(v * LANES),
                                    )
                                };
                            }
                        }
                        let taps = (ci * 9 + a * 3 + b) * CO_BLOCK;
                        for (c, acc_c) in acc.iter_mut().enumerate() {
                            // SAFETY: `taps + c < c_in * 9 * 8 = w.len()`.
                            let weight = _mm512_set1_ps(unsafe { *wp.add(taps + c) });
                            for r in 0..R {
                                for v in 0..NV {
                                    acc_c[r][v] = _mm512_fmadd_ps(xv[r][v], weight, acc_c[r][v]);
                                }
                            }
                        }
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate() {
                for r in 0..R {
                    let at = op.wrapping_add((c * g.oh + first(r)) * ow);
                    for v in 0..NV {
                        // SAFETY: the unmasked lanes are output positions of rows under `h'`
                        // of channel `c < 8`, inside `out`.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                at.wrapping_add(v * LANES),
                                store[r][v],
                                acc_c[r][v],
                            )
                        };
                    }
                }
            }
        }
    }

    /// Adds the kernel gradient of `images` images into `dw` (`[c_out, c_in, 3, 3]`): `x`
    /// the images (`[images, c_in, h, w]`), `d` their output gradients
    /// (`[images, c_out, h, w]`), `masks` the lane masks of `units` (`Units::masks` with 1
    /// unit per block).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel_gradient(
        x: &[f32],
        d: &[f32],
        images: usize,
        g: &Geometry,
        units: Units,
        masks: &[u16],
        dw: &mut [f32],
    ) {
        // SAFETY (both calls): AVX-512F as this function requires.
        unsafe {
            match units.vectors {
                1 => taps::<1>(x, d, images, g, units, masks, dw),
                _ => taps::<2>(x, d, images, g, units, masks, dw),
            }
        }
    }

    /// [`kernel_gradient`] with units of `NV` vectors. For each block of 8 output channels,
    /// input channel `ci` and kernel row `a`, 24 accumulators (8 channels by the 3 column
    /// taps `b`) sum `delta[co, p] * x[ci, p shifted by (a - 1, b - 1)]` lane by lane over the
    /// images and units, then each is summed across its lanes into `dw[co, ci, a, b]`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn taps<const NV: usize>(
        x: &[f32],
        d: &[f32],
        images: usize,
        g: &Geometry,
        units: Units,
        masks: &[u16],
        dw: &mut [f32],
    ) {
        let (h, wd, ow) = (g.h, g.w, g.ow);
        let stride = 10 * NV;
        assert!(
            units.vectors == NV && g.oh == h && ow == wd,
            "direct: geometry"
        );
        assert_eq!(x.len(), images * g.c_in * h * wd, "direct: image size");
        assert_eq!(d.len(), images * g.c_out * h * ow, "direct: gradient size");
        assert_eq!(
            masks.len(),
            g.oh.div_ceil(units.rows) * stride,
            "direct: masks"
        );
        assert_eq!(dw.len(), g.c_out * g.c_in * 9, "direct: kernel size");
        let (xp, dp) = (x.as_ptr(), d.as_ptr());
        for block in 0..g.c_out / CO_BLOCK {
            for ci in 0..g.c_in {
                let plane = xp.wrapping_add(ci * h * wd);
                for a in 0..3 {
                    let mut acc: [[__m512; 3]; CO_BLOCK] = [[_mm512_setzero_ps(); 3]; CO_BLOCK];
                    for i in 0..images {
                        let plane = plane.wrapping_add(i * g.c_in * h * wd);
                        let dp = dp.wrapping_add(i * g.c_out * h * ow);
                        // Unit `u`: its first output row `oy`, its masks `m`.
                        for (u, m) in masks.chunks_exact(stride).enumerate() {
                            let oy = u * units.rows;
                            let at = plane.wrapping_add((oy + a) * wd).wrapping_sub(wd + 1);
                            let mut xv = [[_mm512_setzero_ps(); NV]; 3];
                            for b in 0..3 {
                                for v in 0..NV {
                                    // SAFETY: the unmasked lanes read positions inside the plane
                                    // (`Units::lanes`); masked lanes are not read.
                                    xv[b][v] = unsafe {
                                        _mm512_maskz_loadu_ps(
                                            m[(a * 3 + b) * NV + v],
                                            at.wrapping_add(b + v * LANES),
                                        )
                                    };
                                }
                            }
                            for c in 0..CO_BLOCK {
                                let drow =
                                    dp.wrapping_add(((block * CO_BLOCK + c) * g.oh + oy) * ow);
                                for v in 0..NV {
                                    // SAFETY: the unmasked lanes are output positions of rows
                                    // under `h'` of channel `8 block + c`, inside `d`.
                                    let dv = unsafe {
                                        _mm512_maskz_loadu_ps(
                                            m[9 * NV + v],
                                            drow.wrapping_add(v * LANES),
                                        )
                                    };
                                    for b in 0..3 {
                                        acc[c][b] = _mm512_fmadd_ps(dv, xv[b][v], acc[c][b]);
                                    }
                                }
                            }
                        }
                    }
                    for (c, acc_c) in acc.iter().enumerate() {
                        let at = (((block * CO_BLOCK + c) * g.c_in + ci) * 3 + a) * 3;
                        for (b, value) in acc_c.iter().enumerate() {
                            dw[at + b] += _mm512_reduce_add_ps(*value);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::{close, flipped, values};
    use super::*;

    /// `(n, c_in, c_out, h, w)`: 16 and 32 channels at 32x32 and 16x16 (the CIFAR ResNets'),
    /// a 3-channel stem, 64 channels on 8x8, rectangular maps with rows of 1 to 32 positions
    /// (a second vector partly outside), an odd number of rows (a last block of 2 rows half
    /// outside), a 1-pixel map, 2, 4 and 8 rows to a vector with a last unit partly outside.
    const SHAPES: [(usize, usize, usize, usize, usize); 12] = [
        (3, 16, 16, 32, 32),
        (2, 3, 16, 32, 32),
        (2, 32, 32, 16, 16),
        (3, 64, 64, 8, 8),
        (2, 5, 8, 7, 13),
        (3, 20, 24, 9, 20),
        (2, 8, 16, 3, 32),
        (3, 1, 8, 1, 1),
        (1, 16, 8, 5, 17),
        (2, 16, 8, 5, 8),
        (2, 8, 8, 4, 4),
        (1, 8, 16, 3, 2),
    ];

    /// The direct convolution equals im2col's for [`SHAPES`], with the kernel as it is and
    /// transposed and flipped (the input gradient's).
    #[test]
    fn direct_equals_im2col() {
        if !available() {
            eprintln!("direct_equals_im2col: no AVX-512F on this CPU, the direct path is off");
            return;
        }
        for &(n, ci, co, h, w) in &SHAPES {
            let case = format!("n {n} c {ci}->{co} {h}x{w}");
            let g = Geometry::new([n, ci, h, w], [co, ci, 3, 3], 1, 1).unwrap();
            assert!(applies(&g), "{case}: the direct path takes it");
            let x = values(n * ci * h * w, 1.0);
            let k = values(co * ci * 9, 2.0);
            close(
                &forward(&x, &k, &g),
                &super::super::forward(&x, &k, &g),
                &case,
            );
            // The same values read as an input gradient's kernel `[co, ci, 3, 3]` of a
            // convolution from `co` channels to `ci`, when `ci` is a multiple of 8.
            if ci.is_multiple_of(CO_BLOCK) {
                let g = Geometry::new([n, co, h, w], [ci, co, 3, 3], 1, 1).unwrap();
                let x = values(n * co * h * w, 3.0);
                let k = flipped(&k, co, ci);
                close(
                    &forward(&x, &k, &g),
                    &super::super::forward(&x, &k, &g),
                    &format!("{case}, transposed"),
                );
            }
        }
    }

    /// The direct kernel gradient equals the definition's sum (module docs, in `f64`) for
    /// [`SHAPES`], with 1, 2 and 3 images (so one thread's group of images may be empty, one
    /// or several).
    #[test]
    fn the_direct_kernel_gradient_is_its_definition() {
        if !available() {
            eprintln!("the_direct_kernel_gradient_is_its_definition: no AVX-512F on this CPU");
            return;
        }
        // Also one image per call (9 of its planes over `L1_FLOATS`), several calls per
        // thread.
        for &(n, ci, co, h, w) in SHAPES.iter().chain(&[(5, 48, 24, 32, 32)]) {
            let case = format!("n {n} c {ci}->{co} {h}x{w}");
            let g = Geometry::new([n, ci, h, w], [co, ci, 3, 3], 1, 1).unwrap();
            let x = values(n * ci * h * w, 4.0);
            let d = values(n * co * h * w, 5.0);
            let mut want = vec![0.0f64; co * ci * 9];
            for (q, sum) in want.iter_mut().enumerate() {
                let (o, i, a, b) = (q / (ci * 9), (q / 9) % ci, (q / 3) % 3, q % 3);
                for image in 0..n {
                    for oy in 0..h {
                        for ox in 0..w {
                            let (iy, ix) = (oy + a, ox + b);
                            if iy < 1 || iy > h || ix < 1 || ix > w {
                                continue;
                            }
                            let xv = x[((image * ci + i) * h + iy - 1) * w + ix - 1];
                            let dv = d[((image * co + o) * h + oy) * w + ox];
                            *sum += f64::from(xv) * f64::from(dv);
                        }
                    }
                }
            }
            let want: Vec<f32> = want.into_iter().map(|v| v as f32).collect();
            close(&weight_gradient(&x, &d, &g), &want, &case);
        }
    }

    /// The thin 3x3 "same" convs at stride 1 go the direct way, and 64-channel ones on 8x8
    /// maps; wider ones (Winograd's), other strides, paddings and kernels, rows over 32
    /// positions and output channels that are no multiple of 8 do not.
    #[test]
    fn direct_takes_the_thin_same_convs() {
        if !available() {
            eprintln!("direct_takes_the_thin_same_convs: no AVX-512F on this CPU");
            return;
        }
        let geometry = |ci, co, k, s, pad, side| {
            Geometry::new([2, ci, side, side], [co, ci, k, k], s, pad).unwrap()
        };
        assert!(applies(&geometry(16, 16, 3, 1, 1, 32)));
        assert!(applies(&geometry(32, 32, 3, 1, 1, 16)));
        assert!(applies(&geometry(3, 16, 3, 1, 1, 32)));
        assert!(applies(&geometry(3, 64, 3, 1, 1, 32)));
        assert!(!applies(&geometry(64, 64, 3, 1, 1, 32)));
        assert!(!applies(&geometry(64, 64, 3, 1, 1, 16)));
        assert!(applies(&geometry(64, 64, 3, 1, 1, 8)));
        assert!(!applies(&geometry(128, 128, 3, 1, 1, 8)));
        assert!(!applies(&geometry(16, 32, 3, 2, 1, 32)));
        assert!(!applies(&geometry(16, 16, 3, 1, 0, 32)));
        assert!(!applies(&geometry(16, 16, 1, 1, 0, 32)));
        assert!(!applies(&geometry(16, 16, 3, 1, 1, 33)));
        assert!(!applies(&geometry(16, 12, 3, 1, 1, 32)));
    }
}
