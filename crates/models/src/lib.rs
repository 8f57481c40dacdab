//! # biofeedback-models
//!
//! Networks built from `biofeedback-core` feedback layers.
//!
//! - [`Mlp`]: any hidden sizes; sigmoid, tanh or relu; every layer a
//!   [`biofeedback_core::FeedbackLinear`] whose backward pass uses the rule's own `B`.
//! - [`ResNet`]: ResNet-18 and ResNet-50 of feedback convs with train-mode BatchNorm, an
//!   ImageNet or a 32x32 stem and a width multiplier.
//! - [`Loss`]: softmax cross-entropy, or the authors' sigmoid + summed binary cross-entropy.
//! - [`FeedbackNetwork`]: what both offer (forward, training forward, backward through `B` or
//!   `W^T`), and SPEC section 4's alignment of every layer ([`LayerAlignment`]) for any
//!   network of feedback layers.
//!
//! Example, compiled by `cargo test`: `examples/03_mlp_rules.rs` trains an [`Mlp`] under
//! several rules with [`Mlp::forward_train`], [`Loss::loss_and_grad`], [`Mlp::backward`] and
//! SGD, and compares each rule's hidden delta with backprop's ([`Path::Exact`]).

pub mod loss;
pub mod mlp;
pub mod network;
pub mod resnet;

pub use loss::Loss;
pub use mlp::{Mlp, MlpBackward, MlpCache, MlpConfig, Path};
pub use network::{FeedbackNetwork, LayerAlignment};
pub use resnet::{
    BnPosition, Depth, ResNet, ResNetBackward, ResNetCache, ResNetConfig, ResNetOptim, Stem,
};
