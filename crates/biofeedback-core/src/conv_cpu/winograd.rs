//! 3x3 stride-1 convolutions as Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016,
//! "Fast Algorithms for Convolutional Neural Networks"): each 2x2 block of outputs from a 4x4
//! tile of the input, in 16 products per channel pair instead of 36.
//!
//! ```text
//! kernel  U = G g G^T        G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
//! input   V = B^T d B        B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
//! product M[xi] = U[xi] · V[xi]                 [c_out, c_in] x [c_in, tiles], xi = 0..16
//! output  Y = A^T M A        A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
//! ```
//!
//! Tile `(ty, tx)` reads the input rows and columns `2 ty - pad .. 2 ty - pad + 4` (zeros
//! outside) and writes the outputs `2 ty .. 2 ty + 2`; the transforms are additions only
//! (and halvings, exact in `f32`), so the work is the 16 GEMMs: 2.25 times fewer multiplies
//! than im2col's single GEMM, and the transformed input (4 values per input pixel and
//! channel) is smaller than im2col's matrix (9). The input and output transforms run on
//! whole rows of tiles at a time, so they vectorize (to SSE in the baseline x86-64 build:
//! an AVX-512 dispatch of them measured no faster, `docs/performance.md`).

use super::{CHUNK_FLOATS, Geometry, Layout, Mat, matmul, with_scratch};
use rayon::prelude::*;

/// Transformed values per tile: the 4x4 Winograd domain.
const XI: usize = 16;

/// Whether `g` is a convolution this path computes: a 3x3 kernel at stride 1 with a padding
/// of at most 2, and at least 64 channels on both sides. With fewer the 16 products are
/// GEMMs too thin to pay for the transforms: at 16 and 32 channels (the CIFAR ResNets' first
/// stages) Winograd measured no faster than im2col, and up to twice as slow for the input
/// gradient (`docs/performance.md`).
pub(super) fn applies(g: &Geometry) -> bool {
    g.k == 3 && g.stride == 1 && g.pad <= 2 && g.c_in >= 64 && g.c_out >= 64
}

/// Which kernel is transformed: the forward kernel `[c_out, c_in, 3, 3]` as it is, or the
/// input gradient's, the kernel `[c_out, c_in, 3, 3]` with its channel axes swapped and its
/// taps flipped (`B'[ci, co, a, b] = B[co, ci, 2 - a, 2 - b]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    AsIs,
    TransposedFlipped,
}

/// `U = G g G^T` of every channel pair of the 3x3 kernel `w`, `[oc][16][ic]` with `oc` the
/// output channels of the convolution computed (`c_out` as is, `c_in` transposed).
pub(super) fn transform_kernel(w: &[f32], c_out: usize, c_in: usize, which: Kernel) -> Vec<f32> {
    let (oc, ic) = match which {
        Kernel::AsIs => (c_out, c_in),
        Kernel::TransposedFlipped => (c_in, c_out),
    };
    let mut u = vec![0.0f32; oc * XI * ic];
    u.par_chunks_mut(XI * ic).enumerate().for_each(|(o, out)| {
        for i in 0..ic {
            let mut g = [0.0f32; 9];
            match which {
                Kernel::AsIs => g.copy_from_slice(&w[(o * c_in + i) * 9..][..9]),
                Kernel::TransposedFlipped => {
                    let src = &w[(i * c_in + o) * 9..][..9];
                    g.iter_mut()
                        .zip(src.iter().rev())
                        .for_each(|(d, s)| *d = *s);
                }
            }
            for (xi, value) in kernel_tile(&g).into_iter().enumerate() {
                out[xi * ic + i] = value;
            }
        }
    });
    u
}

/// `G g G^T` of one 3x3 kernel (row-major), row-major 4x4.
fn kernel_tile(g: &[f32; 9]) -> [f32; XI] {
    // G g: 4 rows of 3.
    let mut gg = [[0.0f32; 3]; 4];
    for b in 0..3 {
        let (g0, g1, g2) = (g[b], g[3 + b], g[6 + b]);
        gg[0][b] = g0;
        gg[1][b] = 0.5 * (g0 + g1 + g2);
        gg[2][b] = 0.5 * (g0 - g1 + g2);
        gg[3][b] = g2;
    }
    // (G g) G^T: each row's 3 values to 4.
    let mut u = [0.0f32; XI];
    for (k, [r0, r1, r2]) in gg.into_iter().enumerate() {
        u[4 * k] = r0;
        u[4 * k + 1] = 0.5 * (r0 + r1 + r2);
        u[4 * k + 2] = 0.5 * (r0 - r1 + r2);
        u[4 * k + 3] = r2;
    }
    u
}

/// Tiles per image: `(rows, columns)` of 2x2 output blocks.
fn tiles(g: &Geometry) -> (usize, usize) {
    (g.oh.div_ceil(2), g.ow.div_ceil(2))
}

/// The convolution of `x` (`[n, c_in, h, w]`) with the transformed kernel `u`
/// ([`transform_kernel`]), laid out as `g` says: `[n, c_out, h', w']`.
pub(super) fn forward(xs: &[f32], u: &[f32], g: &Geometry) -> Vec<f32> {
    let (th, tw) = tiles(g);
    let per_image = th * tw;
    // A chunk's transformed input `V` and products `M` together, each about as large as
    // an im2col chunk (one image alone may need more: 26 MB for `layer1` at 224x224).
    let per = g.per_chunk_of(XI * (g.c_in + g.c_out) * per_image, 2 * CHUNK_FLOATS);
    let ohw = g.ohw();
    let mut y = vec![0.0f32; g.n * g.c_out * ohw];
    y.par_chunks_mut(per * g.c_out * ohw)
        .enumerate()
        .for_each(|(chunk, out)| {
            with_scratch(|v, m| {
                let images = g.chunk(chunk, per);
                let cols = images.len() * per_image;
                v.resize(XI * g.c_in * cols, 0.0);
                m.resize(XI * g.c_out * cols, 0.0);
                transform_input(xs, g, images.clone(), v);
                for xi in 0..XI {
                    let lhs = Mat {
                        data: &u[xi * g.c_in..],
                        rows: g.c_out,
                        cols: g.c_in,
                        rs: XI * g.c_in,
                        cs: 1,
                    };
                    let rhs =
                        Mat::row_major(&v[xi * g.c_in * cols..][..g.c_in * cols], g.c_in, cols);
                    let dst = &mut m[xi * g.c_out * cols..][..g.c_out * cols];
                    matmul(dst, Layout::RowMajor, false, lhs, rhs);
                }
                transform_output(m, g, images.len(), out);
            })
        });
    y
}

/// `V = B^T d B` of every tile of the images `images` of `x`, into `v` as 16 row-major
/// matrices `[c_in, |images| tiles]` (tile `(ty, tx)` of the chunk's `i`-th image in
/// column `i th tw + ty tw + tx`).
fn transform_input(x: &[f32], g: &Geometry, images: std::ops::Range<usize>, v: &mut [f32]) {
    let (th, tw) = tiles(g);
    let cols = images.len() * th * tw;
    let width = tw + 1;
    // The zero-padded plane's even and odd columns (padded column 2j and 2j + 1), 2 th + 2
    // rows each: tile (ty, tx) reads rows 2 ty .. 2 ty + 4, columns tx and tx + 1 of both.
    let rows = 2 * th + 2;
    let mut even = vec![0.0f32; rows * width];
    let mut odd = vec![0.0f32; rows * width];
    let mut t = vec![0.0f32; 8 * width];
    for (i, image) in images.enumerate() {
        for ci in 0..g.c_in {
            let plane = &x[(image * g.c_in + ci) * g.h * g.w..][..g.h * g.w];
            for r in 0..rows {
                let (e, o) = (
                    &mut even[r * width..][..width],
                    &mut odd[r * width..][..width],
                );
                let iy = r as isize - g.pad as isize;
                if iy < 0 || iy >= g.h as isize {
                    e.fill(0.0);
                    o.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * g.w..][..g.w];
                e.fill(0.0);
                o.fill(0.0);
                deinterleave(src, g.pad, e, o);
            }
            for ty in 0..th {
                // B^T d over the tile rows, for the even and the odd columns:
                // t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
                for (half, plane) in [&even, &odd].into_iter().enumerate() {
                    let d = |r: usize| &plane[(2 * ty + r) * width..][..width];
                    let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                    let (t0, rest) = t[half * 4 * width..][..4 * width].split_at_mut(width);
                    let (t1, rest) = rest.split_at_mut(width);
                    let (t2, t3) = rest.split_at_mut(width);
                    for j in 0..width {
                        t0[j] = d0[j] - d2[j];
                        t1[j] = d1[j] + d2[j];
                        t2[j] = d2[j] - d1[j];
                        t3[j] = d1[j] - d3[j];
                    }
                }
                // (B^T d) B over the columns: c0, c1, c2, c3 = e[tx], o[tx], e[tx + 1], o[tx + 1].
                let start = i * th * tw + ty * tw;
                for k in 0..4 {
                    let e = &t[k * width..][..width];
                    let o = &t[(4 + k) * width..][..width];
                    let (e0, e1, o0, o1) = (&e[..tw], &e[1..], &o[..tw], &o[1..]);
                    let at = |l: usize| ((4 * k + l) * g.c_in + ci) * cols + start;
                    let combine = |d: &mut [f32], a: &[f32], b: &[f32], sign: f32| {
                        d.iter_mut()
                            .zip(a.iter().zip(b))
                            .for_each(|(d, (a, b))| *d = a + sign * b);
                    };
                    combine(&mut v[at(0)..][..tw], e0, e1, -1.0);
                    combine(&mut v[at(1)..][..tw], o0, e1, 1.0);
                    combine(&mut v[at(2)..][..tw], e1, o0, -1.0);
                    combine(&mut v[at(3)..][..tw], o0, o1, -1.0);
                }
            }
        }
    }
}

/// Scatters the row `src` into the even (`e`) and odd (`o`) columns of its zero-padded
/// row: input column `ix` is padded column `ix + pad`, so column `2 j` of the padded row is
/// `e[j]` and column `2 j + 1` is `o[j]`. Pairs of input columns at a time, so that the
/// loop vectorizes (a stride-2 gather per column is scalar).
fn deinterleave(src: &[f32], pad: usize, e: &mut [f32], o: &mut [f32]) {
    // Input pair m (columns 2m, 2m + 1) lands at padded columns 2m + pad, 2m + 1 + pad.
    let (first, second, at_first, at_second) = if pad.is_multiple_of(2) {
        (e, o, pad / 2, pad / 2)
    } else {
        (o, e, (pad - 1) / 2, pad.div_ceil(2))
    };
    let pairs = src.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let count = pairs.len();
    for ((a, b), pair) in first[at_first..][..count]
        .iter_mut()
        .zip(&mut second[at_second..][..count])
        .zip(pairs)
    {
        *a = pair[0];
        *b = pair[1];
    }
    if let Some(v) = last {
        first[at_first + count] = v;
    }
}

/// `Y = A^T M A` of every tile: `m` the 16 products `[c_out, images tiles]`, `out` the
/// chunk's outputs `[images, c_out, h', w']` (a tile's outputs past `h'` or `w'` dropped).
fn transform_output(m: &[f32], g: &Geometry, images: usize, out: &mut [f32]) {
    let (th, tw) = tiles(g);
    let cols = images * th * tw;
    let mut s = vec![0.0f32; 8 * tw];
    let mut y = vec![0.0f32; 4 * tw];
    for i in 0..images {
        for co in 0..g.c_out {
            let plane = &mut out[(i * g.c_out + co) * g.ohw()..][..g.ohw()];
            for ty in 0..th {
                let start = i * th * tw + ty * tw;
                let mx = |xi: usize| &m[(xi * g.c_out + co) * cols + start..][..tw];
                // A^T M over the tile rows: s0 = M0 + M1 + M2, s1 = M1 - M2 - M3, per column l.
                for l in 0..4 {
                    let (m0, m1, m2, m3) = (mx(l), mx(4 + l), mx(8 + l), mx(12 + l));
                    let (s0, s1) = s[l * 2 * tw..][..2 * tw].split_at_mut(tw);
                    for tx in 0..tw {
                        s0[tx] = m0[tx] + m1[tx] + m2[tx];
                        s1[tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                // (A^T M) A over the columns: y_j0 = s_j0 + s_j1 + s_j2, y_j1 = s_j1 - s_j2 - s_j3.
                for j in 0..2 {
                    let sl = |l: usize| &s[(l * 2 + j) * tw..][..tw];
                    let (a, b, c, d) = (sl(0), sl(1), sl(2), sl(3));
                    let (y0, y1) = y[j * 2 * tw..][..2 * tw].split_at_mut(tw);
                    for tx in 0..tw {
                        y0[tx] = a[tx] + b[tx] + c[tx];
                        y1[tx] = b[tx] - c[tx] - d[tx];
                    }
                }
                for j in 0..2 {
                    let oy = 2 * ty + j;
                    if oy >= g.oh {
                        break;
                    }
                    let row = &mut plane[oy * g.ow..][..g.ow];
                    let (y0, y1) = y[j * 2 * tw..][..2 * tw].split_at(tw);
                    let mut pairs = row.chunks_exact_mut(2);
                    for (d, (a, b)) in (&mut pairs).zip(y0.iter().zip(y1)) {
                        d[0] = *a;
                        d[1] = *b;
                    }
                    if let [last] = pairs.into_remainder() {
                        *last = y0[tw - 1];
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

    /// `G g G^T` of the 3x3 kernel `g`, from the matrices of the module docs.
    fn kernel_tile_by_matrices(g: &[f32; 9]) -> [f32; XI] {
        let gm = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let mut u = [0.0f32; XI];
        for k in 0..4 {
            for l in 0..4 {
                u[4 * k + l] = (0..3)
                    .flat_map(|a| (0..3).map(move |b| (a, b)))
                    .map(|(a, b)| gm[k][a] * g[3 * a + b] * gm[l][b])
                    .sum();
            }
        }
        u
    }

    /// The Winograd convolution equals im2col's for odd sides (a last tile half outside),
    /// paddings 0, 1 and 2, 1- and 2-pixel maps and several images per chunk, with the kernel
    /// as it is and transposed and flipped (the input gradient's).
    #[test]
    fn winograd_equals_im2col() {
        // (n, c_in, c_out, pad, side)
        for (n, ci, co, p, side) in [
            (3, 64, 64, 1, 7),
            (2, 64, 80, 0, 6),
            (2, 96, 64, 2, 5),
            (4, 64, 64, 1, 1),
            (3, 64, 64, 1, 2),
            (9, 128, 64, 1, 8),
        ] {
            let case = format!("n {n} c {ci}->{co} pad {p} side {side}");
            let g = Geometry::new([n, ci, side, side], [co, ci, 3, 3], 1, p).unwrap();
            assert!(applies(&g), "{case}: Winograd takes it");
            let x = values(n * ci * side * side, 1.0);
            let w = values(co * ci * 9, 2.0);
            let u = transform_kernel(&w, co, ci, Kernel::AsIs);
            close(
                &forward(&x, &u, &g),
                &super::super::forward(&x, &w, &g),
                &case,
            );

            // The same kernel read as the input gradient's: `w` is then `[ci, co, 3, 3]`
            // (its convolution maps `ci` channels to `co`) and is used transposed, flipped.
            let u = transform_kernel(&w, ci, co, Kernel::TransposedFlipped);
            let want = super::super::forward(&x, &flipped(&w, ci, co), &g);
            close(&forward(&x, &u, &g), &want, &format!("{case}, transposed"));
        }
    }

    /// ResNet-18's stride-1 3x3 convs go through Winograd, the thin ones, strided ones and
    /// other kernels through im2col.
    #[test]
    fn winograd_takes_the_wide_stride_one_3x3_convs() {
        let geometry =
            |ci, co, k, s| Geometry::new([2, ci, 8, 8], [co, ci, k, k], s, k / 2).unwrap();
        assert!(applies(&geometry(64, 64, 3, 1)));
        assert!(applies(&geometry(512, 512, 3, 1)));
        assert!(!applies(&geometry(3, 64, 3, 1)));
        assert!(!applies(&geometry(32, 32, 3, 1)));
        assert!(!applies(&geometry(64, 128, 3, 2)));
        assert!(!applies(&geometry(64, 64, 1, 1)));
        assert!(!applies(&geometry(64, 64, 5, 1)));
    }

    #[test]
    fn the_kernel_transform_is_g_g_gt() {
        let g = [1.0, -2.0, 3.5, 0.25, 4.0, -1.0, 2.0, 0.5, -3.0];
        assert_eq!(kernel_tile(&g), kernel_tile_by_matrices(&g));
    }
}
