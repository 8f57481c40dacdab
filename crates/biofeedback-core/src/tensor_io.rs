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
