//! Reading tensors back to the host.

use burn::tensor::Tensor;

/// The elements of `t`, row-major, as `f32` on the host.
///
/// # Panics
/// If the device fails to return the data (a device fault, not a user error).
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("a float tensor reads back as f32")
}

/// The single value of a one-element tensor.
pub fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// `|a - b| / |b|` (Euclidean norms over all elements, in `f64`): how far `a` is from the
/// reference `b`.
///
/// # Panics
/// If the two have different numbers of elements.
pub fn relative_error<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let (a, b) = (to_vec(a), to_vec(b));
    assert_eq!(a.len(), b.len(), "relative_error: sizes differ");
    let diff: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}
