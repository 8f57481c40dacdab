//! # biofeedback-core
//!
//! Feedback layers with explicit, autodiff-free backward passes for deep learning *without
//! weight transport* (Akrout et al., NeurIPS 2019).
//!
//! Every layer owns a forward weight `W` and a feedback tensor `B` of the shape of `W^T`. The
//! forward pass is the ordinary one; the backward pass sends the teaching signal through `B`
//! instead of `W^T`:
//!
//! ```text
//! y_{l+1}     = phi(W_{l+1} y_l + b_{l+1})
//! delta_l     = phi'(.) * (B_{l+1} delta_{l+1})      (backprop: B = W^T)
//! dW_{l+1}    = delta_{l+1} y_l^T                    (always the local rule)
//! ```
//!
//! Convolutions work the same way ([`FeedbackConv2d`]: `B` has the kernel's shape and the
//! teaching signal goes down by the transposed convolution with `B`); [`BatchNorm2d`] (with
//! its exact or `sigma`-only feedback), ReLU and [`pool`] pass it by their exact local rules.
//!
//! The [`Rule`] names what `B` is: backprop, feedback alignment, sign symmetry, weight mirror,
//! Kolen-Pollack, and beyond the paper the sign-concordant family (`usf`, `frsf`, `brsf`) and
//! direct feedback alignment; each layer's [`Feedback`] holds it and alone knows how it
//! learns. [`optim::Sgd`] applies the updates (KP's `B` included), [`mirror`] holds the
//! weight-mirror step and [`alignment`] the angles that measure how far `B` is from `W^T`.
//!
//! Examples, compiled by `cargo test`: `examples/01_feedback_layer.rs` (one layer under every
//! rule: forward, backward through `B`, the delta against backprop's) and
//! `examples/02_kolen_pollack.rs` (`B` learning `W^T` with SGD).
//!
//! Everything is generic over Burn's run-time [`burn::tensor::Device`]: the same code runs on
//! the `flex` CPU backend and on `wgpu`.

pub mod activation;
pub mod alignment;
pub mod batchnorm;
pub mod conv;
pub mod conv_cpu;
pub mod cpu_fused;
pub mod error;
pub mod feedback;
mod flex_f32;
pub mod init;
pub mod linear;
pub mod mirror;
pub mod optim;
pub mod pool;
pub mod rule;
pub mod tensor_io;
pub mod visit;

pub use activation::Activation;
pub use batchnorm::{BatchNorm2d, BnBackward, BnCache, BnFeedback};
pub use conv::{ConvBackward, FeedbackConv2d};
pub use error::{Error, Result};
pub use feedback::Feedback;
pub use init::Init;
pub use linear::{FeedbackLinear, LinearBackward, LinearGrads};
pub use mirror::MirrorConfig;
pub use optim::{BnMomentum, ConvMomentum, Sgd, SgdConfig};
pub use pool::MaxPool2d;
pub use rule::Rule;
pub use visit::{Slot, Visitor};
