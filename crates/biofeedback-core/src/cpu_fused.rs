//! Fused element-wise kernels of the CPU (`flex`) path: the SGD update and the ReLU backward,
//! each one pass over its tensors.
//!
//! Through Burn's tensor API the SGD update of [`crate::optim::Sgd`] is a chain of 6 to 8
//! element-wise ops (`p * lambda`, `+ g`, `v * mu`, `+ g'`, `v * mu`, `+ g'`, `* lr`,
//! `p -`), each a pass over the parameter's size and most of them a fresh allocation; the
//! ReLU backward `g.mask_fill(y <= 0, 0)` is two passes and a mask. Here each is one loop
//! that writes into the tensors it owns, with the same `f32` operations in the same order,
//! so the results are bit for bit those of Burn's ops (tested).
//!
//! Every function hands its tensors back (`Err`) when they are not plain `f32` tensors of the
//! `flex` backend, and the caller runs Burn's ops. `BIOFEEDBACK_CPU_FUSED=burn` in the
//! environment turns this path off, which is how `docs/performance.md` measures the two side
//! by side.

use crate::flex_f32::{elements, elements_mut, owned, tensor, view};
use crate::optim::SgdConfig;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Elements per parallel task: below this a tensor is updated on the calling thread.
const GRAIN: usize = 1 << 15;

/// Whether this path is on: unless `BIOFEEDBACK_CPU_FUSED=burn` is set.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BIOFEEDBACK_CPU_FUSED").map_or(true, |v| v != "burn"))
}

/// The SGD update's coefficients, as `f32` (Burn's `mul_scalar` rounds its scalar so too).
#[derive(Clone, Copy)]
struct Coefficients {
    decay: Option<f32>,
    momentum: Option<f32>,
    nesterov: bool,
    lr: f32,
}

impl Coefficients {
    /// `p <- p - lr step` over slices of equal length, `v` the velocity (empty without
    /// momentum; `fresh`: none yet, so `v = g'`).
    fn run(self, p: &mut [f32], g: &[f32], v: &mut [f32], fresh: bool) {
        pulp::Arch::new().dispatch(SgdLoop {
            c: self,
            p,
            g,
            v,
            fresh,
        })
    }

    /// [`Coefficients::run`], inlined into pulp's SIMD-enabled caller.
    #[inline(always)]
    fn run_inline(self, p: &mut [f32], g: &[f32], v: &mut [f32], fresh: bool) {
        // One loop per case, so that each is branch-free and vectorized.
        match (
            self.decay.is_some(),
            self.momentum.is_some(),
            self.nesterov,
            fresh,
        ) {
            (true, true, true, false) => self.each::<true, true, true, false>(p, g, v),
            (true, true, false, false) => self.each::<true, true, false, false>(p, g, v),
            (true, true, true, true) => self.each::<true, true, true, true>(p, g, v),
            (true, true, false, true) => self.each::<true, true, false, true>(p, g, v),
            (false, true, true, false) => self.each::<false, true, true, false>(p, g, v),
            (false, true, false, false) => self.each::<false, true, false, false>(p, g, v),
            (false, true, true, true) => self.each::<false, true, true, true>(p, g, v),
            (false, true, false, true) => self.each::<false, true, false, true>(p, g, v),
            (true, false, ..) => self.each::<true, false, false, false>(p, g, v),
            (false, false, ..) => self.each::<false, false, false, false>(p, g, v),
        }
    }

    /// [`Coefficients::run`] for one case, in Burn's order of `f32` operations:
    /// `g' = g + p lambda`, `v = v mu + g'`, `step = g' + v mu` (Nesterov) or `v`,
    /// `p = p - step lr`.
    #[inline(always)]
    fn each<const DECAY: bool, const MOMENTUM: bool, const NESTEROV: bool, const FRESH: bool>(
        self,
        p: &mut [f32],
        g: &[f32],
        v: &mut [f32],
    ) {
        let lambda = self.decay.unwrap_or(0.0);
        let mu = self.momentum.unwrap_or(0.0);
        let lr = self.lr;
        let update = |p: &mut f32, g: f32, v: Option<&mut f32>| {
            let g = if DECAY { g + *p * lambda } else { g };
            let step = match v {
                Some(v) => {
                    *v = if FRESH { g } else { *v * mu + g };
                    if NESTEROV { g + *v * mu } else { *v }
                }
                None => g,
            };
            *p -= step * lr;
        };
        if MOMENTUM {
            p.iter_mut()
                .zip(g)
                .zip(v.iter_mut())
                .for_each(|((p, &g), v)| update(p, g, Some(v)));
        } else {
            p.iter_mut().zip(g).for_each(|(p, &g)| update(p, g, None));
        }
    }
}

/// The SGD loop over one slice, compiled by pulp for the widest SIMD this CPU has (its
/// `with_simd` is inlined into a function with those target features, so the loops
/// vectorize to AVX-512 where there is AVX-512, to SSE on a baseline x86-64).
struct SgdLoop<'a> {
    c: Coefficients,
    p: &'a mut [f32],
    g: &'a [f32],
    v: &'a mut [f32],
    fresh: bool,
}

impl pulp::WithSimd for SgdLoop<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.c.run_inline(self.p, self.g, self.v, self.fresh)
    }
}

/// `g <- g [y > 0]` over one slice, dispatched like [`SgdLoop`].
struct ReluMask<'a> {
    g: &'a mut [f32],
    y: &'a [f32],
}

impl pulp::WithSimd for ReluMask<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.g
            .iter_mut()
            .zip(self.y)
            .for_each(|(g, &y)| *g = if y <= 0.0 { 0.0 } else { *g })
    }
}

/// One SGD update of `param` with gradient `grad` in one pass (see [`crate::optim::Sgd`] for
/// the equations; `decay`: whether L2 applies to this parameter): the new parameter, its
/// storage reused when `param` held the only handle, and `velocity` updated in place. `Err`
/// gives `param` back, `velocity` untouched, when the tensors are not plain flex `f32`
/// tensors of one size.
#[expect(
    clippy::result_large_err,
    reason = "Err hands the caller's own tensor back by move; boxing it would allocate on every call"
)]
pub fn sgd_update<const D: usize>(
    param: Tensor<D>,
    grad: &Tensor<D>,
    velocity: &mut Option<Tensor<D>>,
    config: SgdConfig,
    lr: f64,
    decay: bool,
) -> Result<Tensor<D>, Tensor<D>> {
    let n = param.shape().num_elements();
    let same_size = |t: &Tensor<D>| t.shape().num_elements() == n;
    if !enabled() || !same_size(grad) || !velocity.as_ref().is_none_or(same_size) {
        return Err(param);
    }
    let Some(g) = view(grad) else {
        return Err(param);
    };
    let momentum = config.momentum != 0.0;
    let mut v = match velocity.take() {
        Some(v) if momentum => match owned(v) {
            Ok(v) => Some(v),
            Err(v) => {
                *velocity = Some(v);
                return Err(param);
            }
        },
        other => {
            *velocity = other;
            None
        }
    };
    let mut p = match owned(param) {
        Ok(p) => p,
        Err(param) => {
            *velocity = v.map(tensor);
            return Err(param);
        }
    };
    let c = Coefficients {
        decay: (decay && config.weight_decay != 0.0).then_some(config.weight_decay as f32),
        momentum: momentum.then_some(config.momentum as f32),
        nesterov: config.nesterov,
        lr: lr as f32,
    };
    let fresh = momentum && v.is_none();
    let mut fresh_v = if fresh { vec![0.0; n] } else { Vec::new() };
    {
        let ps = elements_mut(&mut p);
        let gs = elements(&g);
        let vs: &mut [f32] = match &mut v {
            Some(v) => elements_mut(v),
            None => &mut fresh_v,
        };
        if n < 2 * GRAIN {
            c.run(ps, gs, vs, fresh);
        } else if vs.is_empty() {
            ps.par_chunks_mut(GRAIN)
                .zip(gs.par_chunks(GRAIN))
                .for_each(|(p, g)| c.run(p, g, &mut [], fresh));
        } else {
            ps.par_chunks_mut(GRAIN)
                .zip(gs.par_chunks(GRAIN))
                .zip(vs.par_chunks_mut(GRAIN))
                .for_each(|((p, g), v)| c.run(p, g, v, fresh));
        }
    }
    *velocity = match v {
        Some(v) => Some(tensor(v)),
        None if fresh => Some(Tensor::from_data(
            TensorData::new(fresh_v, grad.shape()),
            &grad.device(),
        )),
        None => None,
    };
    Ok(tensor(p))
}

/// `g * [y > 0]` (the ReLU backward through its output `y`) in one pass, written into `g`'s
/// storage when `g` held the only handle. A NaN in `y` passes `g` through, as
/// `g.mask_fill(y <= 0, 0)` does. `Err` gives `g` back when the tensors are not plain flex
/// `f32` tensors of one size.
#[expect(
    clippy::result_large_err,
    reason = "Err hands the caller's own tensor back by move; boxing it would allocate on every call"
)]
pub fn relu_backward<const D: usize>(y: &Tensor<D>, g: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    if !enabled() || y.shape() != g.shape() {
        return Err(g);
    }
    let Some(ys) = view(y) else {
        return Err(g);
    };
    let mut gs = owned(g)?;
    let mask = |g: &mut [f32], y: &[f32]| pulp::Arch::new().dispatch(ReluMask { g, y });
    let (gm, ye) = (elements_mut(&mut gs), elements(&ys));
    if gm.len() < 2 * GRAIN {
        mask(gm, ye);
    } else {
        gm.par_chunks_mut(GRAIN)
            .zip(ye.par_chunks(GRAIN))
            .for_each(|(g, y)| mask(g, y));
    }
    Ok(tensor(gs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{gaussian, seeded_rng};
    use crate::optim::update_by_ops;
    use crate::tensor_io::to_vec;
    use burn::tensor::Device;

    /// Bit patterns, so that `-0.0` against `0.0` and NaNs count.
    fn bits<const D: usize>(t: &Tensor<D>) -> Vec<u32> {
        to_vec(t.clone()).iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn the_fused_sgd_update_is_burns_op_chain_bit_for_bit() {
        let device = Device::flex();
        let mut rng = seeded_rng(5);
        // 3 * GRAIN elements takes the parallel path, 7 * 11 the sequential one.
        for shape in [[7, 11], [3, 1 << 15]] {
            for (momentum, nesterov, weight_decay, decay) in [
                (0.9, true, 5e-4, true),
                (0.9, false, 5e-4, true),
                (0.9, true, 5e-4, false),
                (0.0, false, 1e-2, true),
                (0.5, false, 0.0, true),
            ] {
                let config = SgdConfig {
                    momentum,
                    nesterov,
                    weight_decay,
                };
                let start = gaussian(shape, 1.0, &mut rng, &device);
                let (mut fused, mut by_ops) = (start.clone(), start);
                let (mut v_fused, mut v_ops) = (None, None);
                // The first step creates the velocity, the later ones update it.
                for step in 0..3 {
                    let grad = gaussian(shape, 1.0, &mut rng, &device);
                    let lr = 0.1 / (step + 1) as f64;
                    fused = sgd_update(fused, &grad, &mut v_fused, config, lr, decay)
                        .unwrap_or_else(|_| panic!("flex f32 tensors take the fused path"));
                    by_ops = update_by_ops(by_ops, grad, &mut v_ops, config, lr, decay);
                    let case = format!("{shape:?} {config:?} decay {decay}, step {step}");
                    assert_eq!(bits(&fused), bits(&by_ops), "parameter, {case}");
                    assert_eq!(
                        v_fused.as_ref().map(bits),
                        v_ops.as_ref().map(bits),
                        "velocity, {case}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_fused_sgd_update_leaves_other_handles_on_the_parameter_alone() {
        let device = Device::flex();
        let mut rng = seeded_rng(6);
        let param = gaussian([4, 5], 1.0, &mut rng, &device);
        let grad = gaussian([4, 5], 1.0, &mut rng, &device);
        let kept = param.clone();
        let before = bits(&kept);
        let config = SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        };
        let updated = sgd_update(param, &grad, &mut None, config, 0.1, true).unwrap();
        assert_eq!(
            bits(&kept),
            before,
            "a shared parameter is copied, not written"
        );
        assert_ne!(bits(&updated), before);
    }

    #[test]
    fn the_fused_relu_backward_is_mask_fill_bit_for_bit() {
        let device = Device::flex();
        let mut rng = seeded_rng(7);
        for shape in [[3, 5], [4, 1 << 15]] {
            let mut y = to_vec(burn::tensor::activation::relu(gaussian(
                shape, 1.0, &mut rng, &device,
            )));
            // Zeros of both signs, a NaN and an infinity among the outputs.
            y[..4].copy_from_slice(&[0.0, -0.0, f32::NAN, f32::INFINITY]);
            let y = Tensor::<2>::from_data(TensorData::new(y, shape), &device);
            let g = gaussian(shape, 1.0, &mut rng, &device);
            let expected = g.clone().mask_fill(y.clone().lower_equal_elem(0.0), 0.0);
            let kept = g.clone();
            let before = bits(&kept);
            let fused = relu_backward(&y, g).unwrap_or_else(|_| panic!("flex f32 tensors"));
            assert_eq!(bits(&fused), bits(&expected), "{shape:?}");
            assert_eq!(
                bits(&kept),
                before,
                "a shared gradient is copied, not written"
            );
        }
    }
}
