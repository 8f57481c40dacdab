//! Workspace-level tests of the engine: explicit gradients against Burn's autodiff, the
//! defining property of each rule, learning on the real MNIST, and wgpu against the CPU.

#[macro_use]
mod common;
mod autodiff;
mod checkpoint;
mod conv_rules;
mod golden;
mod image_folder;
mod mnist;
mod resnet;
mod resnet_training;
mod rules;
mod wgpu;
