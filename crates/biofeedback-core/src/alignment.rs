//! Alignment metrics: how far a feedback path is from backprop's (SPEC section 4).

use crate::tensor_io::scalar;
use burn::tensor::Tensor;

/// The angle in degrees between `vec(a)` and `vec(b)`:
/// `degrees(arccos(clip(<a, b> / (|a| |b|), -1, 1)))`.
///
/// Computed as `2 asin(|a/|a| - b/|b|| / 2)`, which equals the arccos form but keeps its
/// precision near 0 degrees (where arccos of a rounded cosine loses it). Returns NaN when
/// either vector is zero.
///
/// # Shapes
/// `a` and `b` of the same shape, any rank.
pub fn angle_degrees<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let na = norm(a.clone());
    let nb = norm(b.clone());
    if na == 0.0 || nb == 0.0 || !na.is_finite() || !nb.is_finite() {
        return f64::NAN;
    }
    let chord = norm(a.div_scalar(na) - b.div_scalar(nb));
    (2.0 * (chord / 2.0).clamp(0.0, 1.0).asin()).to_degrees()
}

/// The Euclidean norm of `vec(t)`.
pub fn norm<const D: usize>(t: Tensor<D>) -> f64 {
    scalar(t.square().sum()).sqrt()
}

/// `|a| / |b|` (the report's `|B| / |W|`).
pub fn norm_ratio<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    norm(a) / norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn angles_of_known_vectors() {
        let d = Device::flex();
        let a = Tensor::<1>::from_floats([1.0, 0.0], &d);
        let b = Tensor::<1>::from_floats([0.0, 2.0], &d);
        let c = Tensor::<1>::from_floats([3.0, 3.0], &d);
        assert!((angle_degrees(a.clone(), b.clone()) - 90.0).abs() < 1e-4);
        assert!((angle_degrees(a.clone(), c.clone()) - 45.0).abs() < 1e-4);
        assert!((angle_degrees(a.clone(), a.clone().neg()) - 180.0).abs() < 1e-4);
        assert!(angle_degrees(c.clone(), c.clone().mul_scalar(5.0)).abs() < 1e-3);
        assert!(angle_degrees(a, b.zeros_like()).is_nan());
        assert!((norm_ratio(c, Tensor::from_floats([1.0, 1.0], &d)) - 3.0).abs() < 1e-6);
    }
}
