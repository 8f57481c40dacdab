//! Plain `f32` tensors of Burn's `flex` CPU backend, opened for this crate's own CPU kernels
//! ([`crate::conv_cpu`], [`crate::cpu_fused`]) through Burn's backend extension mechanism
//! (`Tensor::try_into_primitive` / `Tensor::from_primitive`).
//!
//! A tensor on another backend (`wgpu`), one tracked by autodiff, or of another dtype is not
//! opened: every function here then answers `None` or hands the tensor back, and the caller
//! runs Burn's own ops.

use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};

/// A shared handle on `tensor`'s storage, made contiguous, or `None` when it is not a plain
/// `f32` flex tensor.
pub(crate) fn view<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    let t = tensor.clone().try_into_primitive::<Flex>().ok()?;
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    })
}

/// The elements of a contiguous flex tensor, in order.
pub(crate) fn elements(t: &FlexTensor) -> &[f32] {
    let start = t.layout().start_offset();
    &t.storage::<f32>()[start..start + t.layout().num_elements()]
}

/// `tensor` as an owned flex tensor whose elements can be written in place, or `tensor` back
/// when it is not a plain, contiguous `f32` flex tensor. The storage is written in place when
/// this was the only handle on it; otherwise the first write copies it (Burn's copy on
/// write), so a handle kept elsewhere never sees the change.
#[expect(
    clippy::result_large_err,
    reason = "Err hands the caller's own tensor back by move; boxing it would allocate on every call"
)]
pub(crate) fn owned<const D: usize>(tensor: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
    match tensor.clone().try_into_primitive::<Flex>() {
        Ok(t) if t.dtype() == DType::F32 && t.layout().contiguous_offsets().is_some() => {
            drop(tensor);
            Ok(t)
        }
        _ => Err(tensor),
    }
}

/// The elements of an [`owned`] tensor, writable.
pub(crate) fn elements_mut(t: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("owned() only hands out contiguous tensors");
    &mut t.storage_mut::<f32>()[start..end]
}

/// A flex tensor back as a [`Tensor`].
pub(crate) fn tensor<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}
