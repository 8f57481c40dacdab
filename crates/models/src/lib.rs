//! # biofeedback-models
//!
//! Networks built from `biofeedback-core` feedback layers.
//!
//! - [`Mlp`]: any hidden sizes; sigmoid, tanh or relu; every layer a
//!   [`biofeedback_core::FeedbackLinear`] whose backward pass uses the rule's own `B`.
//! - [`ResNet`]: ResNet-18 and ResNet-50 of feedback convs with train-mode BatchNorm, an
//!   ImageNet or a 32x32 stem and a width multiplier.
//! - [`Loss`]: softmax cross-entropy, or the authors' sigmoid + summed binary cross-entropy.
//!
//! Quick start:
//!
//! ```ignore
//! use biofeedback_models::{Loss, Mlp, MlpConfig};
//! let mlp = MlpConfig::new(784, vec![500], 10).init(&mut rng, &device);
//! let (logits, cache) = mlp.forward_train(x);            // [batch, 10]
//! let (loss, dlogits) = Loss::CrossEntropy.loss_and_grad(logits, targets);
//! let back = mlp.backward(&cache, dlogits, Path::Own, false);
//! ```

pub mod loss;
pub mod mlp;
pub mod resnet;

pub use loss::Loss;
pub use mlp::{Mlp, MlpBackward, MlpCache, MlpConfig, Path};
pub use resnet::{BnPosition, Depth, ResNet, ResNetBackward, ResNetCache, ResNetConfig, Stem};
